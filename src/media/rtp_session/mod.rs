//! One call's RTP session: a task on the call's arbiter that owns the RTP socket from answer to
//! hang-up. Sends on a 20 ms grid anchored to one start instant (timestamps derive from the
//! grid, so nothing drifts), accepts RTP only from the caller's latched source (strict RTP,
//! `latch`), detects RFC 4733 digits, echoes and records, follows re-INVITEs (codec, address,
//! hold) and reports a silent peer (`control`). Knows no SIP; reports through [`MediaEvent`]s.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use futures_channel::mpsc;
use tokio::net::UdpSocket;
use tokio::time::Instant;

mod amd;
mod conference;
mod control;
mod external;
mod jobs;
mod latch;
mod mute;
mod receive;
mod relay;
mod send;
#[cfg(test)]
mod tests;

use super::capture::Capture;
use super::dtmf::EventDetector;
use super::g711::Codec;
use super::library::AudioLibrary;
use super::playout::{DigitSender, Playback, FRAME_SAMPLES};
use super::recording::Recordings;
use super::request::{MediaEvent, MediaJob, MediaRequest, MediaResult, RecordingRequest};
use super::{rtp, RtpLease};

/// The packetisation interval.
const TICK: Duration = Duration::from_millis(20);
/// Ticks this late are skipped rather than sent in a burst.
const MAX_LATE_TICKS: u32 = 3;
/// Largest datagram read; RTP for 20 ms of G.711 is 172 bytes.
const RECEIVE_BUFFER: usize = 2048;
/// Datagrams read per readiness at most, so one flooded socket cannot starve the thread.
const READ_BATCH: usize = 32;

thread_local! {
    /// The receive buffer of every media session on this thread (sessions never await while
    /// holding it).
    static RECEIVE: std::cell::RefCell<Box<[u8; RECEIVE_BUFFER]>> =
        std::cell::RefCell::new(Box::new([0u8; RECEIVE_BUFFER]));
}

/// What a media session serves; everything but the socket.
pub struct MediaConfig {
    pub call_id: String,
    /// The call's span (`call::span`): the session runs outside it (entering it on every
    /// packet would cost), its few lines name it as their parent.
    pub span: tracing::Span,
    pub codec: Codec,
    /// The peer's telephone-event payload type, if it offered one.
    pub dtmf_payload_type: Option<u8>,
    /// Where the SDP said to send RTP, until the caller's own RTP shows where it really is.
    pub remote: Option<SocketAddr>,
    pub library: Arc<AudioLibrary>,
    pub recordings: Arc<Recordings>,
    pub events: Recipient<MediaEvent>,
    /// [`MediaEvent::RtpTimeout`] when no RTP from the peer arrives for this long (not while
    /// held); `None` = never (`media.rtp_timeout_seconds = 0`).
    pub rtp_timeout: Option<Duration>,
    /// Where external media streams lease their ports (`None`: `external_media_start` fails).
    pub rtp_ports: Option<super::RtpPortPool>,
}

/// What a re-INVITE (or the ACK's late answer) renegotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaUpdate {
    /// What we encode and decode from now on.
    pub codec: Codec,
    /// The peer's telephone-event payload type, if any.
    pub dtmf_payload_type: Option<u8>,
    /// The peer's new RTP address (and so the latch target); `None` = unchanged.
    pub remote: Option<SocketAddr>,
    /// `false` = held (`sendonly`/`inactive`/`c=0.0.0.0` from the peer): nothing is sent and the
    /// RTP timeout is paused; `true` resumes both.
    pub send: bool,
}

/// Orders for a running media session.
#[derive(Debug)]
pub enum MediaCommand {
    Start {
        job: MediaJob,
        request: MediaRequest,
    },
    /// Stop a play or echo early (reported as interrupted).
    Stop { job: MediaJob },
    /// A digit that arrived another way (SIP INFO), for `stop_on_digit` and end keys.
    Digit(char),
    /// The peer's SDP moved its RTP address (re-INVITE, or the ACK's answer).
    Remote(SocketAddr),
    /// The peer renegotiated codec, address or direction.
    Update(MediaUpdate),
}

/// The call session's end of the channel; dropping it ends the media session.
///
/// The channel allocates one node per command, so the ~100,000 idle ones of a busy engine cost
/// a few dozen bytes each.
pub struct MediaHandle {
    commands: mpsc::UnboundedSender<MediaCommand>,
}

impl MediaHandle {
    pub fn send(&self, command: MediaCommand) {
        // A closed channel means the session already ended; nothing to tell.
        let _ = self.commands.unbounded_send(command);
    }
}

/// Datagrams read from the kernel's queue at start at most.
const MAX_BACKLOG: usize = 512;

