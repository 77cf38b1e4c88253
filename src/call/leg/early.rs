//! Early media and 100rel, the leg's side (the PRACK rules themselves are in `reliable.rs`).
//! Incoming (UAS): 183 with our SDP before the answer (RFC 3960 gateway model), sent
//! reliably when the caller supports 100rel; PRACKs answered; the 200 held until the
//! reliable 183 is PRACKed; no PRACK in 64·T1 refuses the call (RFC 3262 §3). Outgoing (UAC):
//! PRACK for reliable provisionals (§4, §7.2) and media started on the SDP of a 18x.

use bytes::Bytes;
use tokio::time::Instant;

use super::reliable::{PeerSupport, PrackSequence, Received, ReliableProvisional, ReliableTick};
use super::rules::{sdp_in, tag_of};
use super::{Env, Leg, LocalMedia, MediaState, Phase, Role};
use crate::call::events::{CallEndCause, CallEvent, Refusal};
use crate::sip::dialog::Dialog;
use crate::sip::message::{reason_phrase, ResponseBuilder, TransactionKey};
use crate::sip::transaction::{ClientNonInviteTransaction, ServerNonInviteTransaction, Timers};
use crate::sip::transport::Peer;

/// The UAS's 100rel state for one incoming call.
pub(crate) struct UasEarly {
    /// The caller's stance on 100rel and its INVITE's CSeq (what a PRACK's RAck names).
    pub(super) rel100: PeerSupport,
    invite_cseq: u32,
    /// Our reliable provisional awaiting (or past) its PRACK, and the last RSeq used.
    pub(super) reliable: Option<Box<ReliableProvisional>>,
    last_rseq: u32,
    /// The flow answered while our reliable provisional was unacknowledged: the 200 waits
    /// for its PRACK (§3).
    answer_deferred: bool,
    /// Early media was asked for while a reliable 180 awaited its PRACK: the 183 follows it.
    early_queued: bool,
}

impl UasEarly {
    pub(super) fn of(invite: &rsip::Request) -> UasEarly {
        use rsip::prelude::*;
        UasEarly {
            rel100: PeerSupport::of(&invite.headers),
            invite_cseq: invite
                .cseq_header()
                .ok()
                .and_then(|c| c.seq().ok())
                .unwrap_or(1),
            reliable: None,
            last_rseq: 0,
            answer_deferred: false,
            early_queued: false,
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.reliable.as_ref().and_then(|r| r.next_deadline())
    }

    /// `bytes`, with `RSeq: rseq`, went out: retransmitted until PRACK.
    pub(super) fn sent_reliably(&mut self, rseq: u32, bytes: Bytes, timers: Timers, now: Instant) {
        self.last_rseq = rseq;
        let r = ReliableProvisional::new(rseq, self.invite_cseq, bytes, timers, now);
        self.reliable = Some(Box::new(r));
    }
}

/// Our PRACK transactions one outgoing leg keeps at most (each lives up to 64·T1 on UDP).
pub(super) const MAX_PRACKS_IN_FLIGHT: usize = 16;

/// The UAC's PRACK state for one outgoing leg.
#[derive(Default)]
pub(crate) struct UacEarly {
    sequence: PrackSequence,
    /// Our PRACKs in flight, by branch.
    pracks: Vec<(String, ClientNonInviteTransaction)>,
    /// The highest CSeq a PRACK used (the dialog's later requests go above it, §12.2.1.1).
    pub(super) last_cseq: u32,
}

impl UacEarly {
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.pracks
            .iter()
            .filter_map(|(_, t)| t.next_deadline())
            .min()
    }
}

