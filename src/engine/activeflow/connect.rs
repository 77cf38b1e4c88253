//! `connect` and `message_send`: the activeflow places one leg per destination through the
//! dialer; the first leg to answer wins (the others are cancelled), the caller is answered if
//! it was not yet, and the two legs' media are relayed. The callee hanging up moves the flow
//! on; the caller hanging up ends it (and the callee gets BYE, see `end`). How it went is in
//! the action's `result` and in `connect.result` (`answered`, `busy`, `noanswer`, `rejected`,
//! `failed`) so a flow can branch on it. Before an answer the caller hears the callee's early
//! media (`early_media`, first leg to have it wins) or, if already answered, our in-band
//! ringback (`early.rs`). An `extension` destination rings every contact its phone registered
//! (one leg each); with none, its leg fails with reason `not_registered`.

use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::{json, Value};

use super::waiting::Awaiting;
use super::Activeflow;
use crate::call::outbound::{
    DialError, DialRequest, MessageOutcome, MessageRequest, PlacedLeg, Target,
};
use crate::call::{CallCommand, CallEndCause, CallEvent, CallId, HangupCause};
use crate::flow::outbound::{Address, AddressType, Connect, MessageSend};
use crate::flow::variables::CALL_SOURCE_PRIVACY;
use crate::flow::ActionId;
use crate::media::relay::RelayLink;
use crate::media::{MediaJob, MediaRequest};

/// The variable a flow branches on after `connect`.
pub(super) const CONNECT_RESULT: &str = "connect.result";
/// The caller's number, used as From when `source` is not given.
const CALL_SOURCE: &str = "call.source.target";

/// One leg `connect` placed.
pub(super) struct Dialed {
    target: String,
    call_id: Option<CallId>,
    pub(super) commands: Option<Recipient<CallCommand>>,
    /// `calling`, `ringing`, `answered`, or how it ended.
    status: &'static str,
    code: Option<u16>,
    /// Why it could not be placed (`not_registered`, ...).
    reason: Option<&'static str>,
}

/// A `connect` in progress.
pub(super) struct Connecting {
    pub(super) legs: Vec<Dialed>,
    /// The leg that answered, with when, and the caller's relay job.
    pub(super) winner: Option<(usize, Instant, MediaJob)>,
    pub(super) next: Option<ActionId>,
    /// Media before the answer: the option, the leg relayed early with the caller's relay
    /// job, and our ringback's job on the caller.
    pub(super) early_media: bool,
    pub(super) early: Option<(usize, MediaJob)>,
    pub(super) ringback: Option<MediaJob>,
    pub(super) ring_timeout_ms: u64,
    /// `transfer`: the bridged parties may REFER (off: their REFERs get 403).
    pub(super) transfer: bool,
}

/// The target of a `tel` or `sip` address; `None` for an `extension` (see `targets`).
fn target(address: &Address) -> Option<Target> {
    match address.kind {
        AddressType::Tel => Some(Target::Tel(address.target.clone())),
        AddressType::Sip => Some(Target::Sip(address.target.clone())),
        AddressType::Extension => None,
    }
}

/// The `connect.result` word for how an unanswered leg ended.
pub(super) fn leg_status(cause: CallEndCause) -> (&'static str, Option<u16>) {
    match cause {
        CallEndCause::Rejected(code @ (486 | 600)) => ("busy", Some(code)),
        CallEndCause::Rejected(code @ (408 | 480)) => ("noanswer", Some(code)),
        CallEndCause::NoAnswer => ("noanswer", None),
        CallEndCause::Rejected(code @ (403 | 603)) => ("rejected", Some(code)),
        CallEndCause::Rejected(code) => ("failed", Some(code)),
        _ => ("failed", None),
    }
}

