//! The operator's view of a call (`/v1/calls`): who, where, status and times. Written by the
//! call session at each phase change, read by the API as snapshots, and handed to storage as a
//! CDR-like row and to the event stream as a call event at each of those changes.

use serde::Serialize;

use super::CallId;
use crate::events::{CallFacts, Event, EventBody, EventBus};
use crate::storage::{CallRow, Storage, Write, WriteKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Ringing,
    Answered,
    Ended,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Ringing => "ringing",
            CallStatus::Answered => "answered",
            CallStatus::Ended => "ended",
        }
    }

    pub fn parse(s: &str) -> Option<CallStatus> {
        match s {
            "ringing" => Some(CallStatus::Ringing),
            "answered" => Some(CallStatus::Answered),
            "ended" => Some(CallStatus::Ended),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CallInfo {
    pub id: CallId,
    /// The SIP Call-ID header.
    pub sip_call_id: String,
    pub direction: &'static str,
    pub source: String,
    pub destination: String,
    /// Signalling peer, `ip:port/transport`.
    pub peer: String,
    pub status: CallStatus,
    /// Why it ended: `remote_bye`, `cancelled`, `ack_timeout`, `local`, `failed`; for legs we
    /// place also `rejected` (a 3xx–6xx final) and `no_answer` (ring timeout).
    pub end_cause: Option<&'static str>,
    /// The SIP final response (3xx-6xx) that ended the call before its answer: the one a leg
    /// we placed received (486, 480, ...), or the one we sent refusing an incoming call (404,
    /// 486, 487 to a CANCEL, 603, ...).
    pub end_code: Option<u16>,
    /// The audio codec (`PCMU`, `PCMA`): the one our answer chose, then the one media runs
    /// with (a re-INVITE may change it); `None` before the answer. Stored with the call.
    pub codec: Option<&'static str>,
    pub tm_create: String,
    pub tm_answer: Option<String>,
    pub tm_end: Option<String>,
    /// Creation order, for newest-first listing and page tokens.
    #[serde(skip)]
    pub sequence: u64,
}

impl CallInfo {
    pub fn to_row(&self) -> CallRow {
        CallRow {
            id: self.id.to_string(),
            sequence: self.sequence,
            sip_call_id: self.sip_call_id.clone(),
            direction: self.direction,
            source: self.source.clone(),
            destination: self.destination.clone(),
            peer: self.peer.clone(),
            status: self.status.as_str(),
            end_cause: self.end_cause.map(str::to_string),
            end_code: self.end_code,
            codec: self.codec,
            tm_create: self.tm_create.clone(),
            tm_answer: self.tm_answer.clone(),
            tm_end: self.tm_end.clone(),
        }
    }

    /// Publishes the event of the status just reached: ringing → `call_created`, answered →
    /// `call_answered`, ended → `call_ended`.
    pub(super) fn publish(&self, events: &EventBus) {
        let facts = CallFacts {
            direction: self.direction,
            source: self.source.clone(),
            destination: self.destination.clone(),
            status: self.status.as_str(),
            end_cause: self.end_cause,
        };
        let body = match self.status {
            CallStatus::Ringing => EventBody::CallCreated(facts),
            CallStatus::Answered => EventBody::CallAnswered(facts),
            CallStatus::Ended => EventBody::CallEnded(facts),
        };
        events.publish(Event::now(self.id.0, body), None);
    }

    /// Hands the row to storage without waiting: progress is skipped on a full queue (the next
    /// write carries the whole row); the end is never dropped.
    pub(super) fn persist(&self, storage: &Storage) {
        if !storage.is_enabled() {
            return;
        }
        let write = Write::Call(self.to_row());
        if self.status == CallStatus::Ended {
            storage.write_eventually(write, WriteKind::Call);
        } else {
            storage.try_write(write, WriteKind::Call);
        }
    }
}
