//! The RTP port pool: hands out even ports from `media.rtp_ports`, each held by a bound UDP socket
//! for the life of the call (so no other process can take it), released on drop.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Mutex;

use crate::config::PortRange;

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
}

impl RtpLease {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }
}

/// Round-robin allocator over the even ports of a range (RTCP takes the odd one, RFC 3550 §11).
#[derive(Debug)]
pub struct RtpPortPool {
    range: PortRange,
    ip: IpAddr,
    next: Mutex<u16>,
}

impl RtpPortPool {
    pub fn new(range: PortRange, ip: IpAddr) -> Self {
        let first = range.first + range.first % 2;
        RtpPortPool {
            range,
            ip,
            next: Mutex::new(first),
        }
    }

    /// Binds the next free even port. Ports in use (by us or anyone) are skipped.
    pub fn lease(&self) -> Result<RtpLease, RtpPortError> {
        let first = self.range.first + self.range.first % 2;
        let slots = usize::from((self.range.last - first) / 2 + 1);
        for _ in 0..slots {
            let port = {
                let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
                let port = *next;
                *next = if port.saturating_add(2) > self.range.last {
                    first
                } else {
                    port + 2
                };
                port
            };
            if let Ok(socket) = UdpSocket::bind(SocketAddr::new(self.ip, port)) {
                return Ok(RtpLease { socket, port });
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
        assert_eq!(pool.lease().unwrap().port(), freed);
    }
}
