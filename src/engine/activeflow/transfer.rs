//! The `transfer` action (blind transfer, RFC 3515): REFER the caller to a destination and
//! wait for its NOTIFYs: `transferred` (the last sipfrag is 2xx: the call ends), `failed`
//! (another final status: the flow goes on), `rejected` (the REFER itself was refused). Also
//! the entry point for every transfer event: a bridged party's own REFER is `referred.rs`.

use std::time::Duration;

use actix::prelude::*;
use serde_json::json;

use super::waiting::Awaiting;
use super::Activeflow;
use crate::call::outbound::Target;
use crate::call::{CallCommand, CallEvent};
use crate::engine::EndReason;
use crate::flow::outbound::{AddressType, Transfer};
use crate::flow::ActionId;

/// The variable a flow branches on after a transfer.
pub(super) const TRANSFER_RESULT: &str = "transfer.result";
/// Longest wait, after our REFER, for the peer's last NOTIFY (its own call attempt rings
/// meanwhile; RFC 3515 leaves the length to the referrer).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(90);

/// The `transfer` action in progress.
pub(super) struct Referring {
    next: Option<ActionId>,
    target: String,
    timer: Option<SpawnHandle>,
}

impl Activeflow {
    /// Lets (or stops letting) the bridged parties REFER: the callee leg given, and our call.
    /// Never once the activeflow took its last REFER (`referred::MAX_REFERS`).
    pub(super) fn allow_transfer(&self, callee: Option<&Recipient<CallCommand>>, allowed: bool) {
        let allowed = allowed && self.refers < super::referred::MAX_REFERS;
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
            AddressType::Extension => {
                // Validation refuses it; should one come anyway, it fails cleanly.
                self.fail_current("an extension is no transfer destination");
                self.finish_transfer("failed", None);
                return true;
            }
            AddressType::Tel => {
                let tel = Target::Tel(destination.target.clone());
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
                // The leg forgets our REFER: a later `transfer` may REFER again.
                if let Some(call) = &act.call {
                    call.commands.do_send(CallCommand::ReferAbandoned);
                }
                act.end_referring("failed", None, ctx);
            }
        });
        self.merge_result(json!({ "target": target }));
        self.awaiting = Some(Awaiting::Transfer(Referring {
            next,
            target,
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
                    Some(Awaiting::Transfer(_)) if !(200..300).contains(&code) => {
                        self.end_referring("rejected", Some(code), ctx)
                    }
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
                if self
                    .transfer
                    .as_ref()
                    .is_some_and(|t| t.leg_id() == call_id) =>
            {
                self.on_transfer_leg(event, ctx);
                None
            }
            CallEvent::Ended { call_id, cause }
                if self
                    .transfer
                    .as_ref()
                    .is_some_and(|t| t.referrer_id() == call_id) =>
            {
                self.referrer_left(cause, ours);
                None
            }
            CallEvent::Ended { call_id, .. } if self.in_bridge(call_id, ours) => {
                self.on_bridge_end(call_id, ours, ctx);
                None
            }
            event => Some(event),
        }
    }
}
