//! External media (`external_media_start`): the call's audio forked to an external host (a speech
//! bot) and the host's audio played back. A small task per stream owns the external socket and
//! talks to the call's media session over bounded channels: a slow or silent host loses frames,
//! never blocks the session or grows memory. This file holds the request, the channel vocabulary
//! and the destination check; `rtp` the UDP task, `ws` the WebSocket one. Knows no flows or SIP.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::rtp_ports::RtpPortPool;
use crate::http::HttpPolicy;

mod playout;
mod rtp;
mod ws;
mod ws_send;

/// Frames queued between the session and the task each way at most (about 1 s of audio).
pub const QUEUE: usize = 50;
/// Longest wait for the host's name to resolve.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// `ended_by` of a stream the host closed (WebSocket close or error, RTP socket error).
pub const ENDED_HOST_CLOSED: &str = "host_closed";
/// `ended_by` of a stream whose host took no audio for `ws_send::STALL_TIMEOUT`.
pub const ENDED_STALLED: &str = "stalled";

/// How the audio travels: the action's own option, carried as it was validated.
pub use crate::flow::stream::Encapsulation;

/// What `external_media_start` asks the media session for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalMediaRequest {
    /// Names this stream in results, variables and logs.
    pub id: String,
    pub encapsulation: Encapsulation,
    /// `host:port` for RTP (a name is resolved by the task), a `ws://`/`wss://` URL otherwise.
    pub host: String,
    /// The activeflow that asked (in a WebSocket host's metadata).
    pub activeflow_id: String,
    /// The flow's `data`, passed on to a WebSocket host.
    pub data: String,
    /// The caller's audio goes to the host.
    pub listen: bool,
    /// The host's audio is played to the caller.
    pub speak: bool,
}

/// 20 ms of µ-law on its way to or from the host.
#[derive(Debug)]
pub struct Frame {
    pub marker: bool,
    /// The sender's RTP timestamp (mapped onto the receiver's own base).
    pub timestamp: u32,
    pub payload: Vec<u8>,
}

/// What the task tells the session.
#[derive(Debug)]
pub enum HostEvent {
    /// The stream is up: our local address and the host's.
    Ready {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// It could not start (name, policy, socket); the task has ended.
    Failed(String),
    /// Audio from the host.
    Audio(Frame),
    /// The stream ended by itself, for this reason ([`ENDED_HOST_CLOSED`], [`ENDED_STALLED`]);
    /// the task is ending.
    Ended(&'static str),
}

/// Packet counts shared by the task and the session (read at stop).
#[derive(Debug, Default)]
pub struct Stats {
    /// RTP packets sent to the host.
    pub sent: AtomicU64,
    /// Packets accepted from the host.
    pub received: AtomicU64,
    /// Packets from any other source, or not PCMU RTP (strict, like the caller's latch).
    pub rejected: AtomicU64,
    /// Frames lost on a full queue (a slow host or a stalled session).
    pub dropped: AtomicU64,
    /// Packets to the host the socket refused (counted, and logged once).
    pub send_failed: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn to_json(&self) -> Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "sent_packets": get(&self.sent),
            "received_packets": get(&self.received),
            "rejected_packets": get(&self.rejected),
            "dropped_frames": get(&self.dropped),
            "send_failed_packets": get(&self.send_failed),
        })
    }
}

