//! The activeflow's events on the event stream: `activeflow_created` when its actor starts, one
//! `activeflow_updated` per executed action (as `executed_actions` holds it at that moment),
//! `activeflow_ended` once its end is recorded. Plain data is copied out of the record; the
//! record is serialised (as the API returns it) only when a webhook wants VoIPBIN's shape.

use std::sync::Arc;

use super::Activeflow;
use crate::engine::registry::lock;
use crate::engine::{ActiveflowRecord, EndReason};
use crate::events::{ActiveflowFacts, Event, EventBody, ExecutedFacts, FlowHook};

impl Activeflow {
    /// The facts of `r`; `snapshot` adds the whole record as JSON (VoIPBIN's `data`).
    fn facts(r: &ActiveflowRecord, snapshot: bool) -> ActiveflowFacts {
        ActiveflowFacts {
            flow_id: r.flow_id,
            reference_type: r.reference_type.as_str(),
            reference_id: r.reference_id.clone(),
            execute_count: r.executed_count(),
            // The API's own serialisation of the record (`GET /v1/activeflows/{id}`).
            record: snapshot
                .then(|| serde_json::to_string(r).ok().map(Arc::from))
                .flatten(),
        }
    }

    /// This activeflow's flow webhook (allocated only when the flow has one) and whether some
    /// webhook wants a snapshot of the record.
    fn hook(&self) -> (Option<Arc<FlowHook>>, bool) {
        let events = &self.links.events;
        let hook = events.flow_hook(&self.flow, self.id.0);
        let snapshot = events.wants_snapshot(hook.as_deref());
        (hook, snapshot)
    }

    fn publish(&self, body: EventBody, hook: Option<Arc<FlowHook>>) {
        self.links.events.publish(Event::now(self.id.0, body), hook);
    }

    /// `activeflow_created`; a flow webhook also follows the call this activeflow drives.
    pub(super) fn publish_created(&self) {
        let (hook, snapshot) = self.hook();
        if let (Some(hook), Some(call)) = (&hook, &self.call) {
            self.links.events.bind_call(call.id.0, hook.clone());
        }
        let facts = Self::facts(&lock(&self.record), snapshot);
        self.publish(EventBody::ActiveflowCreated(facts), hook);
    }

    /// `activeflow_updated` for the action just recorded.
    pub(super) fn publish_executed(&self) {
        let (hook, snapshot) = self.hook();
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
            EventBody::ActiveflowUpdated(Self::facts(&r, snapshot), Box::new(executed))
        };
        self.publish(body, hook);
    }

    /// `activeflow_ended`, once the record says so.
    pub(super) fn publish_ended(&self, reason: EndReason) {
        let (hook, snapshot) = self.hook();
        let facts = Self::facts(&lock(&self.record), snapshot);
        self.publish(EventBody::ActiveflowEnded(facts, reason.as_str()), hook);
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