impl Activeflow {
    /// Places the legs; true when none could be placed (the flow goes on at once).
    pub(super) fn start_connect(
        &mut self,
        spec: Connect,
        next: Option<ActionId>,
        ctx: &mut Context<Self>,
    ) -> bool {
        let source = self.source_of(spec.source.as_ref());
        let mut legs = Vec::with_capacity(spec.destinations.len());
        for (destination, target) in self.targets(&spec.destinations) {
            let mut dialed = Dialed {
                target: destination.target.clone(),
                call_id: None,
                commands: None,
                status: "calling",
                code: None,
                reason: None,
            };
            let target = match target {
                Ok(t) => t,
                Err(e) => {
                    tracing::info!(activeflow_id = %self.id, error = %e, "connect leg not placed");
                    dialed.status = "failed";
                    dialed.reason = Some(e.reason());
                    self.merge_result(
                        json!({ "errors": { destination.target.clone(): e.to_string() } }),
                    );
                    legs.push(dialed);
                    continue;
                }
            };
            let anonymous = spec.anonymous.hides(self.caller_private());
            let trunk = spec.trunk.clone();
            match self.dial_leg(
                target,
                trunk,
                source.clone(),
                spec.ring_timeout_ms,
                anonymous,
                ctx,
            ) {
                Ok(leg) => {
                    dialed.call_id = Some(leg.call_id);
                    dialed.commands = Some(leg.commands);
                }
                Err(e) => {
                    tracing::info!(activeflow_id = %self.id, error = %e, "connect leg not placed");
                    dialed.status = "failed";
                    dialed.reason = Some(e.reason());
                    self.merge_result(
                        json!({ "errors": { destination.target.clone(): e.to_string() } }),
                    );
                }
            }
            legs.push(dialed);
        }
        let connecting = Connecting {
            legs,
            winner: None,
            next,
            early_media: spec.early_media,
            early: None,
            ringback: None,
            ring_timeout_ms: spec.ring_timeout_ms,
            transfer: spec.transfer,
        };
        // Every destination may have failed at once: then the flow goes on now.
        if self.settle_connect(&connecting) {
            return true;
        }
        self.awaiting = Some(Awaiting::Connect(connecting));
        false
    }

    /// Places one leg whose events come to this activeflow (`connect`, `queue_join`).
    pub(super) fn dial_leg(
        &self,
        target: Target,
        trunk: Option<String>,
        source: String,
        ring_timeout_ms: u64,
        anonymous: bool,
        ctx: &mut Context<Self>,
    ) -> Result<PlacedLeg, DialError> {
        let leg = self.links.dialer.dial(DialRequest {
            target,
            trunk,
            source,
            ring_timeout: Duration::from_millis(ring_timeout_ms),
            events: ctx.address().recipient(),
            parent: self.call.as_ref().map(|c| c.id),
            anonymous,
        })?;
        crate::call::span::record_activeflow(&leg.span, self.id);
        Ok(leg)
    }

