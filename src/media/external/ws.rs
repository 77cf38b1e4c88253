//! The WebSocket external media task (`ws://` / `wss://`, as jambonz and Twilio media streams):
//! resolves the URL's host, checks the address against the destination policy, connects TCP to
//! that address itself (so no second lookup can swap it), then speaks WebSocket (RFC 6455): one
//! text frame of JSON metadata first, then binary frames of 20 ms µ-law (160 bytes) both ways.
//! The host may send faster than real time (a TTS answer at once): its audio is queued (at most
//! `PLAYOUT_FRAMES`) and handed to the session on a 20 ms clock; a text frame
//! `{"event":"clear"}` empties that queue (barge-in). Never blocks the session, and never waits
//! on the host: frames to a host that stops reading queue (bounded, `ws_send`) and drop, and a
//! host that takes nothing for `STALL_TIMEOUT` ends the stream (`stalled`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::Connector;

use super::playout::{HostPlayout, FRAME_BYTES};
use super::ws_send::{Outgoing, STALL_TIMEOUT};
use super::{
    destination_permitted, Frame, HostEvent, Stats, ENDED_HOST_CLOSED, ENDED_STALLED,
    RESOLVE_TIMEOUT,
};
use crate::http::HttpPolicy;

/// The host's audio queued for playout at most (10 s); beyond it frames are dropped.
const PLAYOUT_FRAMES: usize = 500;
/// Longest connect + handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest message taken from the host (a few seconds of audio, or metadata).
const MAX_MESSAGE: usize = 64 * 1024;
/// Unsent bytes buffered towards a slow host at most; beyond, frames are dropped.
const MAX_WRITE_BUFFER: usize = 64 * 1024;
/// The kernel's send buffer for the connection (fixed, not autotuned up to megabytes): what a
/// host that stops reading can hold of ours is this, `MAX_WRITE_BUFFER` and the send queue.
const SOCKET_SEND_BUFFER: usize = 32 * 1024;
/// TCP keepalive (RFC 1122 §4.2.3.6) on the connection, so a vanished host is noticed even
/// when nothing is being sent.
const KEEPALIVE: Duration = Duration::from_secs(30);

pub(super) struct Task {
    pub(super) url: String,
    pub(super) policy: HttpPolicy,
    /// The first text frame (JSON metadata).
    pub(super) start: Value,
    pub(super) events: mpsc::Sender<HostEvent>,
    pub(super) frames: mpsc::Receiver<Frame>,
    pub(super) stats: Arc<Stats>,
    /// The call's span, named as the parent of this task's lines.
    pub(super) span: tracing::Span,
}

/// What `url` asks for: TLS or not, the host name and the `host:port` to resolve.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Target {
    pub(super) tls: bool,
    pub(super) host: String,
    pub(super) authority: String,
}

/// Parses a `ws://` or `wss://` URL (port defaulting to 80 / 443).
pub(super) fn target(url: &str) -> Result<Target, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("external_host {url:?}: {e}"))?;
    let tls = match parsed.scheme() {
        "ws" => false,
        "wss" => true,
        other => return Err(format!("external_host scheme {other:?} is not ws or wss")),
    };
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        None => return Err(format!("external_host {url:?} has no host")),
    };
    let port = parsed.port().unwrap_or(if tls { 443 } else { 80 });
    Ok(Target {
        tls,
        authority: format!("{host}:{port}"),
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    })
}

