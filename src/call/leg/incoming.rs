//! The incoming role (UAS, RFC 3261 §13.3): the INVITE's server transaction, 100 at once, 180
//! with our tag (repeated every minute while the call waits, §13.3.1.1), the final response
//! (Record-Route copied into 18x and 2xx, §12.1.1), the ACK for our 2xx and its timeout, and
//! CANCEL of the INVITE (§9.2).

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::{Env, Leg, LocalMedia, MediaState, Phase, Role};
use crate::call::events::{CallEndCause, CallEvent, HangupCause, Refusal};
use crate::call::CallId;
use crate::media::sdp;
use crate::sip::dialog::Dialog;
use crate::sip::message::{reason_phrase, ResponseBuilder, TransactionKey};
use crate::sip::transaction::{ServerInviteTransaction, TransactionOutput};
use crate::sip::transport::Peer;

/// Methods we answer inside a dialog (RFC 3261 §20.5 Allow).
pub(crate) const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, PRACK, REFER, NOTIFY";
/// How often a provisional goes out again while the call waits (RFC 3261 §13.3.1.1: proxies
/// cancel an INVITE that got nothing for three minutes, Timer C).
pub(crate) const PROVISIONAL_REPEAT: Duration = Duration::from_secs(60);
/// How long after the answer the RTP session starts by itself (digits pressed meanwhile wait
/// in the socket's queue and are read then).
pub(crate) const MEDIA_START_DELAY: Duration = Duration::from_millis(250);

pub(crate) struct Incoming {
    /// The initial INVITE, trimmed, kept until its final response is sent (boxed: an answered
    /// call should not carry its size for the rest of the call).
    invite: Option<Box<rsip::Request>>,
    pub(crate) invite_key: TransactionKey,
    invite_tx: ServerInviteTransaction,
    /// The last non-100 provisional, sent again at `repeat_at`.
    ringing: Option<Bytes>,
    repeat_at: Option<Instant>,
    /// A hangup came before the ACK for our 2xx: BYE once it arrives (§15).
    bye_after_ack: bool,
    /// The INVITE's Max-Forwards (70 when it had none).
    pub(crate) max_forwards: u8,
    /// The RFC 4028 session timer the INVITE asked for, as we agree to it at the answer.
    timer: Option<(u32, bool, bool)>,
    /// 100rel and early media (RFC 3262 §3; see `early.rs`).
    pub(super) early: super::early::UasEarly,
    /// The INVITE's Diversion values (RFC 5806), for the legs `connect` places.
    pub(crate) diversion: Vec<String>,
    /// The final response refusing the INVITE (3xx-6xx), once sent: the call's record keeps it.
    refused_with: Option<u16>,
}

impl Incoming {
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        [
            self.invite_tx.next_deadline(),
            self.repeat_at,
            self.early.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(super) fn on_end(&mut self) {
        self.invite = None;
        self.ringing = None;
        self.repeat_at = None;
        self.early.reliable = None;
    }

    /// No ACK is awaited any more.
    pub(super) fn is_done(&self) -> bool {
        self.invite_tx.is_terminated() || !self.invite_tx.awaiting_ack()
    }
}

impl Leg {
    /// A leg for a new INVITE (already checked for ACL, capacity and `Require` by the
    /// dispatcher): sends 100 and reads the offer. The leg is already ended (488 sent) when the
    /// offer is unusable.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_incoming(
        id: CallId,
        invite: rsip::Request,
        invite_key: TransactionKey,
        peer: Peer,
        local_tag: String,
        env: &Env,
        received_at: Instant,
    ) -> Leg {
        use rsip::prelude::*;
        let sip_call_id = invite
            .call_id_header()
            .map(|h| h.value().to_string())
            .unwrap_or_default();
        let max_forwards =
            super::rules::max_forwards(&invite.headers).map_or(70, |m| m.min(255) as u8);
        let timer = super::session_timer::as_uas(&invite.headers, env.session_expires, env.min_se)
            .ok()
            .flatten();
        let role = Incoming {
            early: super::early::UasEarly::of(&invite),
            diversion: super::rules::diversion(&invite.headers),
            timer,
            max_forwards,
            invite: Some(Box::new(invite)),
            refused_with: None,
            invite_key,
            invite_tx: ServerInviteTransaction::new(
                peer.transport.is_reliable(),
                env.timers,
                received_at,
            ),
            ringing: None,
            repeat_at: Some(received_at + PROVISIONAL_REPEAT),
            bye_after_ack: false,
        };
        let role = Role::Incoming(Box::new(role));
        let mut leg = Leg::new(
            id,
            sip_call_id,
            role,
            Some(peer),
            local_tag,
            env,
            received_at,
        );
        leg.send_provisional(100, env);
        let offer = leg
            .invite()
            .and_then(|i| super::rules::sdp_in(&i.headers, &i.body))
            .map(sdp::negotiate);
        match offer {
            Some(Err(e)) => {
                tracing::debug!(call_id = %id, error = %e, "rejecting offer");
                leg.send_final(488, None, env, received_at);
                leg.end(CallEndCause::Local);
            }
            Some(Ok(n)) => leg.negotiated = Some(n),
            None => {}
        }
        leg.trim_invite();
        leg
    }

