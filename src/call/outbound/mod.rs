//! Legs the engine places (the UAC side, ARCHITECTURE §6–7): [`Dialer`] routes a destination through
//! a trunk and starts one [`CallSession`] with an outgoing leg on the caller's arbiter; each leg owns
//! its INVITE client transaction, dialog and RTP port and reports [`CallEvent`]s like a call we
//! answer. SIP MESSAGE (RFC 3428) goes out through [`Dialer::send_message`]. Never imports
//! `engine`.

mod identity;
mod message;
mod target;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::prelude::*;

pub use super::registry::MessageSlot;
pub use message::{MessageOutcome, MessageSender};
pub use target::{route, Route, RouteError, Target};

use super::events::{CallCommand, CallEvent};
use super::leg::{Leg, LocalMedia, Placement};
use super::registry::SessionAddr;
use super::shared::SessionShared;
use super::trunk::Trunk;
use super::{CallId, CallSession};
use crate::sip::transport::Peer;

/// A leg to place.
pub struct DialRequest {
    pub target: Target,
    /// The trunk to route through (`None`: the destination's own host, or the first trunk with
    /// an outbound proxy for numbers).
    pub trunk: Option<String>,
    /// The caller's number or user, put in From.
    pub source: String,
    /// Cancel when no answer came in this long.
    pub ring_timeout: Duration,
    /// Where the leg's events go.
    pub events: Recipient<CallEvent>,
    /// The call this leg is placed for: its Max-Forwards less one goes on our INVITE, its
    /// Diversion headers too.
    pub parent: Option<CallId>,
    /// Hide the caller (From anonymous, P-Asserted-Identity, `Privacy: id`).
    pub anonymous: bool,
}

/// A placed leg: its id and where its commands go.
pub struct PlacedLeg {
    pub call_id: CallId,
    pub commands: Recipient<CallCommand>,
    /// The Call-ID header of our INVITE.
    pub sip_call_id: String,
    /// The leg's span (`call::span`): the engine records the activeflow that placed it.
    pub span: tracing::Span,
}

/// A SIP MESSAGE to send.
pub struct MessageRequest {
    pub target: Target,
    pub trunk: Option<String>,
    pub source: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("the SIP layer is not running")]
    NotReady,
    #[error("at capacity: no RTP port or call slot free")]
    AtCapacity,
    /// The call's Max-Forwards is spent: it has looped through SIP hops (this engine, say).
    #[error("too many hops: the call's Max-Forwards is spent (a routing loop?)")]
    TooManyHops,
    /// An `extension` with no live registration (or no such user).
    #[error("not_registered: user {0:?} has no registered contact")]
    NotRegistered(String),
}

impl DialError {
    /// A short word for `connect`'s result (`not_registered`, `at_capacity`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            DialError::Route(_) => "no_route",
            DialError::NotReady => "not_ready",
            DialError::AtCapacity => "at_capacity",
            DialError::TooManyHops => "too_many_hops",
            DialError::NotRegistered(_) => "not_registered",
        }
    }
}

/// Places legs and sends messages; shared by every activeflow. Made before the SIP layer it
/// uses (the supervisors that hold it are that layer's offer sinks), so the layer is attached
/// later, once.
pub struct Dialer {
    trunks: Vec<Trunk>,
    shared: OnceLock<Arc<SessionShared>>,
    /// Calls and outstanding MESSAGEs beyond this (incoming and outgoing, not yet ended; the
    /// registry's `occupied`) are refused.
    max_active_calls: usize,
}

impl Dialer {
    pub fn new(trunks: Vec<Trunk>, max_active_calls: usize) -> Self {
        Dialer {
            trunks,
            shared: OnceLock::new(),
            max_active_calls,
        }
    }

    /// Connects the dialer to the running SIP layer (the first call wins).
    pub fn attach(&self, shared: Arc<SessionShared>) {
        let _ = self.shared.set(shared);
    }

    fn shared(&self) -> Result<&Arc<SessionShared>, DialError> {
        self.shared.get().ok_or(DialError::NotReady)
    }

    /// One target per contact `user` registered (RFC 3261 §10.3), for `connect` to ring in
    /// parallel; `NotRegistered` when there is none (or no such user).
    pub fn extension(&self, user: &str) -> Result<Vec<Target>, DialError> {
        let shared = self.shared()?;
        let now = tokio::time::Instant::now().into_std();
        let targets: Vec<Target> = shared
            .location
            .lookup(user, now)
            .into_iter()
            .map(|b| Target::Registered {
                user: user.to_string(),
                uri: b.contact,
                source: b.source,
            })
            .collect();
        if targets.is_empty() {
            return Err(DialError::NotRegistered(user.to_string()));
        }
        Ok(targets)
    }

    /// Whether the SIP layer is overloaded (new INVITEs get 503): no new calls are placed.
    pub fn overloaded(&self) -> bool {
        self.shared
            .get()
            .is_some_and(|s| s.overload.is_overloaded())
    }

    /// Where `target` routes through `trunk` (the Request-URI a leg to it would carry; the
    /// Refer-To of a `transfer`).
    pub fn route_of(&self, target: &Target, trunk: Option<&str>) -> Result<Route, DialError> {
        Ok(route(target, trunk, &self.trunks)?)
    }

