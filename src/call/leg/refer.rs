//! REFER and its implicit subscription on a leg (RFC 3515; NOTIFY per RFC 6665, bodies per RFC
//! 3420 `message/sipfrag`, RFC 4488 `Refer-Sub`), both ways: the peer's REFER (checked, then
//! 202 or refused, then our NOTIFYs as the engine reports the transfer) and ours for the
//! `transfer` action (its answer and the peer's NOTIFYs become events). Sans-IO like the rest
//! of the leg: what a transfer does (dial, bridge) is the engine's.
//!
//! ```text
//!  peer's REFER ──202──▶ NOTIFY "100 Trying" (active) ─ engine reports ─▶ NOTIFY "200 OK"
//!                        (terminated;reason=noresource) ──its 2xx──▶ BYE (when asked)
//!  our REFER ──2xx──▶ peer's NOTIFYs (each 200) ──terminated──▶ done   (3xx–6xx: refused)
//! ```

use tokio::time::Instant;

use super::refer_headers::{
    cseq_number, header_values, refer_sub, refer_to, sipfrag, sipfrag_status,
};
use super::{Env, Leg, Phase};
use crate::call::events::{CallEndCause, CallEvent, HangupCause};
use crate::sip::message::{new_branch, TransactionKey};
use crate::sip::transaction::{ClientNonInviteTransaction, TransactionOutput};

/// How long our `refer` subscription is granted in `Subscription-State` (RFC 6665
/// §4.1.2.2); the last NOTIFY ends it sooner.
pub(crate) const SUBSCRIPTION_EXPIRES: u32 = 120;

/// REFERs the peer may have accepted on one call; later ones get 403 (each one dials, sends
/// NOTIFYs and writes history: a flood is refused here).
pub(crate) const MAX_INBOUND_REFERS: u8 = 3;

/// The transfer state of one leg (boxed on the leg: most calls never see a REFER).
#[derive(Default)]
pub(super) struct Transfers {
    /// The engine bridges this leg with another party: the peer's REFER may be accepted.
    allowed: bool,
    /// The peer's accepted REFER, while NOTIFYs are owed or the last one is unanswered.
    inbound: Option<Inbound>,
    /// The peer's REFERs accepted so far (at most [`MAX_INBOUND_REFERS`]).
    accepted: u8,
    /// Our REFER, until its subscription ends (or the REFER is refused).
    outbound: Option<Outbound>,
    /// Our REFER and NOTIFY client transactions (RFC 3261 §17.1.2).
    sent: Vec<Sent>,
    /// Our REFER's target while our 2xx awaits its ACK (the dialog is not confirmed yet).
    pending_refer: Option<String>,
}

struct Inbound {
    /// The REFER's CSeq: the `id` of our `Event: refer` (RFC 3515 §2.4.6).
    id: u32,
    /// False with `Refer-Sub: false` (RFC 4488 §4): no NOTIFY at all.
    subscribed: bool,
    /// The last NOTIFY went out: the subscription ends when it is answered.
    finished: bool,
}

/// Our REFER: its CSeq, the `id` the peer's NOTIFYs carry (RFC 3515 §2.4.6).
struct Outbound {
    cseq: u32,
}

struct Sent {
    key: TransactionKey,
    tx: ClientNonInviteTransaction,
    kind: SentKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SentKind {
    Refer,
    /// `last`: it ends the subscription; `hangup`: the last NOTIFY of a transfer that
    /// succeeded, BYE once it is answered.
    Notify {
        last: bool,
        hangup: bool,
    },
}

impl Leg {
    fn transfers(&mut self) -> &mut Transfers {
        self.transfer.get_or_insert_with(Box::default)
    }

    /// [`crate::call::CallCommand::Transferable`].
    pub(crate) fn set_transferable(&mut self, allowed: bool) {
        self.transfers().allowed = allowed;
    }

