//! Completed server non-INVITE transactions whose dialog is gone (RFC 3261 §17.2.2, Timer J):
//! only the final response is kept, by transaction key, so a retransmitted BYE or CANCEL still
//! gets its answer without keeping the whole call-session actor alive for 64·T1. Bounded in
//! time by Timer J; all entries share one timeout, so expiry is a FIFO of one-second slots.
//!
//! INVITEs answered and gone are remembered the same way, by a hash of their key: a retransmitted
//! INVITE that was queued behind a flood (or crossed our answer) and arrives after its call ended,
//! or after a stateless 503, must not start a new call that nobody will ACK. A call's INVITE is
//! absorbed until 64·T1 after its final response (RFC 6026's Accepted state outlives the call
//! session); a refused one is refused again.
//!
//! Slots, not one big map: at 12,000 calls/s the table holds ~400,000 answers, and one map (or
//! one expiry queue) that size stalls every inserting thread while it grows — long enough to trip
//! the overload guard. A slot holds one second of answers, is sized from the slot before it, and
//! expires whole: no per-key removal, no growth past one second's worth.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::sip::message::TransactionKey;

/// Answers whose Timer J fires within this span of the slot's first share its slot (and may
/// linger up to this much longer than their own Timer J, which is harmless).
const SLOT_SPAN: Duration = Duration::from_secs(1);

struct Slot {
    /// Timer J of the slot's first answer; later ones within `SLOT_SPAN` join it.
    first: Instant,
    /// The slot expires when the last of its answers does.
    last: Instant,
    responses: HashMap<TransactionKey, Bytes>,
    /// INVITEs by key hash (8 bytes each, not the key: a 2× flood refuses ~500,000 a minute).
    invites: HashMap<u64, InviteFate>,
}

impl Slot {
    fn len(&self) -> usize {
        self.responses.len() + self.invites.len()
    }
}

/// What a retransmission of a remembered INVITE gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteFate {
    /// Its call session answered it and has ended since: nothing.
    Absorb,
    /// It was refused statelessly (overload, capacity, shutdown): refused again.
    Refuse,
}

#[derive(Default)]
pub struct LingerTable {
    /// Oldest first.
    slots: Mutex<VecDeque<Slot>>,
    /// Hashes INVITE keys (seeded once per table).
    hasher: RandomState,
}

