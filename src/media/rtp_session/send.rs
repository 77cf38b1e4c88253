//! The media session's 20 ms clock: each tick sends one packet (a digit event before audio) with
//! the tick's timestamp on the grid, skips ticks when the thread was stalled, and checks the
//! time limits of echo and recording.

use super::{Session, MAX_LATE_TICKS, TICK};
use crate::media::dtmf::TelephoneEvent;
use crate::media::playout::DigitTick;
use crate::media::request::MediaError;
use serde_json::json;
use tokio::time::Instant;

impl Session {
    pub(super) fn on_tick(&mut self) {
        let Some(mut k) = self.next_tick else { return };
        let now = Instant::now();
        let late = now.saturating_duration_since(self.tick_instant(k));
        if late > TICK * MAX_LATE_TICKS {
            // Too far behind (a stalled thread): skip to now instead of bursting.
            let skipped = (late.as_millis() / 20) as u64;
            crate::metrics::rtp_late_ticks(skipped);
            k += skipped;
        }
        let timestamp = self.tick_timestamp(k);
        self.send_tick(timestamp);
        if let Some(capture) = &self.capture {
            if let Some(reason) = capture.should_stop(now.into_std()) {
                self.stop_recording(reason);
            }
        }
        self.amd_tick(now);
        if self.echo.as_ref().is_some_and(|e| now >= e.until) {
            self.finish_echo();
        }
        let busy = self.loading.is_some()
            || self.playback.is_some()
            || self.digits_out.is_some()
            || self.echo.is_some()
            || self.capture.is_some()
            || self.amd.is_some()
            || self.conference.is_some();
        self.next_tick = busy.then_some(k + 1);
        self.counters.flush_if_due();
    }

    /// Sends this tick's packet: digits first, then the prompt.
    pub(super) fn send_tick(&mut self, timestamp: u32) {
        if let Some(sender) = &mut self.digits_out {
            match sender.tick(timestamp) {
                DigitTick::Packet {
                    event,
                    timestamp,
                    marker,
                } => {
                    let pt = self.config.dtmf_payload_type.unwrap_or(101);
                    self.send_event(pt, marker, timestamp, &event);
                }
                DigitTick::Pause => {}
                DigitTick::Done => {
                    let sent = sender.sent().to_owned();
                    let job = sender.job;
                    self.digits_out = None;
                    // Muted out while sending: the events were silenced, not sent.
                    let result = if self.mute.outgoing {
                        Err(MediaError::Audio(super::jobs::MUTED_DIGITS.into()))
                    } else {
                        Ok(json!({ "digits": sent }))
                    };
                    self.report(job, result);
                }
            }
            return;
        }
        if self.conference.is_some() && self.playback.is_none() {
            return self.conference_tick(timestamp);
        }
        let Some(playback) = &mut self.playback else {
            return;
        };
        let marker = playback.played_ms() == 0;
        if playback.next_frame(&mut self.frame) {
            if self.playback_codec != self.config.codec {
                // Renegotiated mid-prompt: the rest goes out in the new codec.
                self.pcm.clear();
                self.playback_codec.decode(&self.frame, &mut self.pcm);
                self.frame.clear();
                self.config.codec.encode(&self.pcm, &mut self.frame);
            }
            let frame = std::mem::take(&mut self.frame);
            self.send_rtp(self.config.codec.payload_type(), marker, timestamp, &frame);
            self.frame = frame;
        } else {
            self.finish_playback(false);
        }
    }

    pub(super) fn send_event(
        &mut self,
        pt: u8,
        marker: bool,
        timestamp: u32,
        event: &TelephoneEvent,
    ) {
        let mut payload = Vec::with_capacity(4);
        event.write(&mut payload);
        self.send_rtp(pt, marker, timestamp, &payload);
    }

    pub(super) fn send_rtp(&mut self, pt: u8, marker: bool, timestamp: u32, payload: &[u8]) {
        // Held, or no address known yet: nothing goes out.
        let Some(remote) = self.latch.remote().filter(|_| self.sending) else {
            return;
        };
        // Muted towards the caller: silence in place of audio, no events.
        let silence;
        let payload = if self.mute.outgoing {
            if pt != self.config.codec.payload_type() {
                return;
            }
            silence = vec![self.config.codec.silence(); payload.len()];
            &silence[..]
        } else {
            payload
        };
        self.stream
            .write_packet(pt, marker, timestamp, payload, &mut self.packet_out);
        match self.socket.try_send_to(&self.packet_out, remote) {
            Ok(_) => self.counters.sent += 1,
            Err(e) => {
                tracing::trace!(parent: &self.config.span, error = %e, "RTP send failed")
            }
        }
    }
}