    /// Each destination with the target(s) to dial: an `extension` expands to one per
    /// registered contact, or to its error.
    pub(super) fn targets<'a>(
        &self,
        destinations: &'a [Address],
    ) -> Vec<(&'a Address, Result<Target, DialError>)> {
        let mut out = Vec::with_capacity(destinations.len());
        for destination in destinations {
            match target(destination) {
                Some(t) => out.push((destination, Ok(t))),
                None => match self.links.dialer.extension(&destination.target) {
                    Ok(contacts) => out.extend(contacts.into_iter().map(|t| (destination, Ok(t)))),
                    Err(e) => out.push((destination, Err(e))),
                },
            }
        }
        out
    }

    /// An event of a leg `connect` placed (not of our own call).
    pub(super) fn on_leg_event(&mut self, event: CallEvent, ctx: &mut Context<Self>) {
        if let Some(Awaiting::Queue(_)) = &self.awaiting {
            return self.on_queue_leg_event(event, ctx);
        }
        // A late event of a leg of a finished connect or queue (a 487 after our CANCEL, say):
        // whatever it says, that leg is (being) hung up, and the current wait is not its own.
        if !matches!(self.awaiting, Some(Awaiting::Connect(_))) {
            return;
        }
        let Some(Awaiting::Connect(mut connecting)) = self.awaiting.take() else {
            return;
        };
        let id = match &event {
            CallEvent::Progress { call_id, .. }
            | CallEvent::EarlyMedia { call_id }
            | CallEvent::Answered { call_id }
            | CallEvent::Ended { call_id, .. } => Some(*call_id),
            _ => None,
        };
        let found = id.and_then(|id| connecting.legs.iter().position(|l| l.call_id == Some(id)));
        let Some(index) = found else {
            self.awaiting = Some(Awaiting::Connect(connecting));
            return;
        };
        match event {
            CallEvent::Progress { .. } => {
                if connecting.legs[index].status == "calling" {
                    connecting.legs[index].status = "ringing";
                }
                self.ring_caller(&mut connecting);
            }
            CallEvent::EarlyMedia { .. } => self.leg_early_media(&mut connecting, index),
            CallEvent::Answered { .. } => self.leg_answered(&mut connecting, index),
            CallEvent::Ended { cause, .. } => {
                if connecting.winner.is_some_and(|(w, _, _)| w == index) {
                    return self.callee_hung_up(connecting, ctx);
                }
                let (status, code) = leg_status(cause);
                let leg = &mut connecting.legs[index];
                // A leg we cancelled (another answered) stays `cancelled`.
                if leg.status != "cancelled" {
                    leg.status = status;
                }
                leg.code = code;
                leg.commands = None;
                self.early_leg_ended(&mut connecting, index);
                if self.settle_connect(&connecting) {
                    self.stop_early(&mut connecting);
                    return self.resume(connecting.next, ctx);
                }
            }
            _ => {}
        }
        self.awaiting = Some(Awaiting::Connect(connecting));
    }

    /// The first leg to answer wins: the others are cancelled, the caller answered if needed,
    /// and the media of both relayed. A later answer is hung up.
    fn leg_answered(&mut self, connecting: &mut Connecting, index: usize) {
        if connecting.winner.is_some() {
            if let Some(commands) = connecting.legs[index].commands.take() {
                commands.do_send(CallCommand::Hangup(HangupCause::Normal));
            }
            connecting.legs[index].status = "cancelled";
            return;
        }
        connecting.legs[index].status = "answered";
        if let Some(job) = connecting.ringback.take() {
            self.stop_caller_media(job);
        }

        for (i, leg) in connecting.legs.iter_mut().enumerate() {
            if i != index && matches!(leg.status, "calling" | "ringing") {
                if let Some(commands) = leg.commands.take() {
                    commands.do_send(CallCommand::Hangup(HangupCause::Normal));
                }
                leg.status = "cancelled";
            }
        }
        // A fresh relay pair always, also for the leg whose early media was relayed: the
        // caller's early relay may never have started (a late offer, no RTP port free, its
        // 183 still waiting for a PRACK), and a new relay replaces a running one on both legs.
        connecting.early = None;
        let caller_job = self.bridge_caller(connecting.legs[index].commands.as_ref());
        connecting.winner = Some((index, Instant::now(), caller_job));
        let target = connecting.legs[index].target.clone();
        self.set_variable("connect.destination", target);
        // Bridged: with `transfer` on, either party may now transfer the other away by REFER.
        if connecting.transfer {
            self.allow_transfer(connecting.legs[index].commands.as_ref(), true);
        }
    }

    /// Relays the caller's media with an answered leg's (a fresh relay pair; the caller is
    /// answered if it was not yet): the caller's relay job (`connect`, `queue_join`).
    pub(super) fn bridge_caller(&mut self, leg: Option<&Recipient<CallCommand>>) -> MediaJob {
        let (caller_end, callee_end) = RelayLink::pair();
        self.last_job += 1;
        let caller_job = MediaJob(self.last_job);
        self.last_job += 1;
        let callee_job = MediaJob(self.last_job);
        if let Some(commands) = leg {
            commands.do_send(CallCommand::Media {
                job: callee_job,
                request: MediaRequest::Relay(callee_end),
            });
        }
        if let Some(call) = self.call.as_ref().filter(|_| !self.call_released) {
            // A no-op when the flow answered already.
            call.commands.do_send(CallCommand::Answer);
            call.commands.do_send(CallCommand::Media {
                job: caller_job,
                request: MediaRequest::Relay(caller_end),
            });
        }
        caller_job
    }

    /// The callee hung up after answering: the flow goes on with `connect.result = answered`.
    fn callee_hung_up(&mut self, connecting: Connecting, ctx: &mut Context<Self>) {
        let Some((index, since, caller_job)) = connecting.winner else {
            return;
        };
        if let Some(call) = self.call.as_ref().filter(|_| !self.call_released) {
            call.commands
                .do_send(CallCommand::StopMedia { job: caller_job });
        }
        self.allow_transfer(None, false);
        // A transfer the caller asked for has nobody left to bridge its target with.
        self.cancel_caller_transfer(ctx);
        self.set_variable(CONNECT_RESULT, "answered");
        let mut result = connect_result("answered", &connecting.legs);
        result["answered_destination"] = json!(connecting.legs[index].target);
        result["duration_ms"] = json!(since.elapsed().as_millis() as u64);
        result["ended_by"] = json!("callee");
        self.merge_result(result);
        self.resume(connecting.next, ctx);
    }

    /// With no leg left ringing and none answered: records the outcome and answers true (the
    /// connect is over; the caller resumes the flow).
    fn settle_connect(&mut self, connecting: &Connecting) -> bool {
        let pending = connecting
            .legs
            .iter()
            .any(|l| matches!(l.status, "calling" | "ringing" | "answered"));
        if pending || connecting.winner.is_some() {
            return false;
        }
        // The most telling outcome among the legs.
        let outcome = ["busy", "noanswer", "rejected", "failed"]
            .into_iter()
            .find(|s| connecting.legs.iter().any(|l| l.status == *s))
            .unwrap_or("failed");
        let result = connect_result(outcome, &connecting.legs);
        self.set_variable(CONNECT_RESULT, outcome);
        self.merge_result(result);
        true
    }

    /// The From user: the action's `source`, or the caller's number.
    pub(super) fn source_of(&self, source: Option<&Address>) -> String {
        match source {
            Some(s) => s.target.clone(),
            None => self
                .variables
                .get(CALL_SOURCE)
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// Whether the caller asked not to be identified (`call.source.privacy` is `yes`, seeded
    /// from its INVITE); false without a call or the variable.
    fn caller_private(&self) -> bool {
        self.variables.get(CALL_SOURCE_PRIVACY) == Some("yes")
    }

    /// Hangs up every leg a `connect` still holds (the activeflow is ending).
    pub(super) fn release_legs(&mut self) {
        if let Some(Awaiting::Connect(connecting)) = &mut self.awaiting {
            for leg in &mut connecting.legs {
                if let Some(commands) = leg.commands.take() {
                    commands.do_send(CallCommand::Hangup(HangupCause::Normal));
                }
            }
        }
    }

    /// Sends every MESSAGE at once; the flow goes on when each has its final status.
    pub(super) fn start_message_send(
        &mut self,
        spec: MessageSend,
        next: Option<ActionId>,
        ctx: &mut Context<Self>,
    ) {
        let source = self.source_of(spec.source.as_ref());
        let mut pending = Vec::new();
        for destination in &spec.destinations {
            // Validation keeps `extension` out of message_send; refused here all the same.
            let sent = match target(destination) {
                Some(target) => self.links.dialer.send_message(MessageRequest {
                    target,
                    trunk: spec.trunk.clone(),
                    source: source.clone(),
                    text: spec.text.clone(),
                }),
                None => Err(DialError::NotRegistered(destination.target.clone())),
            };
            pending.push((destination.target.clone(), sent));
        }
        self.awaiting = Some(Awaiting::Http { next });
        let all = async move {
            let mut statuses = Vec::with_capacity(pending.len());
            for (target, sent) in pending {
                let entry = match sent {
                    Err(e) => json!({ "target": target, "error": e.to_string() }),
                    Ok(rx) => match rx.await {
                        Ok(MessageOutcome::Status(code)) => json!({
                            "target": target,
                            "status": code,
                            "delivered": (200..300).contains(&code),
                        }),
                        Ok(MessageOutcome::Timeout) => {
                            json!({ "target": target, "error": "no response (timeout)" })
                        }
                        Ok(MessageOutcome::Failed(why)) => {
                            json!({ "target": target, "error": why })
                        }
                        Err(_) => json!({ "target": target, "error": "sender stopped" }),
                    },
                };
                statuses.push(entry);
            }
            statuses
        };
        ctx.spawn(all.into_actor(self).map(|statuses, act, ctx| {
            let Some(Awaiting::Http { next }) = act.awaiting.take() else {
                return;
            };
            let delivered = statuses.iter().filter(|s| s["delivered"] == true).count();
            act.merge_result(json!({ "destinations": statuses, "delivered": delivered }));
            act.resume(next, ctx);
        }));
    }
}

impl Connecting {
    /// The commands of the leg `id` while this connect holds it.
    pub(super) fn leg_commands(&self, id: CallId) -> Option<Recipient<CallCommand>> {
        let leg = self.legs.iter().find(|l| l.call_id == Some(id))?;
        leg.commands.clone()
    }

    /// The callee bridged with the caller: its id and commands (for a transfer).
    pub(super) fn bridged(&self) -> Option<(CallId, Recipient<CallCommand>)> {
        let (index, _, _) = self.winner?;
        let leg = self.legs.get(index)?;
        Some((leg.call_id?, leg.commands.clone()?))
    }

    /// The callee transferred itself away: `call_id` is bridged with the caller in its place
    /// (on the caller's relay job `caller_job`) and ends the connect when it hangs up.
    pub(super) fn replace_winner(
        &mut self,
        call_id: CallId,
        commands: Recipient<CallCommand>,
        target: String,
        caller_job: MediaJob,
    ) {
        if let Some((index, _, job)) = &mut self.winner {
            if let Some(leg) = self.legs.get_mut(*index) {
                leg.call_id = Some(call_id);
                leg.commands = Some(commands);
                leg.target = target;
                *job = caller_job;
            }
        }
    }
}

fn connect_result(outcome: &str, legs: &[Dialed]) -> Value {
    let destinations: Vec<Value> = legs
        .iter()
        .map(|l| {
            let mut v = json!({ "target": l.target, "status": l.status, "code": l.code });
            if let Some(reason) = l.reason {
                v["reason"] = json!(reason);
            }
            v
        })
        .collect();
    json!({ "result": outcome, "destinations": destinations })
}
