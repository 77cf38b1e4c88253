//! Every activeflow the engine knows, running and recently ended, by id. The activeflow actor
//! writes its record; the API reads snapshots without asking the actor. Ended records beyond
//! `engine.ended_retained` are dropped oldest first (durable history is the storage layer's job:
//! the API pages on into storage for what is no longer here).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use actix::Addr;
use dashmap::DashMap;

use super::{Activeflow, ActiveflowId, ActiveflowRecord, Status};

/// One activeflow: its record and, while it runs, its actor.
pub struct ActiveflowEntry {
    record: Arc<Mutex<ActiveflowRecord>>,
    pub addr: Addr<Activeflow>,
}

impl ActiveflowEntry {
    pub fn snapshot(&self) -> ActiveflowRecord {
        lock(&self.record).clone()
    }

    pub fn record(&self) -> MutexGuard<'_, ActiveflowRecord> {
        lock(&self.record)
    }
}

/// Locks a record; a poisoned lock (a panic mid-update) still yields the data, which is only
/// ever replaced field by field.
pub(crate) fn lock(m: &Mutex<ActiveflowRecord>) -> MutexGuard<'_, ActiveflowRecord> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct ActiveflowRegistry {
    entries: DashMap<ActiveflowId, Arc<ActiveflowEntry>>,
    running: AtomicUsize,
    sequence: crate::storage::Sequences,
    ended: Mutex<VecDeque<ActiveflowId>>,
    ended_retained: usize,
}

/// One page of a listing.
pub struct Page {
    pub items: Vec<ActiveflowRecord>,
    pub next_page_token: Option<String>,
}

impl ActiveflowRegistry {
    pub fn new(ended_retained: usize) -> Self {
        ActiveflowRegistry {
            entries: DashMap::new(),
            running: AtomicUsize::new(0),
            sequence: crate::storage::Sequences::default(),
            ended: Mutex::new(VecDeque::new()),
            ended_retained,
        }
    }

    /// Continues numbering after `last` (the highest sequence in storage), so records created
    /// now list after those of earlier runs.
    pub fn continue_after(&self, last: u64) {
        self.sequence.continue_after(last);
    }

    /// Allocates creation sequences from a hybrid clock in `slot` instead of a counter: for a
    /// store shared by several nodes (see `storage::sequence`).
    pub fn use_clock_sequences(&self, slot: u16) {
        self.sequence.use_clock(slot);
    }

    /// The next creation sequence number.
    pub fn next_sequence(&self) -> u64 {
        self.sequence.next()
    }

    /// Running activeflows.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Registers `id` unless the registry already holds it (false then, nothing changed): the
    /// check and the insert are one step, so two starts with one client-chosen id on different
    /// shards cannot both win.
    pub fn insert_new(
        &self,
        id: ActiveflowId,
        record: Arc<Mutex<ActiveflowRecord>>,
        addr: Addr<Activeflow>,
    ) -> bool {
        match self.entries.entry(id) {
            dashmap::Entry::Occupied(_) => false,
            dashmap::Entry::Vacant(v) => {
                v.insert(Arc::new(ActiveflowEntry { record, addr }));
                true
            }
        }
    }

    pub(crate) fn started(&self) {
        self.running.fetch_add(1, Ordering::Relaxed);
    }

    /// Called once by the actor when its activeflow ends.
    pub(crate) fn ended(&self, id: ActiveflowId) {
        self.running.fetch_sub(1, Ordering::Relaxed);
        let evicted = {
            let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
            ended.push_back(id);
            let excess = ended.len().saturating_sub(self.ended_retained);
            ended.drain(..excess).collect::<Vec<_>>()
        };
        // Only an ended record goes: the id may have been deleted and reused since (a running
        // activeflow of the same id must stay).
        for old in evicted {
            self.entries
                .remove_if(&old, |_, e| e.record().status == Status::Ended);
        }
    }

    pub fn get(&self, id: &ActiveflowId) -> Option<Arc<ActiveflowEntry>> {
        self.entries.get(id).map(|e| e.clone())
    }

    /// Removes an activeflow from memory (and from the eviction queue, so a later activeflow
    /// reusing the id is not evicted in its place). Returns false when unknown, or when another
    /// caller removed it first.
    pub fn remove(&self, id: &ActiveflowId) -> bool {
        let removed = self.entries.remove(id).is_some();
        if removed {
            let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
            ended.retain(|e| e != id);
        }
        removed
    }

