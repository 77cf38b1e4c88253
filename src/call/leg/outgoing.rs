//! The outgoing role (UAC, RFC 3261 §13.2): our INVITE with its SDP offer, the callee's
//! provisionals and final, CANCEL (owed until a provisional allows it, §9.1), the ACKs (the
//! transaction's for a non-2xx, the dialog's for a 2xx, §13.2.2.4) and the ring timeout. Timer
//! B ends a callee that never answers at all; once it rings, only the ring timeout ends it.

use std::time::Duration;

use bytes::Bytes;
use rsip::prelude::*;
use tokio::time::Instant;

use super::failover::{Failover, FailoverReason};
use super::{Env, Leg, MediaState, Phase, Role};
use crate::call::events::{CallEndCause, CallEvent};
use crate::call::outbound::Route;
use crate::call::CallId;
use crate::sip::dialog::Dialog;
use crate::sip::message::{new_branch, RequestBuilder, TransactionKey};
use crate::sip::transaction::{
    ClientInviteTransaction, ClientNonInviteTransaction, InviteResponse, TransactionOutput,
};
use crate::sip::transport::{Peer, TransportKind};

/// The CSeq of our first INVITE (and of its CANCEL and ACK).
pub(crate) const INVITE_CSEQ: u32 = 1;

pub(crate) struct Outgoing {
    pub(crate) route: Route,
    /// Our From (`<sip:source@us>`).
    pub(super) local_uri: String,
    /// The INVITE's branch, shared by its CANCEL and non-2xx ACK.
    pub(super) branch: String,
    /// The INVITE's CSeq (one more after a 422 retry or a failover).
    pub(super) invite_cseq: u32,
    /// PRACKs for reliable provisionals (RFC 3262 §4, `early.rs`).
    pub(super) early: super::early::UacEarly,
    /// The `Session-Expires` a 422's `Min-SE` asked for (RFC 4028 §7.4), once.
    session_expires: Option<u32>,
    /// Max-Forwards of our INVITE (the caller's less one when bridging, §16.6 step 3 in spirit).
    pub(super) max_forwards: u8,
    pub(super) invite_tx: Option<ClientInviteTransaction>,
    /// The INVITE a 422 or 401/407 made us resend, with its branch: it re-ACKs its final's
    /// retransmissions until Timer D (§17.1.1.2), as any completed INVITE transaction.
    previous: Option<Box<(String, ClientInviteTransaction)>>,
    /// Where the previous INVITE went (another target after a 503 failover).
    previous_peer: Option<Peer>,
    cancel_tx: Option<ClientNonInviteTransaction>,
    /// The ACK for the callee's 2xx, sent again for each retransmitted 2xx.
    ack: Option<Bytes>,
    pub(super) ring_timeout: Duration,
    pub(super) ring_deadline: Option<Instant>,
    /// A CANCEL is owed as soon as a provisional arrives (RFC 3261 §9.1).
    cancel_owed: bool,
    /// The resolved targets still to try (RFC 3263 §4.3).
    pub(super) failover: Failover,
    /// Identity headers our INVITE carries (P-Asserted-Identity, Privacy, Diversion).
    headers: Vec<(String, String)>,
    /// The trunk's digest credentials and the challenge state of our requests (`auth.rs`).
    pub(super) auth: Option<Box<super::auth::LegAuth>>,
}

