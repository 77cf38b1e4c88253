//! Where flows' HTTP may go (`[http]`, validated by the config): networks allowed and denied,
//! the timeout and the answer size limit. Checked on every resolved address and redirect.

use std::net::IpAddr;

use crate::net::Cidr;

/// Where flows' HTTP may go, validated (`[http]`).
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    pub timeout: std::time::Duration,
    pub max_response_bytes: usize,
}

impl HttpPolicy {
    /// Anything goes (tests and tools); the config's default denies the operator's networks.
    pub fn permissive(timeout: std::time::Duration, max_response_bytes: usize) -> Self {
        HttpPolicy {
            allow: Vec::new(),
            deny: Vec::new(),
            timeout,
            max_response_bytes,
        }
    }

    /// An address flows may connect to: in `allow`, or outside `deny`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|c| c.contains(ip)) || !self.deny.iter().any(|c| c.contains(ip))
    }
}