impl LingerTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `response` for retransmissions of `key` until `until` (Timer J).
    pub fn insert(&self, key: TransactionKey, response: Bytes, until: Instant) {
        let mut slots = self.lock();
        if let Some(slot) = slot_for(&mut slots, until) {
            slot.responses.insert(key, response);
        }
    }

    /// The response to resend for a retransmitted request, if its transaction still lingers.
    pub fn lookup(&self, key: &TransactionKey) -> Option<Bytes> {
        let slots = self.lock();
        slots
            .iter()
            .rev()
            .find_map(|s| s.responses.get(key).cloned())
    }

    /// Remembers an INVITE that no session holds any more, until `until` (64·T1 after its
    /// final response).
    pub fn insert_invite(&self, key: &TransactionKey, fate: InviteFate, until: Instant) {
        let hash = self.hasher.hash_one(key);
        let mut slots = self.lock();
        if let Some(slot) = slot_for(&mut slots, until) {
            slot.invites.insert(hash, fate);
        }
    }

    /// What a retransmission of this INVITE gets, if it is remembered.
    pub fn lookup_invite(&self, key: &TransactionKey) -> Option<InviteFate> {
        let hash = self.hasher.hash_one(key);
        let slots = self.lock();
        slots
            .iter()
            .rev()
            .find_map(|s| s.invites.get(&hash).copied())
    }

    /// Drops every slot whose entries all expired by `now`; returns how many entries.
    pub fn purge(&self, now: Instant) -> usize {
        let expired: Vec<Slot> = {
            let mut slots = self.lock();
            let keep = slots
                .iter()
                .position(|s| s.last > now)
                .unwrap_or(slots.len());
            slots.drain(..keep).collect()
        };
        // Freed outside the lock.
        expired.iter().map(Slot::len).sum()
    }

    pub fn len(&self) -> usize {
        self.lock().iter().map(Slot::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().iter().all(|s| s.len() == 0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The slot for an entry expiring at `until`: the newest, or a new one when `until` is past its
/// span. An entry a little out of order (another thread's clock read) joins the newest too.
fn slot_for(slots: &mut VecDeque<Slot>, until: Instant) -> Option<&mut Slot> {
    let fits = slots
        .back()
        .is_some_and(|s| until.saturating_duration_since(s.first) < SLOT_SPAN);
    if !fits {
        // Sized like the slot before: a steady load never grows a map.
        let (responses, invites) = slots
            .back()
            .map_or((0, 0), |s| (s.responses.len(), s.invites.len()));
        slots.push_back(Slot {
            first: until,
            last: until,
            responses: HashMap::with_capacity(responses),
            invites: HashMap::with_capacity(invites),
        });
    }
    let slot = slots.back_mut()?;
    slot.last = slot.last.max(until);
    Some(slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn responses_linger_until_timer_j() {
        let table = LingerTable::new();
        let key = TransactionKey::client("z9hG4bK-1", rsip::Method::Bye);
        let now = Instant::now();
        table.insert(
            key.clone(),
            Bytes::from_static(b"SIP/2.0 200 OK"),
            now + Duration::from_secs(32),
        );
        assert!(table.lookup(&key).is_some());
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(table.purge(Instant::now()), 0);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(table.purge(Instant::now()), 1);
        assert!(table.lookup(&key).is_none());
        assert!(table.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn answers_share_one_second_slots_and_expire_with_their_slot() {
        let table = LingerTable::new();
        let start = Instant::now();
        let key = |n: u32| TransactionKey::client(&format!("z9hG4bK-{n}"), rsip::Method::Bye);
        let ok = Bytes::from_static(b"SIP/2.0 200 OK");
        // Timer J at 32.0, 32.5, 32.9 s share a slot; 33.0 s opens the next.
        for (n, ms) in [(1, 32_000), (2, 32_500), (3, 32_900), (4, 33_000)] {
            table.insert(key(n), ok.clone(), start + Duration::from_millis(ms));
        }
        assert_eq!(table.len(), 4);
        assert!((1..=4).all(|n| table.lookup(&key(n)).is_some()));
        // The first slot goes when its last answer's Timer J fires, not before.
        assert_eq!(table.purge(start + Duration::from_millis(32_800)), 0);
        assert_eq!(table.purge(start + Duration::from_millis(32_900)), 3);
        assert!(table.lookup(&key(2)).is_none());
        assert!(table.lookup(&key(4)).is_some());
        assert_eq!(table.purge(start + Duration::from_millis(33_000)), 1);
        assert!(table.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn invites_are_remembered_by_key_until_they_expire() {
        let table = LingerTable::new();
        let start = Instant::now();
        let answered = TransactionKey::client("z9hG4bK-a", rsip::Method::Invite);
        let refused = TransactionKey::client("z9hG4bK-r", rsip::Method::Invite);
        let other = TransactionKey::client("z9hG4bK-a", rsip::Method::Bye);
        table.insert_invite(
            &answered,
            InviteFate::Absorb,
            start + Duration::from_secs(32),
        );
        table.insert_invite(
            &refused,
            InviteFate::Refuse,
            start + Duration::from_secs(33),
        );
        assert_eq!(table.lookup_invite(&answered), Some(InviteFate::Absorb));
        assert_eq!(table.lookup_invite(&refused), Some(InviteFate::Refuse));
        assert_eq!(table.lookup_invite(&other), None);
        assert_eq!(table.len(), 2);
        assert_eq!(table.purge(start + Duration::from_millis(31_999)), 0);
        assert_eq!(table.purge(start + Duration::from_secs(32)), 1);
        assert_eq!(table.lookup_invite(&answered), None);
        assert_eq!(table.lookup_invite(&refused), Some(InviteFate::Refuse));
        assert_eq!(table.purge(start + Duration::from_secs(33)), 1);
        assert!(table.is_empty());
    }
}