impl Task {
    pub(super) async fn run(mut self) {
        let (tcp, remote) = match self.connect_tcp().await {
            Ok(c) => c,
            Err(why) => return self.fail(why).await,
        };
        let local = match tcp.local_addr() {
            Ok(a) => a,
            Err(e) => return self.fail(format!("no local address: {e}")).await,
        };
        let config = ws_config();
        let connector = match target(&self.url) {
            Ok(t) if t.tls => match tls_config() {
                Ok(config) => Connector::Rustls(config),
                Err(why) => return self.fail(why).await,
            },
            _ => Connector::Plain,
        };
        let handshake = tokio_tungstenite::client_async_tls_with_config(
            self.url.as_str(),
            tcp,
            Some(config),
            Some(connector),
        );
        let mut ws = match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
            Ok(Ok((ws, _response))) => ws,
            Ok(Err(e)) => return self.fail(format!("WebSocket handshake failed: {e}")).await,
            Err(_) => return self.fail("WebSocket handshake timed out".into()).await,
        };
        if let Err(e) = ws.send(Message::text(self.start.to_string())).await {
            return self.fail(format!("WebSocket send failed: {e}")).await;
        }
        let ready = HostEvent::Ready { local, remote };
        if self.events.send(ready).await.is_err() {
            return;
        }
        let (mut writer, mut reader) = ws.split();
        let mut playout = HostPlayout::new(PLAYOUT_FRAMES, true);
        let mut outgoing = Outgoing::new();
        let mut clock = tokio::time::interval(Duration::from_millis(20));
        clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // Why the stream ended, when not by the session dropping its link.
        let ended: Option<&'static str> = loop {
            // Never await the host in here: a host that stops reading must not keep the task
            // from seeing the session's link close (stop, hangup, the call's end).
            let (busy, stall_at) = (outgoing.busy(), outgoing.stall_deadline());
            tokio::select! {
                frame = self.frames.recv() => {
                    let Some(frame) = frame else { break None };
                    outgoing.push(frame.payload, &self.stats);
                }
                sent = outgoing.progress(&mut writer, &self.stats), if busy => {
                    if sent.is_err() {
                        break Some(ENDED_HOST_CLOSED);
                    }
                }
                _ = tokio::time::sleep_until(stall_at), if busy => {
                    tracing::info!(parent: &self.span, %remote, "external media host took no audio for {}s: ending",
                        STALL_TIMEOUT.as_secs());
                    break Some(ENDED_STALLED);
                }
                message = reader.next() => match message {
                    Some(Ok(Message::Binary(audio))) => {
                        if playout.is_empty() {
                            // A new talkspurt: its first frame now, then one per 20 ms.
                            clock.reset_immediately();
                        }
                        self.queue(&mut playout, &audio)
                    }
                    Some(Ok(Message::Text(text))) => {
                        if is_clear(text.as_str()) {
                            playout.clear();
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        break Some(ENDED_HOST_CLOSED)
                    }
                    Some(Ok(_)) => {}
                },
                _ = clock.tick(), if !playout.is_empty() => {
                    if let Some(frame) = playout.next_frame() {
                        if self.events.try_send(HostEvent::Audio(frame)).is_err() {
                            Stats::add(&self.stats.dropped);
                        }
                    }
                }
            }
        };
        if let Some(reason) = ended {
            let _ = self.events.try_send(HostEvent::Ended(reason));
        }
        // Best effort, bounded: the host learns the stream is over (a stalled host does not).
        if ended != Some(ENDED_STALLED) {
            let close = writer.send(Message::Close(None));
            let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
        }
    }

    /// The host's audio cut into 20 ms frames (a short last piece is padded with silence).
    fn queue(&self, playout: &mut HostPlayout, audio: &[u8]) {
        let frames = audio.len().div_ceil(FRAME_BYTES) as u64;
        self.stats
            .received
            .fetch_add(frames, std::sync::atomic::Ordering::Relaxed);
        let dropped = playout.push(audio);
        self.stats
            .dropped
            .fetch_add(dropped, std::sync::atomic::Ordering::Relaxed);
    }

    async fn fail(&self, why: String) {
        let _ = self.events.send(HostEvent::Failed(why)).await;
    }

    /// A TCP connection to the first address of the URL's host the policy permits.
    async fn connect_tcp(&self) -> Result<(TcpStream, SocketAddr), String> {
        let t = target(&self.url)?;
        let found = tokio::time::timeout(
            RESOLVE_TIMEOUT,
            tokio::net::lookup_host(t.authority.as_str()),
        )
        .await;
        let addresses: Vec<SocketAddr> = match found {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => return Err(format!("{:?} does not resolve: {e}", t.host)),
            Err(_) => return Err(format!("{:?} did not resolve in time", t.host)),
        };
        let remote = addresses
            .iter()
            .copied()
            .find(|a| destination_permitted(&self.policy, a.ip()))
            .ok_or_else(|| {
                format!(
                    "external_host {:?} is not a permitted media destination (unspecified, \
                     multicast, broadcast, or denied by the [http] policy)",
                    t.host
                )
            })?;
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote)).await {
            Ok(Ok(tcp)) => {
                let _ = tcp.set_nodelay(true);
                let sock = socket2::SockRef::from(&tcp);
                let _ = sock.set_send_buffer_size(SOCKET_SEND_BUFFER);
                let _ = sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(KEEPALIVE));
                Ok((tcp, remote))
            }
            Ok(Err(e)) => Err(format!("cannot connect to {remote}: {e}")),
            Err(_) => Err(format!("connecting to {remote} timed out")),
        }
    }
}

/// Bounded reads and writes. Each 20 ms frame goes out at once (no batching); towards a slow
/// host at most `MAX_WRITE_BUFFER` bytes wait in tungstenite (then the sink is not ready and
/// frames wait in `ws_send`'s bounded queue, dropped beyond it).
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
}

/// `{"event": "clear"}` (Twilio's name; jambonz says `{"type": "killAudio"}`, also taken).
fn is_clear(text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|v| {
        v.get("event").and_then(Value::as_str) == Some("clear")
            || v.get("type").and_then(Value::as_str) == Some("killAudio")
    })
}

/// TLS for `wss://`: rustls on ring with the Mozilla roots (webpki-roots).
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_scheme_host_and_port() {
        let t = target("ws://127.0.0.1:8080/media?x=1").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.authority.as_str()),
            (false, "127.0.0.1", "127.0.0.1:8080")
        );
        let t = target("wss://bot.example.com/stream").unwrap();
        assert_eq!((t.tls, t.authority.as_str()), (true, "bot.example.com:443"));
        let t = target("ws://[::1]/").unwrap();
        assert_eq!((t.host.as_str(), t.authority.as_str()), ("::1", "[::1]:80"));
        assert!(target("http://h/").is_err());
        assert!(target("ws://").is_err());
        assert!(target("not a url").is_err());
    }

    /// tungstenite panics on an inconsistent config when a connection starts.
    #[test]
    fn the_websocket_config_is_valid() {
        use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketContext};
        let _ = WebSocketContext::new(Role::Client, Some(ws_config()));
    }

    #[test]
    fn clear_messages_empty_the_playout() {
        assert!(is_clear(r#"{"event":"clear"}"#));
        assert!(is_clear(r#"{"type":"killAudio"}"#));
        assert!(!is_clear(r#"{"event":"mark"}"#));
        assert!(!is_clear("clear"));
    }
}
