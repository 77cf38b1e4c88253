//! The call-session actor: one per SIP dialog (leg). Owns the INVITE server transaction, the
//! dialog's other transactions, the SDP answer and the RTP port; turns SIP into [`CallEvent`]s and
//! [`CallCommand`]s into SIP. SIP request/response handling lives in `session_sip.rs`.
//!
//! ```text
//!  Offered ──Answer──▶ Answered ──ACK──▶ Confirmed ──BYE(in or out)──▶ Ended
//!     │                   └─64·T1 no ACK──▶ BYE, Ended(AckTimeout)
//!     └─Reject/Hangup/CANCEL──▶ final response, Ended
//! ```
//! After `Ended` the actor lingers, holding only its transactions, until they terminate, so
//! retransmissions are still absorbed; then it deregisters and stops.

use std::net::IpAddr;
use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use tokio::time::Instant;

use super::events::{CallCommand, CallEndCause, CallEvent, CallOffer, HangupCause};
use super::info::{CallInfo, CallStatus};
use super::registry::{CallEntry, SessionAddr};
use super::{CallId, CallRegistry, OverloadGuard};
use crate::media::library::AudioLibrary;
use crate::media::{
    DigitSource, MediaCommand, MediaEvent, MediaHandle, Negotiated, Recordings, RtpLease,
    RtpPortPool,
};
use crate::sip::message::TransactionKey;
use crate::sip::transaction::{
    ClientNonInviteTransaction, InviteFate, LingerTable, ServerInviteTransaction,
    ServerNonInviteTransaction, Timers, TransactionOutput,
};
use crate::sip::transport::{Inbound, Peer, SipSender};

/// How long after the answer the RTP session starts by itself (digits pressed meanwhile wait
/// in the socket's queue and are read then).
const MEDIA_START_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

/// Everything sessions share: sockets, timers, pools and where offers go.
pub struct SessionShared {
    pub sender: SipSender,
    pub registry: Arc<CallRegistry>,
    /// Where offers go, one sink per arbiter (index = the arbiter's), so a call's offer and its
    /// activeflow stay on the session's thread.
    pub offers: Vec<Recipient<CallOffer>>,
    pub timers: Timers,
    pub public_ip: IpAddr,
    pub rtp_ports: RtpPortPool,
    /// Answers of completed BYE/CANCEL transactions that outlive their session.
    pub linger: Arc<LingerTable>,
    /// Trips when INVITEs queue too long before their session starts.
    pub overload: OverloadGuard,
    /// Prompts and speech for media sessions.
    pub library: Arc<AudioLibrary>,
    pub recordings: Arc<Recordings>,
    /// Durable call rows.
    pub storage: crate::storage::Storage,
    /// Where call events go (SSE, webhooks).
    pub events: crate::events::EventBus,
}

/// A SIP message for this session, from the dispatcher.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SipIn(pub Inbound);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Offered,
    Answered,
    Confirmed,
    Ended,
}

/// What our SDP is made of (see [`CallSession::local_sdp`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct LocalMedia {
    pub(super) port: u16,
    pub(super) session_id: u64,
    /// The INVITE had no offer, so our 2xx offered (and the ACK answered).
    pub(super) offer: bool,
}

