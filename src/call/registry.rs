//! Live call sessions by SIP Call-ID (the dispatcher's lookup on every message) and the
//! operator's call records by [`CallId`] (live and recently ended). Lock-free reads through
//! dashmap; no call logic here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use actix::{Addr, Recipient};
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::events::CallCommand;
use super::info::{CallInfo, CallStatus};
use super::outbound::{MessageSender, OutboundCall};
use super::session::SipIn;
use super::{CallId, CallSession};

/// Ended calls kept listed (oldest dropped first).
pub const ENDED_CALLS_RETAINED: usize = 10_000;

/// One call: its record and where its session takes commands.
pub struct CallEntry {
    info: Mutex<CallInfo>,
    pub commands: Recipient<CallCommand>,
}

impl CallEntry {
    pub fn info(&self) -> MutexGuard<'_, CallInfo> {
        self.info.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot(&self) -> CallInfo {
        self.info().clone()
    }
}

/// The actor that owns a SIP dialog: a call we answer or a leg we place.
#[derive(Clone, PartialEq, Eq)]
pub enum SessionAddr {
    Incoming(Addr<CallSession>),
    Outgoing(Addr<OutboundCall>),
    /// A SIP MESSAGE waiting for its response (no dialog, no call record).
    Message(Addr<MessageSender>),
}

impl SessionAddr {
    /// Hands a message of this dialog to its actor.
    pub fn deliver(&self, message: SipIn) {
        match self {
            SessionAddr::Incoming(a) => a.do_send(message),
            SessionAddr::Outgoing(a) => a.do_send(message),
            SessionAddr::Message(a) => a.do_send(message),
        }
    }
}

#[derive(Default)]
pub struct CallRegistry {
    sessions: DashMap<String, SessionAddr>,
    calls: DashMap<CallId, Arc<CallEntry>>,
    ended: Mutex<VecDeque<CallId>>,
    sequence: AtomicU64,
    /// Sessions that still hold a live (not yet ended) call; lingering ones are not counted.
    active: AtomicUsize,
}

impl CallRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, sip_call_id: &str) -> Option<SessionAddr> {
        self.sessions.get(sip_call_id).map(|a| a.clone())
    }

    /// Inserts the session made by `make` unless one exists for this Call-ID; atomic, so two
    /// copies of one INVITE can never both create a session.
    pub fn get_or_insert_with(
        &self,
        sip_call_id: &str,
        make: impl FnOnce() -> SessionAddr,
    ) -> (SessionAddr, bool) {
        match self.sessions.entry(sip_call_id.to_string()) {
            Entry::Occupied(e) => (e.get().clone(), false),
            Entry::Vacant(e) => (e.insert(make()).clone(), true),
        }
    }

    /// Removes the entry only if it still points at `addr`.
    pub fn remove(&self, sip_call_id: &str, addr: &SessionAddr) {
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

    /// Continues numbering after `last` (the highest sequence in storage).
    pub fn continue_after(&self, last: u64) {
        self.sequence.fetch_max(last, Ordering::Relaxed);
    }

    pub(crate) fn next_sequence(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A new live call.
    pub(crate) fn call_started(
        &self,
        info: CallInfo,
        commands: Recipient<CallCommand>,
    ) -> Arc<CallEntry> {
        self.active.fetch_add(1, Ordering::Relaxed);
        crate::metrics::calls_active(1.0);
        let entry = Arc::new(CallEntry {
            info: Mutex::new(info),
            commands,
        });
        let id = entry.info().id;
        self.calls.insert(id, entry.clone());
        entry
    }

    pub(crate) fn call_ended(&self, id: CallId) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        crate::metrics::calls_active(-1.0);
        let evicted: Vec<CallId> = {
            let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
            ended.push_back(id);
            let excess = ended.len().saturating_sub(ENDED_CALLS_RETAINED);
            ended.drain(..excess).collect()
        };
        for old in evicted {
            self.calls.remove(&old);
        }
    }

    pub fn call(&self, id: &CallId) -> Option<Arc<CallEntry>> {
        self.calls.get(id).map(|e| e.clone())
    }

    /// Calls newest first; `page_token` is the sequence of the previous page's last item.
    pub fn list_calls(
        &self,
        status: Option<CallStatus>,
        page_size: usize,
        page_token: Option<u64>,
    ) -> (Vec<CallInfo>, Option<String>) {
        let calls = self.calls.iter().filter_map(|e| {
            let info = e.info();
            let wanted = status.is_none_or(|s| info.status == s);
            wanted.then(|| (info.sequence, info.clone()))
        });
        crate::paging::newest_first(calls, page_size, page_token)
    }
}
