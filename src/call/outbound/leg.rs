//! The outbound call actor: one per leg the engine places. Sends the INVITE with our SDP offer,
//! rings until the ring timeout, and turns the callee's answers into [`CallEvent`]s; takes the
//! same [`CallCommand`]s as a call we answer (media once answered; hangup is CANCEL before the
//! answer, BYE after). SIP message handling lives in `leg_sip.rs`.
//!
//! ```text
//!  Resolving ──▶ Calling ──1xx──▶ Ringing ──2xx──▶ Answered ──BYE (either side)──▶ Ended
//!                   └──3xx–6xx, Timer B, ring timeout (CANCEL), hangup──────────────▶ Ended
//! ```
//! `Ended` is what the activeflow sees; the actor lingers until its transactions finish, so a
//! late provisional still gets its CANCEL and a 2xx that crossed our CANCEL its ACK and BYE.

use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use tokio::time::Instant;

use super::super::dialog::Dialog;
use super::super::events::{CallCommand, CallEndCause, CallEvent};
use super::super::info::{CallInfo, CallStatus};
use super::super::registry::{CallEntry, SessionAddr};
use super::super::session::{SessionShared, SipIn};
use super::super::CallId;
use super::target::{NextHop, Route};
use super::DialRequest;
use crate::media::{MediaCommand, MediaEvent, MediaHandle, RtpLease};
use crate::sip::message::TransactionKey;
use crate::sip::transaction::{
    ClientInviteTransaction, ClientNonInviteTransaction, ServerNonInviteTransaction,
    TransactionOutput,
};
use crate::sip::transport::{Peer, TransportKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Resolving,
    Calling,
    Ringing,
    Answered,
    Ended,
}

pub struct OutboundCall {
    pub(super) id: CallId,
    pub(super) sip_call_id: String,
    pub(super) shared: Arc<SessionShared>,
    pub(super) route: Route,
    pub(super) peer: Option<Peer>,
    pub(super) source: String,
    pub(super) local_tag: String,
    /// The INVITE's branch, shared by its CANCEL and non-2xx ACK.
    pub(super) branch: String,
    pub(super) phase: Phase,
    pub(super) invite_tx: Option<ClientInviteTransaction>,
    pub(super) cancel_tx: Option<ClientNonInviteTransaction>,
    pub(super) bye_tx: Option<ClientNonInviteTransaction>,
    pub(super) server_txs: Vec<(TransactionKey, ServerNonInviteTransaction)>,
    pub(super) dialog: Option<Dialog>,
    /// The ACK for the callee's 2xx, sent again for each retransmitted 2xx.
    pub(super) ack: Option<Bytes>,
    pub(super) rtp: Option<RtpLease>,
    pub(super) local_sdp: Bytes,
    pub(super) media: Option<MediaHandle>,
    pub(super) events: Recipient<CallEvent>,
    ring_timeout: std::time::Duration,
    ring_deadline: Option<Instant>,
    /// A CANCEL is owed as soon as a provisional arrives (RFC 3261 §9.1).
    pub(super) cancel_owed: bool,
    entry: Option<Arc<CallEntry>>,
    pub(super) created: Instant,
    timer: Option<(SpawnHandle, Instant)>,
}

impl OutboundCall {
    pub(super) fn new(
        id: CallId,
        sip_call_id: String,
        shared: Arc<SessionShared>,
        route: Route,
        rtp: RtpLease,
        request: DialRequest,
    ) -> Self {
        let session_id = u64::from(rtp.port()) ^ (uuid::Uuid::new_v4().as_u128() as u64 >> 1);
        let local_sdp = Bytes::from(crate::media::sdp::offer(
            shared.public_ip,
            rtp.port(),
            session_id,
        ));
        OutboundCall {
            id,
            sip_call_id,
            shared,
            route,
            peer: None,
            source: request.source,
            local_tag: crate::sip::message::new_tag(),
            branch: crate::sip::message::new_branch(),
            phase: Phase::Resolving,
            invite_tx: None,
            cancel_tx: None,
            bye_tx: None,
            server_txs: Vec::new(),
            dialog: None,
            ack: None,
            rtp: Some(rtp),
            local_sdp,
            media: None,
            events: request.events,
            ring_timeout: request.ring_timeout,
            ring_deadline: None,
            cancel_owed: false,
            entry: None,
            created: Instant::now(),
            timer: None,
        }
    }

