//! The SIP side of an outbound leg: the INVITE and its CANCEL, the ACKs (the transaction's for
//! a non-2xx, the dialog's for a 2xx), BYE, the callee's responses and its in-dialog requests.
//! A re-INVITE from the callee is answered 200 with our offer again (no media change).

use actix::prelude::*;
use bytes::Bytes;
use rsip::prelude::*;
use tokio::time::Instant;

use super::super::dialog::{record_routes, strip_tag, uri_of, Dialog};
use super::super::events::{CallEndCause, CallEvent};
use super::super::session_sip::{is_unsupported, ALLOW};
use super::leg::{OutboundCall, Phase};
use crate::sip::message::{reason_phrase, RequestBuilder, ResponseBuilder, TransactionKey};
use crate::sip::transaction::{
    ClientInviteTransaction, ClientNonInviteTransaction, InviteResponse, ServerNonInviteTransaction,
};

/// The CSeq of our INVITE (and of its CANCEL and ACK).
const INVITE_CSEQ: u32 = 1;

impl OutboundCall {
    /// Our From: `<sip:{source}@{our address}>`.
    pub(super) fn local_uri(&self) -> String {
        super::caller_uri(&self.source, self.shared.public_ip)
    }

    fn to_uri(&self) -> String {
        format!("<{}>", self.route.request_uri)
    }

    /// A request of the INVITE transaction (INVITE, CANCEL, non-2xx ACK): same branch and CSeq.
    fn transaction_request(&self, method: rsip::Method, branch: &str) -> RequestBuilder {
        RequestBuilder::new(method, &self.route.request_uri)
            .via(&self.sent_by(), "UDP", branch)
            .from_addr(&self.local_uri(), &self.local_tag)
            .call_id(&self.sip_call_id)
            .cseq(INVITE_CSEQ)
            .max_forwards(70)
    }

    pub(super) fn send_invite(&mut self) {
        let bytes = self
            .transaction_request(rsip::Method::Invite, &self.branch)
            .to_addr(&self.to_uri(), None)
            .contact(&format!("<sip:activeflow@{}>", self.sent_by()))
            .header("Allow", ALLOW)
            .body("application/sdp", self.local_sdp.clone())
            .build();
        self.invite_tx = Some(ClientInviteTransaction::new(
            bytes.clone(),
            false,
            self.shared.timers,
            Instant::now(),
        ));
        self.send(&bytes);
    }

    /// Sends the owed CANCEL once a provisional allows it (RFC 3261 §9.1).
    pub(super) fn send_cancel_if_allowed(&mut self) {
        let allowed = self.invite_tx.as_ref().is_some_and(|t| t.may_cancel());
        if !self.cancel_owed || self.cancel_tx.is_some() || !allowed {
            return;
        }
        let bytes = self
            .transaction_request(rsip::Method::Cancel, &self.branch)
            .to_addr(&self.to_uri(), None)
            .build();
        self.cancel_tx = Some(ClientNonInviteTransaction::new(
            bytes.clone(),
            false,
            self.shared.timers,
            Instant::now(),
        ));
        self.send(&bytes);
    }

    pub(super) fn send_bye(&mut self) {
        let sent_by = self.sent_by();
        let Some(dialog) = &mut self.dialog else {
            return;
        };
        let bytes = dialog.bye(&sent_by, "UDP");
        self.bye_tx = Some(ClientNonInviteTransaction::new(
            bytes.clone(),
            false,
            self.shared.timers,
            Instant::now(),
        ));
        self.send(&bytes);
    }

    pub(super) fn on_response(&mut self, resp: &rsip::Response, ctx: &mut Context<Self>) {
        let Ok(key) = TransactionKey::for_response(resp) else {
            return;
        };
        let code = u16::from(resp.status_code.clone());
        let now = Instant::now();
        match key.method() {
            rsip::Method::Invite if key.branch() == self.branch => {
                self.on_invite_response(resp, code, ctx)
            }
            rsip::Method::Cancel => {
                if let Some(t) = &mut self.cancel_tx {
                    t.on_response(code, now);
                }
            }
            rsip::Method::Bye => {
                if let Some(t) = &mut self.bye_tx {
                    t.on_response(code, now);
                }
            }
            _ => {}
        }
    }

    fn on_invite_response(&mut self, resp: &rsip::Response, code: u16, ctx: &mut Context<Self>) {
        let Some(tx) = &mut self.invite_tx else {
            return;
        };
        match tx.on_response(code, Instant::now()) {
            InviteResponse::Provisional => {
                if matches!(self.phase, Phase::Calling | Phase::Ringing) {
                    self.phase = Phase::Ringing;
                    if code > 100 {
                        self.events.do_send(CallEvent::Progress {
                            call_id: self.id,
                            code,
                        });
                    }
                }
                self.send_cancel_if_allowed();
            }
            InviteResponse::Accepted {
                retransmission: false,
            } => self.on_accepted(resp, ctx),
            InviteResponse::Accepted {
                retransmission: true,
            } => {
                crate::metrics::sip_retransmission(true);
                if let Some(ack) = self.ack.clone() {
                    self.send(&ack);
                }
            }
            InviteResponse::Rejected {
                retransmission: None,
            } => {
                let ack = self.non_2xx_ack(resp);
                if let Some(tx) = &mut self.invite_tx {
                    tx.store_ack(ack.clone());
                }
                self.send(&ack);
                self.end(CallEndCause::Rejected(code), ctx);
            }
            InviteResponse::Rejected {
                retransmission: Some(ack),
            } => {
                crate::metrics::sip_retransmission(true);
                self.send(&ack);
            }
            InviteResponse::Ignored => {}
        }
    }