pub struct CallSession {
    pub(super) id: CallId,
    pub(super) sip_call_id: String,
    pub(super) peer: Peer,
    pub(super) shared: Arc<SessionShared>,
    /// Index of the arbiter this session runs on.
    pub(super) arbiter: usize,
    pub(super) phase: Phase,
    /// The initial INVITE, kept until its final response is sent (boxed: an answered call's
    /// session should not carry its size for the rest of the call).
    pub(super) invite: Option<Box<rsip::Request>>,
    pub(super) invite_key: TransactionKey,
    pub(super) invite_tx: ServerInviteTransaction,
    pub(super) local_tag: String,
    pub(super) dialog: Option<super::dialog::Dialog>,
    pub(super) negotiated: Option<Negotiated>,
    /// Our SDP's port, session id and whether it was an offer (no offer in the INVITE): the
    /// SDP is rebuilt from these for each 2xx that carries it rather than kept per call.
    pub(super) local_media: Option<LocalMedia>,
    pub(super) rtp: Option<RtpLease>,
    /// The RTP session, from its start to the end of the call.
    pub(super) media: Option<MediaHandle>,
    /// When the RTP session starts by itself if no media action started it before.
    media_start_at: Option<Instant>,
    pub(super) server_txs: Vec<(TransactionKey, ServerNonInviteTransaction)>,
    /// Boxed, as the BYE transaction: rare, and inline they would grow every session's task.
    pub(super) reinvite: Option<Box<(TransactionKey, ServerInviteTransaction)>>,
    pub(super) bye_tx: Option<Box<ClientNonInviteTransaction>>,
    pub(super) bye_after_ack: bool,
    /// 180 went out already (a `connect` leg rang).
    pub(super) ringing_sent: bool,
    events: Option<Recipient<CallEvent>>,
    pending_events: Vec<CallEvent>,
    pub(super) source: String,
    pub(super) destination: String,
    pub(super) created: Instant,
    /// The operator-visible record in the registry.
    entry: Option<Arc<CallEntry>>,
    timer: Option<(SpawnHandle, Instant)>,
}

impl CallSession {
    /// A session for a new INVITE (already checked for ACL and capacity by the dispatcher).
    pub(crate) fn new(
        shared: Arc<SessionShared>,
        arbiter: usize,
        invite: rsip::Request,
        invite_key: TransactionKey,
        inbound_peer: Peer,
        received_at: Instant,
    ) -> Self {
        use rsip::prelude::*;
        let sip_call_id = invite
            .call_id_header()
            .map(|h| h.value().to_string())
            .unwrap_or_default();
        let destination = invite.uri.user().unwrap_or_default().to_string();
        let source = invite
            .from_header()
            .ok()
            .and_then(|f| f.uri().ok())
            .and_then(|u| u.user().map(str::to_string))
            .unwrap_or_default();
        let reliable = inbound_peer.transport.is_reliable();
        CallSession {
            id: CallId::new(),
            sip_call_id,
            peer: inbound_peer,
            invite_tx: ServerInviteTransaction::new(reliable, shared.timers, received_at),
            shared,
            arbiter,
            phase: Phase::Offered,
            invite: Some(Box::new(invite)),
            invite_key,
            local_tag: crate::sip::message::new_tag(),
            dialog: None,
            negotiated: None,
            local_media: None,
            rtp: None,
            media: None,
            media_start_at: None,
            server_txs: Vec::new(),
            reinvite: None,
            bye_tx: None,
            bye_after_ack: false,
            ringing_sent: false,
            events: None,
            pending_events: Vec::new(),
            source,
            destination,
            created: received_at,
            entry: None,
            timer: None,
        }
    }

