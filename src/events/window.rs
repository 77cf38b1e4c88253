//! The window of recent events: a ring of the newest `capacity` events with consecutive ids.
//! Readers keep their own cursor (the next id they want) and read from the ring, so replay
//! after a reconnect and the live stream are one path: no gap, no duplicate, and a reader that
//! falls out of the window learns it ([`Read::Behind`]) instead of being buffered. Plain data
//! behind the bus's mutex; no I/O.

use std::collections::VecDeque;
use std::sync::Arc;

use super::Event;

/// An event with the id it was published under.
#[derive(Debug, Clone)]
pub struct Published {
    pub id: u64,
    pub event: Arc<Event>,
}

/// What a reader finds at its cursor.
#[derive(Debug)]
pub enum Read {
    /// The events from the cursor on (at most the asked number); empty when none yet.
    Events(Vec<Published>),
    /// The cursor is not in the window: older than its oldest event, or an id this window never
    /// gave (another run's). `oldest` is where reading can go on.
    Behind { oldest: u64 },
}

pub struct Window {
    capacity: usize,
    /// The id the next event gets.
    next_id: u64,
    events: VecDeque<Published>,
}

impl Window {
    /// An empty window keeping `capacity` events (at least 1); the first event gets `first_id`.
    pub fn new(capacity: usize, first_id: u64) -> Self {
        let capacity = capacity.max(1);
        Window {
            capacity,
            next_id: first_id,
            // Grown on demand: a large window costs nothing until events fill it.
            events: VecDeque::new(),
        }
    }

    /// Appends an event; returns its id and the event pushed out of the window, if any (to be
    /// dropped by the caller outside any lock).
    pub fn push(&mut self, event: Arc<Event>) -> (u64, Option<Published>) {
        let id = self.next_id;
        self.next_id += 1;
        let evicted = if self.events.len() >= self.capacity {
            self.events.pop_front()
        } else {
            None
        };
        self.events.push_back(Published { id, event });
        (id, evicted)
    }

    /// The id the next event will get (a live reader starts here).
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// The oldest id still held (`next_id` when empty).
    pub fn oldest_id(&self) -> u64 {
        self.next_id - self.events.len() as u64
    }

    /// Up to `max` events from id `from` on.
    pub fn read(&self, from: u64, max: usize) -> Read {
        let oldest = self.oldest_id();
        if from < oldest || from > self.next_id {
            return Read::Behind { oldest };
        }
        let start = (from - oldest) as usize;
        Read::Events(self.events.range(start..).take(max).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Arc<Event> {
        Arc::new(crate::events::call_event(0))
    }

    fn ids(read: Read) -> Vec<u64> {
        match read {
            Read::Events(v) => v.iter().map(|p| p.id).collect(),
            Read::Behind { oldest } => panic!("behind, oldest {oldest}"),
        }
    }

    #[test]
    fn resume_inside_the_window_gets_every_later_event_once() {
        let mut w = Window::new(8, 100);
        for _ in 0..5 {
            w.push(event());
        }
        assert_eq!((w.oldest_id(), w.next_id()), (100, 105));
        // Last-Event-ID 101: from 102 on.
        assert_eq!(ids(w.read(102, 100)), [102, 103, 104]);
        assert_eq!(ids(w.read(102, 2)), [102, 103]);
        // Up to date: nothing yet, and not "behind".
        assert_eq!(ids(w.read(105, 100)), Vec::<u64>::new());
        w.push(event());
        assert_eq!(ids(w.read(105, 100)), [105]);
    }

    #[test]
    fn resume_beyond_the_window_says_where_it_goes_on() {
        let mut w = Window::new(4, 1);
        let mut evicted = Vec::new();
        for _ in 0..10 {
            evicted.extend(w.push(event()).1.map(|p| p.id));
        }
        assert_eq!(evicted, [1, 2, 3, 4, 5, 6]);
        assert_eq!(w.oldest_id(), 7);
        assert!(matches!(w.read(3, 100), Read::Behind { oldest: 7 }));
        assert!(matches!(w.read(6, 100), Read::Behind { oldest: 7 }));
        assert_eq!(ids(w.read(7, 100)), [7, 8, 9, 10]);
        // An id this window never gave (another run's, ahead of us).
        assert!(matches!(w.read(500, 100), Read::Behind { oldest: 7 }));
        // Before the first event of this run.
        let fresh = Window::new(4, 1000);
        assert!(matches!(fresh.read(10, 100), Read::Behind { oldest: 1000 }));
        assert_eq!(ids(fresh.read(1000, 100)), Vec::<u64>::new());
    }

    #[test]
    fn a_slow_reader_is_overtaken_not_buffered() {
        let mut w = Window::new(16, 1);
        let mut cursor = w.next_id();
        for _ in 0..4 {
            w.push(event());
        }
        let got = ids(w.read(cursor, 2));
        cursor = got[got.len() - 1] + 1;
        // The reader stalls while 40 more events pass: the window never grows past 16.
        for _ in 0..40 {
            w.push(event());
        }
        assert_eq!(w.events.len(), 16);
        let Read::Behind { oldest } = w.read(cursor, 100) else {
            panic!("a reader 40 events behind a 16-event window must be told");
        };
        assert_eq!(oldest, 29);
        assert_eq!(ids(w.read(oldest, 100)), (29..=44).collect::<Vec<_>>());
    }
}
