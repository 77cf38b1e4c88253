//! The call-session actor: the thin shell around one [`Leg`] machine, for a call we answer or
//! a leg we place. It feeds the machine SIP, commands and timer ticks, and carries out what it
//! outputs: sends, events to the activeflow, the call's record, the RTP session. One wake-up
//! timer at the machine's next deadline. After the call ends the actor lingers while the
//! machine still needs its transactions, then hands completed answers to the linger table and
//! stops. If the actor dies any other way (a panic), [`Drop`] still ends the call: the record,
//! the capacity slot, the route, the activeflow's event.

use std::sync::Arc;

use actix::prelude::*;
use tokio::time::Instant;

mod effects;
mod start;
#[cfg(test)]
mod tests;

use super::events::{CallCommand, CallEndCause, CallEvent, CallOffer, Refusal};
use super::info::{CallInfo, CallStatus};
use super::leg::{Leg, LocalMedia};
use super::registry::CallEntry;
pub use super::shared::{SessionShared, SipIn};
use super::CallId;
use crate::media::{MediaCommand, MediaEvent, MediaHandle, MediaJob, MediaRequest, RtpLease};
use crate::metrics::Unavailable;
use crate::sip::transaction::InviteFate;
use crate::sip::transport::Peer;

pub struct CallSession {
    pub(in crate::call) leg: Leg,
    shared: Arc<SessionShared>,
    /// Index of the arbiter this session runs on (where its offer goes).
    arbiter: usize,
    rtp: Option<RtpLease>,
    /// The RTP session, from its start to the end of the call.
    media: Option<MediaHandle>,
    /// Media requests that came before the RTP session could start (a delayed offer waits for
    /// the ACK's answer); handed to it when it starts.
    pending_media: Vec<(MediaJob, MediaRequest)>,
    events: Option<Recipient<CallEvent>>,
    pending_events: Vec<CallEvent>,
    source: String,
    destination: String,
    /// The `[[users]]` name the caller authenticated as (RFC 3261 §22), if it did.
    pub(in crate::call) source_user: Option<String>,
    /// Address types and display names of an incoming call's parties (see `party`).
    pub(in crate::call) parties: crate::call::party::Parties,
    /// The operator-visible record in the registry.
    entry: Option<Arc<CallEntry>>,
    timer: Option<(SpawnHandle, Instant)>,
    /// Registered and counted as a live call; cleared once its end is accounted for.
    live: bool,
    /// Deregistered (stopping ran); a drop without it is an actor that died.
    deregistered: bool,
    /// Keeps the TCP connection to the dialog's peer from idle close while the call is up.
    connection: Option<crate::sip::transport::ConnectionHold>,
}

impl CallSession {
    pub(in crate::call) fn with_leg(
        leg: Leg,
        shared: Arc<SessionShared>,
        arbiter: usize,
        rtp: Option<RtpLease>,
        events: Option<Recipient<CallEvent>>,
        source: String,
        destination: String,
    ) -> Self {
        CallSession {
            leg,
            shared,
            arbiter,
            rtp,
            media: None,
            pending_media: Vec::new(),
            events,
            pending_events: Vec::new(),
            source,
            destination,
            source_user: None,
            parties: Default::default(),
            entry: None,
            timer: None,
            live: false,
            deregistered: false,
            connection: None,
        }
    }

    fn id(&self) -> CallId {
        self.leg.id
    }

