//! The host's own addresses, which flows' HTTP must not reach (a request to the engine's own
//! public address lands on its API or metrics listener as surely as one to 127.0.0.1): every
//! address on a local interface, read with getifaddrs(3), plus the configured ones
//! (`sip.public_address`, listen addresses) that may sit on no interface (NAT). Checking is a
//! read of a snapshot; the syscall runs only in a background refresh, off the arbiter threads.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

/// Interface addresses are read again this often (they change with DHCP, VPNs).
const REFRESH: Duration = Duration::from_secs(5);

/// The host's own addresses: configured plus those found on its interfaces.
#[derive(Debug)]
pub struct OwnAddresses {
    configured: Vec<IpAddr>,
    /// The interfaces' addresses as last read; replaced whole, so a check holds the lock only
    /// to clone an `Arc`.
    found: RwLock<Arc<[IpAddr]>>,
    /// Whether a refresh task is running (reset when its runtime drops it).
    refreshing: AtomicBool,
}

impl OwnAddresses {
    /// `configured`: addresses that are ours though maybe on no interface. Unspecified ones
    /// (`0.0.0.0`, `::`) mean "every interface" and are skipped: those come from getifaddrs,
    /// read once here (blocking: build this at start-up, not on an arbiter) and then by
    /// [`OwnAddresses::refresh_in_background`].
    pub fn new(configured: impl IntoIterator<Item = IpAddr>) -> Self {
        OwnAddresses {
            configured: configured
                .into_iter()
                .filter(|ip| !ip.is_unspecified())
                .map(super::policy::canonical)
                .collect(),
            found: RwLock::new(interface_addresses().into()),
            refreshing: AtomicBool::new(false),
        }
    }

    /// Whether `ip` (canonical: IPv4-mapped addresses already as IPv4) is one of ours. Never
    /// blocks on a syscall: it reads the last snapshot.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.configured.contains(&ip) || self.snapshot().contains(&ip)
    }

    fn snapshot(&self) -> Arc<[IpAddr]> {
        Arc::clone(&self.found.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn replace(&self, found: Arc<[IpAddr]>) {
        *self.found.write().unwrap_or_else(PoisonError::into_inner) = found;
    }

    /// Re-reads the interfaces every [`REFRESH`] on the current tokio runtime (getifaddrs in
    /// `spawn_blocking`), until `self` is dropped or the runtime stops. One task at most: a
    /// second call while one runs does nothing. Outside a runtime it does nothing either, and
    /// the snapshot from [`OwnAddresses::new`] stays.
    pub fn refresh_in_background(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let own = Arc::downgrade(self);
        drop(runtime.spawn(refresh(own)));
    }
}

/// The refresh task; bounded: one per [`OwnAddresses`], ending with it.
async fn refresh(own: Weak<OwnAddresses>) {
    /// Lets a later `refresh_in_background` start again if the runtime drops this task.
    struct Running(Weak<OwnAddresses>);
    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(own) = self.0.upgrade() {
                own.refreshing.store(false, Ordering::Release);
            }
        }
    }
    let _running = Running(own.clone());
    let mut every = tokio::time::interval(REFRESH);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if own.strong_count() == 0 {
            return;
        }
        let Ok(found) = tokio::task::spawn_blocking(interface_addresses).await else {
            return;
        };
        let Some(own) = own.upgrade() else {
            return;
        };
        own.replace(found.into());
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

    #[tokio::test]
    async fn checks_read_a_snapshot_that_a_background_task_refreshes() {
        let own = Arc::new(OwnAddresses::new([]));
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        own.replace(Arc::from([]));
        assert!(
            !own.contains(lo),
            "a check reads the snapshot, never the interfaces"
        );
        own.refresh_in_background();
        own.refresh_in_background(); // one task only
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while !own.contains(lo) && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(own.contains(lo), "the refresh read the interfaces again");
        // The task holds no strong reference: dropping the addresses ends it.
        assert_eq!(Arc::strong_count(&own), 1);
    }
}
