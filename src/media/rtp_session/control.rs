//! The media session's renegotiation and liveness: a re-INVITE's new codec, telephone-event
//! payload type, address and direction (hold stops sending), and the RTP timeout, which fires
//! once per silence and never while the call is held.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::{MediaUpdate, Session};
use crate::media::request::MediaEvent;

/// When the peer was last heard and the timer that checks it. The timer is not moved per
/// packet: when it fires early (RTP arrived meanwhile) it is re-armed from the last packet.
pub(super) struct Liveness {
    timeout: Option<Duration>,
    last_heard: Instant,
    /// Armed while a timeout applies, we are not held and it has not fired for this silence.
    pub(super) timer: Option<Pin<Box<Sleep>>>,
}

impl Liveness {
    pub(super) fn new(timeout: Option<Duration>) -> Liveness {
        let mut liveness = Liveness {
            timeout,
            last_heard: Instant::now(),
            timer: None,
        };
        liveness.arm();
        liveness
    }

    /// RTP from the peer: the silence (if one was reported) is over.
    pub(super) fn heard(&mut self) {
        self.last_heard = Instant::now();
        if self.timer.is_none() {
            self.arm();
        }
    }

    /// Starts timing from now (session start, end of hold).
    fn restart(&mut self) {
        self.last_heard = Instant::now();
        self.arm();
    }

    fn arm(&mut self) {
        if let Some(timeout) = self.timeout {
            let at = self.last_heard + timeout;
            match &mut self.timer {
                Some(t) => t.as_mut().reset(at),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
            }
        }
    }

    /// The timer fired: `true` when the peer really was silent for the whole timeout.
    fn expired(&mut self) -> bool {
        let Some(timeout) = self.timeout else {
            return false;
        };
        if Instant::now() >= self.last_heard + timeout {
            self.timer = None;
            true
        } else {
            self.arm();
            false
        }
    }
}

impl Session {
    pub(super) fn on_liveness_timer(&mut self) {
        if self.liveness.expired() {
            tracing::info!(parent: &self.config.span, "no RTP from the peer: RTP timeout");
            self.config.events.do_send(MediaEvent::RtpTimeout);
        }
    }

    /// The peer's RTP address moved: the latch starts over from it (unchanged if the same).
    pub(super) fn set_remote(&mut self, addr: SocketAddr) {
        if self.latch.target() != Some(addr) {
            self.latch.set_target(Some(addr));
        }
    }

    pub(super) fn update(&mut self, update: MediaUpdate) {
        self.config.codec = update.codec;
        self.config.dtmf_payload_type = update.dtmf_payload_type;
        if let Some(addr) = update.remote {
            self.set_remote(addr);
        }
        match (self.sending, update.send) {
            (true, false) => {
                // Held: the peer sends nothing, so its silence means nothing.
                self.sending = false;
                self.liveness.timer = None;
            }
            (false, true) => {
                self.sending = true;
                self.liveness.restart();
            }
            _ => {}
        }
    }
}
