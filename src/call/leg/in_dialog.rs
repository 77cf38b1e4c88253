//! What both roles share once a dialog exists (RFC 3261 §12.2, §14, §15): the peer's requests
//! (BYE, re-INVITE through a server INVITE transaction with 491 on overlap and target refresh,
//! INFO digits, OPTIONS, CANCEL, REFER and NOTIFY: see `refer.rs`), answered to where each came from (§18.2.2, RFC 3581); our
//! BYE along the route set to the remote target; the trunk ACL on every request; tag checks.

use tokio::time::Instant;

use super::incoming::ALLOW;
use super::rules::{
    info_dtmf, is_unsupported, sdp_in, to_tag, unsupported_requirements, InfoBody, INFO_ACCEPT,
};
use super::{session_timer, Env, Leg, Output, Phase, Role, MAX_SERVER_TRANSACTIONS};
use crate::call::dispatch::RETRY_AFTER_SECONDS;
use crate::call::events::{CallEndCause, CallEvent, HangupCause};
use crate::media::sdp;
use crate::media::DigitSource;
use crate::sip::message::{reason_phrase, ResponseBuilder, TransactionKey};
use crate::sip::transaction::{
    ClientNonInviteTransaction, ServerInviteTransaction, ServerNonInviteTransaction,
};
use crate::sip::transport::Peer;

impl Leg {
    /// A request from the network for this leg. `acl_ok`: its source is inside a trunk's
    /// `allow`; otherwise only the dialog's own peer may speak in it.
    pub(crate) fn on_request(
        &mut self,
        req: rsip::Request,
        src: Peer,
        acl_ok: bool,
        env: &Env,
        now: Instant,
    ) {
        let Ok(key) = TransactionKey::from_request(&req) else {
            return;
        };
        let is_ack = req.method == rsip::Method::Ack;
        if !acl_ok && !self.is_dialog_peer(src) {
            tracing::info!(call_id = %self.id, %src, method = %req.method, "request from outside every trunk ACL");
            if !is_ack {
                self.reply(&req, src, 403, &[]);
            }
            return;
        }
        // A request carrying a To tag belongs to the dialog with that tag (§12.2.2).
        if to_tag(&req).is_some_and(|t| t != self.local_tag) {
            if !is_ack {
                self.reply(&req, src, 481, &[]);
            }
            return;
        }
        match req.method {
            rsip::Method::Invite => self.on_invite(req, key, src, env, now),
            rsip::Method::Ack => self.on_ack(&req, &key, env, now),
            _ => self.on_non_invite(req, key, src, env, now),
        }
        self.prune();
    }

    /// The dialog holds its cap of server transactions (BYE and the CANCEL of our INVITE:
    /// twice that, so that a flood of other requests cannot keep the peer from ending it).
    fn over_transaction_cap(&self, req: &rsip::Request, cancels_invite: bool) -> bool {
        let cap = match req.method {
            rsip::Method::Bye => MAX_SERVER_TRANSACTIONS * 2,
            rsip::Method::Cancel if cancels_invite => MAX_SERVER_TRANSACTIONS * 2,
            _ => MAX_SERVER_TRANSACTIONS,
        };
        self.server_txs.len() >= cap
    }

    /// The dialog's own peer: where its INVITE came from or went, or its next hop.
    fn is_dialog_peer(&self, src: Peer) -> bool {
        let ip = src.addr.ip();
        self.peer.is_some_and(|p| p.addr.ip() == ip)
            || self
                .dialog
                .as_ref()
                .and_then(|d| d.next_hop())
                .is_some_and(|(a, _)| a.ip() == ip)
    }

    /// A stateless-in-the-dialog answer (no transaction kept): 403, 481 for a stranger.
    fn reply(&mut self, req: &rsip::Request, to: Peer, code: u16, headers: &[(&str, &str)]) {
        let mut b = ResponseBuilder::new(req, code, reason_phrase(code)).received_from(to.addr);
        for (name, value) in headers {
            b = b.header(name, value);
        }
        crate::metrics::sip_response_sent(code);
        self.send_to(to, b.build());
    }