    /// The lowest sequence of an activeflow created at or after `at` (a VoIPBIN timestamp), read
    /// from each record's sequence and creation time only: no record is copied.
    pub fn first_since(&self, at: &str) -> Option<u64> {
        self.entries
            .iter()
            .filter_map(|e| {
                let r = e.record();
                (r.tm_create.as_str() >= at).then_some(r.sequence)
            })
            .min()
    }

    /// Every running activeflow's actor (for shutdown).
    pub fn running_actors(&self) -> Vec<Addr<Activeflow>> {
        self.entries
            .iter()
            .filter(|e| e.record().status == Status::Running)
            .map(|e| e.addr.clone())
            .collect()
    }

    /// Newest first; `page_token` is the sequence of the last item of the previous page.
    pub fn list(&self, status: Option<Status>, page_size: usize, page_token: Option<u64>) -> Page {
        let entries = self.entries.iter().filter_map(|e| {
            let r = e.record();
            let wanted = status.is_none_or(|s| r.status == s);
            wanted.then(|| (r.sequence, e.value().clone()))
        });
        let (keyed, next_page_token) = crate::paging::newest_first(entries, page_size, page_token);
        Page {
            items: keyed.iter().map(|e| e.snapshot()).collect(),
            next_page_token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::supervisor::{new_record, ChainPosition};
    use crate::engine::ReferenceType;
    use crate::flow::{Flow, Variables};

    fn record(registry: &ActiveflowRegistry, id: ActiveflowId) -> Arc<Mutex<ActiveflowRecord>> {
        new_record(
            registry,
            id,
            &Flow::new("f", vec![]),
            ReferenceType::Api,
            String::new(),
            ChainPosition::FIRST,
            &mut Variables::new(),
        )
    }

    /// An address whose actor never runs: the registry only stores it.
    fn addr() -> Addr<Activeflow> {
        use actix::AsyncContext;
        actix::Context::<Activeflow>::new().address()
    }

    fn add(registry: &ActiveflowRegistry, id: ActiveflowId) -> bool {
        registry.insert_new(id, record(registry, id), addr())
    }

    fn end(registry: &ActiveflowRegistry, id: ActiveflowId) {
        if let Some(e) = registry.get(&id) {
            e.record().status = Status::Ended;
        }
        registry.ended(id);
    }

    #[test]
    fn a_taken_id_is_refused_and_the_first_entry_kept() {
        let registry = ActiveflowRegistry::new(10);
        let id = ActiveflowId::new();
        assert!(add(&registry, id));
        let first = registry.get(&id).map(|e| e.record().sequence);
        assert!(!add(&registry, id));
        assert_eq!(registry.get(&id).map(|e| e.record().sequence), first);
    }

    /// DELETE then a POST reusing the id: the running one must survive the old id's eviction.
    #[test]
    fn eviction_never_drops_a_running_activeflow_of_a_reused_id() {
        let registry = ActiveflowRegistry::new(1);
        let reused = ActiveflowId::new();
        assert!(add(&registry, reused));
        end(&registry, reused);
        assert!(registry.remove(&reused));
        assert!(
            !registry.remove(&reused),
            "a second remove reports nothing removed"
        );
        assert!(add(&registry, reused));
        // Two more end: the retained queue (1) overflows twice.
        for _ in 0..2 {
            let other = ActiveflowId::new();
            assert!(add(&registry, other));
            end(&registry, other);
        }
        let kept = registry.get(&reused).map(|e| e.record().status);
        assert_eq!(kept, Some(Status::Running));
    }

    #[test]
    fn first_since_is_the_lowest_sequence_created_at_or_after() {
        let registry = ActiveflowRegistry::new(10);
        let ids: Vec<_> = (0..3).map(|_| ActiveflowId::new()).collect();
        for (i, id) in ids.iter().enumerate() {
            assert!(add(&registry, *id));
            if let Some(e) = registry.get(id) {
                e.record().tm_create = format!("2026-01-0{}T00:00:00.000000Z", i + 1);
            }
        }
        let seq = |i: usize| registry.get(&ids[i]).map(|e| e.record().sequence);
        assert_eq!(registry.first_since("2026-01-02T00:00:00.000000Z"), seq(1));
        assert_eq!(registry.first_since("2026"), seq(0));
        assert_eq!(registry.first_since("2027"), None);
    }
}
