//! The channels between one participant's media session and its room: decoded frames to the
//! room, mixed frames back, and why the room let the participant go. Bounded both ways: a
//! stalled side loses frames, never memory, and neither side ever waits for the other.

use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::mpsc;

use super::mix::Frame;

/// Frames queued in either direction at most (80 ms).
pub const LINK_QUEUE: usize = 4;

/// Why the room let a participant go (`ended_by` in the action's result).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// `POST /v1/conferences/{id}/participants/{call_id}/kick`: the flow moves on.
    Kicked,
    /// `DELETE /v1/conferences/{id}`.
    Deleted,
}

impl LeaveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Kicked => "kicked",
            LeaveReason::Deleted => "deleted",
        }
    }
}

/// The session's ends of a participant's link.
pub struct SessionEnds {
    pub to_room: mpsc::Sender<Box<Frame>>,
    pub from_room: mpsc::Receiver<Box<Frame>>,
    /// Set by the room before it drops its ends.
    pub leave: Arc<OnceLock<LeaveReason>>,
}

/// The room's ends of a participant's link.
pub(super) struct RoomEnds {
    pub(super) from_session: mpsc::Receiver<Box<Frame>>,
    pub(super) to_session: mpsc::Sender<Box<Frame>>,
    pub(super) leave: Arc<OnceLock<LeaveReason>>,
}

/// What the engine hands the media session: the room's name and the session's ends (taken
/// once). Compared by identity, like the `connect` relay link.
#[derive(Clone)]
pub struct ParticipantLink {
    pub conference_id: String,
    ends: Arc<Mutex<Option<SessionEnds>>>,
}

impl ParticipantLink {
    /// The session's ends (once; `None` after).
    pub fn take(&self) -> Option<SessionEnds> {
        self.ends.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// A new link: the participant's handle and the room's ends.
pub(super) fn pair(conference_id: &str) -> (ParticipantLink, RoomEnds) {
    let (to_room, from_session) = mpsc::channel(LINK_QUEUE);
    let (to_session, from_room) = mpsc::channel(LINK_QUEUE);
    let leave = Arc::new(OnceLock::new());
    let session = SessionEnds {
        to_room,
        from_room,
        leave: leave.clone(),
    };
    let link = ParticipantLink {
        conference_id: conference_id.to_owned(),
        ends: Arc::new(Mutex::new(Some(session))),
    };
    let room = RoomEnds {
        from_session,
        to_session,
        leave,
    };
    (link, room)
}

impl std::fmt::Debug for ParticipantLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParticipantLink({})", self.conference_id)
    }
}

impl PartialEq for ParticipantLink {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.ends, &other.ends)
    }
}

impl Eq for ParticipantLink {}