    fn role_in(&mut self) -> Option<&mut Incoming> {
        match &mut self.role {
            Role::Incoming(i) => Some(i),
            Role::Outgoing(_) => None,
        }
    }

    fn invite(&self) -> Option<&rsip::Request> {
        self.incoming().and_then(|i| i.invite.as_deref())
    }

    /// Drops what no response or dialog needs from the INVITE (its body, read by now, and
    /// every header but those of `kept_for_answer`): a call may stay offered for minutes, and
    /// 100,000 of them hold this.
    fn trim_invite(&mut self) {
        if let Some(invite) = self.role_in().and_then(|i| i.invite.as_deref_mut()) {
            let mut headers: Vec<rsip::Header> = std::mem::take(&mut invite.headers)
                .into_iter()
                .filter(super::rules::kept_for_answer)
                .collect();
            headers.shrink_to_fit();
            invite.headers = headers.into();
            invite.body = Vec::new();
        }
    }

    /// A provisional response: 100 without a tag; others with our tag, Contact and the
    /// Record-Route (an early dialog, §12.1.1), `sdp` (early media) and, when the caller
    /// asked for it, sent reliably (RFC 3262 §3, `early.rs`).
    pub(super) fn send_provisional(&mut self, code: u16, env: &Env) {
        self.send_provisional_with(code, None, env, Instant::now());
    }

    pub(super) fn send_provisional_with(
        &mut self,
        code: u16,
        sdp: Option<Bytes>,
        env: &Env,
        now: Instant,
    ) {
        let peer = self.peer;
        let Some(invite) = self.invite() else { return };
        let mut b = ResponseBuilder::new(invite, code, reason_phrase(code));
        if let Some(p) = peer {
            b = b.received_from(p.addr);
        }
        if code > 100 {
            b = b
                .to_tag(&self.local_tag)
                .header("Contact", &env.contact_for(peer.as_ref(), invite))
                .record_route();
        }
        let (mut b, rseq) = self.reliable_headers(b, code, sdp.is_some());
        if let Some(sdp) = sdp {
            b = b.body("application/sdp", sdp);
        }
        let bytes = b.build();
        let Some(role) = self.role_in() else { return };
        role.invite_tx.on_provisional(bytes.clone());
        if code > 100 {
            role.ringing = Some(bytes.clone());
        }
        if let Some(rseq) = rseq {
            role.early
                .sent_reliably(rseq, bytes.clone(), env.timers, now);
        }
        crate::metrics::sip_response_sent(code);
        self.send(bytes);
    }

    /// 180 Ringing, once, while the call is offered (a `connect` leg rang).
    pub(crate) fn ring(&mut self, env: &Env) {
        let fresh = self.incoming().is_some_and(|i| i.ringing.is_none());
        if self.phase == Phase::Early && fresh {
            self.send_provisional(180, env);
        }
    }