impl Outgoing {
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        [
            self.ring_deadline,
            self.failover.deadline(),
            self.invite_tx.as_ref().and_then(|t| t.next_deadline()),
            self.previous
                .as_deref()
                .and_then(|(_, t)| t.next_deadline()),
            self.cancel_tx.as_ref().and_then(|t| t.next_deadline()),
            self.early.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(super) fn on_end(&mut self) {
        self.ring_deadline = None;
        self.failover.disarm();
    }

    /// Until Timer D (or M) ends it, the INVITE transaction re-ACKs retransmitted finals;
    /// a CANCEL waits for its answer.
    pub(super) fn is_done(&self) -> bool {
        self.invite_tx.as_ref().is_none_or(|t| t.is_terminated())
            && self
                .previous
                .as_deref()
                .is_none_or(|(_, t)| t.is_terminated())
            && self.cancel_tx.as_ref().is_none_or(|t| t.is_completed())
            && self.failover.is_settled()
    }

    /// Keeps a completed INVITE transaction (and where it went) to re-ACK its final's
    /// retransmissions until Timer D.
    pub(super) fn keep_previous(
        &mut self,
        branch: String,
        tx: Option<ClientInviteTransaction>,
        peer: Option<Peer>,
    ) {
        self.previous = tx.map(|tx| Box::new((branch, tx)));
        self.previous_peer = peer;
    }
}

/// What a leg to place is made of.
pub(crate) struct Placement {
    pub(crate) route: Route,
    /// Our From (`<sip:source@us>`).
    pub(crate) local_uri: String,
    pub(crate) max_forwards: u8,
    pub(crate) ring_timeout: Duration,
    /// Extra headers of the INVITE (caller identity, RFC 3325 / RFC 5806).
    pub(crate) headers: Vec<(String, String)>,
    /// The trunk's digest credentials, when it has them.
    pub(crate) credentials: Option<std::sync::Arc<crate::call::trunk::TrunkCredentials>>,
}

impl Leg {
    /// A leg to place: nothing is sent until [`Leg::resolved`] names the next hop.
    pub(crate) fn outgoing(
        id: CallId,
        sip_call_id: String,
        local_tag: String,
        placement: Placement,
        env: &Env,
        now: Instant,
    ) -> Leg {
        let role = Outgoing {
            route: placement.route,
            local_uri: placement.local_uri,
            branch: new_branch(),
            invite_cseq: INVITE_CSEQ,
            early: Default::default(),
            session_expires: None,
            max_forwards: placement.max_forwards,
            invite_tx: None,
            previous: None,
            previous_peer: None,
            cancel_tx: None,
            ack: None,
            ring_timeout: placement.ring_timeout,
            ring_deadline: None,
            cancel_owed: false,
            failover: Failover::default(),
            headers: placement.headers,
            auth: placement
                .credentials
                .map(|c| Box::new(super::auth::LegAuth::new(c))),
        };
        Leg::new(
            id,
            sip_call_id,
            Role::Outgoing(Box::new(role)),
            None,
            local_tag,
            env,
            now,
        )
    }

    pub(super) fn role_out(&mut self) -> Option<&mut Outgoing> {
        match &mut self.role {
            Role::Outgoing(o) => Some(o),
            Role::Incoming(_) => None,
        }
    }

    /// Where a leg we place goes (`None` for a call we answer).
    pub(crate) fn outgoing_route(&self) -> Option<&Route> {
        self.outgoing_ref().map(|o| &o.route)
    }

    pub(super) fn outgoing_ref(&self) -> Option<&Outgoing> {
        match &self.role {
            Role::Outgoing(o) => Some(o),
            Role::Incoming(_) => None,
        }
    }

    /// A request of the INVITE transaction (INVITE, CANCEL, non-2xx ACK): same branch and CSeq.
    fn transaction_request(&self, method: rsip::Method, env: &Env) -> Option<RequestBuilder> {
        let o = self.outgoing_ref()?;
        let transport = self.peer?.transport;
        let b = RequestBuilder::new(method, &o.route.request_uri)
            .via(
                &env.sent_by_over(transport),
                transport.via_token(),
                &o.branch,
            )
            .from_addr(&o.local_uri, &self.local_tag)
            .call_id(&self.sip_call_id)
            .cseq(o.invite_cseq)
            .max_forwards(o.max_forwards);
        Some(super::auth::with_invite_credentials(b, o.auth.as_deref()))
    }

    fn to_uri(&self) -> String {
        self.outgoing_ref()
            .map(|o| format!("<{}>", o.route.request_uri))
            .unwrap_or_default()
    }

    /// The next hop is one known target: send the INVITE (with our SDP offer) and start
    /// ringing. (The shell hands over every target: [`Leg::resolved_targets`].)
    #[cfg(test)]
    pub(crate) fn resolved(&mut self, peer: crate::sip::transport::Peer, env: &Env, now: Instant) {
        self.resolved_targets(vec![peer], env, now);
    }

