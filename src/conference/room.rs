//! One conference room: its participants (with their links), the 20 ms mixing tick and the
//! task that runs it on the arbiter of the participant that started it. The task runs only
//! while the room has participants; an empty room costs nothing. Must not block: every
//! channel operation is `try_*`, and the lock is held for one tick's arithmetic at most.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};

use super::link::{LeaveReason, RoomEnds};
use super::mix::{is_silent, Frame, Mixer, FRAME_SAMPLES};
use crate::events::FlowHook;

/// The mixing interval.
pub const TICK: Duration = Duration::from_millis(20);
/// Frames a participant may have waiting in the room (jitter between its grid and the room's);
/// older ones are dropped.
const JITTER_FRAMES: usize = 2;

/// One participant as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub call_id: String,
    pub activeflow_id: String,
    pub joined_at: DateTime<Utc>,
    pub muted: bool,
}

impl ParticipantInfo {
    pub fn to_json(&self) -> Value {
        json!({
            "call_id": self.call_id,
            "activeflow_id": self.activeflow_id,
            "joined_at": stamp(self.joined_at),
            "muted": self.muted,
        })
    }
}

pub(super) struct Member {
    pub(super) info: ParticipantInfo,
    pub(super) ends: RoomEnds,
    /// The participant's flow's webhook (its joins and leaves go there too).
    pub(super) hook: Option<Arc<FlowHook>>,
    waiting: VecDeque<Box<Frame>>,
    /// Frames dropped from `waiting` (more arrived between two ticks than it holds).
    jitter_dropped: u64,
}

impl Member {
    pub(super) fn new(info: ParticipantInfo, ends: RoomEnds, hook: Option<Arc<FlowHook>>) -> Self {
        Member {
            info,
            ends,
            hook,
            waiting: VecDeque::new(),
            jitter_dropped: 0,
        }
    }

    /// Its media session let go of the link (the call ended); the tick has not noticed yet.
    pub(super) fn session_gone(&self) -> bool {
        self.ends.to_session.is_closed()
    }

    /// Lets the participant go: its session learns why when its channel closes.
    pub(super) fn release(self, reason: LeaveReason) -> ParticipantInfo {
        let _ = self.ends.leave.set(reason);
        self.info
    }

    /// This tick's frame: the oldest waiting; `None` when its session ended.
    fn take_frame(&mut self) -> Option<Option<Box<Frame>>> {
        loop {
            match self.ends.from_session.try_recv() {
                Ok(f) => {
                    if self.waiting.len() >= JITTER_FRAMES {
                        self.waiting.pop_front();
                        self.jitter_dropped += 1;
                    }
                    self.waiting.push_back(f);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if self.waiting.is_empty() {
                        return None;
                    }
                    break;
                }
            }
        }
        Some(self.waiting.pop_front())
    }
}

#[derive(Default)]
pub(super) struct Inner {
    pub(super) members: Vec<Member>,
    /// The mixing task is running.
    pub(super) running: bool,
    /// Deleted: no one may join any more.
    pub(super) closed: bool,
    mixer: Mixer,
    /// This tick's input per member (reused).
    inputs: Vec<Option<Box<Frame>>>,
}

/// One room.
pub struct Room {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Made by a join with an unknown id: it goes away when its last participant leaves
    /// (one made by `POST /v1/conferences` stays until deleted).
    pub(super) transient: bool,
    pub(super) inner: Mutex<Inner>,
}

/// What one tick did, for metrics and the end of the task.
pub(super) struct TickReport {
    /// Participants whose session ended (hang-up, stop): gone from the room, with their
    /// flows' webhooks.
    pub(super) left: Vec<(ParticipantInfo, Option<Arc<FlowHook>>)>,
    /// Members after the tick.
    pub(super) remaining: usize,
    /// Mixed frames the sessions could not take in time.
    pub(super) dropped: u64,
    /// Received frames the room dropped from a participant's jitter queue.
    pub(super) jitter_dropped: u64,
}

impl Room {
    pub(super) fn new(id: String, name: String, transient: bool) -> Self {
        Room {
            id,
            name,
            created_at: Utc::now(),
            transient,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn participants(&self) -> Vec<ParticipantInfo> {
        self.lock().members.iter().map(|m| m.info.clone()).collect()
    }

    pub fn to_json(&self) -> Value {
        let participants: Vec<Value> = self.participants().iter().map(|p| p.to_json()).collect();
        json!({
            "id": self.id,
            "name": self.name,
            "tm_create": stamp(self.created_at),
            "participants": participants,
        })
    }

    /// One mixing tick: take a frame from each member, mix N−1, hand each its mix.
    pub(super) fn tick(&self) -> TickReport {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut left = Vec::new();
        let mut jitter_dropped = 0;
        let mut i = 0;
        inner.inputs.clear();
        while i < inner.members.len() {
            let taken = inner.members[i].take_frame();
            jitter_dropped += std::mem::take(&mut inner.members[i].jitter_dropped);
            match taken {
                Some(frame) => {
                    let muted = inner.members[i].info.muted;
                    // Muted or silent: heard by no one, summed by no one.
                    inner.inputs.push(frame.filter(|f| !muted && !is_silent(f)));
                    i += 1;
                }
                None => {
                    let gone = inner.members.swap_remove(i);
                    left.push((gone.info, gone.hook));
                }
            }
        }
        inner
            .mixer
            .prepare(inner.inputs.iter().map(|f| f.as_deref()));
        let mut dropped = 0;
        if inner.mixer.active() > 0 {
            for (member, own) in inner.members.iter().zip(inner.inputs.iter()) {
                let mut out = Box::new([0i16; FRAME_SAMPLES]);
                if !inner.mixer.output_for(own.as_deref(), &mut out) {
                    // Nobody else spoke: the session sends its own silence.
                    continue;
                }
                match member.ends.to_session.try_send(out) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => dropped += 1,
                    // Its session ended: noticed on its receiving side next tick.
                    Err(TrySendError::Closed(_)) => {}
                }
            }
        }
        TickReport {
            remaining: inner.members.len(),
            left,
            dropped,
            jitter_dropped,
        }
    }
}

/// RFC 3339 UTC with microseconds, as every API timestamp.
pub(super) fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room").field("id", &self.id).finish()
    }
}
