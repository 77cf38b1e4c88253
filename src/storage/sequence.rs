//! Creation sequences (listing order and page tokens) for activeflows and calls. A single node
//! counts 1, 2, 3, ... after the highest sequence in its store. Nodes sharing one store
//! (PostgreSQL, a cluster) create records at once, so counters would collide: there each node
//! uses a hybrid clock, `max(previous + 1024, unix_micros * 1024 + slot)`, where `slot` is 10
//! bits of a stable hash of the node's id. Sequences then grow with time across nodes (newest
//! first stays newest first), stay unique within a node, and two nodes collide only if their
//! ids hash to the same slot and they create a record in the same microsecond (likely enough
//! for a pair of nodes that share a slot under load). That is harmless to the data: the
//! shared store keys records by id (PostgreSQL migration 0006; upserts conflict on
//! `(id, sequence)`, never on the sequence alone), so both rows are kept; such twins can only
//! swap their listing order or share a page-token boundary. `unix_micros * 1024` fits an i64 until about the year 2255.

use std::sync::atomic::{AtomicU64, Ordering};

/// Distinct node slots in a clock sequence's low bits.
pub const SLOTS: u64 = 1024;
/// `slot` value of a counter (no clock).
const COUNTER: u64 = u64::MAX;

/// One kind of record's sequence allocator.
#[derive(Debug)]
pub struct Sequences {
    last: AtomicU64,
    slot: AtomicU64,
}

impl Default for Sequences {
    fn default() -> Sequences {
        Sequences {
            last: AtomicU64::new(0),
            slot: AtomicU64::new(COUNTER),
        }
    }
}

impl Sequences {
    /// Continues after `last` (the highest sequence in the store).
    pub fn continue_after(&self, last: u64) {
        self.last.fetch_max(last, Ordering::Relaxed);
    }

    /// From now on allocates clock sequences in `slot` (see [`slot_of`]).
    pub fn use_clock(&self, slot: u16) {
        self.slot.store(u64::from(slot) % SLOTS, Ordering::Relaxed);
    }

    /// The next sequence.
    pub fn next(&self) -> u64 {
        let slot = self.slot.load(Ordering::Relaxed);
        if slot == COUNTER {
            return self.last.fetch_add(1, Ordering::Relaxed) + 1;
        }
        let now = unix_micros();
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let next = clock_next(prev, slot, now);
            match self
                .last
                .compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => prev = seen,
            }
        }
    }
}

/// The clock sequence after `prev` in `slot` at `now_us`: above `prev` and in `slot` even if
/// `prev` is another node's (after recovery), and never below the clock.
pub fn clock_next(prev: u64, slot: u64, now_us: u64) -> u64 {
    let after_prev = (prev / SLOTS + 1) * SLOTS + slot;
    after_prev.max(now_us.saturating_mul(SLOTS) + slot)
}

/// A node id's slot: 10 bits of FNV-1a (stable across builds and platforms, unlike std's
/// hasher).
pub fn slot_of(node_id: &str) -> u16 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node_id.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % SLOTS) as u16
}

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| {
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX / SLOTS)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_and_clocks_keep_their_slot_and_grow() {
        let counter = Sequences::default();
        counter.continue_after(41);
        assert_eq!((counter.next(), counter.next()), (42, 43));

        let clock = Sequences::default();
        // Another node's sequence, higher than the clock: the next is above it, in our slot.
        let foreign = (unix_micros() + 10_000_000) * SLOTS + 7;
        clock.continue_after(foreign);
        clock.use_clock(3);
        let a = clock.next();
        let b = clock.next();
        assert!(a > foreign && b > a, "{foreign} {a} {b}");
        assert_eq!((a % SLOTS, b % SLOTS), (3, 3));
        assert_eq!(b - a, SLOTS, "same microsecond bucket: previous + 1024");
        // Without history, the clock itself.
        let fresh = Sequences::default();
        fresh.use_clock(5);
        let before = unix_micros() * SLOTS;
        let s = fresh.next();
        assert!(s >= before && s % SLOTS == 5);
        assert_eq!(clock_next(0, 9, 100), 100 * SLOTS + 9);
        assert_eq!(clock_next(100 * SLOTS + 9, 9, 100), 101 * SLOTS + 9);
        assert_eq!(slot_of("node-a"), slot_of("node-a"));
        assert!(u64::from(slot_of("node-b")) < SLOTS);
    }
}
