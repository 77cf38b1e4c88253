//! The media session's side of a conference: each received audio frame is decoded and offered
//! to the room (never blocking: a full queue drops it; a silent frame is not sent at all); on
//! each tick of this session's own 20 ms grid the room's mix for this participant is encoded in
//! this leg's codec and sent (digital silence when the room had nothing for it). The room
//! closing the link (kick, delete) finishes the job with why. DTMF is not mixed: digits go to
//! the call's own activeflow as always (see `receive`).

use std::collections::VecDeque;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};

use super::Session;
use crate::conference::mix::{is_silent, Frame, FRAME_SAMPLES};
use crate::conference::reframe::Reframer;
use crate::conference::{ParticipantLink, SessionEnds};
use crate::media::request::{MediaError, MediaJob};

/// Mixed frames held for this session's grid at most (the room's tick and ours drift apart);
/// older ones are dropped.
const JITTER_FRAMES: usize = 2;

pub(in crate::media) struct InConference {
    pub(super) job: MediaJob,
    ends: SessionEnds,
    conference_id: String,
    joined_at: DateTime<Utc>,
    waiting: VecDeque<Box<Frame>>,
    /// Decoded samples not yet a whole 20 ms frame.
    partial: Reframer,
    /// Frames given to the room, and mixed frames sent to the peer.
    to_room: u64,
    from_room: u64,
    /// Frames the room could not take in time, or mixed frames we had no tick for.
    dropped: u64,
    /// The next packet starts a talkspurt (RFC 3551 §4.1: marker on the first packet).
    marker: bool,
}

impl Session {
    pub(super) fn start_conference(&mut self, job: MediaJob, link: ParticipantLink) {
        let Some(ends) = link.take() else {
            let why = "this conference link is already in use";
            return self.report(job, Err(MediaError::Audio(why.into())));
        };
        self.finish_conference("replaced");
        self.conference = Some(Box::new(InConference {
            job,
            ends,
            conference_id: link.conference_id.clone(),
            joined_at: Utc::now(),
            waiting: VecDeque::new(),
            partial: Reframer::new(),
            to_room: 0,
            from_room: 0,
            dropped: 0,
            marker: true,
        }));
        self.ensure_ticking();
    }

    /// Leaves the room (dropping our ends tells it) and reports the action's result.
    pub(super) fn finish_conference(&mut self, ended_by: &str) {
        if let Some(c) = self.conference.take() {
            let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
            let result = json!({
                "conference_id": c.conference_id,
                "joined_at": stamp(c.joined_at),
                "left_at": stamp(Utc::now()),
                "ended_by": ended_by,
                "frames_to_room": c.to_room,
                "frames_from_room": c.from_room,
                "frames_dropped": c.dropped,
            });
            self.report(c.job, Ok(result));
        }
    }

    /// A received audio payload in this leg's codec, decoded and cut into 20 ms frames for the
    /// room (a peer packetising at 10 or 30 ms is re-framed; a remainder waits for the next).
    pub(super) fn offer_to_conference(&mut self, payload: &[u8]) {
        let Some(c) = &mut self.conference else {
            return;
        };
        self.config.codec.decode(payload, c.partial.buffer());
        let (ends, to_room, dropped) = (&c.ends, &mut c.to_room, &mut c.dropped);
        c.partial.frames(|frame| {
            if is_silent(&frame) {
                // An idle leg costs the room nothing.
                return;
            }
            match ends.to_room.try_send(frame) {
                Ok(()) => *to_room += 1,
                Err(TrySendError::Full(_)) => {
                    *dropped += 1;
                    crate::metrics::conference_frames_dropped("to_room", 1);
                }
                // The room let us go: the tick notices and reports why.
                Err(TrySendError::Closed(_)) => {}
            }
        });
    }

    /// This tick's packet: the room's newest mix for us, or silence.
    pub(super) fn conference_tick(&mut self, timestamp: u32) {
        let Some(c) = &mut self.conference else {
            return;
        };
        loop {
            match c.ends.from_room.try_recv() {
                Ok(frame) => {
                    if c.waiting.len() >= JITTER_FRAMES {
                        c.waiting.pop_front();
                        c.dropped += 1;
                        crate::metrics::conference_frames_dropped("session_jitter", 1);
                    }
                    c.waiting.push_back(frame);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let why = c.ends.leave.get().map_or("room_closed", |r| r.as_str());
                    return self.finish_conference(why);
                }
            }
        }
        let codec = self.config.codec;
        let mut out = std::mem::take(&mut self.frame);
        out.clear();
        match c.waiting.pop_front() {
            Some(mix) => {
                c.from_room += 1;
                codec.encode(&mix[..], &mut out);
            }
            None => out.resize(FRAME_SAMPLES, codec.silence()),
        }
        let marker = std::mem::take(&mut c.marker);
        self.send_rtp(codec.payload_type(), marker, timestamp, &out);
        self.frame = out;
    }
}
