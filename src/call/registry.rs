//! Live call sessions by SIP Call-ID **and tags** (RFC 3261 §12: a dialog is Call-ID, local
//! tag, remote tag; a hairpinned call has both its legs under one Call-ID on this engine) — the
//! dispatcher's lookup on every message — and the operator's call records by [`CallId`] (live
//! and recently ended). Lock-free reads through dashmap; no call logic here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use actix::{Addr, Recipient};
use dashmap::DashMap;

use super::events::CallCommand;
use super::info::{CallInfo, CallStatus};
use super::outbound::MessageSender;
use super::shared::SipIn;
use super::{CallId, CallSession};

/// Ended calls kept listed (oldest dropped first).
pub const ENDED_CALLS_RETAINED: usize = 10_000;

/// One call: its record and where its session takes commands.
pub struct CallEntry {
    info: Mutex<CallInfo>,
    pub commands: Recipient<CallCommand>,
    /// Max-Forwards of the call's INVITE (70 for legs we place): a leg bridged for this call
    /// carries one less (RFC 3261 §16.6 step 3, as a B2BUA), so a call looping through the
    /// engine dies out instead of multiplying.
    pub max_forwards: u8,
    /// The call's Diversion values (RFC 5806), copied onto legs bridged for it.
    pub diversion: Vec<String>,
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
    Call(Addr<CallSession>),
    /// A SIP MESSAGE waiting for its response (no dialog, no call record).
    Message(Addr<MessageSender>),
    /// A trunk registration (REGISTER responses).
    Register(Addr<super::registration::RegisterClient>),
}

impl SessionAddr {
    /// Hands a message of this dialog to its actor.
    pub fn deliver(&self, message: SipIn) {
        match self {
            SessionAddr::Call(a) => a.do_send(message),
            SessionAddr::Message(a) => a.do_send(message),
            SessionAddr::Register(a) => a.do_send(message),
        }
    }
}

/// One dialog (or MESSAGE) under a Call-ID.
struct Slot {
    /// Our tag: From of what we send, To of what the peer sends us in the dialog.
    local_tag: Box<str>,
    /// The peer's From tag on a call we answer: matches its INVITE retransmissions and CANCEL,
    /// which carry no To tag yet.
    remote_tag: Option<Box<str>>,
    addr: SessionAddr,
}

#[derive(Default)]
pub struct CallRegistry {
    sessions: DashMap<String, Vec<Slot>>,
    calls: DashMap<CallId, Arc<CallEntry>>,
    ended: Mutex<VecDeque<CallId>>,
    sequence: crate::storage::Sequences,
    /// Sessions that still hold a live (not yet ended) call; lingering ones are not counted.
    active: AtomicUsize,
    /// MESSAGE transactions outstanding (sent, no final response or Timer F yet).
    messages: Arc<AtomicUsize>,
}

/// One outstanding MESSAGE (RFC 3428: a non-INVITE client transaction until its final response
/// or Timer F); gives its place back when dropped (its sender actor stops).
#[derive(Debug)]
pub struct MessageSlot(Arc<AtomicUsize>);

