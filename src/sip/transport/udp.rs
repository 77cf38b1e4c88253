//! The UDP receive loop: one OS thread doing blocking `recv_from` on the listening socket, so the
//! SIP receive path never shares a thread with actors. Parses each datagram and hands it to the
//! handler; malformed datagrams are answered 400 when addressable, otherwise dropped and counted.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Inbound, InboundHandler, Peer, SipSender, TransportKind};
use crate::sip::message;

/// How often the blocked receiver wakes to check for shutdown.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Room for the largest datagram (64 KiB) plus one byte to detect truncation.
const RECV_BUFFER: usize = 65_536;

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

/// Starts the receive thread on an already-bound socket.
pub fn spawn_udp_receiver(
    socket: Arc<UdpSocket>,
    handler: Arc<dyn InboundHandler>,
    sender: SipSender,
    max_message_size: usize,
) -> std::io::Result<UdpReceiver> {
    socket.set_read_timeout(Some(POLL_INTERVAL))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("sip-udp-rx".into())
        .spawn(move || receive_loop(&socket, &*handler, &sender, max_message_size, &flag))?;
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
                tracing::warn!(error = %e, "udp receive failed");
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
            Err(error) => super::reject_malformed(sender, &peer, datagram, &error),
        }
    }
}

/// RFC 5626 CRLF keep-alives (and stray whitespace) are not messages.
fn is_keepalive(datagram: &[u8]) -> bool {
    datagram.iter().all(|b| b.is_ascii_whitespace())
}