    /// Sends bytes to the peer; a failure ends the call (the peer is gone).
    pub(super) fn send(&mut self, bytes: &Bytes) -> bool {
        match self.shared.sender.send(&self.peer, bytes) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(call_id = %self.id, error = %e, "send failed");
                false
            }
        }
    }

    pub(super) fn emit(&mut self, event: CallEvent) {
        match &self.events {
            Some(r) => r.do_send(event),
            None => self.pending_events.push(event),
        }
    }

    /// Ends the call once: frees media, tells the activeflow, updates metrics.
    pub(super) fn end(&mut self, cause: CallEndCause, ctx: &mut Context<Self>) {
        if self.phase == Phase::Ended {
            return;
        }
        let answered = matches!(self.phase, Phase::Answered | Phase::Confirmed);
        self.phase = Phase::Ended;
        self.shared.registry.call_ended(self.id);
        if let Some(entry) = &self.entry {
            let mut info = entry.info();
            info.status = CallStatus::Ended;
            info.end_cause = Some(cause.as_str());
            info.tm_end = Some(crate::clock::timestamp());
            info.persist(&self.shared.storage);
            info.publish(&self.shared.events);
        }
        let outcome = match cause {
            _ if answered => "answered",
            CallEndCause::Cancelled => "cancelled",
            CallEndCause::Local => "rejected",
            _ => "failed",
        };
        crate::metrics::call_finished("in", outcome);
        tracing::debug!(call_id = %self.id, ?cause, "call ended");
        self.rtp = None;
        self.media_start_at = None;
        // Dropping the handle ends the media session (it closes any recording).
        self.media = None;
        self.invite = None;
        self.local_media = None;
        self.emit(CallEvent::Ended {
            call_id: self.id,
            cause,
        });
        self.rearm(ctx);
    }

    /// Re-arms the single wake-up at the earliest transaction deadline, or stops the actor when
    /// the call is over and no transaction is left.
    pub(super) fn rearm(&mut self, ctx: &mut Context<Self>) {
        self.server_txs.retain(|(_, t)| !t.is_terminated());
        if self
            .reinvite
            .as_deref()
            .is_some_and(|(_, t)| t.is_terminated())
        {
            self.reinvite = None;
        }
        if self.bye_tx.as_ref().is_some_and(|t| t.is_terminated()) {
            self.bye_tx = None;
        }
        if self.phase == Phase::Ended && self.only_lingering_left() {
            // Hand completed BYE/CANCEL answers to the shared table and free the actor now.
            for (key, tx) in self.server_txs.drain(..) {
                if let Some((response, until)) = tx.lingering_response() {
                    self.shared.linger.insert(key, response.clone(), until);
                }
            }
            self.remember_invite();
            ctx.stop();
            return;
        }
        let deadline = [
            self.media_start_at,
            self.invite_tx.next_deadline(),
            self.reinvite
                .as_deref()
                .and_then(|(_, t)| t.next_deadline()),
            self.bye_tx.as_ref().and_then(|t| t.next_deadline()),
        ]
        .into_iter()
        .chain(self.server_txs.iter().map(|(_, t)| t.next_deadline()))
        .flatten()
        .min();
        if self.phase == Phase::Ended && deadline.is_none() {
            self.remember_invite();
            ctx.stop();
            return;
        }
        if let Some((handle, at)) = self.timer {
            if Some(at) == deadline {
                return;
            }
            ctx.cancel_future(handle);
            self.timer = None;
        }
        if let Some(at) = deadline {
            let delay = at.saturating_duration_since(Instant::now());
            let handle = ctx.run_later(delay, |act, ctx| {
                act.timer = None;
                act.on_tick(ctx);
            });
            self.timer = Some((handle, at));
        }
    }

    /// Before the actor stops: retransmissions of our INVITE that are still on their way (its
    /// client may send them until 64·T1 after the first) are absorbed by the linger table
    /// instead of starting a call nobody will ACK.
    fn remember_invite(&self) {
        let until = self.created + self.shared.timers.t1 * 64;
        if until > Instant::now() {
            self.shared
                .linger
                .insert_invite(&self.invite_key, InviteFate::Absorb, until);
        }
    }

    /// True when nothing but completed server non-INVITE transactions (Timer J) remains: no
    /// ACK awaited, no BYE response awaited.
    fn only_lingering_left(&self) -> bool {
        let invite_done = self.invite_tx.is_terminated() || !self.invite_tx.awaiting_ack();
        let reinvite_done = self
            .reinvite
            .as_deref()
            .is_none_or(|(_, t)| t.is_terminated() || !t.awaiting_ack());
        let bye_done = self.bye_tx.as_ref().is_none_or(|t| t.is_completed());
        let servers_done = self
            .server_txs
            .iter()
            .all(|(_, t)| t.is_terminated() || t.lingering_response().is_some());
        invite_done && reinvite_done && bye_done && servers_done
    }

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if self.media_start_at.is_some_and(|at| at <= now) {
            self.start_media(ctx);
        }
        let invite_outputs = self.invite_tx.on_tick(now);
        for out in invite_outputs {
            match out {
                TransactionOutput::Retransmit(b) => self.retransmit(&b),
                TransactionOutput::Timeout if self.phase == Phase::Answered => {
                    tracing::info!(call_id = %self.id, "no ACK for 2xx within 64*T1");
                    self.send_bye();
                    self.end(CallEndCause::AckTimeout, ctx);
                }
                _ => {}
            }
        }
        let mut outputs = Vec::new();
        if let Some((_, t)) = self.reinvite.as_deref_mut() {
            outputs.extend(t.on_tick(now));
        }
        if let Some(t) = &mut self.bye_tx {
            outputs.extend(t.on_tick(now));
        }
        for (_, t) in &mut self.server_txs {
            outputs.extend(t.on_tick(now));
        }
        for out in outputs {
            if let TransactionOutput::Retransmit(b) = out {
                self.retransmit(&b);
            }
        }
        self.rearm(ctx);
    }

    fn retransmit(&mut self, bytes: &Bytes) {
        crate::metrics::sip_retransmission(false);
        self.send(bytes);
    }

    fn answer(&mut self, ctx: &mut Context<Self>) {
        if self.phase != Phase::Offered {
            return;
        }
        let lease = match self.shared.rtp_ports.lease() {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(call_id = %self.id, error = %e, "cannot answer");
                self.send_final(503, ctx);
                self.end(CallEndCause::Failed, ctx);
                return;
            }
        };
        self.local_media = Some(LocalMedia {
            port: lease.port(),
            session_id: u64::from(lease.port()) ^ (self.created.elapsed().as_nanos() as u64),
            offer: self.negotiated.is_none(),
        });
        self.rtp = Some(lease);
        // The record first: whoever sees the 2xx must find the call answered.
        if let Some(entry) = &self.entry {
            let mut info = entry.info();
            info.status = CallStatus::Answered;
            info.tm_answer = Some(crate::clock::timestamp());
            info.persist(&self.shared.storage);
            info.publish(&self.shared.events);
        }
        self.send_final(200, ctx);
        self.phase = Phase::Answered;
        crate::metrics::call_setup(self.created.elapsed());
        // Short calls without media never start an RTP session: the caller's RTP queues in
        // the kernel until a media action or this deadline (the session timer's own).
        self.media_start_at = Some(Instant::now() + MEDIA_START_DELAY);
        self.emit(CallEvent::Answered { call_id: self.id });
    }

    /// Hands the RTP port to a media session on this arbiter (once).
    fn start_media(&mut self, ctx: &mut Context<Self>) {
        self.media_start_at = None;
        if self.phase == Phase::Ended {
            return;
        }
        let Some(lease) = self.rtp.take() else { return };
        let (codec, dtmf_payload_type, remote) = match &self.negotiated {
            Some(n) => (
                crate::media::g711::Codec::from_payload_type(n.payload_type)
                    .unwrap_or(crate::media::g711::Codec::Pcmu),
                n.dtmf_payload_type,
                n.remote_rtp,
            ),
            // We made the offer: PCMU first and telephone-event 101; the ACK's answer or the
            // caller's first packet tells where to send.
            None => (crate::media::g711::Codec::Pcmu, Some(101), None),
        };
        let config = crate::media::MediaConfig {
            call_id: self.id.to_string(),
            codec,
            dtmf_payload_type,
            remote,
            library: self.shared.library.clone(),
            recordings: self.shared.recordings.clone(),
            events: ctx.address().recipient(),
        };
        self.media = crate::media::rtp_session::spawn(lease, config);
    }

    /// A DTMF digit from SIP INFO: to the flow, and to the media session (which may stop a
    /// prompt or a recording on it).
    pub(super) fn on_info_digit(&mut self, digit: char) {
        crate::metrics::dtmf_received(DigitSource::SipInfo.as_str());
        if let Some(media) = &self.media {
            media.send(MediaCommand::Digit(digit));
        }
        self.emit(CallEvent::Digit {
            call_id: self.id,
            digit,
            source: DigitSource::SipInfo,
        });
    }

    fn on_media_command(
        &mut self,
        job: crate::media::MediaJob,
        request: crate::media::MediaRequest,
        ctx: &mut Context<Self>,
    ) {
        if self.media_start_at.is_some() {
            self.start_media(ctx);
        }
        match &self.media {
            Some(media) => media.send(MediaCommand::Start { job, request }),
            None => {
                let ended = self.phase == Phase::Ended;
                self.emit(CallEvent::media_unavailable(job, ended));
            }
        }
    }

    fn hangup(&mut self, cause: HangupCause, ctx: &mut Context<Self>) {
        match self.phase {
            Phase::Offered => {
                self.send_final(cause.status_before_answer(), ctx);
                self.end(CallEndCause::Local, ctx);
            }
            // RFC 3261 §15: no BYE before the ACK for our 2xx (or its timeout).
            Phase::Answered => self.bye_after_ack = true,
            Phase::Confirmed => {
                self.send_bye();
                self.end(CallEndCause::Local, ctx);
            }
            Phase::Ended => {}
        }
    }
}