/// Starts the media session on the current arbiter. Whatever the kernel queued on the socket
/// since the answer is read first: digits in it count, its audio is stale. The lease's socket
/// goes back to the pool when the session ends.
pub fn spawn(mut lease: RtpLease, config: MediaConfig) -> Option<MediaHandle> {
    let socket = lease.take_socket()?;
    let (tx, rx) = mpsc::unbounded();
    actix_rt::spawn(async move {
        let backlog = read_backlog(&socket);
        let socket = match UdpSocket::from_std(socket) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(parent: &config.span, error = %e, "cannot register RTP socket");
                return;
            }
        };
        crate::metrics::media_session(true);
        let mut session = Session::new(config, socket);
        for (datagram, from) in &backlog {
            session.on_backlog(datagram, *from);
        }
        session.run(rx).await;
        crate::metrics::media_session(false);
        if let Ok(std) = session.socket.into_std() {
            lease.restore_socket(std);
        }
    });
    Some(MediaHandle { commands: tx })
}

/// What the kernel queued before the session started reading (the socket is non-blocking).
fn read_backlog(socket: &std::net::UdpSocket) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut backlog = Vec::new();
    let mut buffer = [0u8; RECEIVE_BUFFER];
    while backlog.len() < MAX_BACKLOG {
        match socket.recv_from(&mut buffer) {
            Ok((n, from)) => backlog.push((buffer[..n].to_vec(), from)),
            Err(_) => break,
        }
    }
    backlog
}

pub(super) type Loading =
    Pin<Box<dyn Future<Output = (MediaJob, bool, Result<Vec<Arc<[i16]>>, String>)>>>;

pub(super) struct Echo {
    pub(super) job: MediaJob,
    pub(super) until: Instant,
    pub(super) dtmf: bool,
    pub(super) packets: u64,
}

pub(super) struct Session {
    pub(super) config: MediaConfig,
    pub(super) socket: UdpSocket,
    /// Strict RTP: whom we accept RTP from and send it to.
    latch: latch::Latch,
    /// `false` while the peer holds the call.
    pub(super) sending: bool,
    liveness: control::Liveness,
    pub(super) stream: rtp::RtpStream,
    /// The grid origin: tick k is at `origin + k·20 ms` and carries timestamp `base + 160·k`.
    pub(super) origin: Instant,
    pub(super) timestamp_base: u32,
    pub(super) next_tick: Option<u64>,
    /// The timer of the 20 ms grid, made at the first tick and re-armed after (not a new timer
    /// per loop, and not carried by sessions that never send).
    ticker: Option<Pin<Box<tokio::time::Sleep>>>,
    pub(super) loading: Option<Loading>,
    /// The job whose audio `loading` resolves.
    pub(super) loading_job: Option<MediaJob>,
    pub(super) playback: Option<Box<Playback>>,
    /// The codec `playback` encodes in (a codec change mid-prompt is transcoded).
    pub(super) playback_codec: Codec,
    // The rarer jobs are boxed: every answered call has a session, few send digits or record.
    pub(super) digits_out: Option<Box<DigitSender>>,
    pub(super) echo: Option<Echo>,
    pub(super) capture: Option<Box<Capture>>,
    /// Answering-machine detection in progress.
    amd: Option<Box<amd::AmdRun>>,
    /// Media relayed to and from another leg (`connect`).
    pub(super) relay: Option<relay::Relay>,
    /// The external media stream (`external_media_start`), in the background.
    pub(super) external: Option<Box<external::External>>,
    /// `mute` / `unmute`.
    pub(super) mute: mute::Mute,
    /// A conference room this leg is in (`conference_join`).
    pub(super) conference: Option<Box<conference::InConference>>,
    /// A recording waiting for its start beep to finish.
    pub(super) pending_recording: Option<Box<(MediaJob, RecordingRequest)>>,
    pub(super) detector: EventDetector,
    pub(super) packet_out: Vec<u8>,
    pub(super) frame: Vec<u8>,
    pub(super) pcm: Vec<i16>,
    pub(super) counters: Counters,
}

impl Session {
    fn new(config: MediaConfig, socket: UdpSocket) -> Self {
        let seed = uuid::Uuid::new_v4().as_u128();
        Session {
            latch: latch::Latch::new(config.remote),
            sending: true,
            liveness: control::Liveness::new(config.rtp_timeout),
            playback_codec: config.codec,
            config,
            socket,
            stream: rtp::RtpStream::new(),
            origin: Instant::now(),
            timestamp_base: seed as u32,
            next_tick: None,
            ticker: None,
            loading: None,
            loading_job: None,
            playback: None,
            digits_out: None,
            echo: None,
            capture: None,
            amd: None,
            relay: None,
            external: None,
            mute: mute::Mute::default(),
            conference: None,
            pending_recording: None,
            detector: EventDetector::new(),
            // Sized at first use: most calls never send or decode audio.
            packet_out: Vec::new(),
            frame: Vec::new(),
            pcm: Vec::new(),
            counters: Counters::default(),
        }
    }

