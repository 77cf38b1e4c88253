//! What the session does with its leg's outputs: sends (with the TCP fallback), events for
//! the activeflow, the call's record and metrics, the RTP session; and the cleanup of a
//! session that died.

use actix::prelude::*;
use tokio::time::Instant;

use super::CallSession;
use crate::call::events::{CallEndCause, CallEvent};
use crate::call::info::CallStatus;
use crate::call::leg::Output;
use crate::media::{DigitSource, MediaCommand};
use crate::sip::transport::Peer;

impl CallSession {
    pub(super) fn execute(&mut self, output: Output, ctx: &mut Context<Self>) {
        match self.apply(output) {
            Some(Output::StartMedia(negotiated)) => self.start_media(negotiated, ctx),
            Some(Output::MediaRemote(addr)) => {
                if let Some(media) = &self.media {
                    media.send(MediaCommand::Remote(addr));
                }
            }
            Some(Output::SendInvite { to, bytes, attempt }) => {
                self.send_invite(to, &bytes, attempt, ctx)
            }
            Some(Output::MediaUpdate(negotiated)) => {
                // Codec, address and hold follow the peer's new SDP (RFC 3264 §8).
                let update = media_update(&negotiated);
                self.record_codec(update.codec);
                if let Some(media) = &self.media {
                    media.send(MediaCommand::Update(update));
                }
            }
            _ => {}
        }
    }

    /// Carries out an output that needs no actor context; hands back the others (media).
    fn apply(&mut self, output: Output) -> Option<Output> {
        match output {
            Output::Send {
                to,
                bytes,
                fallback,
            } => self.send(to, fallback, &bytes),
            Output::Event(event) => {
                // A SIP INFO digit may stop a prompt or a recording, as an RFC 4733 one does.
                if let (
                    CallEvent::Digit {
                        digit,
                        source: DigitSource::SipInfo,
                        ..
                    },
                    Some(media),
                ) = (&event, &self.media)
                {
                    media.send(MediaCommand::Digit(*digit));
                }
                self.emit(event)
            }
            Output::Answered => self.record(CallStatus::Answered, None),
            Output::Ended { cause, answered } => self.ended(cause, answered),
            other => return Some(other),
        }
        None
    }

    /// Sends to `to`; when `to` is a TCP or TLS connection that is gone, to `fallback` (a new
    /// one).
    pub(super) fn send(&self, to: Peer, fallback: Option<Peer>, bytes: &bytes::Bytes) {
        let sender = &self.shared.sender;
        let gone = |p: &Peer| p.transport.is_reliable() && !sender.connected(p);
        let to = match fallback {
            Some(f) if gone(&to) => f,
            _ => to,
        };
        if let Err(e) = sender.send(&to, bytes) {
            tracing::debug!(call_id = %self.id(), error = %e, "send failed");
        }
    }

    /// Sends an INVITE to a (new) target: the call's peer and connection hold follow it, and
    /// a send or TCP connect that fails is reported to the leg (RFC 3263 §4.3 failover).
    fn send_invite(
        &mut self,
        to: Peer,
        bytes: &bytes::Bytes,
        attempt: u32,
        ctx: &mut Context<Self>,
    ) {
        if let Some(entry) = &self.entry {
            entry.info().peer = to.to_string();
        }
        self.connection = self.shared.sender.hold(&to);
        match self.shared.sender.send_watched(&to, bytes) {
            Ok(None) => {}
            Ok(Some(failed)) => {
                ctx.spawn(failed.into_actor(self).map(move |result, act, ctx| {
                    // `Err`: the sender was dropped because the connection came up.
                    if result.is_ok() {
                        act.guarded(ctx, |act, ctx| {
                            act.leg
                                .transport_failed(attempt, &act.shared.env(), Instant::now());
                            act.drive(ctx);
                        });
                    }
                }));
            }
            Err(e) => {
                tracing::debug!(call_id = %self.id(), error = %e, "INVITE send failed");
                self.leg
                    .transport_failed(attempt, &self.shared.env(), Instant::now());
            }
        }
    }

    pub(super) fn emit(&mut self, event: CallEvent) {
        match &self.events {
            Some(r) => r.do_send(event),
            None => self.pending_events.push(event),
        }
    }

    /// The call's record: stored and published at each phase change.
    pub(super) fn record(&mut self, status: CallStatus, cause: Option<CallEndCause>) {
        let Some(entry) = &self.entry else { return };
        let mut info = entry.info();
        info.status = status;
        match status {
            CallStatus::Answered => {
                info.tm_answer = Some(crate::clock::timestamp());
                info.codec = self
                    .leg
                    .negotiated
                    .as_ref()
                    .map(crate::media::Negotiated::codec_name);
            }
            CallStatus::Ended => {
                info.end_cause = cause.map(CallEndCause::as_str);
                info.end_code = match cause {
                    Some(CallEndCause::Rejected(code)) => Some(code),
                    _ => self.leg.refused_with(),
                };
                info.tm_end = Some(crate::clock::timestamp());
            }
            CallStatus::Ringing => {}
        }
        info.persist(&self.shared.storage);
        info.publish(&self.shared.events);
    }