impl Actor for CallSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.shared.overload.observe(self.created);
        let info = CallInfo {
            id: self.id,
            sip_call_id: self.sip_call_id.clone(),
            direction: "incoming",
            source: self.source.clone(),
            destination: self.destination.clone(),
            peer: self.peer.to_string(),
            status: CallStatus::Ringing,
            end_cause: None,
            tm_create: crate::clock::timestamp(),
            tm_answer: None,
            tm_end: None,
            sequence: self.shared.registry.next_sequence(),
        };
        info.persist(&self.shared.storage);
        info.publish(&self.shared.events);
        self.entry = Some(
            self.shared
                .registry
                .call_started(info, ctx.address().recipient()),
        );
        self.send_trying();
        match self.check_offer() {
            Ok(negotiated) => {
                self.negotiated = negotiated;
                self.trim_invite();
            }
            Err(e) => {
                tracing::debug!(call_id = %self.id, error = %e, "rejecting offer");
                self.send_final(488, ctx);
                self.end(CallEndCause::Local, ctx);
                return;
            }
        }
        let offer = CallOffer {
            call_id: self.id,
            destination: self.destination.clone(),
            source: self.source.clone(),
            peer: self.peer,
            commands: ctx.address().recipient(),
        };
        match self.shared.offers.get(self.arbiter) {
            Some(sink) => sink.do_send(offer),
            None => {
                tracing::error!(call_id = %self.id, "no offer sink for this arbiter");
                self.send_final(500, ctx);
                self.end(CallEndCause::Failed, ctx);
                return;
            }
        }
        self.rearm(ctx);
    }

    fn stopping(&mut self, ctx: &mut Self::Context) -> Running {
        if self.phase != Phase::Ended {
            self.end(CallEndCause::Failed, ctx);
        }
        self.shared
            .registry
            .remove(&self.sip_call_id, &SessionAddr::Incoming(ctx.address()));
        Running::Stop
    }
}