impl Leg {
    /// `Require: 100rel` and the next `RSeq` when provisional `code` must be reliable (RFC
    /// 3262 §3: always when the caller requires 100rel; with `Supported` we choose to for the
    /// one carrying SDP); the RSeq used.
    pub(super) fn reliable_headers(
        &self,
        b: ResponseBuilder,
        code: u16,
        has_sdp: bool,
    ) -> (ResponseBuilder, Option<u32>) {
        let Some(early) = self.incoming().map(|i| &i.early) else {
            return (b, None);
        };
        let reliable = code > 100
            && match early.rel100 {
                PeerSupport::Required => true,
                PeerSupport::Supported => has_sdp,
                PeerSupport::None => false,
            };
        if !reliable {
            return (b, None);
        }
        let rseq = early.last_rseq + 1;
        let b = b
            .header("Require", super::reliable::TAG)
            .header("RSeq", &rseq.to_string());
        (b, Some(rseq))
    }

    fn reliable_pending(&self) -> bool {
        self.incoming()
            .and_then(|i| i.early.reliable.as_ref())
            .is_some_and(|r| !r.is_acknowledged())
    }

    /// §3: no 2xx while a reliable provisional is unacknowledged; the answer is sent when its
    /// PRACK comes. True when it must wait.
    pub(super) fn answer_waits_for_prack(&mut self) -> bool {
        if !self.reliable_pending() {
            return false;
        }
        if let Role::Incoming(i) = &mut self.role {
            i.early.answer_deferred = true;
        }
        true
    }

    /// Early media to the caller: 183 with our SDP answer (reliably when it supports 100rel)
    /// and our RTP session starts now, sending to its SDP address before any answer. Only
    /// for an INVITE with an offer (an offer of ours in a 183 would need an answer in PRACK).
    pub(crate) fn early_media(&mut self, media: LocalMedia, env: &Env, now: Instant) {
        if self.phase != Phase::Early || !self.is_incoming() || self.negotiated.is_none() {
            return;
        }
        if self.local_media.is_none() {
            self.local_media = Some(media);
        }
        if self.reliable_pending() {
            // §3: one reliable provisional at a time; the 183 follows the PRACK.
            if let Role::Incoming(i) = &mut self.role {
                i.early.early_queued = true;
            }
            return;
        }
        let sdp = self.local_sdp(env);
        self.send_provisional_with(183, sdp, env, now);
        self.early_media = true;
        if !self.media_started() {
            self.media = MediaState::StartAt(now);
            self.start_media_now();
        }
    }

    /// Retransmits our reliable provisional (T1 doubling) or refuses the call (§3).
    pub(super) fn reliable_tick(&mut self, env: &Env, now: Instant) {
        let Role::Incoming(i) = &mut self.role else {
            return;
        };
        let Some(r) = i.early.reliable.as_mut() else {
            return;
        };
        match r.on_tick(now) {
            ReliableTick::Retransmit(bytes) if self.phase == Phase::Early => {
                crate::metrics::sip_retransmission(false);
                self.send(bytes);
            }
            ReliableTick::TimedOut if self.phase == Phase::Early => {
                tracing::info!(call_id = %self.id, "no PRACK for our reliable provisional");
                crate::metrics::prack_timeout();
                self.reject(Refusal::Status(504), CallEndCause::Failed, env, now);
            }
            _ => {}
        }
    }