/// The session's end of one running stream.
pub struct ExternalLink {
    pub to_host: mpsc::Sender<Frame>,
    pub events: mpsc::Receiver<HostEvent>,
    pub stats: Arc<Stats>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExternalMediaError {
    #[error("no RTP port for the external media stream: {0}")]
    NoPort(String),
    #[error("no socket for the external media stream: {0}")]
    NoSocket(String),
}

/// Counts a stream in `activeflow_external_media_streams_active` for as long as its task really
/// runs (not only while the session holds it), and its dropped frames when it ends.
struct Running {
    encapsulation: &'static str,
    stats: Arc<Stats>,
}

impl Running {
    fn new(encapsulation: Encapsulation, stats: Arc<Stats>) -> Self {
        crate::metrics::external_media_stream(encapsulation.as_str(), true, 0);
        Running {
            encapsulation: encapsulation.as_str(),
            stats,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let dropped = self.stats.dropped.load(Ordering::Relaxed);
        crate::metrics::external_media_stream(self.encapsulation, false, dropped);
    }
}

/// Starts the stream's task on the current arbiter (RTP with a port from `pool`; WebSocket with
/// a place in the same pool's socket budget); its readiness (or failure) comes as the first
/// [`HostEvent`]. The task ends when the session drops its link, or by itself (`Ended`).
pub fn spawn(
    request: &ExternalMediaRequest,
    call_id: &str,
    span: &tracing::Span,
    pool: &RtpPortPool,
    policy: &HttpPolicy,
) -> Result<ExternalLink, ExternalMediaError> {
    let (to_host, frames) = mpsc::channel(QUEUE);
    let (events_tx, events) = mpsc::channel(QUEUE);
    let stats = Arc::new(Stats::default());
    match request.encapsulation {
        Encapsulation::Rtp => {
            let lease = pool
                .lease()
                .map_err(|e| ExternalMediaError::NoPort(e.to_string()))?;
            let task = rtp::Task {
                host: request.host.clone(),
                policy: policy.clone(),
                events: events_tx,
                frames,
                stats: stats.clone(),
                span: span.clone(),
            };
            let running = Running::new(request.encapsulation, stats.clone());
            actix_rt::spawn(async move {
                let _running = running;
                task.run(lease).await
            });
        }
        Encapsulation::Websocket => {
            let token = pool
                .socket_token()
                .map_err(|e| ExternalMediaError::NoSocket(e.to_string()))?;
            let task = ws::Task {
                url: request.host.clone(),
                policy: policy.clone(),
                start: start_metadata(request, call_id),
                events: events_tx,
                frames,
                stats: stats.clone(),
                span: span.clone(),
            };
            let running = Running::new(request.encapsulation, stats.clone());
            actix_rt::spawn(async move {
                // The connection's place in the socket budget, and the metric, last as long
                // as the task.
                let (_token, _running) = (token, running);
                task.run().await
            });
        }
    }
    Ok(ExternalLink {
        to_host,
        events,
        stats,
    })
}

/// The first text frame a WebSocket host gets: who the stream is and what its frames hold.
pub fn start_metadata(request: &ExternalMediaRequest, call_id: &str) -> Value {
    json!({
        "event": "start",
        "external_media_id": request.id,
        "call_id": call_id,
        "activeflow_id": request.activeflow_id,
        "format": "ulaw",
        "sample_rate": 8000,
        "frame_ms": 20,
        "direction_listen": if request.listen { "in" } else { "" },
        "direction_speak": if request.speak { "out" } else { "" },
        "data": request.data,
    })
}

/// Whether flows may send media to `ip`: never to an unspecified, multicast or broadcast
/// address (that would be a reflector), otherwise as the `[http]` policy says for flows'
/// outgoing HTTP (the same operator networks are off limits to both).
pub fn destination_permitted(policy: &HttpPolicy, ip: IpAddr) -> bool {
    let never = match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => {
            v6.is_unspecified()
                || v6.is_multicast()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast())
        }
    };
    !never && policy.permits(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflector_addresses_are_never_permitted() {
        let open = HttpPolicy::permissive(Duration::from_secs(1), 1);
        for ip in [
            "0.0.0.0",
            "224.0.0.1",
            "239.1.2.3",
            "255.255.255.255",
            "::",
            "ff02::1",
            "::ffff:224.0.0.1",
        ] {
            assert!(!destination_permitted(&open, ip.parse().unwrap()), "{ip}");
        }
        assert!(destination_permitted(&open, "127.0.0.1".parse().unwrap()));
        assert!(destination_permitted(&open, "203.0.113.5".parse().unwrap()));
        let strict = HttpPolicy {
            deny: vec!["127.0.0.0/8".parse().unwrap()],
            ..open
        };
        assert!(!destination_permitted(
            &strict,
            "127.0.0.1".parse().unwrap()
        ));
    }

    #[test]
    fn stats_report_every_count() {
        let s = Stats::default();
        Stats::add(&s.sent);
        Stats::add(&s.sent);
        Stats::add(&s.rejected);
        assert_eq!(
            s.to_json(),
            json!({"sent_packets": 2, "received_packets": 0, "rejected_packets": 1,
                "dropped_frames": 0, "send_failed_packets": 0})
        );
    }
}
