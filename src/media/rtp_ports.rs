//! The RTP port pool: hands out even ports from `media.rtp_ports`, each held by a bound UDP socket
//! for the life of the call (so no other process can take it), returned to the free list when the
//! lease drops. Leasing is O(1): a free list, not a scan, so an exhausted pool fails fast. Up to
//! [`IDLE_SOCKETS`] released sockets stay bound and are reused oldest first (saving three syscalls
//! per call without hoarding the whole range's ports and file descriptors).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use crate::config::PortRange;

/// Ports found taken by another process are retried this many times per lease at most.
const MAX_BIND_ATTEMPTS: usize = 16;
/// Released sockets kept bound for reuse; beyond this they are closed.
pub const IDLE_SOCKETS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum RtpPortError {
    #[error("no free RTP port in {first}-{last}")]
    Exhausted { first: u16, last: u16 },
}

/// A bound RTP socket; the port returns to the pool when this is dropped.
#[derive(Debug)]
pub struct RtpLease {
    socket: Option<UdpSocket>,
    port: u16,
    free: Arc<Mutex<Free>>,
}

/// Free ports: some still bound from an earlier call (reused first), the rest unbound.
#[derive(Debug, Default)]
struct Free {
    idle: VecDeque<(u16, UdpSocket)>,
    unbound: VecDeque<u16>,
}

impl Free {
    fn len(&self) -> usize {
        self.idle.len() + self.unbound.len()
    }
}

impl RtpLease {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn socket(&self) -> Option<&UdpSocket> {
        self.socket.as_ref()
    }

    /// Lends the socket out (to the media session) for the life of the call.
    pub fn take_socket(&mut self) -> Option<UdpSocket> {
        self.socket.take()
    }

    /// Gives a lent socket back, so the pool can reuse it when the lease drops.
    pub fn restore_socket(&mut self, socket: UdpSocket) {
        self.socket = Some(socket);
    }
}

impl Drop for RtpLease {
    fn drop(&mut self) {
        let mut free = lock(&self.free);
        match self.socket.take() {
            Some(socket) if free.idle.len() < IDLE_SOCKETS => {
                free.idle.push_back((self.port, socket))
            }
            _ => free.unbound.push_back(self.port),
        }
    }
}

fn lock(m: &Mutex<Free>) -> std::sync::MutexGuard<'_, Free> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Even ports of a range (RTCP takes the odd one, RFC 3550 §11), least recently used first.
#[derive(Debug)]
pub struct RtpPortPool {
    range: PortRange,
    ip: IpAddr,
    free: Arc<Mutex<Free>>,
}

impl RtpPortPool {
    pub fn new(range: PortRange, ip: IpAddr) -> Self {
        let first = range.first + range.first % 2;
        let mut unbound: VecDeque<u16> = (first..=range.last).step_by(2).collect();
        // Start at a random point: engines sharing a range (a restart beside a draining one,
        // tests, benchmarks) do not all fight over its first ports.
        if !unbound.is_empty() {
            let start = (uuid::Uuid::new_v4().as_u128() % unbound.len() as u128) as usize;
            unbound.rotate_left(start);
        }
        let free = Free {
            idle: VecDeque::new(),
            unbound,
        };
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

    fn leased(&self, port: u16, socket: UdpSocket) -> RtpLease {
        RtpLease {
            socket: Some(socket),
            port,
            free: self.free.clone(),
        }
    }

    /// Binds the least recently used free port. A port some other process holds goes to the
    /// back of the list and the next is tried.
    pub fn lease(&self) -> Result<RtpLease, RtpPortError> {
        if let Some((port, socket)) = lock(&self.free).idle.pop_front() {
            drain(&socket);
            return Ok(self.leased(port, socket));
        }
        for _ in 0..MAX_BIND_ATTEMPTS {
            let Some(port) = lock(&self.free).unbound.pop_front() else {
                break;
            };
            // Non-blocking from the start: media I/O is async, and a reused socket is drained
            // without another syscall to switch modes.
            let bound = UdpSocket::bind(SocketAddr::new(self.ip, port))
                .and_then(|s| s.set_nonblocking(true).map(|()| s));
            match bound {
                Ok(socket) => return Ok(self.leased(port, socket)),
                Err(_) => lock(&self.free).unbound.push_back(port),
            }
        }
        Err(RtpPortError::Exhausted {
            first: self.range.first,
            last: self.range.last,
        })
    }
}

/// Discards datagrams left from the socket's previous call (pool sockets are non-blocking).
fn drain(socket: &UdpSocket) {
    let mut buf = [0u8; 2048];
    while socket.recv_from(&mut buf).is_ok() {}
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
        let mut buf = [0u8; 16];
        let idle = a.socket().unwrap().recv_from(&mut buf).unwrap_err();
        assert_eq!(
            idle.kind(),
            std::io::ErrorKind::WouldBlock,
            "pool sockets are non-blocking"
        );
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
