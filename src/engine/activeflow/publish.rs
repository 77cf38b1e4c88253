//! The activeflow's events on the event stream: `activeflow_created` when its actor starts, one
//! `activeflow_updated` per executed action (as `executed_actions` holds it at that moment),
//! `activeflow_ended` once its end is recorded. Plain data is copied out of the record; nothing
//! is serialised here (see `events`).

use super::Activeflow;
use crate::engine::registry::lock;
use crate::engine::{ActiveflowRecord, EndReason};
use crate::events::{ActiveflowFacts, Event, EventBody, ExecutedFacts};

impl Activeflow {
    fn facts(r: &ActiveflowRecord) -> ActiveflowFacts {
        ActiveflowFacts {
            flow_id: r.flow_id,
            reference_type: r.reference_type.as_str(),
            reference_id: r.reference_id.clone(),
            execute_count: r.executed_count(),
        }
    }

    fn publish(&self, body: EventBody) {
        let hook = self.flow.webhook_uri.as_deref();
        self.links.events.publish(Event::now(self.id.0, body), hook);
    }

    /// `activeflow_created`; a flow webhook also follows the call this activeflow drives.
    pub(super) fn publish_created(&self) {
        if let (Some(hook), Some(call)) = (&self.flow.webhook_uri, &self.call) {
            self.links.events.bind_call(call.id.0, hook);
        }
        let facts = Self::facts(&lock(&self.record));
        self.publish(EventBody::ActiveflowCreated(facts));
    }

    /// `activeflow_updated` for the action just recorded.
    pub(super) fn publish_executed(&self) {
        let body = {
            let r = lock(&self.record);
            let Some(last) = r.executed_actions.back() else {
                return;
            };
            let executed = ExecutedFacts {
                action: last.action.clone(),
                tm_execute: last.tm_execute.clone(),
                result: last.result.clone(),
            };
            EventBody::ActiveflowUpdated(Self::facts(&r), Box::new(executed))
        };
        self.publish(body);
    }

    /// `activeflow_ended`, once the record says so.
    pub(super) fn publish_ended(&self, reason: EndReason) {
        let facts = Self::facts(&lock(&self.record));
        self.publish(EventBody::ActiveflowEnded(facts, reason.as_str()));
        // Ended by its call's end: that call (which may have ended before this activeflow
        // bound it) publishes nothing more.
        if let (
            Some(call),
            EndReason::Hangup
            | EndReason::AckTimeout
            | EndReason::RtpTimeout
            | EndReason::MaxDuration
            | EndReason::SessionExpired,
        ) = (&self.call, reason)
        {
            self.links.events.unbind_call(call.id.0);
        }
    }
}