    pub(super) fn send(&self, bytes: &Bytes) {
        let Some(peer) = &self.peer else { return };
        if let Err(e) = self.shared.sender.send(peer, bytes) {
            tracing::debug!(call_id = %self.id, error = %e, "send failed");
        }
    }

    /// `host:port` for our Via and Contact.
    pub(super) fn sent_by(&self) -> String {
        format!(
            "{}:{}",
            super::super::dialog::host(self.shared.public_ip),
            self.shared.sender.local_addr().port()
        )
    }

    /// The next hop is known: send the INVITE and start ringing.
    fn resolved(&mut self, addr: std::net::SocketAddr, ctx: &mut Context<Self>) {
        if self.phase != Phase::Resolving {
            return;
        }
        self.peer = Some(Peer {
            addr,
            transport: TransportKind::Udp,
        });
        if let Some(entry) = &self.entry {
            entry.info().peer = format!("{addr}/udp");
        }
        self.phase = Phase::Calling;
        self.send_invite();
        self.ring_deadline = Some(Instant::now() + self.ring_timeout);
        self.rearm(ctx);
    }

    /// Tells the activeflow once; frees media; the actor lingers for its transactions.
    pub(super) fn end(&mut self, cause: CallEndCause, ctx: &mut Context<Self>) {
        if self.phase == Phase::Ended {
            return;
        }
        let answered = self.phase == Phase::Answered;
        self.phase = Phase::Ended;
        self.ring_deadline = None;
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
            CallEndCause::Rejected(_) => "rejected",
            CallEndCause::NoAnswer | CallEndCause::Local => "cancelled",
            _ => "failed",
        };
        crate::metrics::call_finished("out", outcome);
        tracing::debug!(call_id = %self.id, ?cause, "outbound call ended");
        self.rtp = None;
        self.media = None;
        self.events.do_send(CallEvent::Ended {
            call_id: self.id,
            cause,
        });
        self.rearm(ctx);
    }

    /// Marks the call answered and starts its media (the relay needs it at once).
    pub(super) fn answered(
        &mut self,
        negotiated: crate::media::Negotiated,
        ctx: &mut Context<Self>,
    ) {
        self.phase = Phase::Answered;
        self.ring_deadline = None;
        crate::metrics::call_setup(self.created.elapsed());
        if let Some(entry) = &self.entry {
            let mut info = entry.info();
            info.status = CallStatus::Answered;
            info.tm_answer = Some(crate::clock::timestamp());
            info.persist(&self.shared.storage);
            info.publish(&self.shared.events);
        }
        if let Some(lease) = self.rtp.take() {
            let config = crate::media::MediaConfig {
                call_id: self.id.to_string(),
                codec: crate::media::g711::Codec::from_payload_type(negotiated.payload_type)
                    .unwrap_or(crate::media::g711::Codec::Pcmu),
                dtmf_payload_type: negotiated.dtmf_payload_type,
                remote: negotiated.remote_rtp,
                library: self.shared.library.clone(),
                recordings: self.shared.recordings.clone(),
                events: ctx.address().recipient(),
            };
            self.media = crate::media::rtp_session::spawn(lease, config);
        }
        self.events
            .do_send(CallEvent::Answered { call_id: self.id });
    }

    /// Hangs up: CANCEL while ringing (owed until a provisional came), BYE once answered.
    fn hangup(&mut self, cause: CallEndCause, ctx: &mut Context<Self>) {
        match self.phase {
            Phase::Resolving => self.end(cause, ctx),
            Phase::Calling | Phase::Ringing => {
                self.cancel_owed = true;
                self.send_cancel_if_allowed();
                self.end(cause, ctx);
            }
            Phase::Answered => {
                self.send_bye();
                self.end(cause, ctx);
            }
            Phase::Ended => {}
        }
    }

    /// Re-arms the single wake-up at the earliest deadline, or stops once nothing is pending.
    pub(super) fn rearm(&mut self, ctx: &mut Context<Self>) {
        self.server_txs.retain(|(_, t)| !t.is_terminated());
        let done =
            |t: &Option<ClientNonInviteTransaction>| t.as_ref().is_none_or(|t| t.is_completed());
        // Until Timer D (or M) ends it, the INVITE transaction re-ACKs retransmitted finals.
        let invite_done = self.invite_tx.as_ref().is_none_or(|t| t.is_terminated());
        if self.phase == Phase::Ended && invite_done && done(&self.cancel_tx) && done(&self.bye_tx)
        {
            for (key, tx) in self.server_txs.drain(..) {
                if let Some((response, until)) = tx.lingering_response() {
                    self.shared.linger.insert(key, response.clone(), until);
                }
            }
            ctx.stop();
            return;
        }
        let deadline = [
            self.ring_deadline,
            self.invite_tx.as_ref().and_then(|t| t.next_deadline()),
            self.cancel_tx.as_ref().and_then(|t| t.next_deadline()),
            self.bye_tx.as_ref().and_then(|t| t.next_deadline()),
        ]
        .into_iter()
        .chain(self.server_txs.iter().map(|(_, t)| t.next_deadline()))
        .flatten()
        .min();
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
        } else if self.phase == Phase::Ended {
            ctx.stop();
        }
    }

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if self.ring_deadline.is_some_and(|at| at <= now) {
            self.ring_deadline = None;
            tracing::debug!(call_id = %self.id, "ring timeout");
            self.hangup(CallEndCause::NoAnswer, ctx);
        }
        let mut outputs = Vec::new();
        if let Some(t) = &mut self.invite_tx {
            for out in t.on_tick(now) {
                if out == TransactionOutput::Timeout {
                    // Timer B: the callee never answered the INVITE at all.
                    self.end(CallEndCause::Failed, ctx);
                } else {
                    outputs.push(out);
                }
            }
        }
        for t in [&mut self.cancel_tx, &mut self.bye_tx]
            .into_iter()
            .flatten()
        {
            outputs.extend(t.on_tick(now));
        }
        for (_, t) in &mut self.server_txs {
            outputs.extend(t.on_tick(now));
        }
        for out in outputs {
            if let TransactionOutput::Retransmit(b) = out {
                crate::metrics::sip_retransmission(false);
                self.send(&b);
            }
        }
        self.rearm(ctx);
    }
}

