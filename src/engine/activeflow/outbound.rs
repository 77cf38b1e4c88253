//! An activeflow on a call the engine placed (`engine::originate`), and the `call` action.
//!
//! Until the callee answers, the flow holds: nothing runs (VoIPBIN's default), or with
//! `early_execution` everything runs except the actions that need an answered call (media,
//! `answer`, `connect`, `transfer`, ...), which wait for the answer; `hangup` runs at once (a
//! CANCEL). A call that ends unanswered (busy, no answer, failed) ends the activeflow with
//! `not_answered`. `call` places its calls and moves on; with `chained`, they are hung up when
//! this activeflow ends (its call ends with it). Must not wait for the placed calls.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Value};

use super::Activeflow;
use crate::call::{CallCommand, CallEvent, HangupCause};
use crate::engine::execute::needs_call;
use crate::engine::originate::{originate, Originate};
use crate::engine::supervisor::{CALL_HANGUP, CALL_PROGRESSING, CALL_RINGING};
use crate::engine::EndReason;
use crate::flow::call_action::{CallAction, CallFlow, Party};
use crate::flow::outbound::{Address, AddressType};
use crate::flow::variables::{
    CALL_SOURCE_NAME, CALL_SOURCE_PRIVACY, CALL_SOURCE_TARGET, CALL_STATUS,
};
use crate::flow::{Action, ActionId, ActionKind, Flow, FlowId, Variables};

/// Chained calls one activeflow holds at most (live ones; ended ones are dropped first).
pub(crate) const MAX_CHAINED: usize = 256;

/// The outbound side of an activeflow.
#[derive(Default)]
pub(super) struct Outbound {
    /// Set while the call we placed has not answered.
    gate: Option<Gate>,
    /// Calls a `chained` `call` placed: hung up when this activeflow ends.
    chained: Vec<Recipient<CallCommand>>,
}

struct Gate {
    early: bool,
    /// The action waiting for the answer (the cursor stands on it).
    parked: Option<ActionId>,
}

/// Whether `action` needs an answered call (waits for the answer under `early_execution`).
/// Options that do not parse yet (a `${...}` where a number goes) wait too: after the answer
/// their error is recorded as for any call.
fn needs_answer(action: &Action) -> bool {
    match action.typed() {
        Ok(kind) => {
            needs_call(&kind)
                && !matches!(
                    kind,
                    ActionKind::Hangup { .. }
                        | ActionKind::ConditionCallDigits(_)
                        | ActionKind::ConditionCallStatus(_)
                )
        }
        Err(_) => true,
    }
}

impl Activeflow {
    /// Marks this activeflow's call as one we placed that has not answered yet.
    pub(crate) fn dialing(mut self, early_execution: bool) -> Self {
        self.outbound.gate = Some(Gate {
            early: early_execution,
            parked: None,
        });
        self
    }

    /// Whether `action`, the cursor's current one, must wait for the answer: then it is
    /// parked and the run stops.
    pub(super) fn waits_for_answer(&mut self, action: &Action) -> bool {
        let Some(gate) = &mut self.outbound.gate else {
            return false;
        };
        if gate.early && !needs_answer(action) {
            return false;
        }
        gate.parked = Some(action.id);
        true
    }

    /// Events of the call we placed before it answered; `None` when handled here.
    pub(super) fn on_outbound_event(
        &mut self,
        event: CallEvent,
        ctx: &mut Context<Self>,
    ) -> Option<CallEvent> {
        if self.outbound.gate.is_none() {
            return Some(event);
        }
        let ours = self.call.as_ref().map(|c| c.id);
        match event {
            CallEvent::Progress { call_id, .. } if Some(call_id) == ours => {
                self.set_variable(CALL_STATUS, CALL_RINGING);
                None
            }
            CallEvent::EarlyMedia { call_id } if Some(call_id) == ours => None,
            CallEvent::Answered { call_id } if Some(call_id) == ours => {
                let parked = self.outbound.gate.take().and_then(|g| g.parked);
                self.call_answered = true;
                self.set_variable(CALL_STATUS, CALL_PROGRESSING);
                if let Some(id) = parked {
                    self.resume(Some(id), ctx);
                }
                None
            }
            CallEvent::Ended { call_id, .. } if Some(call_id) == ours => {
                self.outbound.gate = None;
                self.call_released = true;
                self.set_variable(CALL_STATUS, CALL_HANGUP);
                self.end(EndReason::NotAnswered, ctx);
                None
            }
            other => Some(other),
        }
    }

