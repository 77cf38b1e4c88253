//! UDP and TCP transport on one port: receive, parse and hand every message to an
//! [`InboundHandler`]; send through a cloneable [`SipSender`]. Owns sockets and framing only;
//! what a message means is decided above.

mod tcp;
mod udp;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::mpsc;

pub use tcp::serve_tcp;
pub use udp::{spawn_udp_receiver, UdpReceiver};

/// Which transport a message came over or must leave by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
}

impl TransportKind {
    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
        }
    }

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            TransportKind::Udp => "udp",
            TransportKind::Tcp => "tcp",
        }
    }

    /// Reliable transports need no retransmission timers.
    pub fn is_reliable(self) -> bool {
        matches!(self, TransportKind::Tcp)
    }
}

/// The far end of a message: address and transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub addr: SocketAddr,
    pub transport: TransportKind,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.transport.label())
    }
}

/// One parsed message with where it came from.
#[derive(Debug)]
pub struct Inbound {
    pub message: rsip::SipMessage,
    pub peer: Peer,
    pub received_at: tokio::time::Instant,
}

/// Receives every well-formed message; called on the transport's own threads, so it must be
/// quick and never block (dispatch with `do_send`).
pub trait InboundHandler: Send + Sync + 'static {
    fn on_message(&self, inbound: Inbound);
}

/// Errors while sending.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("udp send to {addr}: {source}")]
    Udp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no open tcp connection to {0}")]
    NoTcpConnection(SocketAddr),
}

/// Outbound path shared by every actor: UDP through the listening socket (so replies come from
/// the port peers know), TCP through the connection the peer opened.
#[derive(Clone)]
pub struct SipSender {
    udp: Arc<std::net::UdpSocket>,
    tcp: Arc<DashMap<SocketAddr, mpsc::UnboundedSender<Bytes>>>,
    local_addr: SocketAddr,
}

impl SipSender {
    pub fn new(udp: Arc<std::net::UdpSocket>, local_addr: SocketAddr) -> Self {
        SipSender {
            udp,
            tcp: Arc::new(DashMap::new()),
            local_addr,
        }
    }

    /// The address the engine listens on (for Via sent-by).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sends one whole message to `peer`.
    pub fn send(&self, peer: &Peer, bytes: &Bytes) -> Result<(), TransportError> {
        match peer.transport {
            TransportKind::Udp => {
                self.udp
                    .send_to(bytes, peer.addr)
                    .map(|_| ())
                    .map_err(|source| TransportError::Udp {
                        addr: peer.addr,
                        source,
                    })
            }
            TransportKind::Tcp => {
                let conn = self
                    .tcp
                    .get(&peer.addr)
                    .ok_or(TransportError::NoTcpConnection(peer.addr))?;
                conn.send(bytes.clone())
                    .map_err(|_| TransportError::NoTcpConnection(peer.addr))
            }
        }
    }

    pub(crate) fn tcp_connections(&self) -> &DashMap<SocketAddr, mpsc::UnboundedSender<Bytes>> {
        &self.tcp
    }
}

/// Counts a malformed message and logs it at debug level (peers can flood; never warn per message).
pub(crate) fn malformed(peer: &Peer, error: &dyn fmt::Display) {
    crate::metrics::sip_malformed(peer.transport.label());
    tracing::debug!(%peer, %error, "malformed SIP message dropped");
}

/// Answers 400 when the message parsed far enough to address a response; drops it otherwise.
/// Either way it is counted.
pub(crate) fn reject_malformed(
    sender: &SipSender,
    peer: &Peer,
    raw: &[u8],
    error: &crate::sip::message::MessageError,
) {
    if let Some(reply) = crate::sip::message::unknown_method::not_implemented(raw) {
        // Well-formed, just a method rsip cannot represent: RFC 3261 §8.2.1 says 501.
        crate::metrics::sip_request_received("OTHER");
        crate::metrics::sip_response_sent(501);
        let _ = sender.send(peer, &reply);
        return;
    }
    malformed(peer, error);
    if let Some(req) = error.request() {
        if req.method == rsip::Method::Ack {
            return; // never answer an ACK
        }
        let reason = error.to_string();
        let bytes = crate::sip::message::ResponseBuilder::new(req, 400, "Bad Request")
            .header(
                "Warning",
                &format!("399 activeflow \"{}\"", reason.replace('"', "'")),
            )
            .build();
        crate::metrics::sip_response_sent(400);
        let _ = sender.send(peer, &bytes);
    }
}
