//! The activeflow's events on the event stream: `activeflow_created` when its actor starts, one
//! `activeflow_updated` per executed action (as `executed_actions` holds it at that moment),
//! `activeflow_ended` once its end is recorded. Plain data is copied out of the record; only
//! when a webhook wants VoIPBIN's shape is a bounded copy of the record taken under its lock
//! (the newest `events::SNAPSHOT_EXECUTED_ACTIONS` executed actions) and serialised after it,
//! and that JSON goes with the webhook delivery only, never into the SSE window.

use std::sync::Arc;
use std::time::Duration;

use super::Activeflow;
use crate::engine::registry::lock;
use crate::engine::{ActiveflowRecord, EndReason};
use crate::events::{
    ActiveflowFacts, Event, EventBody, ExecutedFacts, FlowHook, SNAPSHOT_EXECUTED_ACTIONS,
};

/// How long a call stays bound to an activeflow that ended for another reason than the call's
/// end: the hang-up that end sends (a BYE may take SIP's 32 s to time out) still reports the
/// activeflow; then the binding goes even if the call's end never came (it ended before the
/// activeflow bound it).
const CALL_UNBIND_GRACE: Duration = Duration::from_secs(40);

impl Activeflow {
    /// The facts of `r`.
    fn facts(r: &ActiveflowRecord) -> ActiveflowFacts {
        ActiveflowFacts {
            flow_id: r.flow_id,
            reference_type: r.reference_type.as_str(),
            reference_id: r.reference_id.clone(),
            execute_count: r.executed_count(),
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

    /// Facts (and, when `snapshot`, a bounded copy of the record) under one short lock; the
    /// copy is serialised by the caller after the lock is released.
    fn read(&self, snapshot: bool) -> (ActiveflowFacts, Option<ActiveflowRecord>) {
        let mut r = lock(&self.record);
        let copy = snapshot.then(|| bounded_copy(&mut r, SNAPSHOT_EXECUTED_ACTIONS));
        (Self::facts(&r), copy)
    }

    fn publish(
        &self,
        body: EventBody,
        hook: Option<Arc<FlowHook>>,
        copy: Option<ActiveflowRecord>,
    ) {
        // The API's own serialisation of the record (`GET /v1/activeflows/{id}`), bounded.
        let snapshot = copy.and_then(|r| serde_json::to_string(&r).ok().map(Arc::from));
        let event = Event::now(self.id.0, body);
        self.links.events.publish_with(event, hook, snapshot);
    }

    /// `activeflow_created`; the call this activeflow drives is bound to it (its events go to
    /// the flow's webhook too, and name it in VoIPBIN's shape) when the flow has a webhook or
    /// the global webhook is in VoIPBIN's format.
    pub(super) fn publish_created(&self) {
        let (hook, snapshot) = self.hook();
        if let Some(call) = &self.call {
            let events = &self.links.events;
            if hook.is_some() || events.binds_every_call() {
                events.bind_call(call.id.0, self.id.0, hook.clone());
            }
        }
        let (facts, copy) = self.read(snapshot);
        self.publish(EventBody::ActiveflowCreated(facts), hook, copy);
    }

    /// `activeflow_updated` for the action just recorded.
    pub(super) fn publish_executed(&self) {
        let (hook, snapshot) = self.hook();
        let (body, copy) = {
            let mut r = lock(&self.record);
            let Some(last) = r.executed_actions.back() else {
                return;
            };
            let executed = ExecutedFacts {
                action: last.action.clone(),
                tm_execute: last.tm_execute.clone(),
                result: last.result.clone(),
            };
            let copy = snapshot.then(|| bounded_copy(&mut r, SNAPSHOT_EXECUTED_ACTIONS));
            let body = EventBody::ActiveflowUpdated(Self::facts(&r), Box::new(executed));
            (body, copy)
        };
        self.publish(body, hook, copy);
    }

    /// `activeflow_ended`, once the record says so. The call it drove is unbound: at once when
    /// the call's end ended it, else after [`CALL_UNBIND_GRACE`].
    pub(super) fn publish_ended(&self, reason: EndReason) {
        let (hook, snapshot) = self.hook();
        let (facts, copy) = self.read(snapshot);
        self.publish(
            EventBody::ActiveflowEnded(facts, reason.as_str()),
            hook,
            copy,
        );
        if let Some(call) = &self.call {
            let by_call = matches!(
                reason,
                EndReason::Hangup
                    | EndReason::AckTimeout
                    | EndReason::RtpTimeout
                    | EndReason::MaxDuration
                    | EndReason::SessionExpired
                    | EndReason::NotAnswered
            );
            let delay = (!by_call).then_some(CALL_UNBIND_GRACE);
            self.links
                .events
                .unbind_call_of(call.id.0, self.id.0, delay);
        }
    }
}

/// A copy of `r` for a webhook's `data`: everything the API serialises, with only the newest
/// `newest` executed actions (the others counted in `executed_actions_dropped`) and without the
/// variables (not serialised). Copies nothing else of the executed actions.
fn bounded_copy(r: &mut ActiveflowRecord, newest: usize) -> ActiveflowRecord {
    // Moved out for the clone of the rest (each field, so new ones are copied too) and back.
    let executed = std::mem::take(&mut r.executed_actions);
    let variables = std::mem::take(&mut r.variables);
    let mut copy = r.clone();
    r.executed_actions = executed;
    r.variables = variables;
    let skip = r.executed_actions.len().saturating_sub(newest);
    copy.executed_actions = r.executed_actions.iter().skip(skip).cloned().collect();
    copy.executed_actions_dropped += skip;
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ExecutedAction;
    use crate::flow::Action;

    #[test]
    fn the_snapshot_copy_keeps_the_newest_actions_and_leaves_the_record_whole() {
        let mut r = ActiveflowRecord::bare_for_tests();
        r.executed_actions_dropped = 3;
        for n in 0..250 {
            r.executed_actions.push_back(ExecutedAction {
                action: Action::new("talk", serde_json::json!({ "n": n })),
                tm_execute: format!("t{n}"),
                result: None,
            });
        }
        let copy = bounded_copy(&mut r, 100);
        assert_eq!(copy.executed_actions.len(), 100);
        assert_eq!(copy.executed_actions[0].tm_execute, "t150");
        assert_eq!(copy.executed_actions_dropped, 153);
        assert_eq!(copy.executed_count(), r.executed_count());
        assert_eq!(r.executed_actions.len(), 250);
        assert_eq!(r.executed_actions_dropped, 3);
        let v = serde_json::to_value(&copy).unwrap();
        assert_eq!(v["executed_actions"].as_array().unwrap().len(), 100);
        assert_eq!(v["executed_actions_dropped"], 153);
    }
}