    /// `call`: places one call per destination, each with its own activeflow, and records
    /// them in the action's `result`; the flow moves on at once.
    pub(super) fn start_call_action(&mut self, spec: CallAction) {
        let flow = match &spec.flow {
            CallFlow::Id(id) => match self.links.flows.get_by_name_or_id(id) {
                Some(flow) => flow,
                None => {
                    self.merge_result(
                        json!({ "calls": [], "error": format!("flow {id:?} not found") }),
                    );
                    return;
                }
            },
            CallFlow::Actions(actions) => {
                let mut inline = Flow::new("", actions.clone());
                inline.id = FlowId::nil();
                Arc::new(inline)
            }
        };
        let source = spec.source.clone().unwrap_or_else(|| self.caller());
        let private = self.variables.get(CALL_SOURCE_PRIVACY) == Some("yes");
        let parent_call = self
            .call
            .as_ref()
            .filter(|_| !self.call_released)
            .map(|c| c.id);
        // VoIPBIN chains only to a call (actionHandleCall: `af.ReferenceType == call`).
        let chained = spec.chained && parent_call.is_some();
        let mut links = self.links.clone();
        links.depth = 1;
        // The placed calls' activeflows are one generation further (and share the budget).
        links.call_tree = match self.links.call_tree.child() {
            Ok(tree) => tree,
            Err(e) => {
                let calls: Vec<Value> = spec
                    .destinations
                    .iter()
                    .map(|d| {
                        crate::metrics::outbound_call_requested("call_action", false);
                        json!({ "target": d.address.target, "status": "failed",
                                "reason": e.reason(), "error": e.to_string() })
                    })
                    .collect();
                tracing::warn!(activeflow_id = %self.id, error = %e, "call refused");
                self.merge_result(json!({ "calls": calls }));
                return;
            }
        };
        let mut calls = Vec::with_capacity(spec.destinations.len());
        for destination in &spec.destinations {
            calls.push(self.place(
                &spec,
                &flow,
                &source,
                destination,
                private,
                parent_call,
                chained,
                &links,
            ));
        }
        self.merge_result(json!({ "calls": calls }));
    }

    #[allow(clippy::too_many_arguments)] // one call's inputs, gathered once by the caller
    fn place(
        &mut self,
        spec: &CallAction,
        flow: &Arc<Flow>,
        source: &Party,
        destination: &Party,
        private: bool,
        parent_call: Option<crate::call::CallId>,
        chained: bool,
        links: &super::Links,
    ) -> Value {
        let target = destination.address.target.clone();
        if chained {
            self.outbound.chained.retain(Recipient::connected);
            if self.outbound.chained.len() >= MAX_CHAINED {
                crate::metrics::outbound_call_requested("call_action", false);
                return json!({ "target": target, "status": "failed", "reason": "chained_limit",
                               "error": format!("this activeflow already holds {MAX_CHAINED} chained calls") });
            }
        }
        if let Err(e) = links.call_tree.take_call() {
            crate::metrics::outbound_call_requested("call_action", false);
            return json!({ "target": target, "status": "failed", "reason": e.reason(),
                           "error": e.to_string() });
        }
        let request = Originate {
            flow: flow.clone(),
            variables: Variables::new(),
            source: source.clone(),
            destination: destination.clone(),
            trunk: spec.trunk.clone(),
            anonymous: spec.anonymous.hides(private),
            early_execution: spec.early_execution,
            ring_timeout: Duration::from_millis(spec.ring_timeout_ms),
            parent_call,
        };
        match originate(&self.registry, links.clone(), request) {
            Ok(placed) => {
                crate::metrics::outbound_call_requested("call_action", true);
                if chained {
                    self.outbound.chained.push(placed.commands);
                }
                json!({ "call_id": placed.call_id.to_string(),
                        "activeflow_id": placed.activeflow_id.to_string(),
                        "target": target, "status": "dialing" })
            }
            Err(e) => {
                links.call_tree.return_call();
                crate::metrics::outbound_call_requested("call_action", false);
                tracing::info!(activeflow_id = %self.id, error = %e, "call not placed");
                json!({ "target": target, "status": "failed", "reason": e.reason(),
                        "error": e.to_string() })
            }
        }
    }

    /// The placing call's caller, the From of a `call` without `source`.
    fn caller(&self) -> Party {
        let target = self
            .variables
            .get(CALL_SOURCE_TARGET)
            .unwrap_or_default()
            .to_owned();
        let number = !target.is_empty()
            && target
                .trim_start_matches('+')
                .chars()
                .all(|c| c.is_ascii_digit());
        Party {
            address: Address {
                kind: if number {
                    AddressType::Tel
                } else {
                    AddressType::Sip
                },
                target,
            },
            name: self
                .variables
                .get(CALL_SOURCE_NAME)
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// Hangs up the calls a `chained` `call` placed (this activeflow is ending).
    pub(super) fn release_chained(&mut self) {
        for commands in self.outbound.chained.drain(..) {
            commands.do_send(CallCommand::Hangup(HangupCause::Normal));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Under `early_execution` only what needs an answered call waits; a hangup cancels.
    #[test]
    fn what_waits_for_the_answer() {
        for (kind, option) in [
            ("talk", json!({"text": "hi"})),
            ("play", json!({"stream_urls": ["a.wav"]})),
            ("answer", json!({})),
            ("digits_receive", json!({"duration": 1000})),
            ("recording_start", json!({})),
            (
                "connect",
                json!({"destinations": [{"type": "tel", "target": "1"}]}),
            ),
        ] {
            assert!(needs_answer(&Action::new(kind, option)), "{kind}");
        }
        for (kind, option) in [
            ("hangup", json!({})),
            ("variable_set", json!({"key": "a", "value": "b"})),
            ("sleep", json!({"duration": 10})),
            ("condition_call_status", json!({"status": "ringing"})),
            ("webhook_send", json!({"uri": "http://h/x"})),
            (
                "call",
                json!({"destinations": [{"type": "tel", "target": "1"}],
                             "actions": [{"type": "hangup"}]}),
            ),
        ] {
            assert!(!needs_answer(&Action::new(kind, option)), "{kind}");
        }
        assert!(
            needs_answer(&Action::new("talk", json!({}))),
            "unparsed waits"
        );
    }
}