    /// The call is over: its record, the capacity slot, metrics; media freed.
    fn ended(&mut self, cause: CallEndCause, answered: bool) {
        if std::mem::take(&mut self.live) {
            self.shared.registry.call_ended(self.id());
        }
        self.record(CallStatus::Ended, Some(cause));
        let incoming = self.leg.is_incoming();
        let outcome = match cause {
            _ if answered => "answered",
            CallEndCause::Cancelled => "cancelled",
            CallEndCause::Local if incoming => "rejected",
            CallEndCause::Rejected(_) => "rejected",
            CallEndCause::NoAnswer | CallEndCause::Local => "cancelled",
            _ => "failed",
        };
        crate::metrics::call_finished(if incoming { "in" } else { "out" }, outcome);
        self.rtp = None;
        self.connection = None;
        for (job, _) in std::mem::take(&mut self.pending_media) {
            self.emit(CallEvent::media_unavailable(job, true));
        }
        // Dropping the handle ends the media session (it closes any recording).
        self.media = None;
    }

    /// Hands the RTP port to a media session on this arbiter (once).
    fn start_media(
        &mut self,
        negotiated: Option<crate::media::Negotiated>,
        ctx: &mut Context<Self>,
    ) {
        let Some(lease) = self.rtp.take() else { return };
        // A call that begins on hold (the offer was sendonly, inactive or c=0.0.0.0) starts
        // with our sending off.
        let held = negotiated.as_ref().is_some_and(|n| !n.we_send());
        let update = negotiated.as_ref().map(media_update);
        let (codec, dtmf_payload_type, remote) = match negotiated {
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
        self.record_codec(codec);
        let config = crate::media::MediaConfig {
            call_id: self.id().to_string(),
            // The session runs inside its call's span (see `start`).
            span: tracing::Span::current(),
            codec,
            dtmf_payload_type,
            remote,
            library: self.shared.library.clone(),
            recordings: self.shared.recordings.clone(),
            events: ctx.address().recipient(),
            rtp_timeout: self.shared.rtp_timeout,
            rtp_ports: Some(self.shared.rtp_ports.clone()),
        };
        self.media = crate::media::rtp_session::spawn(lease, config);
        if let (true, Some(media), Some(update)) = (held, &self.media, update) {
            media.send(MediaCommand::Update(update));
        }
        for (job, request) in std::mem::take(&mut self.pending_media) {
            match &self.media {
                Some(media) => media.send(MediaCommand::Start { job, request }),
                None => self.emit(CallEvent::media_unavailable(job, false)),
            }
        }
    }

    /// The codec in use, for the operator's record (`/v1/calls`).
    fn record_codec(&self, codec: crate::media::g711::Codec) {
        if let Some(entry) = &self.entry {
            entry.info().codec = Some(codec.name());
        }
    }

    /// Runs a handler's body; a panic in it is contained: the call is ended as if the session
    /// died (BYE or a final response, the record, the slot, the route) and the actor stops.
    /// actix drops neither the actor nor its mailbox on a handler panic, so nothing else would.
    pub(super) fn guarded(
        &mut self,
        ctx: &mut Context<Self>,
        body: impl FnOnce(&mut Self, &mut Context<Self>),
    ) {
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut *self, &mut *ctx)));
        if outcome.is_err() {
            crate::metrics::actor_panic("call_session");
            self.died();
            self.deregistered = true;
            ctx.stop();
        }
    }

    /// Cleanup for an actor that died without ending (see the module doc). Never panics.
    pub(super) fn died(&mut self) {
        let id = self.id();
        tracing::error!(call_id = %id, "call session died; ending its call");
        let env = self.shared.env();
        let now = Instant::now();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // Tell the peer the call is over where the machine still can.
            self.leg.end_now(CallEndCause::Failed, &env, now);
            for output in self.leg.take_outputs() {
                // No media starts for a call that is ending.
                let _ = self.apply(output);
            }
        }));
        if std::mem::take(&mut self.live) {
            self.shared.registry.call_ended(id);
        }
        self.shared
            .registry
            .remove(&self.leg.sip_call_id, &self.leg.local_tag);
    }
}

impl CallSession {
    /// Leases an RTP port and sends 183 with our SDP (early media); without a free port or
    /// an offer to answer, the caller just keeps ringing.
    pub(super) fn early_media(&mut self, now: Instant) {
        let env = self.shared.env();
        let offered = self.leg.negotiated.is_some() && self.leg.local_media.is_none();
        if !self.leg.is_incoming() || self.leg.phase != crate::call::leg::Phase::Early || !offered {
            return;
        }
        match self.shared.rtp_ports.lease() {
            Ok(lease) => {
                let media = crate::call::leg::LocalMedia {
                    port: lease.port(),
                    session_id: u64::from(lease.port())
                        ^ (self.leg.created.elapsed().as_nanos() as u64),
                    offer: false,
                };
                self.rtp = Some(lease);
                self.leg.early_media(media, &env, now);
            }
            Err(e) => tracing::warn!(call_id = %self.id(), error = %e, "no port for early media"),
        }
    }
}

/// What the media session must change to follow a negotiated SDP.
fn media_update(n: &crate::media::Negotiated) -> crate::media::MediaUpdate {
    crate::media::MediaUpdate {
        codec: crate::media::g711::Codec::from_payload_type(n.payload_type)
            .unwrap_or(crate::media::g711::Codec::Pcmu),
        dtmf_payload_type: n.dtmf_payload_type,
        remote: n.remote_rtp,
        send: n.we_send(),
    }
}