    /// Our INVITE with our SDP offer, through a new client INVITE transaction.
    pub(super) fn send_invite(&mut self, env: &Env, now: Instant) {
        let Some(peer) = self.peer else { return };
        let sdp = self.local_sdp(env).unwrap_or_default();
        let Some(b) = self.transaction_request(rsip::Method::Invite, env) else {
            return;
        };
        let sips = self.outgoing_ref().is_some_and(|o| {
            let uri = o.route.request_uri.trim_start();
            uri.get(..5)
                .is_some_and(|s| s.eq_ignore_ascii_case("sips:"))
        });
        let mut b = b
            .to_addr(&self.to_uri(), None)
            .contact(&env.contact_secure(Some(&peer), sips))
            .header("Allow", super::incoming::ALLOW);
        for (name, value) in self.outgoing_ref().map_or(&[][..], |o| &o.headers) {
            b = b.header(name, value);
        }
        let asked = self.outgoing_ref().and_then(|o| o.session_expires);
        if let Some(seconds) = asked.or(env.session_expires) {
            // RFC 4028 §7.1: we support timers and ask for ours; the 2xx says who refreshes.
            b = b
                .header("Supported", "100rel, timer")
                .header("Session-Expires", &seconds.to_string())
                .header("Min-SE", &env.min_se.to_string());
        } else {
            // RFC 3262 §4: the callee may send its provisionals reliably.
            b = b.header("Supported", super::reliable::TAG);
        }
        let bytes = b.body("application/sdp", sdp).build();
        let reliable = peer.transport.is_reliable();
        if let Some(o) = self.role_out() {
            o.invite_tx = Some(ClientInviteTransaction::new(
                bytes.clone(),
                reliable,
                env.timers,
                now,
            ));
        }
        self.send_invite_bytes(bytes);
    }

    /// Sends the owed CANCEL once a provisional allows it (RFC 3261 §9.1).
    fn send_cancel_if_allowed(&mut self, env: &Env, now: Instant) {
        let Some(o) = self.outgoing_ref() else { return };
        let allowed = o.invite_tx.as_ref().is_some_and(|t| t.may_cancel());
        if !o.cancel_owed || o.cancel_tx.is_some() || !allowed {
            return;
        }
        let Some(b) = self.transaction_request(rsip::Method::Cancel, env) else {
            return;
        };
        let bytes = b.to_addr(&self.to_uri(), None).build();
        let reliable = self.peer.is_some_and(|p| p.transport.is_reliable());
        if let Some(o) = self.role_out() {
            o.cancel_tx = Some(ClientNonInviteTransaction::new(
                bytes.clone(),
                reliable,
                env.timers,
                now,
            ));
        }
        self.send(bytes);
    }

    /// Hangs up: CANCEL while ringing (owed until a provisional came), BYE once answered.
    pub(super) fn outgoing_hangup(&mut self, cause: CallEndCause, env: &Env, now: Instant) {
        match self.phase {
            Phase::Early => {
                if let Some(o) = self.role_out() {
                    o.cancel_owed = o.invite_tx.is_some();
                }
                self.send_cancel_if_allowed(env, now);
                self.end(cause);
            }
            Phase::Answered | Phase::Confirmed => {
                self.send_bye(env, now);
                self.end(cause);
            }
            Phase::Ended => {}
        }
    }