    fn direction(&self) -> &'static str {
        if self.leg.is_incoming() {
            "incoming"
        } else {
            "outgoing"
        }
    }

    /// Carries out what the machine output (and what that in turn made it output: a send
    /// that fails at once moves an INVITE to its next target), then re-arms the wake-up.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        loop {
            let outputs = self.leg.take_outputs();
            if outputs.is_empty() {
                break;
            }
            for output in outputs {
                self.execute(output, ctx);
            }
        }
        self.rearm(ctx);
    }

    /// Re-arms the single wake-up at the machine's earliest deadline, or stops the actor when
    /// the call is over and only lingering answers are left.
    fn rearm(&mut self, ctx: &mut Context<Self>) {
        if self.leg.is_done() {
            for (key, response, until) in self.leg.lingering() {
                self.shared.linger.insert(key, response, until);
            }
            self.remember_invite();
            ctx.stop();
            return;
        }
        let deadline = self.leg.next_deadline();
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
                act.guarded(ctx, |act, ctx| {
                    act.leg.on_tick(&act.shared.env(), Instant::now());
                    act.drive(ctx);
                });
            });
            self.timer = Some((handle, at));
        }
    }

    /// Before the actor stops: retransmissions of our INVITE that are still on their way (its
    /// client may send them until 64·T1 after the first) are absorbed by the linger table
    /// instead of starting a call nobody will ACK.
    fn remember_invite(&self) {
        if let Some((key, until)) = self.leg.invite_linger_until(&self.shared.env()) {
            if until > Instant::now() {
                self.shared
                    .linger
                    .insert_invite(&key, InviteFate::Absorb, until);
            }
        }
    }

    /// The operator's record and the capacity slot, at start.
    fn register(&mut self, ctx: &mut Context<Self>) {
        let info = CallInfo {
            id: self.id(),
            sip_call_id: self.leg.sip_call_id.clone(),
            direction: self.direction(),
            source: self.source.clone(),
            destination: self.destination.clone(),
            peer: self.leg.peer.map(|p| p.to_string()).unwrap_or_default(),
            status: CallStatus::Ringing,
            end_cause: None,
            end_code: None,
            codec: None,
            tm_create: crate::clock::timestamp(),
            tm_answer: None,
            tm_end: None,
            sequence: self.shared.registry.next_sequence(),
        };
        info.persist(&self.shared.storage);
        info.publish(&self.shared.events);
        self.entry = Some(
            self.shared.registry.call_started(
                info,
                ctx.address().recipient(),
                self.leg.max_forwards(),
                self.leg
                    .incoming()
                    .map(|i| i.diversion.clone())
                    .unwrap_or_default(),
            ),
        );
        self.live = true;
        if let Some(peer) = self.leg.peer {
            self.connection = self.shared.sender.hold(&peer);
        }
    }

    /// The SIP sender (for work the session spawns, such as telling it a TLS target).
    pub(in crate::call) fn sender(&self) -> crate::sip::transport::SipSender {
        self.shared.sender.clone()
    }

    /// The next hop of a leg we place resolved to these targets, in order (none: it did not).
    pub(in crate::call) fn resolved(&mut self, targets: Vec<Peer>, ctx: &mut Context<Self>) {
        if targets.is_empty() {
            tracing::info!("destination host did not resolve");
        }
        self.leg
            .resolved_targets(targets, &self.shared.env(), Instant::now());
        self.drive(ctx);
    }

    /// The resolver shared by every leg (its cache keeps answers for their TTL).
    pub(in crate::call) fn resolver(&self) -> crate::sip::resolve::SipResolver {
        self.shared.resolver.clone()
    }

    /// Offers a new incoming call to the flow layer on this arbiter.
    fn offer(&mut self, ctx: &mut Context<Self>) {
        let Some(peer) = self.leg.peer else { return };
        let offer = CallOffer {
            call_id: self.id(),
            destination: self.destination.clone(),
            source: self.source.clone(),
            source_user: self.source_user.clone(),
            parties: self.parties.clone(),
            peer,
            commands: ctx.address().recipient(),
            sip_call_id: self.leg.sip_call_id.clone(),
            // The actor runs inside its call's span (see `start`).
            span: tracing::Span::current(),
        };
        match self.shared.offers.get(self.arbiter) {
            Some(sink) => sink.do_send(offer),
            None => {
                tracing::error!("no offer sink for this arbiter");
                let env = self.shared.env();
                self.leg.reject(
                    Refusal::Status(500),
                    CallEndCause::Failed,
                    &env,
                    Instant::now(),
                );
            }
        }
    }

    fn on_command(&mut self, cmd: CallCommand, ctx: &mut Context<Self>) {
        let env = self.shared.env();
        let now = Instant::now();
        match cmd {
            CallCommand::Attach(recipient) => {
                for e in self.pending_events.drain(..) {
                    recipient.do_send(e);
                }
                self.events = Some(recipient);
            }
            CallCommand::Reject(refusal) => {
                self.leg.reject(refusal, CallEndCause::Local, &env, now)
            }
            CallCommand::Ring => self.leg.ring(&env),
            CallCommand::Answer => self.answer(now),
            CallCommand::EarlyMedia => self.early_media(now),
            CallCommand::Hangup(cause) => self.leg.hangup(cause, &env, now),
            CallCommand::Media { job, request } => {
                self.leg.start_media_now();
                self.drive(ctx);
                match &self.media {
                    Some(media) => media.send(MediaCommand::Start { job, request }),
                    None if self.leg.media_pending() => self.pending_media.push((job, request)),
                    None => {
                        let ended = self.leg.is_ended();
                        self.emit(CallEvent::media_unavailable(job, ended));
                    }
                }
            }
            CallCommand::Transferable(allowed) => self.leg.set_transferable(allowed),
            CallCommand::TransferNotify {
                status,
                then_hangup,
            } => self.leg.transfer_notify(status, then_hangup, &env, now),
            CallCommand::Refer { target } => self.leg.send_refer(&target, &env, now),
            CallCommand::ReferAbandoned => self.leg.refer_abandoned(),
            CallCommand::StopMedia { job } => {
                if let Some(media) = &self.media {
                    media.send(MediaCommand::Stop { job });
                }
            }
        }
    }

    /// Leases an RTP port and answers, or refuses with 503 when none is free.
    fn answer(&mut self, now: Instant) {
        let env = self.shared.env();
        if !self.leg.is_incoming() || self.leg.phase != super::leg::Phase::Early {
            return;
        }
        if let Some(media) = self.leg.local_media {
            // Early media leased the port already: the 200 repeats the 183's SDP.
            return self.leg.answer(media, &env, now);
        }
        match self.shared.rtp_ports.lease() {
            Ok(lease) => {
                let media = LocalMedia {
                    port: lease.port(),
                    session_id: u64::from(lease.port())
                        ^ (self.leg.created.elapsed().as_nanos() as u64),
                    offer: self.leg.negotiated.is_none(),
                };
                self.rtp = Some(lease);
                self.leg.answer(media, &env, now);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot answer");
                let refusal = Refusal::Unavailable(Unavailable::RtpPortsExhausted);
                self.leg.reject(refusal, CallEndCause::Failed, &env, now);
            }
        }
    }
}

