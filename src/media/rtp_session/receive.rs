//! The media session's receive side: symmetric-RTP latching, RFC 4733 digit detection, echo and
//! the recording of the caller's audio.

use std::net::SocketAddr;

use super::latch::Verdict;
use super::Session;
use crate::media::dtmf::TelephoneEvent;
use crate::media::relay::FrameKind;
use crate::media::request::{DigitSource, MediaEvent};
use crate::media::rtp;

impl Session {
    /// A datagram queued before the session started reading: it may carry digits and shows
    /// where the caller's RTP comes from, but its audio is stale (never echoed or recorded).
    pub(super) fn on_backlog(&mut self, datagram: &[u8], from: SocketAddr) {
        self.receive(datagram, from, false);
    }

    pub(super) fn on_datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        self.receive(datagram, from, true);
    }

    /// One datagram: counted, latched onto, digits detected; its audio is used only when
    /// `live`.
    fn receive(&mut self, datagram: &[u8], from: SocketAddr, live: bool) {
        let Some((header, payload)) = rtp::parse(datagram) else {
            return;
        };
        match self.latch.on_packet(from, header.ssrc) {
            // Strict RTP: not the caller's stream (or no caller known yet).
            Verdict::Drop(reason) => return self.counters.dropped(reason),
            Verdict::Accept { new_ssrc: true } => {
                // A new stream numbers its events afresh; the old one's last event ends here.
                if let Some(digit) = self.detector.reset() {
                    self.on_digit(digit, true);
                }
            }
            Verdict::Accept { new_ssrc: false } => {}
        }
        self.counters.received += 1;
        self.counters.flush_if_due();
        self.liveness.heard();
        if Some(header.payload_type) == self.config.dtmf_payload_type {
            let Some(event) = TelephoneEvent::parse(payload) else {
                return;
            };
            // Muted: the caller's keys reach the flow, nothing else.
            let pass_on = !self.mute.incoming;
            if pass_on && self.echo.as_ref().is_some_and(|e| e.dtmf) {
                let ts = self.now_timestamp();
                self.send_event(header.payload_type, header.marker, ts, &event);
            }
            if pass_on && live && self.relay.is_some() {
                self.forward(FrameKind::Event, header.marker, header.timestamp, payload);
            }
            for digit in self.detector.on_event(header.timestamp, &event) {
                self.on_digit(digit, true);
            }
            return;
        }
        if !live || header.payload_type != self.config.codec.payload_type() {
            return;
        }
        // AMD analyses what the far end really says: mute is about what others hear.
        self.amd_audio(header.timestamp, payload);
        // Muted: everything downstream hears silence (a stream that stays, with no voice).
        let silence;
        let payload = if self.mute.incoming {
            silence = vec![self.config.codec.silence(); payload.len()];
            &silence[..]
        } else {
            payload
        };
        if self.external.is_some() {
            self.send_external(header.marker, header.timestamp, payload);
        }
        if self.relay.is_some() {
            let kind = FrameKind::Audio(self.config.codec);
            self.forward(kind, header.marker, header.timestamp, payload);
        }
        if self.conference.is_some() {
            self.offer_to_conference(payload);
        }
        if let Some(echo) = &mut self.echo {
            echo.packets += 1;
            let ts = self.now_timestamp();
            self.send_rtp(header.payload_type, header.marker, ts, payload);
        }
        if let Some(capture) = &mut self.capture {
            self.pcm.clear();
            self.config.codec.decode(payload, &mut self.pcm);
            let now = std::time::Instant::now();
            if let Some(chunk) = capture.on_audio(header.timestamp, &self.pcm, now) {
                let id = capture.request.id;
                self.config.recordings.write(id, chunk);
            }
        }
    }

    /// The RTP timestamp of this instant on our grid (for packets sent outside the tick).
    pub(super) fn now_timestamp(&self) -> u32 {
        let samples = self.origin.elapsed().as_micros() as u64 * 8 / 1000;
        self.timestamp_base.wrapping_add(samples as u32)
    }

    /// The call is over: close the recording; pending jobs need no answer (the call ended).
    /// A digit from RTP (`from_rtp`) or from SIP INFO.
    pub(super) fn on_digit(&mut self, digit: char, from_rtp: bool) {
        if from_rtp {
            crate::metrics::dtmf_received(DigitSource::Rfc4733.as_str());
            self.config.events.do_send(MediaEvent::Digit(digit));
        }
        if self.playback.as_ref().is_some_and(|p| p.stop_on_digit) {
            self.finish_playback(true);
        }
        if self.capture.as_ref().is_some_and(|c| c.ends_on(digit)) {
            self.stop_recording("key");
        }
    }
}