    fn on_invite(
        &mut self,
        req: rsip::Request,
        key: TransactionKey,
        src: Peer,
        env: &Env,
        now: Instant,
    ) {
        if self.incoming().is_some_and(|i| i.invite_key == key) {
            self.on_invite_retransmission();
            return;
        }
        if let Some((k, t, _)) = self.reinvite.as_deref_mut() {
            if *k == key {
                crate::metrics::sip_retransmission(true);
                if let Some(b) = t.on_request_retransmit() {
                    self.send_to(src, b);
                }
                return;
            }
        }
        let agreed = session_timer::as_uas(&req.headers, env.session_expires, env.min_se);
        let code = match agreed {
            Err(_) if self.dialog.is_some() && self.phase == Phase::Confirmed => 422,
            _ => self.reinvite_code(&req),
        };
        let mut b = ResponseBuilder::new(&req, code, reason_phrase(code))
            .to_tag(&self.local_tag)
            .received_from(src.addr);
        match code {
            200 => {
                // Target refresh (§12.2.2) and the peer's new SDP; our answer is our SDP.
                if let Some(d) = &mut self.dialog {
                    d.refresh_target(&req);
                }
                self.update_remote_media(&req);
                // A re-INVITE refreshes the session (RFC 4028 §9); our 2xx says what holds.
                self.refreshed_by_peer(agreed.ok().flatten(), now);
                b = b
                    .header("Contact", &env.contact(self.peer.as_ref()))
                    .header("Allow", ALLOW)
                    .header("Supported", supported(env));
                b = self.with_session_expires(b);
                if let Some(sdp) = self.local_sdp(env) {
                    b = b.body("application/sdp", sdp);
                }
            }
            420 => {
                let tags = unsupported_requirements(&req.headers).unwrap_or_default();
                b = b.header("Unsupported", &tags);
            }
            500 => b = b.header("Retry-After", "1"),
            422 => b = b.header("Min-SE", &env.min_se.to_string()),
            _ => {}
        }
        let bytes = b.build();
        let mut tx = ServerInviteTransaction::new(src.transport.is_reliable(), env.timers, now);
        tx.on_final(code, bytes.clone(), now);
        self.reinvite = Some(Box::new((key, tx, src)));
        crate::metrics::sip_response_sent(code);
        self.send_to(src, bytes);
    }

    /// How we answer a re-INVITE: 481 outside a confirmed dialog; 491 while the previous
    /// INVITE's offer/answer is not complete (our 2xx or the peer's last re-INVITE unACKed,
    /// RFC 3261 §14.2); 500 for an out-of-order CSeq (§12.2.2); 420 for an unknown `Require`;
    /// 488 for an offer we can take nothing from.
    fn reinvite_code(&mut self, req: &rsip::Request) -> u16 {
        if self.dialog.is_none() || self.phase == Phase::Ended {
            return 481;
        }
        if unsupported_requirements(&req.headers).is_some() {
            return 420;
        }
        let pending = self.phase == Phase::Answered
            || self
                .reinvite
                .as_deref()
                .is_some_and(|(_, t, _)| t.awaiting_ack());
        if pending {
            return 491;
        }
        let in_order = self
            .dialog
            .as_mut()
            .is_none_or(|d| d.accept_remote_cseq(&req.headers));
        if !in_order {
            return 500;
        }
        // RFC 3264 §6: an offer we can take nothing from (T.38 only, SRTP only, no common
        // codec) is refused and the call goes on as it was.
        if sdp_in(&req.headers, &req.body).is_some_and(|s| sdp::negotiate(s).is_err()) {
            return 488;
        }
        200
    }

    fn on_ack(&mut self, req: &rsip::Request, key: &TransactionKey, env: &Env, now: Instant) {
        if let Some((_, t, _)) = self
            .reinvite
            .as_deref_mut()
            .filter(|(_, t, _)| t.awaiting_ack())
        {
            t.on_ack(now);
            self.update_remote_media(req);
            return;
        }
        if self.is_incoming() {
            self.incoming_ack(req, key, env, now);
            self.send_pending_refer(env, now);
        }
    }

