//! A trunk as the call layer uses it: its name, the source networks it takes requests from
//! (the ACL every request passes), the outbound proxy legs and messages go through, how they
//! reach it (transport, `None`: RFC 3263 NAPTR picks one; over TLS, whom to trust), and its
//! account there: digest credentials, the caller identity put in From, and whether the engine
//! registers with it.

use std::fmt;
use std::sync::Arc;

use crate::net::Cidr;
use crate::sip::resolve::{ProxyAddress, Transport};
use crate::sip::transport::TlsClient;

/// A trunk with its parsed ACL (`[[trunks]]`, validated by the config).
#[derive(Debug, Clone)]
pub struct Trunk {
    pub name: String,
    pub allow: Vec<Cidr>,
    pub outbound_proxy: Option<ProxyAddress>,
    pub transport: Option<Transport>,
    /// Over TLS, the only CA the proxy's certificate may chain to (`trunks[].tls_ca`); `None`
    /// trusts the system roots.
    pub tls_ca: Option<TlsClient>,
    /// Credentials, identity and registration; all off by default.
    pub account: TrunkAccount,
}

/// What a trunk's carrier knows us by (`username`, `password`, `realm`, `from_user`,
/// `from_domain`, `register`, `register_expires`).
#[derive(Debug, Clone, Default)]
pub struct TrunkAccount {
    /// Digest credentials answering the carrier's 401/407 (RFC 3261 §22.2–22.3).
    pub credentials: Option<Arc<TrunkCredentials>>,
    /// The From user on requests through the trunk, instead of the flow's `source`.
    pub from_user: Option<String>,
    /// The From host on requests through the trunk (default: the proxy's host).
    pub from_domain: Option<String>,
    /// Register `username` at the proxy for this many seconds (RFC 3261 §10.2; `None`: off).
    pub register_expires: Option<u32>,
}

/// A trunk's digest credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct TrunkCredentials {
    pub username: String,
    pub password: String,
    /// When set, only challenges for this realm are answered.
    pub realm: Option<String>,
}

impl fmt::Debug for TrunkCredentials {
    /// Never prints the password (config dumps, tracing).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrunkCredentials")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

impl Trunk {
    /// The host of From on requests through this trunk: `from_domain`, else the proxy's host.
    pub fn from_host(&self) -> Option<String> {
        self.account
            .from_domain
            .clone()
            .or_else(|| self.outbound_proxy.as_ref().map(ProxyAddress::host_text))
    }
}