    pub(super) fn outgoing_tick(&mut self, env: &Env, now: Instant) {
        let Some(o) = self.role_out() else { return };
        if o.ring_deadline.is_some_and(|at| at <= now) {
            o.ring_deadline = None;
            tracing::debug!(call_id = %self.id, "ring timeout");
            self.outgoing_hangup(CallEndCause::NoAnswer, env, now);
        }
        let Some(o) = self.role_out() else { return };
        let mut outputs = Vec::new();
        let mut timed_out = false;
        if let Some(t) = &mut o.invite_tx {
            for out in t.on_tick(now) {
                if out == TransactionOutput::Timeout {
                    timed_out = true;
                } else {
                    outputs.push(out);
                }
            }
        }
        if let Some(t) = &mut o.cancel_tx {
            outputs.extend(t.on_tick(now));
        }
        if let Some((_, t)) = o.previous.as_deref_mut() {
            // Completed: only Timer D is left to fire.
            let _ = t.on_tick(now);
            if t.is_terminated() {
                o.previous = None;
            }
        }
        for b in self.prack_tick(now) {
            crate::metrics::sip_retransmission(false);
            self.send(b);
        }
        // Timer B: the callee never answered the INVITE at all (§17.1.1.2); the next
        // resolved target gets it (RFC 3263 §4.3), or the leg fails.
        if timed_out && !self.fail_over(FailoverReason::Timeout, env, now) {
            self.end(CallEndCause::Failed);
        }
        self.failover_tick(env, now);
        for out in outputs {
            if let TransactionOutput::Retransmit(b) = out {
                crate::metrics::sip_retransmission(false);
                self.send(b);
            }
        }
    }

    /// A response to our INVITE (matched by branch) or CANCEL.
    pub(super) fn outgoing_response(
        &mut self,
        resp: &rsip::Response,
        key: &TransactionKey,
        env: &Env,
        now: Instant,
    ) {
        let code = u16::from(resp.status_code.clone());
        let Some(o) = self.role_out() else { return };
        match key.method() {
            rsip::Method::Invite if key.branch() == o.branch => {
                self.on_invite_response(resp, code, env, now)
            }
            rsip::Method::Invite => {
                let previous = o.previous.as_deref_mut().filter(|(b, _)| b == key.branch());
                if let Some((_, tx)) = previous {
                    // A retransmitted challenge or 422 to the INVITE we resent: ACK it again.
                    if let InviteResponse::Rejected {
                        retransmission: Some(ack),
                    } = tx.on_response(code, now)
                    {
                        crate::metrics::sip_retransmission(true);
                        match o.previous_peer {
                            Some(to) => self.send_to(to, ack),
                            None => self.send(ack),
                        }
                    }
                } else {
                    let branch = key.branch().to_string();
                    self.stale_invite_response(resp, &branch, code, env);
                }
            }
            rsip::Method::Cancel => {
                if let Some(t) = &mut o.cancel_tx {
                    t.on_response(code, now);
                }
            }
            rsip::Method::PRack => self.prack_response(key, code, now),
            _ => {}
        }
    }

    fn on_invite_response(&mut self, resp: &rsip::Response, code: u16, env: &Env, now: Instant) {
        let Some(o) = self.role_out() else { return };
        o.failover.disarm();
        let Some(tx) = o.invite_tx.as_mut() else {
            return;
        };
        match tx.on_response(code, now) {
            InviteResponse::Provisional => {
                if !self.outgoing_provisional(resp, code, env, now) {
                    return;
                }
                if self.phase == Phase::Early && code > 100 {
                    self.emit(CallEvent::Progress {
                        call_id: self.id,
                        code,
                    });
                }
                self.send_cancel_if_allowed(env, now);
            }
            InviteResponse::Accepted {
                retransmission: false,
            } => self.on_accepted(resp, env, now),
            InviteResponse::Accepted {
                retransmission: true,
            } => {
                crate::metrics::sip_retransmission(true);
                if let Some(ack) = self.outgoing_ref().and_then(|o| o.ack.clone()) {
                    self.send_in_dialog(ack);
                }
            }
            InviteResponse::Rejected {
                retransmission: None,
            } => {
                // The ACK for a 3xx–6xx: the INVITE's branch, the response's To (§17.1.1.3).
                let to = resp
                    .to_header()
                    .map(|t| t.value().to_string())
                    .unwrap_or_else(|_| self.to_uri());
                let Some(b) = self.transaction_request(rsip::Method::Ack, env) else {
                    return;
                };
                let ack = b.to_addr(&to, None).build();
                if let Some(tx) = self.role_out().and_then(|o| o.invite_tx.as_mut()) {
                    tx.store_ack(ack.clone());
                }
                self.send(ack);
                // RFC 3263 §4.3: a 503 sends the INVITE to the next target, if any.
                let failed_over =
                    code == 503 && self.fail_over(FailoverReason::Unavailable, env, now);
                if !failed_over
                    && !self.retry_after_422(resp, code, env, now)
                    && !self.retry_invite_with_credentials(resp, code, env, now)
                {
                    self.end(CallEndCause::Rejected(code));
                }
            }
            InviteResponse::Rejected {
                retransmission: Some(ack),
            } => {
                crate::metrics::sip_retransmission(true);
                self.send(ack);
            }
            InviteResponse::Ignored => {}
        }
    }