    fn on_non_invite(
        &mut self,
        req: rsip::Request,
        key: TransactionKey,
        src: Peer,
        env: &Env,
        now: Instant,
    ) {
        if let Some(t) = self.server_txs.get_mut(&key) {
            crate::metrics::sip_retransmission(true);
            if let Some(b) = t.on_request_retransmit() {
                self.send_to(src, b);
            }
            return;
        }
        let cancels_invite = req.method == rsip::Method::Cancel
            && self
                .incoming()
                .is_some_and(|i| i.invite_key.branch() == key.branch());
        if req.method == rsip::Method::Cancel && !cancels_invite {
            // §9.2: a CANCEL matching no transaction gets 481. Stateless: kept for Timer J,
            // a flood of them would fill the dialog's transactions (and its BYE headroom).
            self.reply(&req, src, 481, &[]);
            return;
        }
        if self.over_transaction_cap(&req, cancels_invite) {
            crate::metrics::sip_dialog_transaction_refused();
            crate::metrics::sip_unavailable(crate::metrics::Unavailable::DialogTransactions);
            // The oldest of its answered transactions ends within 64·T1: the same wait as a
            // refused INVITE's.
            let retry_after = RETRY_AFTER_SECONDS.to_string();
            self.reply(&req, src, 503, &[("Retry-After", &retry_after)]);
            return;
        }
        if req.method == rsip::Method::PRack {
            // RFC 3262 §3: matched against our reliable provisional (early.rs).
            return self.on_prack(&req, key, src, env, now);
        }
        let dialog_up = self.dialog.is_some() && self.phase != Phase::Ended;
        let mut info_digit = None;
        let unsupported = unsupported_requirements(&req.headers);
        let (code, extra): (u16, Option<(&str, String)>) = match &req.method {
            rsip::Method::Cancel => (200, None),
            _ if !dialog_up && req.method != rsip::Method::Options => (481, None),
            // CANCEL and BYE cannot be refused for a Require (§8.2.2.3 exempts CANCEL; a BYE
            // must always end the call).
            rsip::Method::Bye => (200, None),
            _ if unsupported.is_some() => {
                (420, Some(("Unsupported", unsupported.unwrap_or_default())))
            }
            rsip::Method::Refer => self.refer_code(&req),
            rsip::Method::Notify => self.notify_code(&req),
            rsip::Method::Options if !dialog_up && to_tag(&req).is_some() => (481, None),
            rsip::Method::Options => (200, Some(("Allow", ALLOW.to_string()))),
            rsip::Method::Info => match info_dtmf(&req) {
                InfoBody::Empty => (200, None),
                InfoBody::Digit(d) => {
                    info_digit = Some(d);
                    (200, None)
                }
                InfoBody::Invalid => (400, None),
                InfoBody::Unsupported => (415, Some(("Accept", INFO_ACCEPT.to_string()))),
            },
            m if is_unsupported(m) => (405, Some(("Allow", ALLOW.to_string()))),
            // INVITE and ACK are routed before here; rsip cannot represent other methods.
            _ => (501, None),
        };
        let mut b = ResponseBuilder::new(&req, code, reason_phrase(code)).received_from(src.addr);
        // Our tag on every answer inside the dialog and on the 200 to CANCEL (§9.2: the same
        // To tag as the INVITE's response).
        if dialog_up || cancels_invite || self.is_incoming() && self.phase == Phase::Early {
            b = b.to_tag(&self.local_tag);
        }
        if let Some((name, value)) = &extra {
            b = b.header(name, value);
        }
        let bytes = b.build();
        let mut tx = ServerNonInviteTransaction::new(src.transport.is_reliable(), env.timers, now);
        tx.on_final(bytes.clone(), now);
        self.server_txs.insert(key, tx);
        crate::metrics::sip_response_sent(code);
        self.send_to(src, bytes);
        match (&req.method, code) {
            (rsip::Method::Cancel, 200) => self.on_cancel(env, now),
            (rsip::Method::Bye, 200) => {
                // §15.1.2: a pending re-INVITE of the peer's is over with its dialog.
                self.reinvite = None;
                self.end(CallEndCause::RemoteBye);
            }
            (rsip::Method::Refer, code) => self.refer_answered(&req, code, env, now),
            (rsip::Method::Notify, 200) => self.notify_received(&req),
            _ => {}
        }
        if let Some(digit) = info_digit {
            crate::metrics::dtmf_received(DigitSource::SipInfo.as_str());
            self.emit(CallEvent::Digit {
                call_id: self.id,
                digit,
                source: DigitSource::SipInfo,
            });
        }
    }

