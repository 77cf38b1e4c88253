//! Session refresh for a leg (RFC 4028): the agreed timer's deadline, our refreshing re-INVITE
//! through its own client INVITE transaction (ACKed on its 2xx, retried on 491), and BYE when
//! the session expires unrefreshed (end cause `session_expired`).

use bytes::Bytes;
use rsip::prelude::*;
use tokio::time::Instant;

use super::session_timer::{as_uac, SessionTimer};
use super::{Env, Leg, Phase};
use crate::call::events::CallEndCause;
use crate::sip::message::{new_branch, TransactionKey};
use crate::sip::transaction::{ClientInviteTransaction, InviteResponse, TransactionOutput};
use crate::sip::transport::TransportKind;

/// Our refreshing re-INVITE.
pub(crate) struct Refresh {
    tx: ClientInviteTransaction,
    cseq: u32,
    branch: String,
    /// The ACK for its 2xx, sent again for each retransmitted 2xx.
    ack: Option<Bytes>,
}

impl Refresh {
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.tx.next_deadline()
    }
}

impl Leg {
    /// The session timer's and the refresh transaction's next deadline.
    pub(super) fn refresh_deadline(&self) -> Option<Instant> {
        let timer = self
            .session_timer
            .as_deref()
            .filter(|_| self.phase == Phase::Confirmed)
            .map(|t| t.deadline);
        [
            timer,
            self.refresh.as_deref().and_then(Refresh::next_deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fires the session timer: we refresh, or the session is over.
    pub(super) fn refresh_tick(&mut self, env: &Env, now: Instant) {
        if let Some(r) = self.refresh.as_deref_mut() {
            let mut resend = Vec::new();
            for out in r.tx.on_tick(now) {
                if let TransactionOutput::Retransmit(b) = out {
                    resend.push(b);
                }
            }
            for b in resend {
                crate::metrics::sip_retransmission(false);
                self.send_in_dialog(b);
            }
        }
        let Some(timer) = self.session_timer.as_deref() else {
            return;
        };
        if self.phase != Phase::Confirmed || timer.deadline > now {
            return;
        }
        if timer.we_refresh && !timer.refreshing {
            self.send_refresh(env, now);
        } else {
            tracing::info!(call_id = %self.id, "session expired unrefreshed (RFC 4028)");
            self.send_bye(env, now);
            self.end(CallEndCause::SessionExpired);
        }
    }

    /// A refreshing re-INVITE with our SDP, our `Session-Expires` as its UAC.
    fn send_refresh(&mut self, env: &Env, now: Instant) {
        let Some((to, _)) = self.in_dialog_destination() else {
            return;
        };
        let sdp = self.local_sdp(env).unwrap_or_default();
        let Some(timer) = self.session_timer.as_deref_mut() else {
            return;
        };
        timer.refresh_sent(now);
        let session_expires = timer.header(false);
        let Some(dialog) = &mut self.dialog else {
            return;
        };
        dialog.local_cseq += 1;
        let cseq = dialog.local_cseq;
        let branch = new_branch();
        let b = dialog.request_on_branch(
            rsip::Method::Invite,
            cseq,
            &env.sent_by_over(to.transport),
            to.transport.via_token(),
            &branch,
        );
        let bytes = self
            .with_refresh_credentials(b)
            .contact(&env.contact(self.peer.as_ref()))
            .header("Allow", super::incoming::ALLOW)
            .header("Supported", "timer")
            .header("Session-Expires", &session_expires)
            .body("application/sdp", sdp)
            .build();
        let tx = ClientInviteTransaction::new(
            bytes.clone(),
            to.transport.is_reliable(),
            env.timers,
            now,
        );
        self.refresh = Some(Box::new(Refresh {
            tx,
            cseq,
            branch,
            ack: None,
        }));
        self.send_in_dialog(bytes);
    }

    /// A response to our refresh, if it is one: true when it was.
    pub(super) fn refresh_response(
        &mut self,
        resp: &rsip::Response,
        key: &TransactionKey,
        env: &Env,
        now: Instant,
    ) -> bool {
        let Some(r) = self.refresh.as_deref_mut() else {
            return false;
        };
        if key.method() != rsip::Method::Invite || key.branch() != r.branch {
            return false;
        }
        let code = u16::from(resp.status_code.clone());
        let cseq = r.cseq;
        match r.tx.on_response(code, now) {
            InviteResponse::Accepted {
                retransmission: false,
            } => {
                let Some(dialog) = &self.dialog else {
                    return true;
                };
                let transport = self.peer.map_or(TransportKind::Udp, |p| p.transport);
                let ack = dialog
                    .request(
                        rsip::Method::Ack,
                        cseq,
                        &env.sent_by_over(transport),
                        transport.via_token(),
                    )
                    .build();
                if let Some(r) = self.refresh.as_deref_mut() {
                    r.ack = Some(ack.clone());
                }
                self.send_in_dialog(ack);
                self.refresh_authenticated();
                // The 2xx's Session-Expires is what holds now; without one, ours goes on.
                match as_uac(&resp.headers, now) {
                    Some(t) => self.session_timer = Some(Box::new(t)),
                    None => {
                        if let Some(t) = self.session_timer.as_deref_mut() {
                            t.restart(now);
                        }
                    }
                }
            }
            InviteResponse::Accepted {
                retransmission: true,
            } => {
                if let Some(ack) = self.refresh.as_deref().and_then(|r| r.ack.clone()) {
                    self.send_in_dialog(ack);
                }
            }
            InviteResponse::Rejected {
                retransmission: None,
            } => self.refresh_rejected(resp, code, env, now),
            InviteResponse::Rejected {
                retransmission: Some(ack),
            } => self.send_in_dialog(ack),
            InviteResponse::Provisional | InviteResponse::Ignored => {}
        }
        true
    }

    /// A 3xx–6xx to our refresh: ACK it (§17.1.1.3); 481 or 408 end the session (§10); 491
    /// retries in two seconds (§14.1); others leave it to expire.
    fn refresh_rejected(&mut self, resp: &rsip::Response, code: u16, env: &Env, now: Instant) {
        let (Some(r), Some(dialog)) = (self.refresh.as_deref(), &self.dialog) else {
            return;
        };
        let to = resp
            .to_header()
            .map(|t| t.value().to_string())
            .unwrap_or_default();
        let transport = self.peer.map_or(TransportKind::Udp, |p| p.transport);
        let mut ack = dialog.request_on_branch(
            rsip::Method::Ack,
            r.cseq,
            &env.sent_by_over(transport),
            transport.via_token(),
            &r.branch,
        );
        ack = ack.to_addr(
            &crate::sip::dialog::strip_tag(&to),
            dialog.remote_tag.as_deref(),
        );
        let ack = ack.build();
        if let Some(r) = self.refresh.as_deref_mut() {
            r.tx.store_ack(ack.clone());
        }
        self.send_in_dialog(ack);
        if self.answer_refresh_challenge(resp, code) {
            self.send_refresh(env, now);
            return;
        }
        match code {
            408 | 481 => {
                self.send_bye(env, now);
                self.end(CallEndCause::SessionExpired);
            }
            491 => {
                if let Some(t) = self.session_timer.as_deref_mut() {
                    t.refreshing = false;
                    t.deadline =
                        crate::sip::transaction::after(now, std::time::Duration::from_secs(2));
                }
            }
            _ => {}
        }
    }

    /// The peer refreshed (its re-INVITE got our 2xx): the timer as that request agreed.
    pub(super) fn refreshed_by_peer(&mut self, agreed: Option<(u32, bool, bool)>, now: Instant) {
        match agreed {
            Some((interval, we_refresh, peer_supports)) => {
                self.session_timer = Some(Box::new(SessionTimer::new(
                    interval,
                    we_refresh,
                    peer_supports,
                    now,
                )));
            }
            None => {
                if let Some(t) = self.session_timer.as_deref_mut() {
                    t.restart(now);
                }
            }
        }
    }
}
