//! One SIP MESSAGE (RFC 3428) the engine sends: a small actor owning its non-INVITE client
//! transaction (Timer E retransmits over UDP, Timer F gives up), registered by Call-ID so the
//! response finds it. Fails over through the resolved targets on 503, timeout or transport
//! error (RFC 3263 §4.3); a 401/407 from a trunk with credentials is answered once (RFC 3261
//! §22.2–22.3: the MESSAGE again with the next CSeq, a new branch and the credentials).
//! Reports the final status once, then stops. Each holds a [`MessageSlot`] while its
//! transaction is outstanding, so messages count against the engine's capacity.

use std::collections::VecDeque;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::super::auth::{is_challenge, new_cnonce, AuthHeader, DigestClient};
use super::super::registry::MessageSlot;
use super::super::shared::{SessionShared, SipIn};
use super::identity::Identity;
use super::target::Route;
use super::MessageRequest;
use crate::sip::message::{new_branch, RequestBuilder, TransactionKey};
use crate::sip::transaction::{ClientNonInviteTransaction, TransactionOutput};
use crate::sip::transport::Peer;

/// How a MESSAGE ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageOutcome {
    /// The final response's status code.
    Status(u16),
    /// No final response within Timer F (64·T1).
    Timeout,
    /// It could not be sent (the host did not resolve, the last target's connect failed).
    Failed(String),
}

pub struct MessageSender {
    shared: Arc<SessionShared>,
    /// Held until the sender stops.
    _slot: MessageSlot,
    sip_call_id: String,
    /// Our From tag: its response is routed to us by it.
    local_tag: String,
    route: Route,
    /// From (without tag), per the trunk's identity.
    from: String,
    text: String,
    branch: String,
    /// One more for each target tried (RFC 3263 §4.3: a new transaction, same Call-ID) and
    /// each challenge answered.
    cseq: u32,
    /// The trunk's challenges and what the MESSAGE carries since one was answered.
    auth: DigestClient,
    auth_header: Option<AuthHeader>,
    peer: Option<Peer>,
    /// Resolved targets not tried yet.
    remaining: VecDeque<Peer>,
    /// Whether the current target answered anything (then only its 503 moves on).
    answered: bool,
    tx: Option<ClientNonInviteTransaction>,
    reply: Option<oneshot::Sender<MessageOutcome>>,
    timer: Option<SpawnHandle>,
    failover_timer: Option<SpawnHandle>,
}