    /// The INVITE's final response, through its transaction.
    /// Sends the final response `code` (once: nothing if one went out already). A 503
    /// `unavailable` is counted under that reason here, as it goes out.
    fn send_final(
        &mut self,
        code: u16,
        unavailable: Option<crate::metrics::Unavailable>,
        env: &Env,
        now: Instant,
    ) {
        let Some(invite) = self.role_in().and_then(|i| i.invite.take()) else {
            return;
        };
        let mut b =
            ResponseBuilder::new(&invite, code, reason_phrase(code)).to_tag(&self.local_tag);
        if (200..300).contains(&code) {
            b = b
                .record_route()
                .header("Contact", &env.contact_for(self.peer.as_ref(), &invite))
                .header("Allow", ALLOW)
                .header("Supported", super::in_dialog::supported(env));
            if let Some(sdp) = self.local_sdp(env) {
                b = b.body("application/sdp", sdp);
            }
            self.dialog = Some(Dialog::as_uas(&invite, &self.local_tag));
            b = self.with_session_expires(b);
        } else if code == 503 {
            b = b.header("Retry-After", "5");
        }
        let bytes = b.build();
        if let Some(role) = self.role_in() {
            role.invite_tx.on_final(code, bytes.clone(), now);
            role.ringing = None;
            role.repeat_at = None;
            if code >= 300 {
                role.refused_with = Some(code);
            }
        }
        crate::metrics::sip_response_sent(code);
        if let Some(reason) = unavailable {
            crate::metrics::sip_unavailable(reason);
        }
        if code >= 300 {
            // Rejected calls count too, so the histogram shows every outcome.
            crate::metrics::call_setup(now.saturating_duration_since(self.created));
        }
        self.send(bytes);
    }

    /// Sends our 2xx with `media` as our SDP; the RTP session starts a moment later by itself.
    pub(crate) fn answer(&mut self, media: LocalMedia, env: &Env, now: Instant) {
        if self.phase != Phase::Early || !self.is_incoming() {
            return;
        }
        // After early media the 200 carries the SDP of the 183 (§13.3.1.1: same session).
        let media = self.local_media.unwrap_or(media);
        self.local_media = Some(media);
        if self.answer_waits_for_prack() {
            return;
        }
        if let Some((interval, we_refresh, peer_supports)) = self.incoming().and_then(|i| i.timer) {
            let timer =
                super::session_timer::SessionTimer::new(interval, we_refresh, peer_supports, now);
            self.session_timer = Some(Box::new(timer));
        }
        self.out.push(super::Output::Answered);
        self.send_final(200, None, env, now);
        self.phase = Phase::Answered;
        crate::metrics::call_setup(now.saturating_duration_since(self.created));
        self.media = if self.media == MediaState::Started {
            MediaState::Started
        } else if media.offer {
            MediaState::AwaitAck
        } else {
            MediaState::StartAt(now + MEDIA_START_DELAY)
        };
        self.emit(CallEvent::Answered { call_id: self.id });
    }

    /// The final response (3xx-6xx) this incoming call was refused with, if it was.
    pub(crate) fn refused_with(&self) -> Option<u16> {
        self.incoming().and_then(|i| i.refused_with)
    }

    /// Refuses the call with a final response, unless it was answered, refused or cancelled
    /// already.
    pub(crate) fn reject(
        &mut self,
        refusal: Refusal,
        cause: CallEndCause,
        env: &Env,
        now: Instant,
    ) {
        if self.phase == Phase::Early && self.is_incoming() {
            self.send_final(refusal.status(), refusal.unavailable(), env, now);
            self.end(cause);
        }
    }

    pub(super) fn incoming_hangup(
        &mut self,
        cause: HangupCause,
        end: CallEndCause,
        env: &Env,
        now: Instant,
    ) {
        match self.phase {
            Phase::Early => self.reject(cause.refusal_before_answer(), end, env, now),
            // RFC 3261 §15: no BYE before the ACK for our 2xx (or its timeout), unless the
            // engine ends the call itself (a dying session, the call's time cap): BYE now.
            Phase::Answered if end == CallEndCause::Local => {
                if let Some(role) = self.role_in() {
                    role.bye_after_ack = true;
                }
            }
            Phase::Answered | Phase::Confirmed => {
                self.send_bye(env, now);
                self.end(end);
            }
            Phase::Ended => {}
        }
    }

