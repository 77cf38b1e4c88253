//! SIP over TCP: accepts connections (ACL and caps checked at accept) and opens our own
//! (RFC 3261 §18.1.1, §18.2.2); both kinds are framed by Content-Length and handed to the same
//! handler, and both write from a bounded queue. [`run`] is generic over the stream, so TLS
//! connections (`tls.rs`) go through this same code once their handshake is done. A framing
//! error, a message stalled longer than [`STALL_TIMEOUT`], a write with no progress, or a full
//! write queue closes the connection.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use super::connections::{ConnState, Connections, Registered, Slot};
use super::log_limit::RECEIVE_LOG;
use super::{Inbound, InboundHandler, Peer, SipSender, TransportKind};
use crate::net::Cidr;
use crate::sip::message::{self, Frame};

/// A connection that holds a partial message this long is closed.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What connections of our own need that only the accept side knows: where to run, who reads.
pub(super) struct Serving {
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) handler: Arc<dyn InboundHandler>,
    pub(super) max_message_size: usize,
    epoch: Instant,
}

impl Serving {
    pub(super) fn new(handler: Arc<dyn InboundHandler>, max_message_size: usize) -> Serving {
        Serving {
            runtime: tokio::runtime::Handle::current(),
            handler,
            max_message_size,
            epoch: Instant::now(),
        }
    }
}

/// Set once by [`serve_tcp`] (or `serve_tls`); until then no connection of our own can be
/// opened.
pub(super) type ServingCell = Arc<OnceLock<Serving>>;

/// Accept loop; run it inside an actix arbiter or any tokio runtime (connections, accepted and
/// our own, run on that runtime). Sources outside `allow` (the union of every trunk's ACL; empty
/// refuses everyone, as the dispatcher does) are closed at once. Ends when the listener fails.
pub async fn serve_tcp(
    listener: std::net::TcpListener,
    handler: Arc<dyn InboundHandler>,
    sender: SipSender,
    max_message_size: usize,
    allow: Vec<Cidr>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let _ = sender
        .serving
        .set(Serving::new(handler.clone(), max_message_size));
    loop {
        let (stream, addr, slot) = accept(&listener, &allow, handler.as_ref(), &sender.tcp).await;
        let registered = sender.tcp.register(addr);
        let (reader, writer) = stream.into_split();
        let peer = Peer {
            addr,
            transport: TransportKind::Tcp,
        };
        tokio::spawn(run(reader, writer, peer, registered, sender.clone(), slot));
    }
}

/// Waits for the next connection from a source inside `allow` that `handler` does not refuse
/// (a banned source) and `table`'s caps admit; the others are closed at once (counted in
/// `activeflow_sip_tcp_connections_refused_total`).
pub(super) async fn accept(
    listener: &TcpListener,
    allow: &[Cidr],
    handler: &dyn InboundHandler,
    table: &Arc<Connections>,
) -> (TcpStream, SocketAddr, Slot) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                // Out of fds and similar: back off instead of spinning.
                if let Some(suppressed) = RECEIVE_LOG.allow() {
                    tracing::warn!(error = %e, suppressed, "tcp accept failed");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = if !allow.iter().any(|c| c.contains(addr.ip())) {
            Err(super::connections::Refused::Acl)
        } else if !handler.may_connect(addr.ip()) {
            Err(super::connections::Refused::Banned)
        } else {
            table.admit(addr, true)
        };
        match admitted {
            Ok(slot) => {
                let _ = stream.set_nodelay(true);
                return (stream, addr, slot);
            }
            Err(refused) => {
                crate::metrics::sip_tcp_refused(refused.label());
                if let Some(suppressed) = RECEIVE_LOG.allow() {
                    tracing::info!(%addr, reason = refused.label(), suppressed, "connection refused");
                }
                drop(stream); // closed at once
            }
        }
    }
}

/// What [`open`] did.
pub(super) enum Opened {
    /// The accept side is not serving yet: nowhere to run the connection.
    NotServing,
    /// `first` is queued on a connection to `addr`; the receiver (when watched and still
    /// connecting) hears if the connect fails.
    Queued(Option<oneshot::Receiver<()>>),
}

/// Opens a connection of our own to `addr` with `first` queued; never blocks the caller.
pub(super) fn open(
    sender: &SipSender,
    addr: SocketAddr,
    slot: Slot,
    first: &Bytes,
    watch: bool,
) -> Opened {
    let Some(serving) = sender.serving.get() else {
        return Opened::NotServing;
    };
    let registered = match sender.tcp.register_with(addr, Some(first)) {
        Ok(registered) => registered,
        // Another send opened it meanwhile; `first` is queued there.
        Err(state) => return Opened::Queued(watch.then(|| state.watch_connect()).flatten()),
    };
    let watcher = watch.then(|| registered.state.watch_connect()).flatten();
    let sender = sender.clone();
    let timeout = sender.tcp.options.connect_timeout;
    serving.runtime.spawn(async move {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                registered.state.connected(true);
                let (reader, writer) = stream.into_split();
                let peer = Peer {
                    addr,
                    transport: TransportKind::Tcp,
                };
                run(reader, writer, peer, registered, sender, slot).await;
            }
            Ok(Err(_)) | Err(_) => {
                give_up(
                    &sender,
                    addr,
                    TransportKind::Tcp,
                    registered,
                    "connect_failed",
                );
                if let Some(suppressed) = RECEIVE_LOG.allow() {
                    tracing::info!(%addr, suppressed, "tcp connect failed");
                }
            }
        }
    });
    Opened::Queued(watcher)
}