impl MessageSender {
    // Each argument is a distinct part the sender owns; a struct for them would only move
    // the same list into `Dialer::send_message`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        shared: Arc<SessionShared>,
        slot: MessageSlot,
        sip_call_id: String,
        local_tag: String,
        route: Route,
        identity: Identity,
        request: MessageRequest,
        reply: oneshot::Sender<MessageOutcome>,
    ) -> Self {
        MessageSender {
            shared,
            _slot: slot,
            sip_call_id,
            local_tag,
            route,
            from: identity.from,
            text: request.text,
            branch: new_branch(),
            cseq: 0,
            auth: DigestClient::new(identity.credentials),
            auth_header: None,
            peer: None,
            remaining: VecDeque::new(),
            answered: false,
            tx: None,
            reply: Some(reply),
            timer: None,
            failover_timer: None,
        }
    }

    fn finish(&mut self, outcome: MessageOutcome, ctx: &mut Context<Self>) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(outcome);
        }
        ctx.stop();
    }

    /// Sends the MESSAGE to the next resolved target; false when none is left.
    fn next_target(&mut self, ctx: &mut Context<Self>) -> bool {
        let Some(peer) = self.remaining.pop_front() else {
            return false;
        };
        self.cseq += 1;
        self.branch = new_branch();
        self.answered = false;
        // A new target challenges with its own nonce: start unchallenged (RFC 3263 §4.3).
        self.auth.reset();
        self.auth_header = None;
        self.peer = Some(peer);
        self.send_request(ctx);
        true
    }

    /// The MESSAGE (again, after a challenge) to the current target through a new client
    /// transaction, with the failover timer armed while other targets are left.
    fn send_request(&mut self, ctx: &mut Context<Self>) {
        let Some(peer) = self.peer else { return };
        for handle in [self.timer.take(), self.failover_timer.take()]
            .into_iter()
            .flatten()
        {
            ctx.cancel_future(handle);
        }
        let sent_by = self.shared.env().sent_by_over(peer.transport);
        let mut b = RequestBuilder::new(rsip::Method::Message, &self.route.request_uri)
            .via(&sent_by, peer.transport.via_token(), &self.branch)
            .from_addr(&self.from, &self.local_tag)
            .to_addr(&format!("<{}>", self.route.request_uri), None)
            .call_id(&self.sip_call_id)
            .cseq(self.cseq)
            .max_forwards(70);
        if let Some(h) = &self.auth_header {
            b = b.header(h.name, &h.value);
        }
        let bytes = b
            .body("text/plain;charset=UTF-8", self.text.clone().into_bytes())
            .build();
        self.tx = Some(ClientNonInviteTransaction::new(
            bytes.clone(),
            peer.transport.is_reliable(),
            self.shared.timers,
            Instant::now(),
        ));
        let cseq = self.cseq;
        match self.shared.sender.send_watched(&peer, &bytes) {
            Ok(None) => {}
            Ok(Some(failed)) => {
                ctx.spawn(failed.into_actor(self).map(move |result, act, ctx| {
                    if result.is_ok() && act.cseq == cseq && !act.answered {
                        act.fail_over(
                            "transport",
                            MessageOutcome::Failed("connect failed".into()),
                            ctx,
                        );
                    }
                }));
            }
            Err(e) => {
                self.tx = None;
                return self.fail_over("transport", MessageOutcome::Failed(e.to_string()), ctx);
            }
        }
        if !self.remaining.is_empty() {
            let wait = self.shared.failover_timeout;
            self.failover_timer = Some(ctx.run_later(wait, move |act, ctx| {
                act.failover_timer = None;
                if act.cseq == cseq && !act.answered {
                    act.fail_over("timeout", MessageOutcome::Timeout, ctx);
                }
            }));
        }
        self.rearm(ctx);
    }

    /// RFC 3263 §4.3: the next target, or `outcome` when none is left.
    fn fail_over(
        &mut self,
        reason: &'static str,
        outcome: MessageOutcome,
        ctx: &mut Context<Self>,
    ) {
        if self.remaining.is_empty() {
            return self.finish(outcome, ctx);
        }
        crate::metrics::sip_failover(reason);
        tracing::info!(reason, "MESSAGE failing over to the next target");
        self.next_target(ctx);
    }

    fn rearm(&mut self, ctx: &mut Context<Self>) {
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        let Some(at) = self.tx.as_ref().and_then(|t| t.next_deadline()) else {
            return;
        };
        let delay = at.saturating_duration_since(Instant::now());
        self.timer = Some(ctx.run_later(delay, |act, ctx| {
            act.timer = None;
            act.on_tick(ctx);
        }));
    }

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        let Some(tx) = &mut self.tx else { return };
        for out in tx.on_tick(Instant::now()) {
            match out {
                TransactionOutput::Retransmit(bytes) => {
                    crate::metrics::sip_retransmission(false);
                    if let Some(peer) = &self.peer {
                        let _ = self.shared.sender.send(peer, &bytes);
                    }
                }
                TransactionOutput::Timeout => {
                    return self.fail_over("timeout", MessageOutcome::Timeout, ctx)
                }
                TransactionOutput::Terminated => {}
            }
        }
        self.rearm(ctx);
    }
}

impl Actor for MessageSender {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let resolver = self.shared.resolver.clone();
        let (hop, transport) = (self.route.next_hop.clone(), self.route.transport);
        let lookup = async move { resolver.resolve(&hop, transport).await };
        ctx.spawn(lookup.into_actor(self).map(|found, act, ctx| {
            act.remaining = super::peers(found, &act.route, &act.shared.sender).into();
            if !act.next_target(ctx) {
                act.finish(
                    MessageOutcome::Failed("destination host did not resolve".into()),
                    ctx,
                );
            }
        }));
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        self.shared
            .registry
            .remove(&self.sip_call_id, &self.local_tag);
        Running::Stop
    }
}

impl Handler<SipIn> for MessageSender {
    type Result = ();

    fn handle(&mut self, msg: SipIn, ctx: &mut Self::Context) {
        let rsip::SipMessage::Response(resp) = msg.inbound.message else {
            return;
        };
        let matches = TransactionKey::for_response(&resp)
            .is_ok_and(|k| k.branch() == self.branch && k.method() == rsip::Method::Message);
        let Some(tx) = self.tx.as_mut().filter(|_| matches) else {
            return;
        };
        let code = u16::from(resp.status_code.clone());
        tx.on_response(code, Instant::now());
        self.answered = true;
        if is_challenge(code) {
            let uri = self.route.request_uri.clone();
            match self.auth.answer(&resp, "MESSAGE", &uri, &new_cnonce()) {
                Ok(header) => {
                    self.auth_header = Some(header);
                    self.cseq += 1;
                    self.branch = new_branch();
                    return self.send_request(ctx);
                }
                Err(e) => tracing::info!(code, error = %e, "MESSAGE challenge not answered"),
            }
        }
        if code == 503 {
            self.fail_over("unavailable", MessageOutcome::Status(code), ctx);
        } else if code >= 200 {
            self.finish(MessageOutcome::Status(code), ctx);
        } else {
            self.rearm(ctx);
        }
    }
}
