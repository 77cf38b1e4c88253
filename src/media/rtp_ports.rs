//! The RTP port pool: hands out even ports from `media.rtp_ports`, each held by a bound UDP socket
//! for the life of the call (so no other process can take it), returned to the free list when the
//! lease drops. Leasing is O(1): a free list, not a scan, so an exhausted pool fails fast.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use crate::config::PortRange;

/// Ports found taken by another process are retried this many times per lease at most.
const MAX_BIND_ATTEMPTS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum RtpPortError {
    #[error("no free RTP port in {first}-{last}")]
    Exhausted { first: u16, last: u16 },
}

/// A bound RTP socket; the port returns to the pool when this is dropped.
#[derive(Debug)]
pub struct RtpLease {
    socket: UdpSocket,
    port: u16,
    free: Arc<Mutex<VecDeque<u16>>>,
}

impl RtpLease {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }
}

impl Drop for RtpLease {
    fn drop(&mut self) {
        lock(&self.free).push_back(self.port);
    }
}

fn lock(m: &Mutex<VecDeque<u16>>) -> std::sync::MutexGuard<'_, VecDeque<u16>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Even ports of a range (RTCP takes the odd one, RFC 3550 §11), least recently used first.
#[derive(Debug)]
pub struct RtpPortPool {
    range: PortRange,
    ip: IpAddr,
    free: Arc<Mutex<VecDeque<u16>>>,
}

impl RtpPortPool {
    pub fn new(range: PortRange, ip: IpAddr) -> Self {
        let first = range.first + range.first % 2;
        let free = (first..=range.last).step_by(2).collect();
        RtpPortPool {
            range,
            ip,
            free: Arc::new(Mutex::new(free)),
        }
    }

    /// Free ports left.
    pub fn available(&self) -> usize {
        lock(&self.free).len()
    }

    /// Binds the least recently used free port. A port some other process holds goes to the
    /// back of the list and the next is tried.
    pub fn lease(&self) -> Result<RtpLease, RtpPortError> {
        for _ in 0..MAX_BIND_ATTEMPTS {
            let Some(port) = lock(&self.free).pop_front() else {
                break;
            };
            match UdpSocket::bind(SocketAddr::new(self.ip, port)) {
                Ok(socket) => {
                    return Ok(RtpLease {
                        socket,
                        port,
                        free: self.free.clone(),
                    })
                }
                Err(_) => lock(&self.free).push_back(port),
            }
        }
        Err(RtpPortError::Exhausted {
            first: self.range.first,
            last: self.range.last,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_even_ports_and_releases_them() {
        let pool = RtpPortPool::new(
            PortRange {
                first: 41001,
                last: 41006,
            },
            "127.0.0.1".parse().unwrap(),
        );
        let a = pool.lease().unwrap();
        let b = pool.lease().unwrap();
        let c = pool.lease().unwrap();
        let mut ports = [a.port(), b.port(), c.port()];
        ports.sort_unstable();
        assert_eq!(ports, [41002, 41004, 41006]);
        assert!(pool.lease().is_err());
        let freed = b.port();
        drop(b);
        assert_eq!(pool.available(), 1);
        assert_eq!(pool.lease().unwrap().port(), freed);
    }

    #[test]
    fn skips_ports_taken_by_others() {
        let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let even = port - port % 2;
        let pool = RtpPortPool::new(
            PortRange {
                first: even,
                last: even + 1,
            },
            "127.0.0.1".parse().unwrap(),
        );
        if even == port {
            assert!(pool.lease().is_err());
        } else {
            assert_eq!(pool.lease().unwrap().port(), even);
        }
    }
}