/// Forgets a connection of our own that never came up, dropping (and counting) what it queued
/// and telling whoever watches its connect (RFC 3263 §4.3: the request goes to the next target).
pub(super) fn give_up(
    sender: &SipSender,
    addr: SocketAddr,
    transport: TransportKind,
    registered: Registered,
    reason: &'static str,
) {
    sender.table(transport).unregister(addr, registered.id);
    registered.state.connected(false);
    let dropped = drain(registered.rx);
    crate::metrics::sip_tcp_closed(reason);
    crate::metrics::sip_tcp_dropped(dropped);
}

/// Runs one connection (TCP, or TLS after its handshake) until it closes, then unregisters it
/// and counts why it closed.
pub(super) async fn run<R, W>(
    reader: R,
    writer: W,
    peer: Peer,
    registered: Registered,
    sender: SipSender,
    _slot: Slot,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Registered { id, mut rx, state } = registered;
    let reason = tokio::select! {
        r = read_loop(reader, peer, &sender, &state) => r,
        r = write_loop(writer, &mut rx, &sender, &state) => r,
        r = state.closed() => r,
    };
    sender.table(peer.transport).unregister(peer.addr, id);
    let dropped = drain(rx);
    crate::metrics::sip_tcp_dropped(dropped);
    crate::metrics::sip_tcp_closed(reason);
    if let Some(suppressed) = RECEIVE_LOG.allow() {
        tracing::debug!(%peer, reason, suppressed, "connection closed");
    }
}

/// Closes a queue and counts the messages left in it (they are dropped unsent).
pub(super) fn drain(mut rx: mpsc::Receiver<Bytes>) -> u64 {
    rx.close();
    let mut dropped = 0u64;
    while rx.try_recv().is_ok() {
        dropped += 1;
    }
    dropped
}

fn now_ms(sender: &SipSender) -> u64 {
    sender
        .serving
        .get()
        .map_or(0, |s| s.epoch.elapsed().as_millis() as u64)
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    rx: &mut mpsc::Receiver<Bytes>,
    sender: &SipSender,
    state: &ConnState,
) -> &'static str {
    let limit = sender.tcp.options.write_timeout;
    while let Some(bytes) = rx.recv().await {
        // Flush: a TLS writer buffers records until flushed (a no-op on TCP).
        let write = async {
            writer.write_all(&bytes).await?;
            writer.flush().await
        };
        match tokio::time::timeout(limit, write).await {
            Ok(Ok(())) => state.wrote(now_ms(sender)),
            Ok(Err(_)) => return "write_error",
            Err(_) => return "write_timeout",
        }
    }
    // The table dropped our queue: a newer connection to this address replaced us.
    "peer_closed"
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: R,
    peer: Peer,
    sender: &SipSender,
    state: &ConnState,
) -> &'static str {
    let Some(serving) = sender.serving.get() else {
        return "peer_closed";
    };
    let table = sender.table(peer.transport);
    let idle = table.options.idle_timeout;
    let addr = peer.addr;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let limit = if buf.is_empty() { idle } else { STALL_TIMEOUT };
        match tokio::time::timeout(limit, reader.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return "peer_closed",
            Ok(Ok(_)) => {}
            Err(_) if !buf.is_empty() => {
                super::malformed(&peer, &"tcp connection stalled mid-message");
                return "stalled_message";
            }
            Err(_) => {
                // Idle: close only when no dialog holds it and we did not write lately either.
                let since_write = now_ms(sender).saturating_sub(state.last_write_ms());
                let wrote_lately =
                    state.last_write_ms() > 0 && since_write < idle.as_millis() as u64;
                if table.is_held(addr) || wrote_lately {
                    continue;
                }
                return "idle";
            }
        }
        if !drain_frames(
            &mut buf,
            &peer,
            &*serving.handler,
            sender,
            serving.max_message_size,
        ) {
            return "framing";
        }
    }
}

/// Hands every complete message in `buf` to the handler. Returns false when the stream is broken.
fn drain_frames(
    buf: &mut BytesMut,
    peer: &Peer,
    handler: &dyn InboundHandler,
    sender: &SipSender,
    max_message_size: usize,
) -> bool {
    loop {
        match message::frame(buf, max_message_size) {
            Ok(Frame::Incomplete) => return true,
            Ok(Frame::KeepAlive(n)) => buf.advance(n),
            Ok(Frame::Message(n)) => {
                let raw = buf.split_to(n).freeze();
                match message::parse_stream_message(&raw) {
                    Ok(message) => handler.on_message(Inbound {
                        message,
                        peer: *peer,
                        received_at: tokio::time::Instant::now(),
                    }),
                    Err(error) => super::reject_malformed(sender, handler, peer, &raw, &error),
                }
            }
            Err(error) => {
                super::malformed(peer, &error);
                return false;
            }
        }
    }
}
