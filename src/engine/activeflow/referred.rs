//! A party bridged by `connect` REFERs (RFC 3515, accepted 202 by its call): the engine dials
//! the Refer-To target as `connect` does, bridges the *other* party with it, reports to the
//! referrer in NOTIFYs (the call sends them) and lets the referrer's leg hang up. When the
//! caller leaves, the activeflow keeps the two parties bridged until one hangs up; when the
//! callee leaves, the target takes its place in the `connect`. Recorded as an executed
//! `transfer` entry (`direction` `inbound`) and `transfer.result`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::{json, Value};

use super::transfer::TRANSFER_RESULT;
use super::waiting::Awaiting;
use super::Activeflow;
use crate::call::outbound::{DialError, DialRequest, Target};
use crate::call::{CallCommand, CallEndCause, CallEvent, CallId, HangupCause};
use crate::engine::EndReason;
use crate::flow::{Action, ActionId, CALL_SOURCE_TARGET};
use crate::media::relay::RelayLink;
use crate::media::{MediaJob, MediaRequest};

/// How long the leg to a Refer-To target may ring (as `connect`'s default `ring_timeout`).
const TRANSFER_RING_TIMEOUT: Duration = Duration::from_secs(30);
/// REFERs the bridged parties of one activeflow may make in all; later ones get 403 (each
/// one dials, sends NOTIFYs and writes history).
pub(super) const MAX_REFERS: u8 = 3;

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
    referrer_id: CallId,
    /// The referrer hung up before the outcome (many phones send BYE right after the 202):
    /// its end, replayed if the transfer fails so that the flow sees it then.
    referrer_gone: Option<CallEndCause>,
}

impl InboundTransfer {
    /// The leg to the Refer-To target.
    pub(super) fn leg_id(&self) -> CallId {
        self.leg.0
    }

    /// The leg of the party that sent the REFER.
    pub(super) fn referrer_id(&self) -> CallId {
        self.referrer_id
    }
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

/// Whether a Refer-To must not be dialled: a `sip:`/`sips:` URI whose host is an IP literal
/// in loopback, link-local, unspecified (`0.0.0.0/8`, `::`), multicast or broadcast, or one of
/// the engine's own addresses (`is_own`): a peer must not make the engine reach internal
/// hosts. Host names are dialled (resolved as any `connect` target); `tel:` goes to a trunk.
fn forbidden_target(uri: &str, is_own: impl Fn(IpAddr) -> bool) -> bool {
    let lower = uri.to_ascii_lowercase();
    let Some(rest) = ["sip:", "sips:"].iter().find_map(|s| lower.strip_prefix(s)) else {
        return false;
    };
    let rest = rest.split(['?', '>']).next().unwrap_or_default();
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = hostport.split(';').next().unwrap_or_default();
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => hostport.split(':').next().unwrap_or_default(),
    };
    let Ok(ip) = host.parse::<IpAddr>() else {
        return false;
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let internal = match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_link_local()
                || v4.octets()[0] == 0
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    };
    internal || is_own(ip)
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
        DialError::Route(_) | DialError::NotRegistered(_) => 404,
        DialError::TooManyHops => 483,
        DialError::NotReady | DialError::AtCapacity => 503,
    }
}

impl Activeflow {
    /// After the caller left: the bridge's legs, and the caller's own (it is hung up by then).
    pub(super) fn in_bridge(&self, call_id: CallId, ours: Option<CallId>) -> bool {
        match &self.awaiting {
            Some(Awaiting::Transferred(b)) => {
                Some(call_id) == ours || b.legs.iter().any(|(id, _)| *id == call_id)
            }
            _ => false,
        }
    }

