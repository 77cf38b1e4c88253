//! Ports for tests, kept apart from everything else on the machine: peers' SIP ports
//! (SIPp, Kamailio, baresip) come from 61000-64999, above the kernel's ephemeral range
//! (32768-60999, where every `bind(0)` lands) and the benchmarks' RTP range (bench/common.sh,
//! 20000-59999); engines under test lease RTP ports from slices of 10000-19999, below both.
//! A port is handed out bound (a [`PortGuard`]) and released only just before the peer binds it.

use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// Peers' SIP (and SIPp media) ports.
const PEER_FIRST: u16 = 61000;
const PEER_LAST: u16 = 64999;
/// RTP ports for engines under test, in slices so parallel tests' engines do not compete.
const RTP_FIRST: u16 = 10000;
const RTP_LAST: u16 = 19999;
const RTP_SLICE: u16 = 2000;

/// One counter per test process, started at a point derived from the pid so that test binaries
/// running at once (other worktrees, CI shards) start in different places.
fn next(counter: &AtomicU32, modulo: u32) -> u32 {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    (std::process::id().wrapping_mul(2_654_435_761) / 7 + n) % modulo
}

/// Sockets holding `count` consecutive ports (UDP on each, TCP on the first) until released.
#[derive(Debug)]
pub struct PortGuard {
    port: u16,
    udp: Vec<UdpSocket>,
    tcp: Option<TcpListener>,
}

impl PortGuard {
    /// The first port, still held.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Unbinds the ports and returns the first: call it right before the peer binds it.
    pub fn release(mut self) -> u16 {
        self.udp.clear();
        self.tcp = None;
        self.port
    }
}

/// Every reservation takes whole blocks of this many ports, so blocks handed out by one
/// counter never overlap: a single port and a SIPp media block (its port and the three above)
/// reserved one after the other cannot land on each other once the first is released to its
/// peer (SIPp exits 254 when it cannot bind).
const BLOCK: u16 = 4;

/// `count` consecutive ports free for UDP (and TCP on the first) on 127.0.0.1, held bound.
pub fn reserve_ports(count: u16) -> PortGuard {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let stride = count.div_ceil(BLOCK) * BLOCK;
    let blocks = u32::from((PEER_LAST - PEER_FIRST + 1) / stride);
    for _ in 0..blocks {
        let first = PEER_FIRST + stride * next(&NEXT, blocks) as u16;
        let Ok(tcp) = TcpListener::bind(("127.0.0.1", first)) else {
            continue;
        };
        let udp: Vec<UdpSocket> = (first..first + count)
            .map_while(|p| UdpSocket::bind(("127.0.0.1", p)).ok())
            .collect();
        if udp.len() == usize::from(count) {
            return PortGuard {
                port: first,
                udp,
                tcp: Some(tcp),
            };
        }
    }
    panic!("no {count} free consecutive ports in {PEER_FIRST}-{PEER_LAST}");
}

/// One port free for UDP and TCP on 127.0.0.1, held bound.
pub fn reserve_port() -> PortGuard {
    reserve_ports(1)
}

/// A slice of the test RTP range for one engine, as `media.rtp_ports` takes it ("first-last").
/// Engines in one test process take different slices in turn; the engine's pool skips ports
/// that another process holds, so a shared slice only costs a retry.
pub fn rtp_port_range() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let slices = u32::from((RTP_LAST - RTP_FIRST + 1) / RTP_SLICE);
    let first = RTP_FIRST + RTP_SLICE * next(&NEXT, slices) as u16;
    format!("{first}-{}", first + RTP_SLICE - 1)
}