    pub(super) fn incoming_tick(&mut self, env: &Env, now: Instant) {
        self.reliable_tick(env, now);
        let Some(role) = self.role_in() else { return };
        let outputs = role.invite_tx.on_tick(now);
        let repeat = match (role.repeat_at, &role.ringing) {
            (Some(at), _) if at <= now => {
                role.repeat_at = Some(now + PROVISIONAL_REPEAT);
                Some(role.ringing.clone())
            }
            _ => None,
        };
        for out in outputs {
            match out {
                TransactionOutput::Retransmit(b) => {
                    crate::metrics::sip_retransmission(false);
                    self.send(b);
                }
                TransactionOutput::Timeout if self.phase == Phase::Answered => {
                    tracing::info!(call_id = %self.id, "no ACK for 2xx within 64*T1");
                    self.send_bye(env, now);
                    self.end(CallEndCause::AckTimeout);
                }
                _ => {}
            }
        }
        match repeat {
            Some(Some(ringing)) if self.phase == Phase::Early => {
                crate::metrics::sip_response_sent(180);
                self.send(ringing);
            }
            // The call waits without having rung: 180 now keeps proxies from giving up on it.
            Some(None) if self.phase == Phase::Early => self.send_provisional(180, env),
            _ => {}
        }
    }

    /// A retransmission of the initial INVITE: the last response again.
    pub(super) fn on_invite_retransmission(&mut self) {
        crate::metrics::sip_retransmission(true);
        if let Some(b) = self
            .role_in()
            .and_then(|r| r.invite_tx.on_request_retransmit())
        {
            self.send(b);
        }
    }

    /// An ACK for the initial INVITE's final response (an ACK for a non-2xx reuses the
    /// INVITE's branch; one for a 2xx has its own, §17.1.1.3, §13.2.2.4).
    pub(super) fn incoming_ack(
        &mut self,
        req: &rsip::Request,
        key: &TransactionKey,
        env: &Env,
        now: Instant,
    ) {
        let Some(role) = self.role_in() else { return };
        if !role.invite_tx.awaiting_ack() {
            return;
        }
        let for_2xx = role.invite_tx.final_code().is_some_and(|c| c < 300);
        if !for_2xx && key.branch() != role.invite_key.branch() {
            return;
        }
        role.invite_tx.on_ack(now);
        let bye_after_ack = role.bye_after_ack;
        if self.phase != Phase::Answered {
            return;
        }
        self.phase = Phase::Confirmed;
        // We offered in the 2xx; the ACK carries the caller's answer: media starts now.
        if self.local_media.is_some_and(|m| m.offer) {
            self.update_remote_media(req);
        }
        if self.media == MediaState::AwaitAck {
            self.media = MediaState::StartAt(now);
            self.start_media_now();
        } else if self.media_started() {
            // Started before the ACK: RTP may go to the caller's address only now.
            if let Some(addr) = self.negotiated.as_ref().and_then(|n| n.remote_rtp) {
                self.out.push(super::Output::MediaRemote(addr));
            }
        }
        if bye_after_ack {
            self.send_bye(env, now);
            self.end(CallEndCause::Local);
        }
    }

    /// CANCEL of the INVITE (§9.2): 487 to the INVITE and the call ends, unless the final
    /// response went out already.
    pub(super) fn on_cancel(&mut self, env: &Env, now: Instant) {
        if self.phase == Phase::Early {
            self.send_final(487, None, env, now);
            self.end(CallEndCause::Cancelled);
        }
    }

    /// Before the leg goes: how long retransmissions of its INVITE may still arrive.
    pub(crate) fn invite_linger_until(&self, env: &Env) -> Option<(TransactionKey, Instant)> {
        let role = self.incoming()?;
        Some((role.invite_key.clone(), self.created + env.timers.t1 * 64))
    }
}
