//! Blind transfer (RFC 3515 REFER) both ways. The `transfer` action REFERs the caller to a
//! destination and waits for its NOTIFYs: `transferred` (the last sipfrag is 2xx: the call
//! ends), `failed` (another final status: the flow goes on), `rejected` (the REFER itself was
//! refused). A party bridged by `connect` that REFERs is transferred away: the engine dials
//! the Refer-To target like `connect` does, bridges the *other* party with it, reports to the
//! referrer in NOTIFYs and lets its leg hang up. A REFER outside a bridge is refused by the
//! call (403). Either way the outcome is an executed `transfer` entry and `transfer.result`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::{json, Value};

use super::waiting::Awaiting;
use super::Activeflow;
use crate::call::outbound::{DialError, DialRequest, Target};
use crate::call::{CallCommand, CallEndCause, CallEvent, CallId, HangupCause};
use crate::engine::EndReason;
use crate::flow::outbound::{AddressType, Transfer};
use crate::flow::{Action, ActionId, CALL_SOURCE_TARGET};
use crate::media::relay::RelayLink;
use crate::media::{MediaJob, MediaRequest};

/// The variable a flow branches on after a transfer.
pub(super) const TRANSFER_RESULT: &str = "transfer.result";
/// Longest wait, after our REFER, for the peer's last NOTIFY (its own call attempt rings
/// meanwhile; RFC 3515 leaves the length to the referrer).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the leg to a Refer-To target may ring (as `connect`'s default `ring_timeout`).
const TRANSFER_RING_TIMEOUT: Duration = Duration::from_secs(30);

/// The `transfer` action in progress.
pub(super) struct Referring {
    next: Option<ActionId>,
    target: String,
    accepted: bool,
    timer: Option<SpawnHandle>,
}

/// Which bridged party sent the REFER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Referrer {
    Caller,
    Callee,
}

impl Referrer {
    fn as_str(self) -> &'static str {
        match self {
            Referrer::Caller => "caller",
            Referrer::Callee => "callee",
        }
    }
}

/// A bridged party's REFER being carried out: the leg to its target is ringing.
pub(super) struct InboundTransfer {
    referrer: Referrer,
    referrer_commands: Recipient<CallCommand>,
    target: String,
    leg: (CallId, Recipient<CallCommand>),
    started: Instant,
}

/// The two parties the caller left bridged when it transferred itself away.
pub(super) struct Bridge {
    legs: [(CallId, Recipient<CallCommand>); 2],
}

/// A Refer-To URI as a dialer target: `tel:` numbers through the trunks, SIP URIs as given.
fn refer_target(uri: &str) -> Target {
    match uri.get(..4) {
        Some(scheme) if scheme.eq_ignore_ascii_case("tel:") => {
            let number = uri[4..].split(';').next().unwrap_or_default();
            Target::Tel(number.to_string())
        }
        _ => Target::Sip(uri.to_string()),
    }
}

/// The sipfrag status reported for a leg to the target that ended unanswered.
fn failure_status(cause: CallEndCause) -> u16 {
    match cause {
        CallEndCause::Rejected(code) => code,
        CallEndCause::NoAnswer => 408,
        _ => 503,
    }
}

fn dial_failure_status(e: &DialError) -> u16 {
    match e {
        DialError::Route(_) => 404,
        DialError::TooManyHops => 483,
        DialError::NotReady | DialError::AtCapacity => 503,
    }
}

impl Activeflow {
    /// Lets (or stops letting) the bridged parties REFER: the callee leg given, and our call.
    pub(super) fn allow_transfer(&self, callee: Option<&Recipient<CallCommand>>, allowed: bool) {
        if let Some(commands) = callee {
            commands.do_send(CallCommand::Transferable(allowed));
        }
        if let Some(call) = self.call.as_ref().filter(|_| !self.call_released) {
            call.commands.do_send(CallCommand::Transferable(allowed));
        }
    }