impl Actor for OutboundCall {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let info = CallInfo {
            id: self.id,
            sip_call_id: self.sip_call_id.clone(),
            direction: "outgoing",
            source: self.source.clone(),
            destination: self.route.user.clone(),
            peer: String::new(),
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
        match self.route.next_hop.clone() {
            NextHop::Addr(addr) => self.resolved(addr, ctx),
            NextHop::Host(host, port) => {
                let lookup = super::target::resolve_host(host, port);
                ctx.spawn(lookup.into_actor(self).map(|found, act, ctx| match found {
                    Some(addr) => act.resolved(addr, ctx),
                    None => {
                        tracing::info!(call_id = %act.id, "destination host did not resolve");
                        act.end(CallEndCause::Failed, ctx);
                    }
                }));
            }
        }
    }

    fn stopping(&mut self, ctx: &mut Self::Context) -> Running {
        if self.phase != Phase::Ended {
            self.end(CallEndCause::Failed, ctx);
        }
        self.shared
            .registry
            .remove(&self.sip_call_id, &SessionAddr::Outgoing(ctx.address()));
        Running::Stop
    }
}

impl Handler<CallCommand> for OutboundCall {
    type Result = ();

    fn handle(&mut self, cmd: CallCommand, ctx: &mut Self::Context) {
        match cmd {
            // A leg's events go where the dialer was told; answering is the callee's.
            CallCommand::Attach(_)
            | CallCommand::Ring
            | CallCommand::Answer
            | CallCommand::Reject { .. } => {}
            CallCommand::Hangup(_) => self.hangup(CallEndCause::Local, ctx),
            CallCommand::Media { job, request } => match &self.media {
                Some(media) => media.send(MediaCommand::Start { job, request }),
                None => {
                    let ended = self.phase == Phase::Ended;
                    self.events
                        .do_send(CallEvent::media_unavailable(job, ended));
                }
            },
            CallCommand::StopMedia { job } => {
                if let Some(media) = &self.media {
                    media.send(MediaCommand::Stop { job });
                }
            }
        }
    }
}

impl Handler<MediaEvent> for OutboundCall {
    type Result = ();

    fn handle(&mut self, event: MediaEvent, _ctx: &mut Self::Context) {
        if self.phase == Phase::Ended {
            return;
        }
        self.events.do_send(CallEvent::from_media(self.id, event));
    }
}

impl Handler<SipIn> for OutboundCall {
    type Result = ();

    fn handle(&mut self, msg: SipIn, ctx: &mut Self::Context) {
        match msg.0.message {
            rsip::SipMessage::Request(req) => self.on_request(req, ctx),
            rsip::SipMessage::Response(resp) => self.on_response(&resp, ctx),
        }
        self.rearm(ctx);
    }
}