    /// A PRACK (RFC 3262 §3): 200 when its RAck matches our unacknowledged reliable
    /// provisional, 481 when it names another, 400 without a readable RAck. Then a held
    /// answer or early media goes out.
    pub(super) fn on_prack(
        &mut self,
        req: &rsip::Request,
        key: TransactionKey,
        src: Peer,
        env: &Env,
        now: Instant,
    ) {
        let rack = super::reliable::RAck::of(&req.headers);
        let readable = rack.is_some();
        let matched = match (&mut self.role, rack) {
            (Role::Incoming(i), Some(rack)) if self.phase != Phase::Ended => i
                .early
                .reliable
                .as_mut()
                .is_some_and(|r| !r.is_acknowledged() && r.on_prack(&rack)),
            _ => false,
        };
        // No or a malformed RAck is a bad request (§7.2 makes it mandatory); one that names
        // no unacknowledged provisional of ours gets 481 (§3). An offer in the PRACK (§5) is
        // one we do not take: 488, the session stays as the 183 set it (RFC 3264 §6, as for
        // a re-INVITE), while the PRACK still acknowledges its provisional.
        let offer = sdp_in(&req.headers, &req.body).is_some();
        let code = match (matched, readable) {
            (true, _) if offer => 488,
            (true, _) => 200,
            (false, true) => 481,
            (false, false) => 400,
        };
        let bytes = ResponseBuilder::new(req, code, reason_phrase(code))
            .received_from(src.addr)
            .to_tag(&self.local_tag)
            .build();
        let mut tx = ServerNonInviteTransaction::new(src.transport.is_reliable(), env.timers, now);
        tx.on_final(bytes.clone(), now);
        self.server_txs.insert(key, tx);
        crate::metrics::sip_response_sent(code);
        self.send_to(src, bytes);
        if !matched || self.phase != Phase::Early {
            return;
        }
        let Role::Incoming(i) = &mut self.role else {
            return;
        };
        let (deferred, queued) = (
            std::mem::take(&mut i.early.answer_deferred),
            std::mem::take(&mut i.early.early_queued),
        );
        // A held answer goes first and the queued 183 is skipped: the 200 carries the SDP
        // the 183 would have (RFC 3261 §13.3.1.1), and a reliable 183 now would hold the
        // 200 for a PRACK of its own.
        if deferred && !self.reliable_pending() {
            if let Some(media) = self.local_media {
                self.answer(media, env, now);
            }
        } else if queued {
            if let Some(media) = self.local_media {
                self.early_media(media, env, now);
            }
        }
    }

    /// A provisional to our INVITE (UAC): PRACKs a reliable one (§4) and starts media on its
    /// SDP. False when it must be dropped (a retransmitted or out-of-order reliable one).
    pub(super) fn outgoing_provisional(
        &mut self,
        resp: &rsip::Response,
        code: u16,
        env: &Env,
        now: Instant,
    ) -> bool {
        if code <= 100 {
            return true;
        }
        let reliable = super::reliable::has_tag(&resp.headers, "require");
        if let (true, Some(rseq)) = (reliable, super::reliable::rseq(&resp.headers)) {
            if !self.send_prack(resp, rseq, env, now) {
                return false;
            }
        }
        if self.early_media || self.phase != Phase::Early {
            return true;
        }
        // The callee's SDP in a 18x answers our INVITE's offer (RFC 3261 §13.2.1 allows
        // it in a provisional; RFC 3262 makes it reliable): media starts on it now.
        let Some(Ok(n)) = sdp_in(&resp.headers, &resp.body).map(crate::media::sdp::negotiate)
        else {
            return true;
        };
        self.negotiated = Some(n);
        self.early_media = true;
        self.media = MediaState::StartAt(now);
        self.start_media_now();
        self.emit(CallEvent::EarlyMedia { call_id: self.id });
        true
    }

    /// The answer in the callee's 2xx (the dialog is set up): its SDP, or, with none, the SDP
    /// of its 18x (a reliable 183 carried the answer, RFC 3262 §5: the 2xx need not repeat
    /// it). A 2xx SDP that differs from the 18x's wins (RFC 3261 §13.2.1: without 100rel the
    /// answer is in the first reliable response, the 2xx; the 18x's was a preview): running
    /// media follows it. The dialog's CSeq goes above our PRACKs'.
    pub(super) fn answer_in_2xx(
        &mut self,
        resp: &rsip::Response,
    ) -> Result<crate::media::Negotiated, crate::media::SdpError> {
        let pracks = match &self.role {
            Role::Outgoing(o) => o.early.last_cseq,
            Role::Incoming(_) => 0,
        };
        if let Some(d) = &mut self.dialog {
            d.local_cseq = d.local_cseq.max(pracks);
        }
        let early = self.negotiated.clone().filter(|_| self.early_media);
        let answer = match sdp_in(&resp.headers, &resp.body) {
            Some(sdp) => crate::media::sdp::negotiate(sdp)?,
            None => early.clone().ok_or(crate::media::SdpError::NoAudio)?,
        };
        if self.media_started() && early.is_some_and(|e| e != answer) {
            self.out.push(super::Output::MediaUpdate(answer.clone()));
        }
        Ok(answer)
    }