    /// Starts the `transfer` action: REFER to our call. False: it waits for the answer.
    pub(super) fn start_transfer(
        &mut self,
        spec: Transfer,
        next: Option<ActionId>,
        ctx: &mut Context<Self>,
    ) -> bool {
        let destination = &spec.destination;
        let target = match destination.kind {
            AddressType::Sip => destination.target.clone(),
            AddressType::Tel => {
                let tel = super::connect::target(destination);
                match self.links.dialer.route_of(&tel, spec.trunk.as_deref()) {
                    Ok(route) => route.request_uri,
                    // No trunk to name its host: the number as a tel URI (RFC 3966).
                    Err(_) if spec.trunk.is_none() => format!("tel:{}", destination.target),
                    Err(e) => {
                        self.fail_current(e);
                        self.finish_transfer("failed", None);
                        return true;
                    }
                }
            }
        };
        let Some(call) = self.call.as_ref().filter(|_| !self.call_released) else {
            return true;
        };
        call.commands.do_send(CallCommand::Refer {
            target: target.clone(),
        });
        let timer = ctx.run_later(TRANSFER_TIMEOUT, |act, ctx| {
            if let Some(Awaiting::Transfer(r)) = &mut act.awaiting {
                r.timer = None;
                act.end_referring("failed", None, ctx);
            }
        });
        self.merge_result(json!({ "target": target }));
        self.awaiting = Some(Awaiting::Transfer(Referring {
            next,
            target,
            accepted: false,
            timer: Some(timer),
        }));
        false
    }

    /// Records how the `transfer` action went in its result and `transfer.result`.
    fn finish_transfer(&mut self, outcome: &'static str, code: Option<u16>) {
        self.set_variable(TRANSFER_RESULT, outcome);
        self.merge_result(json!({ "result": outcome, "code": code }));
    }

    /// The `transfer` action is over: transferred → the activeflow ends (BYE to the caller);
    /// otherwise the flow goes on with the call still up.
    fn end_referring(&mut self, outcome: &'static str, code: Option<u16>, ctx: &mut Context<Self>) {
        let Some(Awaiting::Transfer(referring)) = self.awaiting.take() else {
            return;
        };
        if let Some(timer) = referring.timer {
            ctx.cancel_future(timer);
        }
        if outcome == "failed" && code.is_none() {
            self.fail_current("no final NOTIFY came for the REFER");
        }
        self.finish_transfer(outcome, code);
        tracing::info!(activeflow_id = %self.id, target = %referring.target, outcome, "transfer");
        if outcome == "transferred" {
            self.end(EndReason::Completed, ctx);
        } else {
            self.resume(referring.next, ctx);
        }
    }

    /// Takes the events of transfers; hands every other event back.
    pub(super) fn on_transfer_event(
        &mut self,
        event: CallEvent,
        ctx: &mut Context<Self>,
    ) -> Option<CallEvent> {
        let ours = self.call.as_ref().map(|c| c.id);
        match event {
            CallEvent::TransferRequested { call_id, target } => {
                self.on_refer(call_id, target, ctx);
                None
            }
            CallEvent::TransferAnswered { call_id, code } if Some(call_id) == ours => {
                match &mut self.awaiting {
                    Some(Awaiting::Transfer(r)) if (200..300).contains(&code) => r.accepted = true,
                    Some(Awaiting::Transfer(_)) => self.end_referring("rejected", Some(code), ctx),
                    _ => {}
                }
                None
            }
            CallEvent::TransferProgress {
                call_id,
                code,
                terminated,
            } if Some(call_id) == ours => {
                if terminated && matches!(self.awaiting, Some(Awaiting::Transfer(_))) {
                    let outcome = if (200..300).contains(&code) {
                        "transferred"
                    } else {
                        "failed"
                    };
                    self.end_referring(outcome, Some(code), ctx);
                }
                None
            }
            CallEvent::TransferAnswered { .. } | CallEvent::TransferProgress { .. } => None,
            CallEvent::Answered { call_id }
            | CallEvent::Progress { call_id, .. }
            | CallEvent::Ended { call_id, .. }
                if self.transfer.as_ref().is_some_and(|t| t.leg.0 == call_id) =>
            {
                self.on_transfer_leg(event);
                None
            }
            CallEvent::Ended { call_id, .. } if self.in_bridge(call_id, ours) => {
                self.on_bridge_end(call_id, ours, ctx);
                None
            }
            event => Some(event),
        }
    }

    /// After the caller left: the bridge's legs, and the caller's own (it is hung up by then).
    fn in_bridge(&self, call_id: CallId, ours: Option<CallId>) -> bool {
        match &self.awaiting {
            Some(Awaiting::Transferred(b)) => {
                Some(call_id) == ours || b.legs.iter().any(|(id, _)| *id == call_id)
            }
            _ => false,
        }
    }

