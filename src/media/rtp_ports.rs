//! The RTP port pool: hands out even ports from `media.rtp_ports`, each held by a bound UDP socket
//! for the life of the call (so no other process can take it), returned to the free list when the
//! lease drops. Leasing is O(1): a free list, not a scan, so an exhausted pool fails fast. Up to
//! [`IDLE_SOCKETS`] released sockets stay bound and are reused oldest first (saving three syscalls
//! per call without hoarding the whole range's ports and file descriptors). The pool never binds
//! more sockets than the process's open-file limit allows, less a reserve for everything else
//! (SIP over TCP, the API, storage, the runtime): when RTP sockets run out, new calls get 503 at
//! the door instead of the API and storage failing to open files. Every change to the free
//! list reports the pool's use (`activeflow_rtp_ports_in_use`) under the lock it already holds.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

/// Ports found taken by another process are retried this many times per lease at most.
const MAX_BIND_ATTEMPTS: usize = 16;
/// Released sockets kept bound for reuse; beyond this they are closed.
pub const IDLE_SOCKETS: usize = 1024;

/// File descriptors kept for everything but RTP: a quarter of the limit, at most this many.
const FD_RESERVE: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum RtpPortError {
    #[error("no free RTP port in {first}-{last}")]
    Exhausted { first: u16, last: u16 },
    #[error("{max} RTP sockets bound: the open-file limit leaves no more")]
    SocketBudget { max: usize },
    #[error("{max} media sockets open: the open-file limit leaves none for another stream")]
    StreamBudget { max: usize },
}

/// A place in the pool's socket budget held by a socket the pool does not bind (a WebSocket
/// external media stream's TCP connection); the place returns when this drops.
#[derive(Debug)]
pub struct SocketToken {
    free: Arc<Mutex<Free>>,
}

impl Drop for SocketToken {
    fn drop(&mut self) {
        let mut free = lock(&self.free);
        free.bound = free.bound.saturating_sub(1);
        free.report();
    }
}

/// A bound RTP socket; the port returns to the pool when this is dropped.
#[derive(Debug)]
pub struct RtpLease {
    socket: Option<UdpSocket>,
    port: u16,
    free: Arc<Mutex<Free>>,
}

/// Free ports: some still bound from an earlier call (reused first), the rest unbound.
struct Free {
    idle: VecDeque<(u16, UdpSocket)>,
    unbound: VecDeque<u16>,
    /// Sockets the pool has bound: leased and idle.
    bound: usize,
    /// Most sockets bound at once (the pool's `max_sockets`).
    max_sockets: usize,
    /// Leases possible with nothing leased: the even ports, or fewer sockets.
    capacity: usize,
    /// Where the pool's use is reported.
    in_use: metrics::Gauge,
}

impl std::fmt::Debug for Free {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Free")
            .field("idle", &self.idle.len())
            .field("unbound", &self.unbound.len())
            .field("bound", &self.bound)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Free {
    /// Leases possible now: idle sockets, then unbound ports while the socket budget lasts.
    fn available(&self) -> usize {
        let room = self.max_sockets.saturating_sub(self.bound);
        self.idle.len() + self.unbound.len().min(room)
    }

    /// Reports what is not available of the capacity: ports leased, and the budget that
    /// sockets opened elsewhere hold (one gauge store, under the lock already held).
    fn report(&self) {
        let used = self.capacity.saturating_sub(self.available());
        self.in_use.set(used as f64);
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
            // Closed here, or already by whoever took it.
            _ => {
                free.bound = free.bound.saturating_sub(1);
                free.unbound.push_back(self.port);
            }
        }
        free.report();
    }
}

fn lock(m: &Mutex<Free>) -> std::sync::MutexGuard<'_, Free> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Even ports of a range (RTCP takes the odd one, RFC 3550 §11), least recently used first.
/// A clone shares the same free list (external media streams lease from the calls' pool).
#[derive(Debug, Clone)]
pub struct RtpPortPool {
    range: PortRange,
    ip: IpAddr,
    free: Arc<Mutex<Free>>,
    /// Most sockets bound at once.
    max_sockets: usize,
}

impl RtpPortPool {
    /// A pool within this process's open-file limit (see [`socket_budget`]).
    pub fn new(range: PortRange, ip: IpAddr) -> Self {
        Self::with_budget(range, ip, socket_budget())
    }

    pub fn with_budget(range: PortRange, ip: IpAddr, max_sockets: usize) -> Self {
        let ports = usize::from(range.last.saturating_sub(range.first)) / 2 + 1;
        if max_sockets < ports {
            tracing::info!(
                max_sockets,
                ports,
                "RTP sockets limited by the open-file limit (raise `ulimit -n` for more calls)"
            );
        }
        let first = range.first + range.first % 2;
        let mut unbound: VecDeque<u16> = (first..=range.last).step_by(2).collect();
        // Start at a random point: engines sharing a range (a restart beside a draining one,
        // tests, benchmarks) do not all fight over its first ports.
        if !unbound.is_empty() {
            let start = (uuid::Uuid::new_v4().as_u128() % unbound.len() as u128) as usize;
            unbound.rotate_left(start);
        }
        let capacity = unbound.len().min(max_sockets);
        let free = Free {
            idle: VecDeque::new(),
            unbound,
            bound: 0,
            max_sockets,
            capacity,
            in_use: crate::metrics::rtp_ports_pool(capacity),
        };
        RtpPortPool {
            range,
            ip,
            free: Arc::new(Mutex::new(free)),
            max_sockets,
        }
    }

    /// Leases possible now: idle sockets, then unbound ports while the socket budget lasts.
    pub fn available(&self) -> usize {
        lock(&self.free).available()
    }