    /// The ACK for a 3xx–6xx: the INVITE's branch, the response's To (RFC 3261 §17.1.1.3).
    fn non_2xx_ack(&self, resp: &rsip::Response) -> Bytes {
        let to = resp
            .to_header()
            .map(|t| t.value().to_string())
            .unwrap_or_else(|_| self.to_uri());
        self.transaction_request(rsip::Method::Ack, &self.branch)
            .to_addr(&to, None)
            .build()
    }

    /// The callee answered: the dialog starts, the 2xx is ACKed (also when we no longer want
    /// the call: then BYE follows at once).
    fn on_accepted(&mut self, resp: &rsip::Response, ctx: &mut Context<Self>) {
        let dialog = self.dialog_from_2xx(resp);
        let ack = dialog
            .request(rsip::Method::Ack, INVITE_CSEQ, &self.sent_by(), "UDP")
            .build();
        self.dialog = Some(dialog);
        self.send(&ack);
        self.ack = Some(ack);
        if self.phase == Phase::Ended {
            // Our CANCEL crossed the callee's 2xx, or the ring timeout passed.
            self.send_bye();
            return;
        }
        match crate::media::sdp::negotiate(&resp.body) {
            Ok(negotiated) => self.answered(negotiated, ctx),
            Err(e) => {
                tracing::info!(call_id = %self.id, error = %e, "callee's SDP answer unusable");
                self.send_bye();
                self.end(CallEndCause::Failed, ctx);
            }
        }
    }

    /// RFC 3261 §12.1.2: the UAC's view of the dialog a 2xx creates.
    fn dialog_from_2xx(&self, resp: &rsip::Response) -> Dialog {
        let to = resp
            .to_header()
            .map(|t| t.value().to_string())
            .unwrap_or_default();
        let remote_tag = resp
            .to_header()
            .ok()
            .and_then(|t| t.tag().ok().flatten())
            .map(|t| t.value().to_string());
        let remote_target = resp
            .contact_header()
            .ok()
            .and_then(|c| uri_of(c.value()))
            .unwrap_or_else(|| self.route.request_uri.clone());
        // The UAC reverses the Record-Route order (RFC 3261 §12.1.2).
        let mut route_set = record_routes(&resp.headers);
        route_set.reverse();
        Dialog {
            local_uri: self.local_uri(),
            local_tag: self.local_tag.clone(),
            remote_uri: strip_tag(&to),
            remote_tag,
            remote_target,
            route_set,
            local_cseq: INVITE_CSEQ,
            call_id: self.sip_call_id.clone(),
        }
    }

    /// A request from the callee inside the dialog.
    pub(super) fn on_request(&mut self, req: rsip::Request, ctx: &mut Context<Self>) {
        let Ok(key) = TransactionKey::from_request(&req) else {
            return;
        };
        if req.method == rsip::Method::Ack {
            return;
        }
        if let Some((_, t)) = self.server_txs.iter_mut().find(|(k, _)| *k == key) {
            crate::metrics::sip_retransmission(true);
            if let Some(b) = t.on_request_retransmit() {
                self.send(&b);
            }
            return;
        }
        let in_dialog = self.dialog.is_some() && self.phase == Phase::Answered;
        let (code, extra): (u16, Option<(&str, &str)>) = match &req.method {
            rsip::Method::Bye | rsip::Method::Info | rsip::Method::Invite if !in_dialog => {
                (481, None)
            }
            rsip::Method::Bye | rsip::Method::Info => (200, None),
            rsip::Method::Invite => (200, Some(("Allow", ALLOW))),
            rsip::Method::Options => (200, Some(("Allow", ALLOW))),
            rsip::Method::Cancel => (481, None),
            m if is_unsupported(m) => (405, Some(("Allow", ALLOW))),
            _ => (501, None),
        };
        let mut b = ResponseBuilder::new(&req, code, reason_phrase(code)).to_tag(&self.local_tag);
        if let Some((name, value)) = extra {
            b = b.header(name, value);
        }
        if req.method == rsip::Method::Invite && code == 200 {
            b = b
                .header("Contact", &format!("<sip:activeflow@{}>", self.sent_by()))
                .body("application/sdp", self.local_sdp.clone());
            if let (Some(media), Ok(n)) = (&self.media, crate::media::sdp::negotiate(&req.body)) {
                if let Some(addr) = n.remote_rtp {
                    media.send(crate::media::MediaCommand::Remote(addr));
                }
            }
        }
        let bytes = b.build();
        let mut tx = ServerNonInviteTransaction::new(false, self.shared.timers, Instant::now());
        tx.on_final(bytes.clone(), Instant::now());
        self.server_txs.push((key, tx));
        crate::metrics::sip_response_sent(code);
        self.send(&bytes);
        if req.method == rsip::Method::Bye && code == 200 {
            self.end(CallEndCause::RemoteBye, ctx);
        }
    }
}
