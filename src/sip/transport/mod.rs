//! UDP and TCP transport on one port, and TLS on its own (RFC 3261 §18, §26.2): receive, parse
//! and hand every message to an [`InboundHandler`]; send through a cloneable [`SipSender`]. Owns
//! sockets and framing only; what a message means is decided above.

mod connections;
pub mod log_limit;
mod tcp;
mod tls;
mod udp;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

pub use connections::{ConnectionHold, TcpOptions};
use connections::{Connections, Queued};
pub use tcp::serve_tcp;
pub use tls::{serve_tls, TlsClient, TlsClientError, TlsTarget};
pub use udp::{spawn_udp_receiver, UdpReceiver};

/// Which transport a message came over or must leave by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    Udp,
    Tcp,
    /// TLS over TCP (RFC 3261 §26.2); framed like TCP.
    Tls,
}

impl TransportKind {
    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
        }
    }

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            TransportKind::Udp => "udp",
            TransportKind::Tcp => "tcp",
            TransportKind::Tls => "tls",
        }
    }

    /// Reliable transports need no retransmission timers.
    pub fn is_reliable(self) -> bool {
        matches!(self, TransportKind::Tcp | TransportKind::Tls)
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

    /// Whether the transport may answer `peer` statelessly for a request that never reached
    /// [`on_message`](Self::on_message) (400 for a malformed one, 501 for an extension method):
    /// such answers pass the same trunk ACL and source rate limit as every other request, or a
    /// spoofed flood of them would be reflected unchecked.
    fn may_answer(&self, _peer: &Peer) -> bool {
        true
    }

    /// Whether a TCP/TLS connection from `ip` (inside the accept ACL) may be accepted: a
    /// source banned for failed authentication is closed at accept.
    fn may_connect(&self, _ip: std::net::IpAddr) -> bool {
        true
    }
}

/// Errors while sending.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("udp send to {addr}: {source}")]
    Udp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// No connection, and none can be opened yet (the TCP listener is not serving).
    #[error("no open tcp connection to {0}")]
    NoTcpConnection(SocketAddr),
    /// The connection's write queue is full: the peer does not read, so it is being closed.
    #[error("tcp write queue to {0} full; closing the connection (stalled reader)")]
    WriteQueueFull(SocketAddr),
    /// No connection to the peer and no room for a new one (`sip.tcp_max_connections`).
    #[error("tcp connection limit reached; cannot connect to {0}")]
    TooManyConnections(SocketAddr),
    /// A TLS connection of our own could not be set up (RFC 3261 §26.3.1: the server's
    /// certificate must match the host name we meant to reach).
    #[error("tls connection to {addr} ({server_name}): {reason}")]
    Tls {
        addr: SocketAddr,
        server_name: String,
        reason: String,
    },
}

/// Outbound path shared by every actor: UDP through the listening socket (so replies come from
/// the port peers know); TCP and TLS through the open connection to the peer's address,
/// accepted or ours, or else a new connection of our own (RFC 3261 §18.1.1, §18.2.2).
#[derive(Clone)]
pub struct SipSender {
    udp: Arc<std::net::UdpSocket>,
    tcp: Arc<Connections>,
    tls: Arc<tls::TlsSide>,
    serving: tcp::ServingCell,
    local_addr: SocketAddr,
}

impl SipSender {
    pub fn new(udp: Arc<std::net::UdpSocket>, local_addr: SocketAddr) -> Self {
        Self::with_tcp_options(udp, local_addr, TcpOptions::default())
    }

    /// Like [`SipSender::new`] with TCP limits and timers (`[sip]` config; TLS connections
    /// have the same limits, counted apart).
    pub fn with_tcp_options(
        udp: Arc<std::net::UdpSocket>,
        local_addr: SocketAddr,
        options: TcpOptions,
    ) -> Self {
        SipSender {
            udp,
            tcp: Arc::new(Connections::new(options)),
            tls: Arc::new(tls::TlsSide::new(options)),
            serving: Arc::default(),
            local_addr,
        }
    }

