//! The media session's side of a `connect` relay: received audio and telephone-events go to the
//! peer leg's session; the peer's come back here and go out with this session's SSRC, sequence
//! and timestamp base, converted between µ-law and A-law when the legs differ.

use serde_json::json;
use tokio::sync::mpsc;

use super::Session;
use crate::media::relay::{FrameKind, RelayFrame, RelayLink, TimestampMap};
use crate::media::request::{MediaError, MediaJob};

pub(in crate::media) struct Relay {
    pub(super) job: MediaJob,
    to_peer: mpsc::Sender<RelayFrame>,
    pub(super) from_peer: mpsc::Receiver<RelayFrame>,
    timestamps: TimestampMap,
    forwarded: u64,
    /// Frames the peer could not take in time (its queue was full).
    dropped: u64,
    sent: u64,
}

impl Session {
    pub(super) fn start_relay(&mut self, job: MediaJob, link: RelayLink) {
        let Some(from_peer) = link.take_receiver() else {
            let why = "this relay link is already in use";
            return self.report(job, Err(MediaError::Audio(why.into())));
        };
        self.finish_relay("replaced");
        self.relay = Some(Relay {
            job,
            to_peer: link.to_peer,
            from_peer,
            timestamps: TimestampMap::default(),
            forwarded: 0,
            dropped: 0,
            sent: 0,
        });
    }

    pub(super) fn finish_relay(&mut self, ended_by: &str) {
        if let Some(r) = self.relay.take() {
            let result = json!({
                "relayed_from_peer": r.sent,
                "relayed_to_peer": r.forwarded,
                "dropped": r.dropped,
                "ended_by": ended_by,
            });
            self.report(r.job, Ok(result));
        }
    }

    /// A payload this leg received, for the peer (never blocks: a full queue drops it).
    pub(super) fn forward(
        &mut self,
        kind: FrameKind,
        marker: bool,
        timestamp: u32,
        payload: &[u8],
    ) {
        let Some(relay) = &mut self.relay else { return };
        let frame = RelayFrame {
            kind,
            marker,
            timestamp,
            payload: payload.to_vec(),
        };
        match relay.to_peer.try_send(frame) {
            Ok(()) => relay.forwarded += 1,
            Err(mpsc::error::TrySendError::Full(_)) => relay.dropped += 1,
            // The peer's session ended; its end reaches us as a closed receiver.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// A frame from the peer leg: out to our remote, on our own stream.
    pub(super) fn on_relay_frame(&mut self, frame: RelayFrame) {
        let now = self.now_timestamp();
        let Some(relay) = &mut self.relay else { return };
        let timestamp = relay.timestamps.map(frame.timestamp, now);
        relay.sent += 1;
        match frame.kind {
            FrameKind::Event => {
                if let Some(pt) = self.config.dtmf_payload_type {
                    self.send_rtp(pt, frame.marker, timestamp, &frame.payload);
                }
            }
            FrameKind::Audio(codec) if codec == self.config.codec => {
                self.send_rtp(
                    codec.payload_type(),
                    frame.marker,
                    timestamp,
                    &frame.payload,
                );
            }
            FrameKind::Audio(codec) => {
                self.pcm.clear();
                codec.decode(&frame.payload, &mut self.pcm);
                let mut out = std::mem::take(&mut self.frame);
                out.clear();
                self.config.codec.encode(&self.pcm, &mut out);
                let pt = self.config.codec.payload_type();
                self.send_rtp(pt, frame.marker, timestamp, &out);
                self.frame = out;
            }
        }
        self.counters.flush_if_due();
    }
}

/// The next frame from the peer; `None` when the peer's session ended.
pub(super) async fn next_frame(relay: &mut Option<Relay>) -> Option<RelayFrame> {
    match relay {
        Some(r) => r.from_peer.recv().await,
        None => std::future::pending().await,
    }
}
