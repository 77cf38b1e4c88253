//! Where flows' HTTP may go (`[http]`, validated by the config): networks allowed and denied,
//! the host's own addresses, the timeout and the answer size limit. Checked on every resolved
//! address and redirect. An IPv6 address that carries an IPv4 one (IPv4-mapped `::ffff:a.b.c.d`,
//! IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` (RFC 6052), 6to4 `2002:AABB:CCDD::/48`
//! (RFC 3056)) is also judged by that IPv4 address, so no spelling of `127.0.0.1` gets through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::own::OwnAddresses;
use super::queue::QueueLimits;
use crate::net::Cidr;

/// Where flows' HTTP may go, validated (`[http]`).
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    /// The host's own addresses, denied unless in `allow`; `None` = not checked.
    pub own: Option<Arc<OwnAddresses>>,
    pub timeout: std::time::Duration,
    pub max_response_bytes: usize,
    /// Non-`sync` `webhook_send` queues per destination (`http.webhook_queue`,
    /// `http.webhook_concurrency`).
    pub webhook_limits: QueueLimits,
}

/// A webhook destination's worker with nothing to do this long retires.
pub const WEBHOOK_WORKER_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

impl HttpPolicy {
    /// Anything goes (tests and tools); the config's default denies the operator's networks.
    pub fn permissive(timeout: std::time::Duration, max_response_bytes: usize) -> Self {
        HttpPolicy {
            allow: Vec::new(),
            deny: Vec::new(),
            own: None,
            timeout,
            max_response_bytes,
            webhook_limits: QueueLimits {
                capacity: 1000,
                concurrency: 4,
                idle: WEBHOOK_WORKER_IDLE,
                destinations: 1000,
            },
        }
    }

    /// An address flows may connect to: in `allow`; or outside `deny`, not one of the host's
    /// own, and (for IPv6 carrying an IPv4 address) with that IPv4 address permitted too.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if self.allow.iter().any(|c| c.contains(ip)) {
            return true;
        }
        if self.deny.iter().any(|c| c.contains(ip)) {
            return false;
        }
        if let Some(v4) = embedded_ipv4(ip) {
            if !self.permits(IpAddr::V4(v4)) {
                return false;
            }
        }
        !self.own.as_ref().is_some_and(|own| own.contains(ip))
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as the IPv4 address it is; anything else unchanged.
pub(super) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The IPv4 address an IPv6 address carries to the network: IPv4-compatible (`::a.b.c.d`,
/// RFC 4291 §2.5.5.1, but not `::` and `::1`), NAT64 well-known prefix (`64:ff9b::/96`,
/// RFC 6052 §2.1) or 6to4 (`2002:AABB:CCDD::/48`, RFC 3056 §2).
fn embedded_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    let bits = u128::from(v6);
    let low32 = Ipv4Addr::from(bits as u32);
    if bits >> 32 == 0 && bits > 1 {
        return Some(low32);
    }
    if bits >> 32 == u128::from(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0)) >> 32 {
        return Some(low32);
    }
    if bits >> 112 == 0x2002 {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy(allow: &[&str], deny: &[&str]) -> HttpPolicy {
        HttpPolicy {
            allow: allow.iter().map(|c| c.parse().unwrap()).collect(),
            deny: deny.iter().map(|c| c.parse().unwrap()).collect(),
            own: None,
            ..HttpPolicy::permissive(std::time::Duration::from_secs(1), 1)
        }
    }

    #[test]
    fn ipv6_spellings_of_a_denied_ipv4_address_are_denied() {
        let p = policy(&[], &["127.0.0.0/8", "10.0.0.0/8"]);
        for denied in [
            "127.0.0.1",
            "::ffff:127.0.0.1",     // IPv4-mapped
            "::127.0.0.1",          // IPv4-compatible (deprecated, still routable by some stacks)
            "64:ff9b::7f00:1",      // NAT64 of 127.0.0.1
            "64:ff9b::10.1.2.3",    // NAT64 of 10.1.2.3
            "2002:7f00:1::1",       // 6to4 of 127.0.0.1
            "2002:a01:203:5::abcd", // 6to4 of 10.1.2.3
        ] {
            assert!(!p.permits(ip(denied)), "{denied}");
        }
        for permitted in [
            "192.0.2.1",
            "::ffff:192.0.2.1",
            "64:ff9b::c000:201",
            "2002:c000:201::1",
            "2001:db8::1",
        ] {
            assert!(p.permits(ip(permitted)), "{permitted}");
        }
        // allow still wins over the embedded check.
        let p = policy(&["127.0.0.1/32"], &["127.0.0.0/8"]);
        assert!(p.permits(ip("::ffff:127.0.0.1")));
        assert!(p.permits(ip("64:ff9b::7f00:1")));
    }

    #[test]
    fn the_default_deny_list_covers_the_unspecified_nat64_and_6to4_ranges() {
        let raw = crate::config::Config::from_toml_with_env(
            crate::config::DEFAULT_TOML,
            std::iter::empty(),
        )
        .unwrap();
        let settings = raw.validate().unwrap();
        let p = &settings.http;
        for denied in [
            "0.0.0.0",
            "0.1.2.3",
            "::",
            "::1",
            "64:ff9b::808:808", // NAT64 as a whole (RFC 6052): denied by default
            "64:ff9b:1::1",     // local-use NAT64 (RFC 8215)
            "2002:808:808::1",  // 6to4 as a whole (RFC 7526 deprecates it)
            "::ffff:169.254.169.254",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(!p.permits(ip(denied)), "{denied}");
        }
        // The host's own addresses, whatever interface they sit on.
        for own in super::super::own::interface_addresses() {
            assert!(!p.permits(own), "{own}");
        }
        assert!(p.permits(ip("192.0.2.1")));
        assert!(p.permits(ip("2001:db8::1")));
    }

    #[test]
    fn own_addresses_are_denied_unless_allowed() {
        let own = Arc::new(OwnAddresses::new([ip("198.51.100.9")]));
        let mut p = policy(&[], &[]);
        p.own = Some(own);
        assert!(!p.permits(ip("198.51.100.9")));
        assert!(!p.permits(ip("::ffff:198.51.100.9")));
        assert!(!p.permits(ip("127.0.0.1")), "lo is an own interface");
        assert!(p.permits(ip("198.51.100.10")));
        p.allow = vec!["198.51.100.9".parse().unwrap()];
        assert!(p.permits(ip("198.51.100.9")));
    }
}
