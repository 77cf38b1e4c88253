//! The media session on real sockets (UDP on 127.0.0.1), one caller socket per test: the
//! harness here, strict RTP and SSRC changes in `strict`, timeout, hold, renegotiation and the
//! negotiated codec in `control`, the `amd` job in `amd`.

mod amd;
mod control;
mod mute;
mod strict;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::{Actor, Context, Handler};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use super::{spawn, MediaCommand, MediaConfig, MediaHandle, MediaUpdate};
use crate::media::dtmf::TelephoneEvent;
use crate::media::g711::{self, Codec};
use crate::media::library::{AudioLibrary, LibraryConfig};
use crate::media::request::{AudioSource, MediaEvent, MediaJob, MediaRequest, RecordingRequest};
use crate::media::rtp::{self, RtpHeader, RtpStream};
use crate::media::rtp_ports::{PortRange, RtpPortPool};
use crate::media::{RecordingId, Recordings};

/// Forwards a session's events to the test.
struct Collector(mpsc::UnboundedSender<MediaEvent>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<MediaEvent> for Collector {
    type Result = ();

    fn handle(&mut self, event: MediaEvent, _: &mut Self::Context) {
        let _ = self.0.send(event);
    }
}

fn pool() -> &'static RtpPortPool {
    static POOL: OnceLock<RtpPortPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let range = PortRange {
            first: 43000,
            last: 43400,
        };
        RtpPortPool::new(range, "127.0.0.1".parse().unwrap())
    })
}

struct Rig {
    handle: MediaHandle,
    /// The session's RTP address.
    engine: SocketAddr,
    /// The caller.
    peer: UdpSocket,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    recordings: Arc<Recordings>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A session on `codec` whose SDP address is `remote`, with the RTP timeout `rtp_timeout`.
async fn spawn_rig(codec: Codec, remote: Remote, rtp_timeout: Option<Duration>) -> Rig {
    let dir = std::env::temp_dir().join(format!("af-rtp-session-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let lease = pool().lease().unwrap();
    let engine: SocketAddr = format!("127.0.0.1:{}", lease.port()).parse().unwrap();
    let recordings =
        Recordings::start(&dir.join("rec"), 10, &crate::health::Health::new()).unwrap();
    let (tx, events) = mpsc::unbounded_channel();
    let config = MediaConfig {
        call_id: "test-call".into(),
        span: tracing::Span::none(),
        codec,
        dtmf_payload_type: Some(101),
        remote: match remote {
            Remote::Peer => Some(peer.local_addr().unwrap()),
            Remote::Sdp(addr) => Some(addr),
            Remote::Unknown => None,
        },
        library: Arc::new(AudioLibrary::new(LibraryConfig::with_dirs(
            dir.clone(),
            dir.join("cache"),
        ))),
        recordings: recordings.clone(),
        events: Collector(tx).start().recipient(),
        rtp_timeout,
        rtp_ports: Some(pool().clone()),
    };
    let handle = spawn(lease, config).unwrap();
    Rig {
        handle,
        engine,
        peer,
        events,
        recordings,
        _dir: TempDir(dir),
    }
}

enum Remote {
    Peer,
    Sdp(SocketAddr),
    Unknown,
}

/// A session whose SDP address is the peer's.
async fn rig(codec: Codec) -> Rig {
    rig_with(codec, Remote::Peer).await
}

async fn rig_with(codec: Codec, remote: Remote) -> Rig {
    spawn_rig(codec, remote, None).await
}

/// A PCMU session whose RTP timeout is `after`.
async fn rig_timing_out(after: Duration) -> Rig {
    spawn_rig(Codec::Pcmu, Remote::Peer, Some(after)).await
}

fn packet(stream: &mut RtpStream, pt: u8, marker: bool, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    stream.write_packet(pt, marker, ts, payload, &mut out);
    out
}

fn event(digit: char, end: bool) -> Vec<u8> {
    let mut out = Vec::new();
    TelephoneEvent {
        event: crate::media::dtmf::digit_to_event(digit).unwrap(),
        end,
        volume: 10,
        duration: 800,
    }
    .write(&mut out);
    out
}

/// Sends one digit (a start and an end packet) from `socket` on `stream` at timestamp `ts`.
async fn send_digit(
    socket: &UdpSocket,
    to: SocketAddr,
    stream: &mut RtpStream,
    digit: char,
    ts: u32,
) {
    for end in [false, true] {
        let p = packet(stream, 101, !end, ts, &event(digit, end));
        socket.send_to(&p, to).await.unwrap();
    }
}

/// Everything `socket` receives for `window`.
async fn receive_for(socket: &UdpSocket, window: Duration) -> Vec<(RtpHeader, Vec<u8>)> {
    let until = Instant::now() + window;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(until, socket.recv_from(&mut buf)).await {
        if let Some((header, payload)) = rtp::parse(&buf[..n]) {
            got.push((header, payload.to_vec()));
        }
    }
    got
}

/// Events that arrive within `window`.
async fn events_for(rig: &mut Rig, window: Duration) -> Vec<MediaEvent> {
    let until = Instant::now() + window;
    let mut got = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout_at(until, rig.events.recv()).await {
        got.push(e);
    }
    got
}

fn digits(events: &[MediaEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Digit(d) => Some(*d),
            _ => None,
        })
        .collect()
}

fn timeouts(events: &[MediaEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, MediaEvent::RtpTimeout))
        .count()
}

fn start(rig: &Rig, job: u64, request: MediaRequest) {
    rig.handle.send(MediaCommand::Start {
        job: MediaJob(job),
        request,
    });
}

fn echo(rig: &Rig) {
    let request = MediaRequest::Echo {
        duration: Duration::from_secs(5),
        dtmf: true,
    };
    start(rig, 1, request);
}

fn beep(rig: &Rig, job: u64) {
    let sources = vec![AudioSource::Beep { duration_ms: 200 }];
    start(
        rig,
        job,
        MediaRequest::Play {
            sources,
            stop_on_digit: false,
        },
    );
}
