//! The UDP receive loop: one OS thread doing blocking `recv_from` on the listening socket, so the
//! SIP receive path never shares a thread with actors. Parses each datagram and hands it to the
//! handler; malformed datagrams are answered 400 when addressable, otherwise dropped and counted.
//! The thread is watched (`health`): if it dies (a handler that panics) `/readyz` answers 503
//! naming `sip_udp` and it is restarted on the same socket after a back-off (`RESTART`);
//! the datagrams that arrive meanwhile wait in the socket buffer, and peers retransmit.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Inbound, InboundHandler, Peer, SipSender, TransportKind};
use crate::health::{spawn_watched, Component, Ended, Health, OnDeath};
use crate::sip::message;

/// How often the blocked receiver wakes to check for shutdown.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Room for the largest datagram (64 KiB) plus one byte to detect truncation.
const RECV_BUFFER: usize = 65_536;
/// A dead receive thread is restarted after 100 ms, then up to 5 s while it keeps dying: the
/// socket stays bound, so SIP resumes as soon as the thread does.
const RESTART: OnDeath = OnDeath::Restart {
    first: Duration::from_millis(100),
    max: Duration::from_secs(5),
};
/// At most one "receive failed" warning this often (a socket that keeps failing must not
/// flood the log); the count of those held back goes with the next one.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// A running UDP receiver; dropping it does not stop the thread, [`UdpReceiver::stop`] does.
pub struct UdpReceiver {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpReceiver {
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the receive thread on an already-bound socket, watched as `sip_udp` in `health`.
pub fn spawn_udp_receiver(
    socket: Arc<UdpSocket>,
    handler: Arc<dyn InboundHandler>,
    sender: SipSender,
    max_message_size: usize,
    health: &Health,
) -> std::io::Result<UdpReceiver> {
    let parts = (socket, handler, sender, max_message_size);
    spawn_watched_receiver(parts, health, RESTART)
}

type ReceiverParts = (Arc<UdpSocket>, Arc<dyn InboundHandler>, SipSender, usize);

fn spawn_watched_receiver(
    (socket, handler, sender, max_message_size): ReceiverParts,
    health: &Health,
    on_death: OnDeath,
) -> std::io::Result<UdpReceiver> {
    socket.set_read_timeout(Some(POLL_INTERVAL))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let component = Component::SipUdp;
    let thread = spawn_watched(
        "sip-udp-rx",
        component,
        on_death,
        health.clone(),
        move || {
            receive_loop(&socket, &*handler, &sender, max_message_size, &flag);
            if flag.load(Ordering::Relaxed) {
                Ended::AsAsked
            } else {
                Ended::Unexpectedly
            }
        },
    )?;
    Ok(UdpReceiver {
        stop,
        thread: Some(thread),
    })
}

fn receive_loop(
    socket: &UdpSocket,
    handler: &dyn InboundHandler,
    sender: &SipSender,
    max_message_size: usize,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut warnings = WarnLimit::new(WARN_EVERY);
    while !stop.load(Ordering::Relaxed) {
        let (len, addr) = match socket.recv_from(&mut buf) {
            Ok(v) => v,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            // ICMP port-unreachable from an earlier send surfaces here on some systems.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(e) => {
                if let Some(held_back) = warnings.allow(Instant::now()) {
                    tracing::warn!(error = %e, held_back, "udp receive failed");
                }
                continue;
            }
        };
        let peer = Peer {
            addr,
            transport: TransportKind::Udp,
        };
        let datagram = buf.get(..len).unwrap_or_default();
        if is_keepalive(datagram) {
            continue;
        }
        match message::parse_datagram(datagram, max_message_size) {
            Ok(message) => handler.on_message(Inbound {
                message,
                peer,
                received_at: tokio::time::Instant::now(),
            }),
            Err(error) => super::reject_malformed(sender, handler, &peer, datagram, &error),
        }
    }
}

/// Lets one warning through per interval and counts the ones it holds back.
struct WarnLimit {
    every: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl WarnLimit {
    fn new(every: Duration) -> WarnLimit {
        WarnLimit {
            every,
            last: None,
            held_back: 0,
        }
    }

    /// `Some(warnings held back since the last one)` when this one may be logged.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

/// RFC 5626 CRLF keep-alives (and stray whitespace) are not messages.
fn is_keepalive(datagram: &[u8]) -> bool {
    datagram.iter().all(|b| b.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::PartState;

    #[test]
    fn receive_failures_log_once_per_interval_with_the_count_held_back() {
        let mut limit = WarnLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(limit.allow(t0), Some(0));
        for ms in 1..=1000 {
            assert_eq!(limit.allow(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(limit.allow(t0 + Duration::from_secs(10)), Some(1000));
        assert_eq!(limit.allow(t0 + Duration::from_secs(11)), None);
    }

    /// Hands each message's Call-ID to the test; panics on the first one.
    struct FirstPanics {
        seen: std::sync::Mutex<u32>,
        tx: std::sync::Mutex<std::sync::mpsc::Sender<String>>,
    }

    impl InboundHandler for FirstPanics {
        fn on_message(&self, inbound: Inbound) {
            use rsip::prelude::*;
            let first = {
                let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                *seen += 1;
                *seen == 1
            };
            assert!(!first, "test: the handler panics on the first message");
            let call_id = match &inbound.message {
                rsip::SipMessage::Request(r) => r.call_id_header().map(|h| h.value().to_string()),
                rsip::SipMessage::Response(r) => r.call_id_header().map(|h| h.value().to_string()),
            };
            let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
            let _ = tx.send(call_id.unwrap_or_default());
        }
    }

    fn options(to: std::net::SocketAddr, from_port: u16, call_id: &str) -> String {
        format!(
            "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{from_port};branch=z9hG4bK-{call_id}\r\n\
             From: <sip:t@127.0.0.1>;tag=t\r\nTo: <sip:{to}>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    }

    /// A receive thread killed by a panicking handler is down (`/readyz` 503) during its
    /// back-off, then restarted on the same socket: the next message is handled.
    #[test]
    fn a_dead_receive_thread_is_reported_and_restarted() {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let addr = socket.local_addr().unwrap();
        let (tx, handled) = std::sync::mpsc::channel();
        let handler = Arc::new(FirstPanics {
            seen: std::sync::Mutex::new(0),
            tx: std::sync::Mutex::new(tx),
        });
        let health = Health::new();
        let on_death = OnDeath::Restart {
            first: Duration::from_secs(1),
            max: Duration::from_secs(1),
        };
        let sender = SipSender::new(socket.clone(), addr);
        let receiver =
            spawn_watched_receiver((socket, handler, sender, 65_535), &health, on_death).unwrap();
        assert_eq!(health.state(Component::SipUdp), PartState::Up);

        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = peer.local_addr().unwrap().port();
        peer.send_to(options(addr, port, "dies").as_bytes(), addr)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while health.deaths(Component::SipUdp) == 0 {
            assert!(Instant::now() < deadline, "the panic was not seen");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(health.down(), vec![Component::SipUdp]);

        peer.send_to(options(addr, port, "after").as_bytes(), addr)
            .unwrap();
        let got = handled.recv_timeout(Duration::from_secs(10));
        assert_eq!(got.as_deref(), Ok("after"), "handled after the restart");
        assert_eq!(health.state(Component::SipUdp), PartState::Up);
        receiver.stop();
        assert_eq!(health.state(Component::SipUdp), PartState::Off);
    }
}