    /// The callee answered: the dialog starts (§12.1.2) and the 2xx is ACKed, also when we no
    /// longer want the call (then BYE follows at once: our CANCEL crossed the 2xx).
    fn on_accepted(&mut self, resp: &rsip::Response, env: &Env, now: Instant) {
        let Some(o) = self.outgoing_ref() else { return };
        let cseq = o.invite_cseq;
        let dialog = Dialog::as_uac(
            resp,
            &o.local_uri,
            &self.local_tag,
            cseq,
            &o.route.request_uri,
        );
        let transport = self.peer.map_or(TransportKind::Udp, |p| p.transport);
        let ack = dialog.request(
            rsip::Method::Ack,
            cseq,
            &env.sent_by_over(transport),
            transport.via_token(),
        );
        // RFC 3261 §22.1: the ACK for a 2xx carries the INVITE's credentials.
        let ack = super::auth::with_invite_credentials(ack, o.auth.as_deref()).build();
        self.dialog = Some(dialog);
        if let Some(o) = self.role_out() {
            o.ack = Some(ack.clone());
            o.ring_deadline = None;
        }
        self.send_in_dialog(ack);
        if self.phase == Phase::Ended {
            self.send_bye(env, now);
            return;
        }
        // After early media the 18x's SDP may be the answer (early.rs).
        let answer = self.answer_in_2xx(resp);
        match answer {
            Ok(negotiated) => {
                self.negotiated = Some(negotiated);
                self.phase = Phase::Confirmed;
                self.session_timer = super::session_timer::as_uac(&resp.headers, now).map(Box::new);
                self.out.push(super::Output::Answered);
                crate::metrics::call_setup(now.saturating_duration_since(self.created));
                // The relay needs media at once (running already after early media).
                if !self.media_started() {
                    self.media = MediaState::StartAt(now);
                    self.start_media_now();
                }
                self.emit(CallEvent::Answered { call_id: self.id });
            }
            Err(e) => {
                tracing::info!(call_id = %self.id, error = %e, "callee's SDP answer unusable");
                self.phase = Phase::Confirmed;
                self.send_bye(env, now);
                self.end(CallEndCause::Failed);
            }
        }
    }

    /// RFC 4028 §7.4: a 422 to our INVITE names the shortest interval the callee takes
    /// (`Min-SE`); we try once more with that one (new CSeq and branch). True when we did.
    fn retry_after_422(
        &mut self,
        resp: &rsip::Response,
        code: u16,
        env: &Env,
        now: Instant,
    ) -> bool {
        let Some(o) = self.role_out() else {
            return false;
        };
        if code != 422 || env.session_expires.is_none() || o.session_expires.is_some() {
            return false;
        }
        let min = super::session_timer::min_se(&resp.headers).unwrap_or(env.min_se);
        o.session_expires = Some(min.max(env.min_se));
        self.resend_invite(env, now);
        true
    }

    /// Our INVITE again after a final response asked for a change (422, 401/407): a new
    /// transaction with the next CSeq and a new branch, the same Call-ID and From tag.
    pub(super) fn resend_invite(&mut self, env: &Env, now: Instant) {
        let peer = self.peer;
        let Some(o) = self.role_out() else { return };
        // Above any PRACK of ours too (RFC 3261 §8.1.1.5: CSeq grows under one Call-ID).
        o.invite_cseq = o.invite_cseq.max(o.early.last_cseq) + 1;
        let branch = std::mem::replace(&mut o.branch, new_branch());
        let tx = o.invite_tx.take();
        o.keep_previous(branch, tx, peer);
        self.send_invite(env, now);
    }
}