    /// A response from the network: to our INVITE or CANCEL (outgoing), or to our BYE.
    pub(crate) fn on_response(&mut self, resp: &rsip::Response, env: &Env, now: Instant) {
        let Ok(key) = TransactionKey::for_response(resp) else {
            return;
        };
        if self.refresh_response(resp, &key, env, now) {
            self.prune();
            return;
        }
        if self.transfer_response(resp, &key, env, now) {
            self.prune();
            return;
        }
        if key.method() == rsip::Method::Bye {
            if self.retry_bye_with_credentials(resp, &key, env, now) {
                self.prune();
                return;
            }
            if let Some(tx) = &mut self.bye_tx {
                tx.on_response(u16::from(resp.status_code.clone()), now);
            }
        } else if matches!(self.role, Role::Outgoing(_)) {
            self.outgoing_response(resp, &key, env, now);
        }
        self.prune();
    }

    /// Hangs up from the flow's side (or the operator's): per role and phase.
    pub(crate) fn hangup(&mut self, cause: HangupCause, env: &Env, now: Instant) {
        let end = match cause {
            HangupCause::NodeLost => CallEndCause::NodeLost,
            _ => CallEndCause::Local,
        };
        if self.is_incoming() {
            self.incoming_hangup(cause, end, env, now);
        } else {
            self.outgoing_hangup(end, env, now);
        }
    }

    /// Ends the call from the engine's side, now, with `cause` (a dying session: `failed`;
    /// the call's time cap: `max_duration`): the peer gets BYE, CANCEL or a final response
    /// (603), even before the ACK of our 2xx.
    pub(crate) fn end_now(&mut self, cause: CallEndCause, env: &Env, now: Instant) {
        if self.is_incoming() {
            self.incoming_hangup(HangupCause::Normal, cause, env, now);
        } else {
            self.outgoing_hangup(cause, env, now);
        }
        self.end(cause);
    }

    /// Where our in-dialog requests go: the first loose route or the remote target (§12.2.1.1);
    /// a dialog peer on TCP or TLS with no route set keeps its connection while it is open, with the
    /// Contact as the fallback when it is gone (§18.2.2). A host name falls back to the peer.
    pub(super) fn in_dialog_destination(&self) -> Option<(Peer, Option<Peer>)> {
        let peer = self.peer?;
        let Some(dialog) = &self.dialog else {
            return Some((peer, None));
        };
        let Some((addr, transport)) = dialog.next_hop() else {
            return Some((peer, None));
        };
        let target = Peer {
            addr,
            transport: transport.unwrap_or(peer.transport),
        };
        if dialog.route_set.is_empty() && peer.transport.is_reliable() && target != peer {
            return Some((peer, Some(target)));
        }
        Some((target, None))
    }

    /// Sends one of our in-dialog requests (BYE, the ACK for a 2xx).
    pub(super) fn send_in_dialog(&mut self, bytes: bytes::Bytes) {
        if let Some((to, fallback)) = self.in_dialog_destination() {
            self.out.push(Output::Send {
                to,
                bytes,
                fallback,
            });
        }
    }

    /// Our BYE, through a client transaction (Timer E/F).
    pub(super) fn send_bye(&mut self, env: &Env, now: Instant) {
        let Some((to, _)) = self.in_dialog_destination() else {
            return;
        };
        let sent_by = env.sent_by_over(to.transport);
        let Some(dialog) = &mut self.dialog else {
            return;
        };
        let bytes = dialog.bye(&sent_by, to.transport.via_token());
        self.bye_tx = Some(Box::new(ClientNonInviteTransaction::new(
            bytes.clone(),
            to.transport.is_reliable(),
            env.timers,
            now,
        )));
        self.send_in_dialog(bytes);
    }
}

/// Our `Supported` value: `100rel` (RFC 3262) and `timer` while session timers are on (RFC 4028 §7.1).
pub(super) fn supported(env: &Env) -> &'static str {
    if env.session_expires.is_some() {
        "100rel, timer"
    } else {
        "100rel"
    }
}

impl Leg {
    /// Adds the agreed `Session-Expires` (and `Require: timer` when the peer supports it, RFC
    /// 4028 §9) to a 2xx we send.
    pub(super) fn with_session_expires(&self, b: ResponseBuilder) -> ResponseBuilder {
        match self.session_timer.as_deref() {
            Some(t) if t.peer_supports => b
                .header("Session-Expires", &t.header(true))
                .header("Require", "timer"),
            Some(t) => b.header("Session-Expires", &t.header(true)),
            None => b,
        }
    }
}
