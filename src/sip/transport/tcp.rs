//! SIP over TCP: accepts connections, frames the byte stream by Content-Length and hands each
//! message to the handler; replies leave through the same connection. A framing error or a
//! message stalled longer than [`STALL_TIMEOUT`] closes the connection (a stream cannot resync).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{Inbound, InboundHandler, Peer, SipSender, TransportKind};
use crate::sip::message::{self, Frame};

/// A connection that holds a partial message this long is closed.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection with nothing to say for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// At most this many TCP connections at once; more are refused at accept.
const MAX_CONNECTIONS: usize = 10_000;

/// Accept loop; run it inside an actix arbiter or any tokio runtime. Ends when the listener fails.
pub async fn serve_tcp(
    listener: std::net::TcpListener,
    handler: Arc<dyn InboundHandler>,
    sender: SipSender,
    max_message_size: usize,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                // Out of fds and similar: back off instead of spinning.
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if sender.tcp_connections().len() >= MAX_CONNECTIONS {
            tracing::warn!(%addr, "too many tcp connections; refusing");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            connection(stream, addr, handler, sender, max_message_size).await;
        });
    }
}

async fn connection(
    stream: TcpStream,
    addr: SocketAddr,
    handler: Arc<dyn InboundHandler>,
    sender: SipSender,
    max_message_size: usize,
) {
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    sender.tcp_connections().insert(addr, tx);
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let peer = Peer {
        addr,
        transport: TransportKind::Tcp,
    };
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let limit = if buf.is_empty() {
            IDLE_TIMEOUT
        } else {
            STALL_TIMEOUT
        };
        match tokio::time::timeout(limit, reader.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
            Err(_) => {
                if !buf.is_empty() {
                    super::malformed(&peer, &"tcp connection stalled mid-message");
                }
                break;
            }
        }
        if !drain_frames(&mut buf, &peer, &*handler, &sender, max_message_size) {
            break;
        }
    }
    sender.tcp_connections().remove(&addr);
    write_task.abort();
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
                    Err(error) => super::reject_malformed(sender, peer, &raw, &error),
                }
            }
            Err(error) => {
                super::malformed(peer, &error);
                return false;
            }
        }
    }
}