    /// A bridged party REFERred (the call answered 202): dial its target.
    fn on_refer(&mut self, from: CallId, target: String, ctx: &mut Context<Self>) {
        let ours = self.call.as_ref().map(|c| c.id);
        let bridged = match &self.awaiting {
            Some(Awaiting::Connect(c)) => c.bridged(),
            _ => None,
        };
        let Some((callee_id, callee_commands)) = bridged else {
            // The bridge ended between the call's 202 and now.
            return self.notify_referrer(from, ours, 403);
        };
        let (referrer, referrer_commands) = if Some(from) == ours {
            let Some(call) = &self.call else { return };
            (Referrer::Caller, call.commands.clone())
        } else if from == callee_id {
            (Referrer::Callee, callee_commands)
        } else {
            return;
        };
        if self.transfer.is_some() {
            // The other party's transfer is under way.
            let notify = CallCommand::TransferNotify {
                status: 491,
                then_hangup: false,
            };
            return referrer_commands.do_send(notify);
        }
        let request = DialRequest {
            target: refer_target(&target),
            trunk: None,
            source: self
                .variables
                .get(CALL_SOURCE_TARGET)
                .unwrap_or_default()
                .to_owned(),
            ring_timeout: TRANSFER_RING_TIMEOUT,
            events: ctx.address().recipient(),
            parent: ours,
        };
        tracing::info!(activeflow_id = %self.id, %target, referrer = referrer.as_str(), "REFER accepted");
        match self.links.dialer.dial(request) {
            Ok(leg) => {
                self.transfer = Some(Box::new(InboundTransfer {
                    referrer,
                    referrer_commands,
                    target,
                    leg: (leg.call_id, leg.commands),
                    started: Instant::now(),
                }));
            }
            Err(e) => {
                tracing::info!(activeflow_id = %self.id, error = %e, "transfer target not dialled");
                let status = dial_failure_status(&e);
                referrer_commands.do_send(CallCommand::TransferNotify {
                    status,
                    then_hangup: false,
                });
                let mut result = inbound_result(referrer, &target, "failed", status);
                result["error"] = json!(e.to_string());
                self.record_inbound(&target, result);
            }
        }
    }

    /// A final NOTIFY for a REFER the engine cannot carry out.
    fn notify_referrer(&self, from: CallId, ours: Option<CallId>, status: u16) {
        let notify = CallCommand::TransferNotify {
            status,
            then_hangup: false,
        };
        if Some(from) == ours {
            if let Some(call) = &self.call {
                call.commands.do_send(notify);
            }
        } else if let Some(Awaiting::Connect(c)) = &self.awaiting {
            if let Some((id, commands)) = c.bridged() {
                if id == from {
                    commands.do_send(notify);
                }
            }
        }
    }

    /// An event of the leg to the Refer-To target.
    fn on_transfer_leg(&mut self, event: CallEvent) {
        match event {
            CallEvent::Answered { .. } => self.transfer_answered(),
            CallEvent::Ended { cause, .. } => {
                let Some(t) = self.transfer.take() else {
                    return;
                };
                let status = failure_status(cause);
                t.referrer_commands.do_send(CallCommand::TransferNotify {
                    status,
                    then_hangup: false,
                });
                crate::metrics::transfer("inbound", "failed");
                let result = inbound_result(t.referrer, &t.target, "failed", status);
                self.record_inbound(&t.target, result);
            }
            _ => {}
        }
    }

