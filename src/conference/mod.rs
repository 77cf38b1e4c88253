//! Conferences: mixing rooms on this engine (`conference_join` / `confbridge_join`, and
//! `/v1/conferences`). The registry of rooms (bounded: [`MAX_ROOMS`] rooms of at most
//! [`MAX_PARTICIPANTS`]), joining, kicking, muting and deleting; the room's tick is in `room`,
//! the N−1 arithmetic in `mix`, the per-participant channels in `link`. Knows no SIP, codecs
//! or calls (it publishes `conference_joined` / `conference_left` on the event bus): the media session decodes and encodes, the engine decides who joins (the id rule
//! is `flow::conference`'s).

pub mod link;
pub mod mix;
pub mod reframe;
mod room;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use crate::events::{ConferenceFacts, Event, EventBody, EventBus, FlowHook};

pub use link::{LeaveReason, ParticipantLink, SessionEnds};
pub use room::{ParticipantInfo, Room, TICK};

/// Rooms that may exist at once (a join or `POST` past it is refused).
pub const MAX_ROOMS: usize = 1000;
/// Participants one room holds at most.
pub const MAX_PARTICIPANTS: usize = 64;
/// Longest conference id.
pub const MAX_ID_LEN: usize = crate::flow::conference::MAX_CONFERENCE_ID_LEN;
/// Longest room name.
pub const MAX_NAME_LEN: usize = 256;
/// `ended_by` of a participant whose call ended (hang-up, stop) while in the room.
pub const CALL_ENDED: &str = "call_ended";
/// Lookups a join makes at most while it keeps finding a closed room.
const JOIN_TRIES: usize = 4;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConferenceError {
    #[error("conference {0:?} not found")]
    NotFound(String),
    #[error("call {call_id:?} is not a participant of conference {conference_id:?}")]
    NoParticipant {
        conference_id: String,
        call_id: String,
    },
    #[error("conference {0:?} is full ({MAX_PARTICIPANTS} participants)")]
    Full(String),
    #[error("too many conferences (at most {MAX_ROOMS})")]
    TooManyRooms,
    #[error(
        "conference id {0:?} is not valid: 1 to {MAX_ID_LEN} letters, digits, '-', '_' or '.'"
    )]
    BadId(String),
    #[error("name is longer than {MAX_NAME_LEN} bytes")]
    NameTooLong,
}

/// Whether `id` may name a room.
pub fn valid_id(id: &str) -> bool {
    crate::flow::conference::valid_conference_id(id)
}

/// Every room of this engine.
pub struct Conferences {
    rooms: DashMap<String, Arc<Room>>,
    /// Rooms reserved or in `rooms`: a slot is taken before an insert and given back on
    /// removal, so the bound is exact however many threads make rooms at once.
    count: AtomicUsize,
    /// The room bound ([`MAX_ROOMS`]; lower only in tests).
    max_rooms: usize,
    /// Where `conference_joined` / `conference_left` go (on the participant's activeflow).
    events: Option<EventBus>,
}

impl Default for Conferences {
    fn default() -> Self {
        Conferences {
            rooms: DashMap::new(),
            count: AtomicUsize::new(0),
            max_rooms: MAX_ROOMS,
            events: None,
        }
    }
}

impl Conferences {
    pub fn new() -> Arc<Self> {
        Arc::new(Conferences::default())
    }

    /// A registry that publishes its participants' joins and leaves on `events`.
    pub fn with_events(events: EventBus) -> Arc<Self> {
        Arc::new(Conferences {
            events: Some(events),
            ..Conferences::default()
        })
    }

    /// A registry holding at most `max_rooms` rooms (tests of the bound).
    #[cfg(test)]
    pub(crate) fn with_max_rooms(max_rooms: usize) -> Arc<Self> {
        Arc::new(Conferences {
            max_rooms,
            ..Conferences::default()
        })
    }