impl Actor for CallSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.register(ctx);
        if self.leg.is_incoming() {
            self.shared.overload.observe(self.leg.created);
            if !self.leg.is_ended() {
                self.offer(ctx);
            }
            self.drive(ctx);
        } else {
            super::outbound::start_resolution(self, ctx);
        }
    }

    fn stopping(&mut self, ctx: &mut Self::Context) -> Running {
        if !self.leg.is_ended() {
            // Stopped with the call live (a panic outside `guarded` drops the context, which
            // stops the actor through here): tell the peer, as `died` does (ARCHITECTURE §8).
            self.leg
                .end_now(CallEndCause::Failed, &self.shared.env(), Instant::now());
            for output in self.leg.take_outputs() {
                self.execute(output, ctx);
            }
        }
        self.shared
            .registry
            .remove(&self.leg.sip_call_id, &self.leg.local_tag);
        self.deregistered = true;
        Running::Stop
    }
}

impl Drop for CallSession {
    fn drop(&mut self) {
        if !self.deregistered {
            self.died();
        }
    }
}

impl Handler<CallCommand> for CallSession {
    type Result = ();

    fn handle(&mut self, cmd: CallCommand, ctx: &mut Self::Context) {
        self.guarded(ctx, |act, ctx| {
            act.on_command(cmd, ctx);
            act.drive(ctx);
        });
    }
}

impl Handler<MediaEvent> for CallSession {
    type Result = ();

    fn handle(&mut self, event: MediaEvent, ctx: &mut Self::Context) {
        if self.leg.is_ended() {
            return;
        }
        match CallEvent::from_media(self.id(), event) {
            Some(event) => self.emit(event),
            // No RTP from the peer for `media.rtp_timeout_seconds`: its BYE was lost.
            None => self.guarded(ctx, |act, ctx| {
                act.leg.rtp_timeout(&act.shared.env(), Instant::now());
                act.drive(ctx);
            }),
        }
    }
}

impl Handler<SipIn> for CallSession {
    type Result = ();

    fn handle(&mut self, msg: SipIn, ctx: &mut Self::Context) {
        self.guarded(ctx, |act, ctx| act.on_sip(msg, ctx));
    }
}

impl CallSession {
    fn on_sip(&mut self, msg: SipIn, ctx: &mut Context<Self>) {
        let SipIn { inbound, acl_ok } = msg;
        // In-dialog requests (ACK, BYE) waiting in the mailbox are the first victims of overload:
        // their lag trips the guard before callers start retransmitting.
        if self.leg.is_incoming() {
            self.shared.overload.observe(inbound.received_at);
        }
        let env = self.shared.env();
        let now = Instant::now();
        match inbound.message {
            rsip::SipMessage::Request(req) => {
                self.leg.on_request(req, inbound.peer, acl_ok, &env, now)
            }
            rsip::SipMessage::Response(resp) => self.leg.on_response(&resp, &env, now),
        }
        self.drive(ctx);
    }
}

/// Makes the session's handler panic (the supervision test's fault).
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Crash;

#[cfg(test)]
impl Handler<Crash> for CallSession {
    type Result = ();

    fn handle(&mut self, _: Crash, ctx: &mut Self::Context) {
        self.guarded(ctx, |_, _| panic!("injected fault"));
    }
}