    /// Starts a leg on the current arbiter; its first event comes after this returns.
    pub fn dial(&self, request: DialRequest) -> Result<PlacedLeg, DialError> {
        let shared = self.shared()?.clone();
        let route = route(&request.target, request.trunk.as_deref(), &self.trunks)?;
        if shared.registry.occupied() >= self.max_active_calls {
            return Err(DialError::AtCapacity);
        }
        let parent = request.parent.and_then(|id| shared.registry.call(&id));
        let max_forwards = parent
            .as_ref()
            .map_or(70, |c| c.max_forwards.min(71).saturating_sub(1));
        let trunk = identity::trunk_for(&request.target, request.trunk.as_deref(), &self.trunks);
        let identity = identity::identity(
            trunk,
            &request.source,
            request.anonymous,
            parent.as_ref().map_or(&[][..], |c| &c.diversion),
            shared.public_ip,
        );
        if max_forwards == 0 {
            return Err(DialError::TooManyHops);
        }
        let rtp = shared
            .rtp_ports
            .lease()
            .map_err(|_| DialError::AtCapacity)?;
        let call_id = CallId::new();
        let sip_call_id = format!("{}@activeflow", uuid::Uuid::new_v4().simple());
        let local_tag = crate::sip::message::new_tag();
        let now = tokio::time::Instant::now();
        let destination = route.user.clone();
        let mut leg = Leg::outgoing(
            call_id,
            sip_call_id.clone(),
            local_tag.clone(),
            Placement {
                route,
                local_uri: identity.from,
                max_forwards,
                ring_timeout: request.ring_timeout,
                headers: identity.headers,
                credentials: identity.credentials,
            },
            &shared.env(),
            now,
        );
        leg.local_media = Some(LocalMedia {
            port: rtp.port(),
            session_id: u64::from(rtp.port()) ^ (uuid::Uuid::new_v4().as_u128() as u64 >> 1),
            offer: true,
        });
        let registry = shared.registry.clone();
        let session = CallSession::with_leg(
            leg,
            shared,
            0,
            Some(rtp),
            Some(request.events),
            request.source,
            destination,
        );
        let (addr, span) = session.start_traced();
        registry.insert_outgoing(&sip_call_id, &local_tag, SessionAddr::Call(addr.clone()));
        Ok(PlacedLeg {
            call_id,
            commands: addr.recipient(),
            sip_call_id,
            span,
        })
    }

    /// Sends one MESSAGE; resolves with its final status (or why none came).
    pub fn send_message(
        &self,
        request: MessageRequest,
    ) -> Result<tokio::sync::oneshot::Receiver<MessageOutcome>, DialError> {
        let shared = self.shared()?.clone();
        let route = route(&request.target, request.trunk.as_deref(), &self.trunks)?;
        let Some(slot) = shared.registry.message_started(self.max_active_calls) else {
            crate::metrics::outbound_refused("message_send");
            return Err(DialError::AtCapacity);
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sip_call_id = format!("{}@activeflow", uuid::Uuid::new_v4().simple());
        let registry = shared.registry.clone();
        let key = sip_call_id.clone();
        let tag = crate::sip::message::new_tag();
        let trunk = identity::trunk_for(&request.target, request.trunk.as_deref(), &self.trunks);
        let identity = identity::identity(trunk, &request.source, false, &[], shared.public_ip);
        let addr = MessageSender::new(
            shared,
            slot,
            sip_call_id,
            tag.clone(),
            route,
            identity,
            request,
            tx,
        )
        .start();
        registry.insert_outgoing(&key, &tag, SessionAddr::Message(addr));
        Ok(rx)
    }
}

/// Resolves the next hop of a leg the session places (RFC 3263, without blocking the
/// arbiter), then lets the leg send its INVITE to the first target and fail over through the
/// rest.
pub(super) fn start_resolution(session: &mut CallSession, ctx: &mut Context<CallSession>) {
    let Some(route) = session.leg.outgoing_route() else {
        return;
    };
    let route = route.clone();
    let resolver = session.resolver();
    let lookup = async move {
        let found = resolver.resolve(&route.next_hop, route.transport).await;
        (found, route)
    };
    ctx.spawn(lookup.into_actor(session).map(|(found, route), act, ctx| {
        let targets = peers(found, &route, &act.sender());
        act.resolved(targets, ctx);
    }));
}

/// The resolved targets as peers to send to. Each TLS target is told to the sender with the
/// route's server name and trust anchors, so the connection the first send opens checks the
/// certificate against them (RFC 3261 §26.3.1), and a failed handshake is a transport error
/// that moves the request to the next target (RFC 3263 §4.3).
pub(crate) fn peers(
    found: Result<Vec<crate::sip::resolve::ResolvedTarget>, crate::sip::resolve::ResolveError>,
    route: &Route,
    sender: &crate::sip::transport::SipSender,
) -> Vec<Peer> {
    match found {
        Ok(targets) => targets
            .into_iter()
            .map(|t| {
                let peer = Peer {
                    addr: t.addr,
                    transport: t.transport.kind(),
                };
                if peer.transport == crate::sip::transport::TransportKind::Tls {
                    sender.learn_tls(t.addr, route.tls_target());
                }
                peer
            })
            .collect(),
        Err(e) => {
            tracing::info!(error = %e, "next hop did not resolve");
            Vec::new()
        }
    }
}