    fn leased(&self, port: u16, socket: UdpSocket) -> RtpLease {
        RtpLease {
            socket: Some(socket),
            port,
            free: self.free.clone(),
        }
    }

    /// A place in the socket budget for a socket opened elsewhere (WebSocket media), so that
    /// streams cannot eat the reserve kept for SIP, the API and storage. An idle pooled socket
    /// is closed to make room when the budget is otherwise spent.
    pub fn socket_token(&self) -> Result<SocketToken, RtpPortError> {
        let mut free = lock(&self.free);
        if free.bound >= self.max_sockets {
            let Some((port, idle)) = free.idle.pop_front() else {
                return Err(RtpPortError::StreamBudget {
                    max: self.max_sockets,
                });
            };
            // Its place in the budget passes to the token.
            drop(idle);
            free.unbound.push_back(port);
        } else {
            free.bound += 1;
        }
        free.report();
        Ok(SocketToken {
            free: self.free.clone(),
        })
    }

    /// Binds the least recently used free port. A port some other process holds goes to the
    /// back of the list and the next is tried.
    pub fn lease(&self) -> Result<RtpLease, RtpPortError> {
        let reused = {
            let mut free = lock(&self.free);
            let reused = free.idle.pop_front();
            if reused.is_some() {
                free.report();
            }
            reused
        };
        if let Some((port, socket)) = reused {
            drain(&socket);
            return Ok(self.leased(port, socket));
        }
        for _ in 0..MAX_BIND_ATTEMPTS {
            let port = {
                let mut free = lock(&self.free);
                if free.bound >= self.max_sockets {
                    return Err(RtpPortError::SocketBudget {
                        max: self.max_sockets,
                    });
                }
                let Some(port) = free.unbound.pop_front() else {
                    break;
                };
                free.bound += 1;
                free.report();
                port
            };
            // Non-blocking from the start: media I/O is async, and a reused socket is drained
            // without another syscall to switch modes.
            let bound = UdpSocket::bind(SocketAddr::new(self.ip, port))
                .and_then(|s| s.set_nonblocking(true).map(|()| s));
            match bound {
                Ok(socket) => return Ok(self.leased(port, socket)),
                Err(_) => {
                    let mut free = lock(&self.free);
                    free.bound = free.bound.saturating_sub(1);
                    free.unbound.push_back(port);
                    free.report();
                }
            }
        }
        Err(RtpPortError::Exhausted {
            first: self.range.first,
            last: self.range.last,
        })
    }
}

/// RTP sockets this process may hold: its open-file soft limit less a reserve (a quarter of it,
/// at most [`FD_RESERVE`]). Unlimited where the limit cannot be read.
pub fn socket_budget() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| open_file_limit(&text))
        .map_or(usize::MAX, |limit| {
            limit.saturating_sub((limit / 4).min(FD_RESERVE))
        })
}

/// The soft "Max open files" of a `/proc/<pid>/limits` text; `None` when unlimited or absent.
fn open_file_limit(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Discards datagrams left from the socket's previous call (pool sockets are non-blocking).
fn drain(socket: &UdpSocket) {
    let mut buf = [0u8; 2048];
    while socket.recv_from(&mut buf).is_ok() {}
}

/// An inclusive UDP port range for RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl FromStr for PortRange {
    type Err = ParsePortRangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| ParsePortRangeError::NotARange(s.to_string()))?;
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| ParsePortRangeError::NotAPort(p.to_string()))
        };
        let (first, last) = (port(a)?, port(b)?);
        if first == 0 || first >= last {
            return Err(ParsePortRangeError::Order(s.to_string()));
        }
        Ok(PortRange { first, last })
    }
}

/// Why an RTP port range did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParsePortRangeError {
    #[error("{0:?} is not a range like 20000-29999")]
    NotARange(String),
    #[error("{0:?} is not a port")]
    NotAPort(String),
    #[error("{0:?} must be first-last with 0 < first < last")]
    Order(String),
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

    #[test]
    fn never_binds_more_sockets_than_its_budget() {
        let range = PortRange {
            first: 41101,
            last: 41110,
        };
        let pool = RtpPortPool::with_budget(range, "127.0.0.1".parse().unwrap(), 2);
        assert_eq!(pool.available(), 2);
        let a = pool.lease().unwrap();
        let _b = pool.lease().unwrap();
        assert_eq!(pool.available(), 0);
        assert!(matches!(
            pool.lease(),
            Err(RtpPortError::SocketBudget { max: 2 })
        ));
        // A released socket stays bound (idle) and is leased again.
        drop(a);
        assert_eq!(pool.available(), 1);
        assert!(pool.lease().is_ok());
    }

    #[test]
    fn socket_tokens_share_the_budget() {
        let range = PortRange {
            first: 41121,
            last: 41130,
        };
        let pool = RtpPortPool::with_budget(range, "127.0.0.1".parse().unwrap(), 2);
        let token = pool.socket_token().unwrap();
        let a = pool.lease().unwrap();
        assert_eq!(pool.available(), 0);
        assert!(matches!(
            pool.socket_token(),
            Err(RtpPortError::StreamBudget { max: 2 })
        ));
        assert!(pool.lease().is_err(), "the token holds a place");
        drop(token);
        assert_eq!(pool.available(), 1);
        // An idle socket gives its place up to a token.
        drop(a);
        let _t1 = pool.socket_token().unwrap();
        let _t2 = pool.socket_token().unwrap();
        assert!(pool.socket_token().is_err());
        assert!(pool.lease().is_err());
    }

    #[test]
    fn reads_the_soft_open_file_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max cpu time              unlimited            unlimited            seconds\n\
                      Max open files            20000                40000                files\n";
        assert_eq!(open_file_limit(limits), Some(20000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(open_file_limit(unlimited), None);
        assert_eq!(open_file_limit("nothing"), None);
    }
}