impl Handler<CallCommand> for CallSession {
    type Result = ();

    fn handle(&mut self, cmd: CallCommand, ctx: &mut Self::Context) {
        match cmd {
            CallCommand::Attach(recipient) => {
                for e in self.pending_events.drain(..) {
                    recipient.do_send(e);
                }
                self.events = Some(recipient);
            }
            CallCommand::Reject { status } => {
                if self.phase == Phase::Offered {
                    self.send_final(status, ctx);
                    self.end(CallEndCause::Local, ctx);
                }
            }
            CallCommand::Ring => self.send_ringing(),
            CallCommand::Answer => self.answer(ctx),
            CallCommand::Hangup(cause) => self.hangup(cause, ctx),
            CallCommand::Media { job, request } => self.on_media_command(job, request, ctx),
            CallCommand::StopMedia { job } => {
                if let Some(media) = &self.media {
                    media.send(MediaCommand::Stop { job });
                }
            }
        }
    }
}

impl Handler<MediaEvent> for CallSession {
    type Result = ();

    fn handle(&mut self, event: MediaEvent, _ctx: &mut Self::Context) {
        if self.phase == Phase::Ended {
            return;
        }
        self.emit(CallEvent::from_media(self.id, event));
    }
}

impl Handler<SipIn> for CallSession {
    type Result = ();

    fn handle(&mut self, msg: SipIn, ctx: &mut Self::Context) {
        let SipIn(inbound) = msg;
        // In-dialog requests (ACK, BYE) waiting in the mailbox are the first victims of overload:
        // their lag trips the guard before callers start retransmitting.
        self.shared.overload.observe(inbound.received_at);
        match inbound.message {
            rsip::SipMessage::Request(req) => self.on_request(req, ctx),
            rsip::SipMessage::Response(resp) => self.on_response(&resp, ctx),
        }
    }
}