impl Drop for MessageSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl CallRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The session a request belongs to: by its To tag when it has one (our local tag), else
    /// by its From tag (the remote tag of a call we answer: INVITE retransmissions, CANCEL).
    pub fn route_request(
        &self,
        sip_call_id: &str,
        to_tag: Option<&str>,
        from_tag: Option<&str>,
    ) -> Option<SessionAddr> {
        let slots = self.sessions.get(sip_call_id)?;
        let slot = match to_tag {
            Some(tag) => slots.iter().find(|s| &*s.local_tag == tag),
            None => slots
                .iter()
                .find(|s| s.remote_tag.is_some() && s.remote_tag.as_deref() == from_tag),
        }?;
        Some(slot.addr.clone())
    }

    /// The session a response belongs to: its From tag is our tag on the request we sent (an
    /// INVITE or MESSAGE we placed, or the BYE of any dialog of ours).
    pub fn route_response(&self, sip_call_id: &str, from_tag: Option<&str>) -> Option<SessionAddr> {
        let slots = self.sessions.get(sip_call_id)?;
        let slot = slots.iter().find(|s| Some(&*s.local_tag) == from_tag)?;
        Some(slot.addr.clone())
    }

    /// Inserts the session made by `make` for a new INVITE unless one exists for the same
    /// Call-ID and remote tag; atomic, so two copies of one INVITE can never both create a
    /// session. Returns whether it was inserted.
    pub fn insert_incoming(
        &self,
        sip_call_id: &str,
        local_tag: &str,
        remote_tag: &str,
        make: impl FnOnce() -> SessionAddr,
    ) -> bool {
        let mut slots = self.sessions.entry(sip_call_id.to_string()).or_default();
        if slots
            .iter()
            .any(|s| s.remote_tag.as_deref() == Some(remote_tag))
        {
            return false;
        }
        slots.push(Slot {
            local_tag: local_tag.into(),
            remote_tag: Some(remote_tag.into()),
            addr: make(),
        });
        true
    }

    /// Registers a dialog (or MESSAGE) we start, under our tag.
    pub fn insert_outgoing(&self, sip_call_id: &str, local_tag: &str, addr: SessionAddr) {
        self.sessions
            .entry(sip_call_id.to_string())
            .or_default()
            .push(Slot {
                local_tag: local_tag.into(),
                remote_tag: None,
                addr,
            });
    }

    /// Removes the dialog with our tag `local_tag`.
    pub fn remove(&self, sip_call_id: &str, local_tag: &str) {
        if let Some(mut slots) = self.sessions.get_mut(sip_call_id) {
            slots.retain(|s| &*s.local_tag != local_tag);
        }
        self.sessions
            .remove_if(sip_call_id, |_, slots| slots.is_empty());
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

    /// Calls not yet ended plus MESSAGEs outstanding: the one number `engine.max_activeflows`
    /// bounds, for legs we dial, MESSAGEs we send and INVITEs we answer alike.
    pub fn occupied(&self) -> usize {
        self.active() + self.messages.load(Ordering::Acquire)
    }

    /// A place for one more MESSAGE unless [`CallRegistry::occupied`] is `limit` already; held
    /// by the MESSAGE's sender until it stops.
    pub(crate) fn message_started(&self, limit: usize) -> Option<MessageSlot> {
        let calls = self.active();
        self.messages
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (calls + n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| MessageSlot(Arc::clone(&self.messages)))
    }

    /// Continues numbering after `last` (the highest sequence in storage).
    pub fn continue_after(&self, last: u64) {
        self.sequence.continue_after(last);
    }

    /// Allocates creation sequences from a hybrid clock in `slot` instead of a counter: for a
    /// store shared by several nodes (see `storage::sequence`).
    pub fn use_clock_sequences(&self, slot: u16) {
        self.sequence.use_clock(slot);
    }

    pub(crate) fn next_sequence(&self) -> u64 {
        self.sequence.next()
    }

    /// A new live call.
    pub(crate) fn call_started(
        &self,
        info: CallInfo,
        commands: Recipient<CallCommand>,
        max_forwards: u8,
        diversion: Vec<String>,
    ) -> Arc<CallEntry> {
        self.active.fetch_add(1, Ordering::Relaxed);
        crate::metrics::calls_active(1.0);
        let entry = Arc::new(CallEntry {
            info: Mutex::new(info),
            commands,
            max_forwards,
            diversion,
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

    /// The lowest sequence of a call created at or after `at`, read without copying calls
    /// (the API's timestamp page token).
    pub fn first_call_since(&self, at: &str) -> Option<u64> {
        self.calls
            .iter()
            .filter_map(|e| {
                let info = e.info();
                (info.tm_create.as_str() >= at).then_some(info.sequence)
            })
            .min()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_bounded_with_calls_and_given_back_on_drop() {
        let registry = CallRegistry::new();
        let a = registry.message_started(2).unwrap();
        let _b = registry.message_started(2).unwrap();
        assert!(registry.message_started(2).is_none());
        assert_eq!(registry.occupied(), 2);
        drop(a);
        assert_eq!(registry.occupied(), 1);
        assert!(registry.message_started(2).is_some());
        assert!(registry.message_started(0).is_none());
        // A live call takes a place too.
        registry.active.fetch_add(1, Ordering::Relaxed);
        assert_eq!(registry.occupied(), 2);
        assert!(registry.message_started(2).is_none());
    }
}