    /// The target answered: bridge it with the party the referrer was talking to, tell the
    /// referrer (NOTIFY 200, then its BYE), record the transfer.
    fn transfer_answered(&mut self) {
        let Some(t) = self.transfer.take() else {
            return;
        };
        let (new_id, new_commands) = t.leg.clone();
        let bridged = match &self.awaiting {
            Some(Awaiting::Connect(c)) => c.bridged(),
            _ => None,
        };
        let Some((callee_id, callee_commands)) = bridged else {
            // The bridge is gone (the kept party hung up meanwhile).
            new_commands.do_send(CallCommand::Hangup(HangupCause::Normal));
            t.referrer_commands.do_send(CallCommand::TransferNotify {
                status: 487,
                then_hangup: false,
            });
            crate::metrics::transfer("inbound", "failed");
            let result = inbound_result(t.referrer, &t.target, "failed", 487);
            return self.record_inbound(&t.target, result);
        };
        let kept = match t.referrer {
            Referrer::Caller => Some(callee_commands.clone()),
            Referrer::Callee => self
                .call
                .as_ref()
                .filter(|_| !self.call_released)
                .map(|c| c.commands.clone()),
        };
        let (kept_end, new_end) = RelayLink::pair();
        self.last_job += 1;
        let kept_job = MediaJob(self.last_job);
        self.last_job += 1;
        let new_job = MediaJob(self.last_job);
        if let Some(kept) = &kept {
            kept.do_send(CallCommand::Media {
                job: kept_job,
                request: MediaRequest::Relay(kept_end),
            });
        }
        new_commands.do_send(CallCommand::Media {
            job: new_job,
            request: MediaRequest::Relay(new_end),
        });
        t.referrer_commands.do_send(CallCommand::TransferNotify {
            status: 200,
            then_hangup: true,
        });
        match t.referrer {
            Referrer::Caller => {
                // The activeflow's own call leaves: the connect is over; the activeflow stays
                // while the two parties it bridged talk.
                self.merge_result(
                    json!({ "transferred_by": "caller", "transferred_to": t.target }),
                );
                self.call_released = true;
                callee_commands.do_send(CallCommand::Transferable(false));
                self.awaiting = Some(Awaiting::Transferred(Bridge {
                    legs: [(callee_id, callee_commands), (new_id, new_commands)],
                }));
            }
            Referrer::Callee => {
                if let Some(Awaiting::Connect(c)) = &mut self.awaiting {
                    c.replace_winner(new_id, new_commands.clone(), t.target.clone(), kept_job);
                }
                new_commands.do_send(CallCommand::Transferable(true));
            }
        }
        crate::metrics::transfer("inbound", "transferred");
        let mut result = inbound_result(t.referrer, &t.target, "transferred", 200);
        result["setup_ms"] = json!(t.started.elapsed().as_millis() as u64);
        self.record_inbound(&t.target, result);
    }

    /// A party of the bridge the caller left hung up: the other is hung up, the activeflow ends.
    fn on_bridge_end(&mut self, call_id: CallId, ours: Option<CallId>, ctx: &mut Context<Self>) {
        if Some(call_id) == ours {
            // The referrer's own leg, hung up after its last NOTIFY.
            self.call_released = true;
            return;
        }
        let Some(Awaiting::Transferred(bridge)) = self.awaiting.take() else {
            return;
        };
        for (id, commands) in bridge.legs {
            if id != call_id {
                commands.do_send(CallCommand::Hangup(HangupCause::Normal));
            }
        }
        self.end(EndReason::Hangup, ctx);
    }

    /// The activeflow is ending: hang up the leg to a transfer target and a bridge's legs.
    pub(super) fn release_transfer(&mut self, ctx: &mut Context<Self>) {
        if let Some(t) = self.transfer.take() {
            t.leg.1.do_send(CallCommand::Hangup(HangupCause::Normal));
            t.referrer_commands.do_send(CallCommand::TransferNotify {
                status: 487,
                then_hangup: false,
            });
        }
        match self.awaiting.take() {
            Some(Awaiting::Transferred(bridge)) => {
                for (_, commands) in bridge.legs {
                    commands.do_send(CallCommand::Hangup(HangupCause::Normal));
                }
            }
            Some(Awaiting::Transfer(Referring {
                timer: Some(timer), ..
            })) => {
                ctx.cancel_future(timer);
            }
            other => self.awaiting = other,
        }
    }

    /// The executed `transfer` entry for a party's REFER, and `transfer.result`.
    fn record_inbound(&mut self, target: &str, result: Value) {
        let outcome = result["result"].as_str().unwrap_or("failed").to_owned();
        let action = Action {
            id: ActionId::new(),
            next_id: None,
            kind: "transfer".to_string(),
            option: Arc::new(json!({
                "destination": { "type": "sip", "target": target },
                "direction": "inbound",
            })),
        };
        self.record_executed(action, Some(result));
        self.publish_executed();
        self.set_variable(TRANSFER_RESULT, outcome);
        self.persist_progress();
    }
}

/// An executed entry recorded for a party's REFER (not an action of the flow).
pub(super) fn is_inbound_record(action: &Action) -> bool {
    action.kind == "transfer" && action.option.get("direction") == Some(&json!("inbound"))
}

fn inbound_result(referrer: Referrer, target: &str, outcome: &str, code: u16) -> Value {
    json!({
        "result": outcome,
        "code": code,
        "referred_by": referrer.as_str(),
        "target": target,
    })
}