    /// How we answer the peer's REFER in a confirmed dialog (RFC 3515 §2.4.2): 400 for a
    /// missing, repeated or unusable Refer-To; 403 unless the engine bridges this call with
    /// another party by a `connect` with `transfer` on, and after [`MAX_INBOUND_REFERS`];
    /// 491 while an earlier one is in progress (its last NOTIFY unanswered too); else 202.
    pub(super) fn refer_code(&self, req: &rsip::Request) -> (u16, Option<(&'static str, String)>) {
        let warning = |text: &str| Some(("Warning", format!("399 activeflow \"{text}\"")));
        let transfers = self.transfer.as_deref();
        match refer_to(&req.headers) {
            Err(e) => (400, warning(&e.to_string())),
            Ok(_) if !transfers.is_some_and(|t| t.allowed) => (
                403,
                warning(
                    "transfers are off: allowed only while bridged by a connect with transfer on",
                ),
            ),
            Ok(_) if transfers.is_some_and(|t| t.inbound.is_some()) => (491, None),
            Ok(_) if transfers.is_some_and(|t| t.accepted >= MAX_INBOUND_REFERS) => {
                (403, warning("too many transfers on this call"))
            }
            Ok(_) if !refer_sub(&req.headers) => (202, Some(("Refer-Sub", "false".into()))),
            Ok(_) => (202, None),
        }
    }

    /// After our answer `code` to the peer's REFER: counted, and carried out when 202.
    pub(super) fn refer_answered(
        &mut self,
        req: &rsip::Request,
        code: u16,
        env: &Env,
        now: Instant,
    ) {
        if code == 202 {
            self.refer_accepted(req, env, now);
        } else {
            crate::metrics::transfer("inbound", "rejected");
        }
    }

    /// After our 202: the engine hears of it, the peer gets NOTIFY "100 Trying" at once
    /// (RFC 3515 §2.4.4).
    fn refer_accepted(&mut self, req: &rsip::Request, env: &Env, now: Instant) {
        let Ok(target) = refer_to(&req.headers) else {
            return;
        };
        let subscribed = refer_sub(&req.headers);
        let transfers = self.transfers();
        transfers.accepted = transfers.accepted.saturating_add(1);
        transfers.inbound = Some(Inbound {
            id: cseq_number(req),
            subscribed,
            finished: false,
        });
        crate::metrics::transfer("inbound", "requested");
        self.emit(CallEvent::TransferRequested {
            call_id: self.id,
            target,
        });
        if subscribed {
            self.send_notify(100, false, false, env, now);
        }
    }

    /// [`crate::call::CallCommand::TransferNotify`]: a NOTIFY with `status`; the last one
    /// (200 or more) ends the subscription once answered, then BYE when `then_hangup`.
    pub(crate) fn transfer_notify(
        &mut self,
        status: u16,
        then_hangup: bool,
        env: &Env,
        now: Instant,
    ) {
        let Some(inbound) = self.transfer.as_deref().and_then(|t| t.inbound.as_ref()) else {
            return;
        };
        if self.phase == Phase::Ended || inbound.finished {
            return;
        }
        let last = status >= 200;
        let subscribed = inbound.subscribed;
        if subscribed {
            self.send_notify(status, last, last && then_hangup, env, now);
        }
        if last {
            if subscribed {
                if let Some(i) = self.transfers().inbound.as_mut() {
                    i.finished = true;
                }
            } else {
                self.transfers().inbound = None;
                if then_hangup {
                    self.transfer_hangup(env, now);
                }
            }
        }
    }

    fn send_notify(&mut self, status: u16, last: bool, hangup: bool, env: &Env, now: Instant) {
        let Some(id) = self
            .transfer
            .as_deref()
            .and_then(|t| t.inbound.as_ref())
            .map(|i| i.id)
        else {
            return;
        };
        let state = if status >= 200 {
            "terminated;reason=noresource".to_string()
        } else {
            format!("active;expires={SUBSCRIPTION_EXPIRES}")
        };
        let headers = [
            ("Event", format!("refer;id={id}")),
            ("Subscription-State", state),
        ];
        let body = ("message/sipfrag;version=2.0", sipfrag(status));
        self.send_request(
            rsip::Method::Notify,
            &headers,
            Some(body),
            SentKind::Notify { last, hangup },
            env,
            now,
        );
    }

    /// [`crate::call::CallCommand::Refer`]: our REFER to the peer (RFC 3515 §2.4.1), with
    /// `Referred-By` our identity in this dialog (RFC 3892). Before the ACK of our 2xx it
    /// waits for it; outside a dialog it is answered at once with 481; while one is in
    /// progress, 491.
    pub(crate) fn send_refer(&mut self, target: &str, env: &Env, now: Instant) {
        let busy = self
            .transfer
            .as_deref()
            .is_some_and(|t| t.outbound.is_some());
        if self.phase == Phase::Answered && self.dialog.is_some() && !busy {
            self.transfers().pending_refer = Some(target.to_string());
            return;
        }
        let up = self.dialog.is_some() && self.phase == Phase::Confirmed;
        if !up || busy {
            let code = if up { 491 } else { 481 };
            self.emit(CallEvent::TransferAnswered {
                call_id: self.id,
                code,
            });
            return;
        }
        let referred_by = self
            .dialog
            .as_ref()
            .map(|d| d.local_uri.clone())
            .unwrap_or_default();
        let headers = [
            ("Refer-To", format!("<{target}>")),
            ("Referred-By", referred_by),
        ];
        crate::metrics::transfer("outbound", "requested");
        self.send_request(
            rsip::Method::Refer,
            &headers,
            None,
            SentKind::Refer,
            env,
            now,
        );
        let cseq = self.dialog.as_ref().map_or(0, |d| d.local_cseq);
        self.transfers().outbound = Some(Outbound { cseq });
    }

    /// [`crate::call::CallCommand::ReferAbandoned`]: the engine gave up on our REFER (no last
    /// NOTIFY in time): a later `transfer` may REFER again, late NOTIFYs get 481.
    pub(crate) fn refer_abandoned(&mut self) {
        if let Some(t) = self.transfer.as_deref_mut() {
            t.outbound = None;
            t.pending_refer = None;
        }
    }

    /// The dialog is confirmed (the ACK came): a REFER held for it goes now.
    pub(super) fn send_pending_refer(&mut self, env: &Env, now: Instant) {
        if self.phase != Phase::Confirmed {
            return;
        }
        if let Some(target) = self
            .transfer
            .as_deref_mut()
            .and_then(|t| t.pending_refer.take())
        {
            self.send_refer(&target, env, now);
        }
    }

    /// One of our in-dialog REFER/NOTIFY requests, through a client transaction.
    fn send_request(
        &mut self,
        method: rsip::Method,
        headers: &[(&str, String)],
        body: Option<(&str, String)>,
        kind: SentKind,
        env: &Env,
        now: Instant,
    ) {
        let Some((to, _)) = self.in_dialog_destination() else {
            return;
        };
        let contact = env.contact(self.peer.as_ref());
        let sent_by = env.sent_by();
        let Some(dialog) = &mut self.dialog else {
            return;
        };
        dialog.local_cseq += 1;
        let branch = new_branch();
        let mut b = dialog
            .request_on_branch(
                method,
                dialog.local_cseq,
                &sent_by,
                to.transport.via_token(),
                &branch,
            )
            .contact(&contact);
        for (name, value) in headers {
            b = b.header(name, value);
        }
        if let Some((content_type, text)) = body {
            b = b.body(content_type, text.into_bytes());
        }
        let bytes = b.build();
        let tx = ClientNonInviteTransaction::new(
            bytes.clone(),
            to.transport.is_reliable(),
            env.timers,
            now,
        );
        let key = TransactionKey::client(&branch, method);
        self.transfers().sent.push(Sent { key, tx, kind });
        self.send_in_dialog(bytes);
    }

    /// A response to our REFER or NOTIFY; false when it is not one of theirs.
    pub(super) fn transfer_response(
        &mut self,
        resp: &rsip::Response,
        key: &TransactionKey,
        env: &Env,
        now: Instant,
    ) -> bool {
        let Some(t) = self.transfer.as_deref_mut() else {
            return false;
        };
        let Some(sent) = t.sent.iter_mut().find(|s| s.key == *key) else {
            return false;
        };
        let code = resp.status_code.code();
        let first_final = code >= 200 && !sent.tx.is_completed();
        sent.tx.on_response(code, now);
        let kind = sent.kind;
        if first_final {
            self.transfer_final(kind, code, env, now);
        }
        true
    }

    /// Our REFER or NOTIFY has its final answer (408: none came).
    fn transfer_final(&mut self, kind: SentKind, code: u16, env: &Env, now: Instant) {
        match kind {
            SentKind::Refer => {
                if code >= 300 {
                    self.transfers().outbound = None;
                    crate::metrics::transfer("outbound", "rejected");
                }
                self.emit(CallEvent::TransferAnswered {
                    call_id: self.id,
                    code,
                });
            }
            SentKind::Notify { last, hangup } => {
                if last {
                    // The subscription is over (RFC 6665 §4.1.2.2): a new REFER may come.
                    self.transfers().inbound = None;
                }
                if hangup {
                    self.transfer_hangup(env, now);
                }
            }
        }
    }

    /// The referrer leaves once its transfer succeeded: BYE (blind transfer, RFC 5589 §6).
    fn transfer_hangup(&mut self, env: &Env, now: Instant) {
        if self.is_incoming() {
            self.incoming_hangup(HangupCause::Normal, CallEndCause::Transferred, env, now);
        } else {
            self.outgoing_hangup(CallEndCause::Transferred, env, now);
        }
    }

    /// How we answer the peer's NOTIFY (RFC 6665 §4.1.3): 481 unless it reports on our
    /// REFER (`Event: refer`, its `id` our REFER's CSeq when given, RFC 3515 §2.4.6), 400
    /// without a readable sipfrag status line, else 200.
    pub(super) fn notify_code(&self, req: &rsip::Request) -> (u16, Option<(&'static str, String)>) {
        let ours = self
            .transfer
            .as_deref()
            .and_then(|t| t.outbound.as_ref())
            .map(|o| o.cseq);
        let event = header_values(&req.headers, &["event", "o"])
            .first()
            .cloned()
            .unwrap_or_default();
        let mut parts = event.split(';').map(str::trim);
        let refer_event = parts
            .next()
            .is_some_and(|v| v.eq_ignore_ascii_case("refer"));
        let id = parts.find_map(|p| {
            let (name, value) = p.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("id")
                .then(|| value.trim().parse::<u32>().ok())
        });
        let matches = match (ours, id) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(cseq), Some(id)) => id == Some(cseq),
        };
        if !matches || !refer_event {
            return (481, None);
        }
        if sipfrag_status(&req.body).is_none() {
            return (400, None);
        }
        (200, None)
    }