    /// The address the engine listens on (for Via sent-by).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The TLS listener's address, once [`serve_tls`] runs (for Contact over TLS).
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls.listen.get().copied()
    }

    /// The connection table of a stream transport (UDP has none; it maps to TCP's).
    fn table(&self, transport: TransportKind) -> &Arc<Connections> {
        match transport {
            TransportKind::Tls => &self.tls.conns,
            TransportKind::Udp | TransportKind::Tcp => &self.tcp,
        }
    }

    /// Sends one whole message to `peer`; never blocks. Over TCP or TLS without an open
    /// connection to `peer.addr` it opens one and queues the message until connected: `Ok` then
    /// means queued. If the connect fails the queued messages are dropped (counted in
    /// `activeflow_sip_tcp_messages_dropped_total`) and a later send tries again. A new TLS
    /// connection checks the server against what [`SipSender::connect_tls`] learned for that
    /// address, or else the system roots and the address itself.
    pub fn send(&self, peer: &Peer, bytes: &Bytes) -> Result<(), TransportError> {
        self.send_inner(peer, bytes, false).map(|_| ())
    }

    /// Like [`SipSender::send`], and over TCP or TLS a receiver that gets `()` if the
    /// connection the message was queued on fails to connect (refused, timed out, handshake
    /// failed): the sender learns of a transport error (RFC 3263 §4.3) instead of waiting for
    /// its transaction to time out. `None` when no connect is pending (UDP, or the connection
    /// is up).
    pub fn send_watched(
        &self,
        peer: &Peer,
        bytes: &Bytes,
    ) -> Result<Option<tokio::sync::oneshot::Receiver<()>>, TransportError> {
        self.send_inner(peer, bytes, true)
    }

    fn send_inner(
        &self,
        peer: &Peer,
        bytes: &Bytes,
        watch: bool,
    ) -> Result<Option<tokio::sync::oneshot::Receiver<()>>, TransportError> {
        if peer.transport == TransportKind::Udp {
            return self
                .udp
                .send_to(bytes, peer.addr)
                .map(|_| None)
                .map_err(|source| TransportError::Udp {
                    addr: peer.addr,
                    source,
                });
        }
        let table = self.table(peer.transport);
        match table.queue_watched(peer.addr, bytes, watch) {
            (Queued::Sent, watcher) => Ok(watcher),
            (Queued::Full, _) => {
                crate::metrics::sip_tcp_dropped(1);
                Err(TransportError::WriteQueueFull(peer.addr))
            }
            (Queued::NoConnection, _) => {
                let slot = table.admit(peer.addr, false).map_err(|refused| {
                    crate::metrics::sip_tcp_refused(refused.label());
                    TransportError::TooManyConnections(peer.addr)
                })?;
                let opened = match peer.transport {
                    TransportKind::Tls => tls::open(self, peer.addr, slot, bytes, watch),
                    _ => tcp::open(self, peer.addr, slot, bytes, watch),
                };
                match opened {
                    tcp::Opened::Queued(watcher) => Ok(watcher),
                    tcp::Opened::NotServing => Err(TransportError::NoTcpConnection(peer.addr)),
                }
            }
        }
    }

    /// Opens (or finds open) a TLS connection to `addr`, checking the server's certificate
    /// against `target` (its name and trust anchors), and remembers `target` for `addr`: later
    /// connections to `addr` (after this one closed) are checked the same way. Resolves once
    /// the handshake is done, so a certificate error fails what was about to be sent
    /// (RFC 3261 §26.3.1); the caller logs it.
    pub async fn connect_tls(
        &self,
        addr: SocketAddr,
        target: TlsTarget,
    ) -> Result<(), TransportError> {
        tls::connect(self, addr, target).await
    }

    /// Remembers whom a TLS connection to `addr` must reach (server name, trust anchors), for
    /// the connection a later send opens; a failed check then fails that connect like a refused
    /// one (watchers of [`SipSender::send_watched`] hear of it).
    pub fn learn_tls(&self, addr: SocketAddr, target: TlsTarget) {
        self.tls.learn(addr, target);
    }

    /// Keeps TCP or TLS connections to `peer` from being closed for idleness while the
    /// returned hold lives (a dialog holds its peer for its lifetime; drop the hold when the
    /// dialog ends). `None` for UDP. A hold does not keep a connection the peer closes, or a
    /// stalled one.
    pub fn hold(&self, peer: &Peer) -> Option<ConnectionHold> {
        match peer.transport {
            TransportKind::Udp => None,
            kind => Some(self.table(kind).hold(peer.addr)),
        }
    }

    /// Whether [`serve_tcp`] runs, so connections of our own can be opened.
    pub fn tcp_serving(&self) -> bool {
        self.serving.get().is_some()
    }

    /// Whether a TCP connection to `addr` is open now (a dialog prefers the connection its
    /// peer opened while it lasts, RFC 5923 in spirit, and falls back to a new one).
    pub fn tcp_connected(&self, addr: SocketAddr) -> bool {
        self.tcp.is_open(addr)
    }

    /// Whether `peer` is a stream (TCP or TLS) peer whose connection is open now; false for UDP.
    pub fn connected(&self, peer: &Peer) -> bool {
        peer.transport.is_reliable() && self.table(peer.transport).is_open(peer.addr)
    }

    /// TCP connections open now, accepted and our own.
    pub fn tcp_connection_count(&self) -> usize {
        self.tcp.len()
    }

    /// TLS connections open now, accepted and our own.
    pub fn tls_connection_count(&self) -> usize {
        self.tls.conns.len()
    }
}

/// Counts a malformed message and logs it at debug level, rate-limited (peers can flood).
pub(crate) fn malformed(peer: &Peer, error: &dyn fmt::Display) {
    crate::metrics::sip_malformed(peer.transport.label());
    if let Some(suppressed) = log_limit::RECEIVE_LOG.allow() {
        tracing::debug!(%peer, %error, suppressed, "malformed SIP message dropped");
    }
}

/// Answers 400 when the message parsed far enough to address a response; drops it otherwise.
/// Either way it is counted. The reply is stateless (top Via only, no body, a short Warning),
/// so it is never much larger than what provoked it.
pub(crate) fn reject_malformed(
    sender: &SipSender,
    handler: &dyn InboundHandler,
    peer: &Peer,
    raw: &[u8],
    error: &crate::sip::message::MessageError,
) {
    if !handler.may_answer(peer) {
        malformed(peer, error);
        return;
    }
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
        let bytes = crate::sip::message::ResponseBuilder::stateless(req, 400, "Bad Request")
            .received_from(peer.addr)
            .header(
                "Warning",
                &format!("399 activeflow \"{}\"", reason.replace('"', "'")),
            )
            .build();
        crate::metrics::sip_response_sent(400);
        let _ = sender.send(peer, &bytes);
    }
}