    async fn run(&mut self, mut commands: mpsc::UnboundedReceiver<MediaCommand>) {
        loop {
            let tick_at = self.next_tick.map(|k| self.tick_instant(k));
            if let Some(at) = tick_at {
                match &mut self.ticker {
                    Some(t) if t.deadline() == at => {}
                    Some(t) => t.as_mut().reset(at),
                    None => self.ticker = Some(Box::pin(tokio::time::sleep_until(at))),
                }
            }
            tokio::select! {
                command = next_command(&mut commands) => match command {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                ready = self.socket.readable() => match ready {
                    Ok(()) => self.read_ready(),
                    Err(e) => tracing::trace!(parent: &self.config.span, error = %e, "RTP readiness error"),
                },
                (job, stop_on_digit, loaded) = next_loaded(&mut self.loading), if self.loading.is_some() => {
                    self.loading = None;
                    self.loading_job = None;
                    self.on_loaded(job, stop_on_digit, loaded);
                },
                frame = relay::next_frame(&mut self.relay), if self.relay.is_some() => match frame {
                    Some(f) => self.on_relay_frame(f),
                    None => self.finish_relay("peer_ended"),
                },
                event = external::next_event(&mut self.external), if self.external.is_some() => {
                    self.on_external_event(event);
                },
                () = next_tick(&mut self.ticker), if tick_at.is_some() => self.on_tick(),
                () = next_tick(&mut self.liveness.timer), if self.liveness.timer.is_some() => {
                    self.on_liveness_timer();
                },
            }
        }
        self.end();
    }

    /// Reads what the socket has queued, up to [`READ_BATCH`] datagrams, into this thread's
    /// receive buffer (one per arbiter thread, not one per call).
    fn read_ready(&mut self) {
        RECEIVE.with_borrow_mut(|buffer| {
            for _ in 0..READ_BATCH {
                match self.socket.try_recv_from(&mut buffer[..]) {
                    Ok((n, from)) => self.on_datagram(&buffer[..n], from),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::trace!(parent: &self.config.span, error = %e, "RTP receive error");
                        break;
                    }
                }
            }
        });
    }

    pub(super) fn tick_instant(&self, k: u64) -> Instant {
        self.origin + Duration::from_millis(20 * k)
    }

    pub(super) fn tick_timestamp(&self, k: u64) -> u32 {
        self.timestamp_base
            .wrapping_add((k as u32).wrapping_mul(FRAME_SAMPLES as u32))
    }

    /// Makes sure the 20 ms clock runs: the first tick is the next grid point.
    pub(super) fn ensure_ticking(&mut self) {
        if self.next_tick.is_none() {
            let elapsed = self.origin.elapsed().as_millis() as u64;
            self.next_tick = Some(elapsed / 20 + 1);
        }
    }

    pub(super) fn report(&self, job: MediaJob, result: MediaResult) {
        self.config.events.do_send(MediaEvent::Done { job, result });
    }

    fn on_command(&mut self, command: MediaCommand) {
        match command {
            MediaCommand::Start { job, request } => self.start(job, request),
            MediaCommand::Stop { job } => {
                if self.playback.as_ref().is_some_and(|p| p.job == job) {
                    self.finish_playback(true);
                }
                if self.echo.as_ref().is_some_and(|e| e.job == job) {
                    self.finish_echo();
                }
                if self.relay.as_ref().is_some_and(|r| r.job == job) {
                    self.finish_relay("stopped");
                }
                self.stop_amd(job);
                if self.conference.as_ref().is_some_and(|c| c.job == job) {
                    self.finish_conference("stopped");
                }
            }
            MediaCommand::Digit(digit) => self.on_digit(digit, false),
            MediaCommand::Remote(addr) => self.set_remote(addr),
            MediaCommand::Update(update) => self.update(update),
        }
    }

    pub(super) fn end(&mut self) {
        self.stop_recording("call_ended");
        self.counters.flush();
    }
}

/// Packet counts, added to the global counters in batches (not per packet).
#[derive(Default)]
pub(super) struct Counters {
    pub(super) sent: u64,
    pub(super) received: u64,
    /// Packets dropped by strict RTP, by [`latch::DropReason`] (in `DropReason::ALL` order).
    dropped: [u64; 2],
}

impl Counters {
    pub(super) fn flush_if_due(&mut self) {
        if self.sent + self.received + self.dropped.iter().sum::<u64>() >= 256 {
            self.flush();
        }
    }

    fn dropped(&mut self, reason: latch::DropReason) {
        self.dropped[reason as usize] += 1;
        self.flush_if_due();
    }

    fn flush(&mut self) {
        crate::metrics::rtp_packets(
            std::mem::take(&mut self.sent),
            std::mem::take(&mut self.received),
        );
        for reason in latch::DropReason::ALL {
            let n = std::mem::take(&mut self.dropped[reason as usize]);
            if n > 0 {
                crate::metrics::rtp_packets_dropped(reason.as_str(), n);
            }
        }
    }
}

async fn next_loaded(
    loading: &mut Option<Loading>,
) -> (MediaJob, bool, Result<Vec<Arc<[i16]>>, String>) {
    match loading {
        Some(future) => future.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn next_command(
    commands: &mut mpsc::UnboundedReceiver<MediaCommand>,
) -> Option<MediaCommand> {
    use futures_core::Stream;
    std::future::poll_fn(|cx| Pin::new(&mut *commands).poll_next(cx)).await
}

async fn next_tick(ticker: &mut Option<Pin<Box<tokio::time::Sleep>>>) {
    match ticker {
        Some(t) => t.as_mut().await,
        None => std::future::pending().await,
    }
}
