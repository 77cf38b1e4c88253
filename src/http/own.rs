//! The host's own addresses, which flows' HTTP must not reach (a request to the engine's own
//! public address lands on its API or metrics listener as surely as one to 127.0.0.1): every
//! address on a local interface, read with getifaddrs(3) and kept for a few seconds, plus the
//! configured ones (`sip.public_address`, listen addresses) that may sit on no interface (NAT).

use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Interface addresses are read again at most this often (they change with DHCP, VPNs).
const REFRESH: Duration = Duration::from_secs(5);

/// The host's own addresses: configured plus those found on its interfaces.
#[derive(Debug)]
pub struct OwnAddresses {
    configured: Vec<IpAddr>,
    /// The interfaces' addresses and when they were read.
    found: Mutex<Option<(Instant, Vec<IpAddr>)>>,
}

impl OwnAddresses {
    /// `configured`: addresses that are ours though maybe on no interface. Unspecified ones
    /// (`0.0.0.0`, `::`) mean "every interface" and are skipped: those come from getifaddrs.
    pub fn new(configured: impl IntoIterator<Item = IpAddr>) -> Self {
        OwnAddresses {
            configured: configured
                .into_iter()
                .filter(|ip| !ip.is_unspecified())
                .map(super::policy::canonical)
                .collect(),
            found: Mutex::new(None),
        }
    }

    /// Whether `ip` (canonical: IPv4-mapped addresses already as IPv4) is one of ours.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.configured.contains(&ip) {
            return true;
        }
        let mut found = self.found.lock().unwrap_or_else(PoisonError::into_inner);
        let stale = found.as_ref().is_none_or(|(at, _)| at.elapsed() >= REFRESH);
        if stale {
            *found = Some((Instant::now(), interface_addresses()));
        }
        found.as_ref().is_some_and(|(_, list)| list.contains(&ip))
    }
}

/// Every IPv4 and IPv6 address on a local interface (empty if they cannot be read, logged).
pub(super) fn interface_addresses() -> Vec<IpAddr> {
    match nix::ifaddrs::getifaddrs() {
        Ok(list) => list
            .filter_map(|i| i.address)
            .filter_map(|a| {
                a.as_sockaddr_in()
                    .map(|v4| IpAddr::V4(v4.ip()))
                    .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
            })
            .map(super::policy::canonical)
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list interface addresses; [http] cannot deny them");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_configured_addresses_are_ours() {
        let own = OwnAddresses::new(["203.0.113.7".parse().unwrap(), "0.0.0.0".parse().unwrap()]);
        // Every Linux host has lo with 127.0.0.1.
        assert!(interface_addresses().contains(&"127.0.0.1".parse().unwrap()));
        assert!(own.contains("127.0.0.1".parse().unwrap()));
        assert!(own.contains("203.0.113.7".parse().unwrap()));
        assert!(!own.contains("0.0.0.0".parse().unwrap()));
        assert!(!own.contains("192.0.2.1".parse().unwrap()));
        // Every non-loopback interface address counts too (what a flow would use to reach
        // the API through the host's public address).
        for ip in interface_addresses() {
            assert!(own.contains(ip), "{ip}");
        }
    }
}