    /// Sends PRACK for a reliable provisional unless §4 says drop it; false when dropped.
    fn send_prack(&mut self, resp: &rsip::Response, rseq: u32, env: &Env, now: Instant) -> bool {
        use rsip::prelude::*;
        let to_tag = tag_of(resp.to_header().ok().map(|h| h.value())).unwrap_or_default();
        let Role::Outgoing(o) = &mut self.role else {
            return false;
        };
        let invite_cseq = o.invite_cseq;
        // A callee streaming reliable 18x and never answering our PRACKs gets no more than
        // MAX_PRACKS_IN_FLIGHT of them; the rest are dropped unprocessed (its retransmission
        // is PRACKed once room frees, §4). One with its final response is done with.
        o.early.pracks.retain(|(_, t)| !t.is_completed());
        if o.early.pracks.len() >= MAX_PRACKS_IN_FLIGHT {
            tracing::debug!(call_id = %self.id, "too many PRACKs in flight; reliable 18x dropped");
            return false;
        }
        let rack = match o.early.sequence.on_reliable(&to_tag, rseq, invite_cseq) {
            Received::Prack(rack) => rack,
            Received::Drop => return false,
        };
        let cseq = o.early.last_cseq.max(invite_cseq) + 1;
        o.early.last_cseq = cseq;
        // The PRACK is a request of the early dialog the provisional made (§7.2 of RFC 3262,
        // §12.1.2 of RFC 3261), with its own client non-INVITE transaction.
        let dialog = Dialog::as_uac(
            resp,
            &o.local_uri,
            &self.local_tag,
            cseq,
            &o.route.request_uri,
        );
        let via = self.peer.map_or("UDP", |p| p.transport.via_token());
        let branch = crate::sip::message::new_branch();
        let bytes = dialog
            .request_on_branch(rsip::Method::PRack, cseq, &env.sent_by(), via, &branch)
            .header("RAck", &rack.to_string())
            .build();
        let reliable = self.peer.is_some_and(|p| p.transport.is_reliable());
        let tx = ClientNonInviteTransaction::new(bytes.clone(), reliable, env.timers, now);
        if let Role::Outgoing(o) = &mut self.role {
            o.early.pracks.retain(|(_, t)| !t.is_terminated());
            o.early.pracks.push((branch, tx));
        }
        crate::metrics::prack_sent();
        // To the next hop the INVITE went to (the early dialog's Route headers are in it).
        self.send(bytes);
        true
    }

    /// The answer to one of our PRACKs.
    pub(super) fn prack_response(&mut self, key: &TransactionKey, code: u16, now: Instant) {
        if let Role::Outgoing(o) = &mut self.role {
            if let Some((_, t)) = o.early.pracks.iter_mut().find(|(b, _)| b == key.branch()) {
                t.on_response(code, now);
            }
        }
    }

    /// Our PRACKs' retransmissions (Timer E) on a tick.
    pub(super) fn prack_tick(&mut self, now: Instant) -> Vec<Bytes> {
        let Role::Outgoing(o) = &mut self.role else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (_, t) in &mut o.early.pracks {
            for x in t.on_tick(now) {
                if let crate::sip::transaction::TransactionOutput::Retransmit(b) = x {
                    out.push(b);
                }
            }
        }
        o.early.pracks.retain(|(_, t)| !t.is_terminated());
        out
    }
}