    /// After our 200 to the peer's NOTIFY: the engine hears of the transfer's progress.
    pub(super) fn notify_received(&mut self, req: &rsip::Request) {
        let Some(code) = sipfrag_status(&req.body) else {
            return;
        };
        let terminated = code >= 200
            || header_values(&req.headers, &["subscription-state"])
                .first()
                .is_some_and(|v| v.to_ascii_lowercase().starts_with("terminated"));
        if terminated {
            self.transfers().outbound = None;
            let outcome = if (200..300).contains(&code) {
                "transferred"
            } else {
                "failed"
            };
            crate::metrics::transfer("outbound", outcome);
        }
        self.emit(CallEvent::TransferProgress {
            call_id: self.id,
            code,
            terminated,
        });
    }

    /// The earliest timer of our REFER/NOTIFY transactions.
    pub(super) fn transfer_deadline(&self) -> Option<Instant> {
        self.transfer
            .as_deref()?
            .sent
            .iter()
            .filter_map(|s| s.tx.next_deadline())
            .min()
    }

    /// Retransmits and times out our REFER/NOTIFY transactions (Timer E, F, K).
    pub(super) fn transfer_tick(&mut self, env: &Env, now: Instant) {
        let Some(t) = self.transfer.as_deref_mut() else {
            return;
        };
        let mut resend = Vec::new();
        let mut timed_out = Vec::new();
        for s in &mut t.sent {
            for out in s.tx.on_tick(now) {
                match out {
                    TransactionOutput::Retransmit(b) => resend.push(b),
                    TransactionOutput::Timeout => timed_out.push(s.kind),
                    TransactionOutput::Terminated => {}
                }
            }
        }
        t.sent.retain(|s| !s.tx.is_terminated());
        for b in resend {
            crate::metrics::sip_retransmission(false);
            self.send_in_dialog(b);
        }
        for kind in timed_out {
            self.transfer_final(kind, 408, env, now);
        }
    }
}