    /// A bridged party REFERred (the call answered 202): dial its target.
    pub(super) fn on_refer(&mut self, from: CallId, target: String, ctx: &mut Context<Self>) {
        let ours = self.call.as_ref().map(|c| c.id);
        let bridged = match &self.awaiting {
            Some(Awaiting::Connect(c)) => c.bridged(),
            _ => None,
        };
        let Some((callee_id, callee_commands)) = bridged else {
            // The bridge ended between the call's 202 and now.
            return self.notify_referrer(from, 403);
        };
        let (referrer, referrer_commands) = match &self.call {
            Some(call) if Some(from) == ours => (Referrer::Caller, call.commands.clone()),
            _ if from == callee_id => (Referrer::Callee, callee_commands.clone()),
            // A party no longer bridged (its REFER crossed our Transferable(false)).
            _ => return self.notify_referrer(from, 403),
        };
        self.refers = self.refers.saturating_add(1);
        if self.refers >= MAX_REFERS {
            // That was the last one: both parties' later REFERs get 403 from their call.
            self.allow_transfer(Some(&callee_commands), false);
        }
        if self.refers > MAX_REFERS {
            return self.notify_referrer(from, 403);
        }
        if forbidden_target(&target, |ip| self.links.http.is_own(ip)) {
            tracing::warn!(activeflow_id = %self.id, %target, "REFER to an internal address refused");
            crate::metrics::transfer("inbound", "rejected");
            referrer_commands.do_send(CallCommand::TransferNotify {
                status: 403,
                then_hangup: false,
            });
            let mut result = inbound_result(referrer, &target, "failed", 403);
            result["error"] = json!("the Refer-To host is an internal or own address");
            return self.record_inbound(&target, result);
        }
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
            anonymous: false,
        };
        tracing::info!(activeflow_id = %self.id, %target, referrer = referrer.as_str(), "REFER accepted");
        match self.links.dialer.dial(request) {
            Ok(leg) => {
                crate::call::span::record_activeflow(&leg.span, self.id);
                self.transfer = Some(Box::new(InboundTransfer {
                    referrer,
                    referrer_commands,
                    target,
                    leg: (leg.call_id, leg.commands),
                    started: Instant::now(),
                    referrer_id: from,
                    referrer_gone: None,
                }));
            }
            Err(e) => {
                tracing::info!(activeflow_id = %self.id, error = %e, "transfer target not dialled");
                let status = dial_failure_status(&e);
                crate::metrics::transfer("inbound", "failed");
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

    /// The referrer hung up while its target rings: the transfer goes on without it.
    pub(super) fn referrer_left(&mut self, cause: CallEndCause, ours: Option<CallId>) {
        let Some(t) = self.transfer.as_mut() else {
            return;
        };
        t.referrer_gone = Some(cause);
        if Some(t.referrer_id) == ours {
            self.call_released = true;
        }
    }

    /// A final NOTIFY for a REFER the engine cannot carry out, to whichever leg sent it (a
    /// leg we no longer hold is being hung up: its subscription ends with it).
    fn notify_referrer(&self, from: CallId, status: u16) {
        let notify = CallCommand::TransferNotify {
            status,
            then_hangup: false,
        };
        match self.commands_of(from) {
            Some(commands) => commands.do_send(notify),
            None => tracing::debug!(activeflow_id = %self.id, %from, "REFER of a released leg"),
        }
    }

    /// The commands of any leg this activeflow holds: its call, a connect's legs, a
    /// transfer's target, a bridge's parties.
    fn commands_of(&self, id: CallId) -> Option<Recipient<CallCommand>> {
        if let Some(call) = self.call.as_ref().filter(|c| c.id == id) {
            return Some(call.commands.clone());
        }
        let held = match &self.awaiting {
            Some(Awaiting::Connect(c)) => c.leg_commands(id),
            Some(Awaiting::Transferred(b)) => b
                .legs
                .iter()
                .find(|(leg, _)| *leg == id)
                .map(|(_, commands)| commands.clone()),
            _ => None,
        };
        held.or_else(|| {
            self.transfer
                .as_ref()
                .filter(|t| t.leg.0 == id)
                .map(|t| t.leg.1.clone())
        })
    }

    /// The callee hung up while the caller's REFER target rings: nobody is left to bridge
    /// the target with, so its leg is hung up and the caller gets its last NOTIFY (487); a
    /// caller that left meanwhile ends the activeflow as the hang-up it was.
    pub(super) fn cancel_caller_transfer(&mut self, ctx: &mut Context<Self>) {
        if !self
            .transfer
            .as_ref()
            .is_some_and(|t| t.referrer == Referrer::Caller)
        {
            return;
        }
        let Some(t) = self.transfer.take() else {
            return;
        };
        t.leg.1.do_send(CallCommand::Hangup(HangupCause::Normal));
        t.referrer_commands.do_send(CallCommand::TransferNotify {
            status: 487,
            then_hangup: false,
        });
        if let Some(gone) = t.referrer_gone {
            ctx.notify(CallEvent::Ended {
                call_id: t.referrer_id,
                cause: gone,
            });
        }
        crate::metrics::transfer("inbound", "failed");
        let result = inbound_result(t.referrer, &t.target, "failed", 487);
        self.record_inbound(&t.target, result);
    }

    /// An event of the leg to the Refer-To target.
    pub(super) fn on_transfer_leg(&mut self, event: CallEvent, ctx: &mut Context<Self>) {
        match event {
            CallEvent::Answered { .. } => self.transfer_answered(),
            CallEvent::Ended { cause, .. } => {
                let Some(t) = self.transfer.take() else {
                    return;
                };
                if let Some(gone) = t.referrer_gone {
                    // Nobody is left to stay with the other party: the referrer's end now
                    // counts as the hang-up it was (the caller's ends the activeflow, the
                    // callee's ends the connect).
                    ctx.notify(CallEvent::Ended {
                        call_id: t.referrer_id,
                        cause: gone,
                    });
                }
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
                if self.refers < MAX_REFERS {
                    new_commands.do_send(CallCommand::Transferable(true));
                }
            }
        }
        crate::metrics::transfer("inbound", "transferred");
        let mut result = inbound_result(t.referrer, &t.target, "transferred", 200);
        result["setup_ms"] = json!(t.started.elapsed().as_millis() as u64);
        self.record_inbound(&t.target, result);
    }

    /// A party of the bridge the caller left hung up: the other is hung up, the activeflow ends.
    pub(super) fn on_bridge_end(
        &mut self,
        call_id: CallId,
        ours: Option<CallId>,
        ctx: &mut Context<Self>,
    ) {
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

    /// The activeflow is ending: hang up the leg to a transfer target and a bridge's legs (a
    /// `transfer` action's timer finds nothing to do once `awaiting` is cleared). Needs no
    /// context: `abandon` calls it too.
    pub(super) fn release_transfer(&mut self) {
        if let Some(t) = self.transfer.take() {
            t.leg.1.do_send(CallCommand::Hangup(HangupCause::Normal));
            t.referrer_commands.do_send(CallCommand::TransferNotify {
                status: 487,
                then_hangup: false,
            });
        }
        if let Some(Awaiting::Transferred(bridge)) = &self.awaiting {
            for (_, commands) in &bridge.legs {
                commands.do_send(CallCommand::Hangup(HangupCause::Normal));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3515 §5 (security: the REFER recipient must not blindly act on any URI): IP
    /// literals the engine must not reach are refused; names, public addresses and tel: pass.
    #[test]
    fn internal_and_own_refer_targets_are_refused() {
        let own: IpAddr = "198.51.100.9".parse().unwrap();
        let is_own = |ip: IpAddr| ip == own;
        for uri in [
            "sip:x@127.0.0.1:6379;transport=tcp",
            "sip:169.254.169.254",
            "sips:x@[::1]:5061",
            "sip:x@[fe80::1]",
            "sip:x@0.0.0.0",
            "sip:x@0.1.2.3:80",
            "sip:x@224.0.0.1",
            "sip:x@[::ffff:127.0.0.1]",
            "SIP:x@198.51.100.9:5060",
            "sip:a;npdi@[::]",
        ] {
            assert!(forbidden_target(uri, is_own), "{uri}");
        }
        for uri in [
            "sip:carol@localhost:5070",
            "sip:carol@203.0.113.5:5060",
            "sip:carol@[2001:db8::1]",
            "tel:+15550100",
            "sip:127.0.0.1@example.com",
        ] {
            assert!(!forbidden_target(uri, is_own), "{uri}");
        }
    }
}