    /// Takes one room slot, or says the registry is full.
    fn reserve_room(&self) -> Result<(), ConferenceError> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_rooms).then_some(n + 1)
            })
            .map(|_| ())
            .map_err(|_| ConferenceError::TooManyRooms)
    }

    /// Gives back the slot of a room that left the map.
    fn release_room(&self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        crate::metrics::conference_rooms(-1.0);
    }

    /// `conference_joined` (`ended_by` None) or `conference_left` on the participant's
    /// activeflow's stream, and to its flow's webhook (`hook`) if it has one.
    fn publish(
        &self,
        room: &str,
        who: &ParticipantInfo,
        hook: Option<&Arc<FlowHook>>,
        ended_by: Option<&'static str>,
    ) {
        let (Some(events), Ok(subject)) = (&self.events, who.activeflow_id.parse::<uuid::Uuid>())
        else {
            return;
        };
        let facts = ConferenceFacts {
            conference_id: room.to_owned(),
            call_id: who.call_id.clone(),
            ended_by,
        };
        let body = match ended_by {
            None => EventBody::ConferenceJoined(facts),
            Some(_) => EventBody::ConferenceLeft(facts),
        };
        events.publish(Event::now(subject, body), hook.cloned());
    }

    /// A room made over the API (`POST /v1/conferences`): a new id, kept until deleted.
    pub fn create(&self, name: String) -> Result<Arc<Room>, ConferenceError> {
        if name.len() > MAX_NAME_LEN {
            return Err(ConferenceError::NameTooLong);
        }
        self.reserve_room()?;
        let id = uuid::Uuid::new_v4().to_string();
        let room = Arc::new(Room::new(id.clone(), name, false));
        self.rooms.insert(id, room.clone());
        crate::metrics::conference_rooms(1.0);
        Ok(room)
    }

    pub fn get(&self, id: &str) -> Result<Arc<Room>, ConferenceError> {
        self.rooms
            .get(id)
            .map(|r| r.value().clone())
            .ok_or_else(|| ConferenceError::NotFound(id.to_owned()))
    }

    /// Every room, oldest first.
    pub fn list(&self) -> Vec<Arc<Room>> {
        let mut rooms: Vec<Arc<Room>> = self.rooms.iter().map(|r| r.value().clone()).collect();
        rooms.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        rooms
    }

    /// Puts a call in room `id` (made now if unknown; it goes when its last participant
    /// leaves). `hook` is the participant's flow's webhook: its joins and leaves go there too.
    /// The room's mixing task starts on this thread if it is not running. Must be called
    /// inside the actix/tokio runtime of an arbiter.
    pub fn join(
        self: &Arc<Self>,
        id: &str,
        call_id: String,
        activeflow_id: String,
        hook: Option<Arc<FlowHook>>,
    ) -> Result<ParticipantLink, ConferenceError> {
        if !valid_id(id) {
            return Err(ConferenceError::BadId(id.to_owned()));
        }
        // A room is closed only once it has left the map (`stop_if_empty` and `delete` remove
        // it first); should a closed one still be found, it is removed here and made anew.
        for _ in 0..JOIN_TRIES {
            let room = self.room_for_join(id)?;
            let mut inner = room.lock();
            if inner.closed {
                drop(inner);
                if self
                    .rooms
                    .remove_if(id, |_, r| Arc::ptr_eq(r, &room))
                    .is_some()
                {
                    self.release_room();
                }
                continue;
            }
            if inner.members.len() >= MAX_PARTICIPANTS {
                return Err(ConferenceError::Full(id.to_owned()));
            }
            let (link, ends) = link::pair(id);
            let info = ParticipantInfo {
                call_id,
                activeflow_id,
                joined_at: chrono::Utc::now(),
                muted: false,
            };
            self.publish(id, &info, hook.as_ref(), None);
            inner.members.push(room::Member::new(info, ends, hook));
            crate::metrics::conference_participants(1.0);
            if !inner.running {
                inner.running = true;
                drop(inner);
                self.spawn_mixer(room.clone());
            }
            return Ok(link);
        }
        Err(ConferenceError::NotFound(id.to_owned()))
    }

    fn room_for_join(&self, id: &str) -> Result<Arc<Room>, ConferenceError> {
        if let Some(room) = self.rooms.get(id) {
            return Ok(room.value().clone());
        }
        // A slot first (given back when another thread made the room meanwhile).
        self.reserve_room()?;
        let mut made = false;
        let room = self
            .rooms
            .entry(id.to_owned())
            .or_insert_with(|| {
                made = true;
                Arc::new(Room::new(id.to_owned(), String::new(), true))
            })
            .value()
            .clone();
        if made {
            crate::metrics::conference_rooms(1.0);
        } else {
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
        Ok(room)
    }

    /// Where participant `call_id` is in `inner`. One whose media session already ended
    /// (hang-up, stop: the room's tick has not seen it yet) is removed now, as the tick would
    /// (`ended_by` `call_ended`), and is not found.
    fn find_member(
        &self,
        id: &str,
        inner: &mut room::Inner,
        call_id: &str,
    ) -> Result<usize, ConferenceError> {
        let missing = || ConferenceError::NoParticipant {
            conference_id: id.to_owned(),
            call_id: call_id.to_owned(),
        };
        let at = inner
            .members
            .iter()
            .position(|m| m.info.call_id == call_id)
            .ok_or_else(missing)?;
        if !inner.members[at].session_gone() {
            return Ok(at);
        }
        let gone = inner.members.swap_remove(at);
        crate::metrics::conference_participants(-1.0);
        self.publish(id, &gone.info, gone.hook.as_ref(), Some(CALL_ENDED));
        Err(missing())
    }

    /// Takes a participant out (`ended_by` `kicked`): its flow moves on.
    pub fn kick(&self, id: &str, call_id: &str) -> Result<ParticipantInfo, ConferenceError> {
        let room = self.get(id)?;
        let mut inner = room.lock();
        let at = self.find_member(id, &mut inner, call_id)?;
        let member = inner.members.swap_remove(at);
        crate::metrics::conference_participants(-1.0);
        let hook = member.hook.clone();
        let info = member.release(LeaveReason::Kicked);
        self.publish(id, &info, hook.as_ref(), Some(LeaveReason::Kicked.as_str()));
        Ok(info)
    }

    /// Mutes (the participant's audio is mixed for no one) or unmutes a participant.
    pub fn set_muted(
        &self,
        id: &str,
        call_id: &str,
        muted: bool,
    ) -> Result<ParticipantInfo, ConferenceError> {
        let room = self.get(id)?;
        let mut inner = room.lock();
        let at = self.find_member(id, &mut inner, call_id)?;
        let member = &mut inner.members[at];
        member.info.muted = muted;
        Ok(member.info.clone())
    }

    /// Deletes a room: every participant leaves (`ended_by` `deleted`; their flows move on).
    pub fn delete(&self, id: &str) -> Result<(), ConferenceError> {
        let (_, room) = self
            .rooms
            .remove(id)
            .ok_or_else(|| ConferenceError::NotFound(id.to_owned()))?;
        self.release_room();
        let mut inner = room.lock();
        inner.closed = true;
        for member in inner.members.drain(..) {
            crate::metrics::conference_participants(-1.0);
            let hook = member.hook.clone();
            let info = member.release(LeaveReason::Deleted);
            self.publish(
                id,
                &info,
                hook.as_ref(),
                Some(LeaveReason::Deleted.as_str()),
            );
        }
        Ok(())
    }

    /// The room's 20 ms mixing task, on this thread, until the room is empty.
    fn spawn_mixer(self: &Arc<Self>, room: Arc<Room>) {
        let conferences = self.clone();
        actix_rt::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                let scheduled = interval.tick().await;
                let lateness = tokio::time::Instant::now().saturating_duration_since(scheduled);
                let report = room.tick();
                crate::metrics::conference_tick(lateness, report.dropped, report.jitter_dropped);
                for (who, hook) in &report.left {
                    crate::metrics::conference_participants(-1.0);
                    conferences.publish(&room.id, who, hook.as_ref(), Some(CALL_ENDED));
                }
                if report.remaining == 0 && conferences.stop_if_empty(&room) {
                    break;
                }
            }
        });
    }

    /// The mixing task's end: true when the room is (still) empty; a transient room goes.
    fn stop_if_empty(&self, room: &Arc<Room>) -> bool {
        let mut inner = room.lock();
        if !inner.members.is_empty() {
            return false;
        }
        inner.running = false;
        if room.transient && !inner.closed {
            inner.closed = true;
            // Removed under the room's lock, so that no join finds it closed in the map (lock
            // order room -> shard: nothing takes a room's lock while holding a shard).
            if self
                .rooms
                .remove_if(&room.id, |_, r| Arc::ptr_eq(r, room))
                .is_some()
            {
                self.release_room();
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
