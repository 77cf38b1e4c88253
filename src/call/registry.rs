//! Live call sessions by SIP Call-ID, shared by the dispatcher (lookup on every message) and the
//! sessions (deregister on stop). Lock-free reads through dashmap; no call logic here.

use std::sync::atomic::{AtomicUsize, Ordering};

use actix::Addr;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::CallSession;

#[derive(Default)]
pub struct CallRegistry {
    sessions: DashMap<String, Addr<CallSession>>,
    /// Sessions that still hold a live (not yet ended) call; lingering ones are not counted.
    active: AtomicUsize,
}

impl CallRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, sip_call_id: &str) -> Option<Addr<CallSession>> {
        self.sessions.get(sip_call_id).map(|a| a.clone())
    }

    /// Inserts the session made by `make` unless one exists for this Call-ID; atomic, so two
    /// copies of one INVITE can never both create a session.
    pub fn get_or_insert_with(
        &self,
        sip_call_id: &str,
        make: impl FnOnce() -> Addr<CallSession>,
    ) -> (Addr<CallSession>, bool) {
        match self.sessions.entry(sip_call_id.to_string()) {
            Entry::Occupied(e) => (e.get().clone(), false),
            Entry::Vacant(e) => (e.insert(make()).clone(), true),
        }
    }

    /// Removes the entry only if it still points at `addr`.
    pub fn remove(&self, sip_call_id: &str, addr: &Addr<CallSession>) {
        self.sessions.remove_if(sip_call_id, |_, a| a == addr);
    }

    /// Sessions present, lingering ones included (bounds memory).
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Calls not yet ended.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    pub(crate) fn call_started(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
        crate::metrics::calls_active(1.0);
    }

    pub(crate) fn call_ended(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        crate::metrics::calls_active(-1.0);
    }
}
