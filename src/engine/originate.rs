//! Places one outbound call that runs a flow (`POST /v1/calls`, the `call` action): the leg
//! goes out through the dialer (trunks, auth, DNS, failover, privacy: `connect`'s path) and its
//! activeflow is created with it (reference type `call`, `call.direction` `outgoing`), so its id
//! is known at once; the activeflow holds its actions until the callee answers (or, with
//! `early_execution`, only those that need an answered call; see `activeflow::outbound`). Runs
//! on the caller's arbiter; must not wait for anything.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tracing::Instrument;

use super::activeflow::CallLink;
use super::supervisor::{new_record, ChainPosition, Links};
use super::{Activeflow, ActiveflowId, ActiveflowRegistry, ReferenceType};
use crate::call::outbound::{DialError, DialRequest, Target};
use crate::call::{CallCommand, CallId};
use crate::flow::call_action::Party;
use crate::flow::outbound::AddressType;
use crate::flow::variables as vars;
use crate::flow::{Flow, VariableError, Variables};

/// `call.status` of an outgoing call not answered yet (VoIPBIN's call status `dialing`).
pub const CALL_DIALING: &str = "dialing";

/// One call to place.
pub(crate) struct Originate {
    pub(crate) flow: Arc<Flow>,
    /// Seeded before the `call.*` and `activeflow.*` keys (which win).
    pub(crate) variables: Variables,
    /// Our From user (`call.source.*`); an empty target: the trunk's or `activeflow`.
    pub(crate) source: Party,
    pub(crate) destination: Party,
    pub(crate) trunk: Option<String>,
    pub(crate) anonymous: bool,
    pub(crate) early_execution: bool,
    pub(crate) ring_timeout: Duration,
    /// The call this one is placed from (Max-Forwards, Diversion), if any.
    pub(crate) parent_call: Option<CallId>,
}

/// A placed call and the activeflow that runs on it.
pub(crate) struct Originated {
    pub(crate) call_id: CallId,
    pub(crate) activeflow_id: ActiveflowId,
    pub(crate) commands: Recipient<CallCommand>,
}

#[derive(Debug, thiserror::Error)]
pub enum OriginateError {
    #[error("at capacity ({0} activeflows running)")]
    AtCapacity(usize),
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error(transparent)]
    Variables(#[from] VariableError),
    #[error("the engine is shutting down")]
    Draining,
    #[error("overloaded: SIP requests are waiting too long to be handled")]
    Overloaded,
}

impl OriginateError {
    /// A short fixed word for results and responses (`no_route`, `at_capacity`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            OriginateError::AtCapacity(_) => "at_capacity",
            OriginateError::Dial(e) => e.reason(),
            OriginateError::Variables(_) => "variables",
            OriginateError::Draining => "draining",
            OriginateError::Overloaded => "overloaded",
        }
    }

    /// Whether the engine is full (503 when nothing could be placed).
    pub fn is_capacity(&self) -> bool {
        matches!(
            self,
            OriginateError::AtCapacity(_) | OriginateError::Dial(DialError::AtCapacity)
        )
    }
}

fn target(party: &Party) -> Target {
    match party.address.kind {
        AddressType::Tel => Target::Tel(party.address.target.clone()),
        // Extensions are refused when the options are parsed (`call_action`).
        AddressType::Sip | AddressType::Extension => Target::Sip(party.address.target.clone()),
    }
}

fn kind(party: &Party) -> &'static str {
    match party.address.kind {
        AddressType::Tel => "tel",
        AddressType::Sip | AddressType::Extension => "sip",
    }
}

/// Places the call and starts its activeflow on the current arbiter.
pub(crate) fn originate(
    registry: &Arc<ActiveflowRegistry>,
    links: Links,
    request: Originate,
) -> Result<Originated, OriginateError> {
    // As `POST /v1/calls` (`PlaceCalls`): nothing new once shutdown drains or SIP is overloaded.
    if links.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(OriginateError::Draining);
    }
    if links.dialer.overloaded() {
        return Err(OriginateError::Overloaded);
    }
    let running = registry.running();
    if running >= links.limits.max_activeflows {
        return Err(OriginateError::AtCapacity(running));
    }
    let mut variables = request.variables;
    variables.check(&links.limits.variables)?;
    let ctx = Context::<Activeflow>::new();
    let leg = links.dialer.dial(DialRequest {
        target: target(&request.destination),
        trunk: request.trunk.clone(),
        source: request.source.address.target.clone(),
        ring_timeout: request.ring_timeout,
        events: ctx.address().recipient(),
        parent: request.parent_call,
        anonymous: request.anonymous,
    })?;
    let (source, destination) = (&request.source, &request.destination);
    variables.set(vars::CALL_ID, leg.call_id.to_string());
    variables.set(vars::CALL_SOURCE_TARGET, source.address.target.clone());
    variables.set(vars::CALL_SOURCE_TYPE, kind(source));
    variables.set(vars::CALL_SOURCE_NAME, source.name.clone());
    let privacy = if request.anonymous { "yes" } else { "no" };
    variables.set(vars::CALL_SOURCE_PRIVACY, privacy);
    variables.set(
        vars::CALL_DESTINATION_TARGET,
        destination.address.target.clone(),
    );
    variables.set(vars::CALL_DESTINATION_TYPE, kind(destination));
    variables.set(vars::CALL_DESTINATION_NAME, destination.name.clone());
    variables.set(vars::CALL_DIRECTION, "outgoing");
    variables.set(vars::CALL_DIGITS, "");
    variables.set(vars::CALL_STATUS, CALL_DIALING);
    let id = ActiveflowId::new();
    let record = new_record(
        registry,
        id,
        &request.flow,
        ReferenceType::Call,
        leg.call_id.to_string(),
        ChainPosition::FIRST,
        &mut variables,
    );
    if !registry.insert_new(id, record.clone(), ctx.address()) {
        // A fresh v7 id is never taken; were it, the leg must not ring with nothing behind it.
        leg.commands
            .do_send(CallCommand::Hangup(crate::call::HangupCause::Normal));
        return Err(OriginateError::AtCapacity(running));
    }
    registry.started();
    crate::call::span::record_activeflow(&leg.span, id);
    let call = CallLink {
        id: leg.call_id,
        commands: leg.commands.clone(),
        sip_call_id: leg.sip_call_id.clone(),
    };
    let span = super::span::new(id, Some((call.id, call.sip_call_id.as_str())));
    let activeflow = Activeflow::new(
        record,
        registry.clone(),
        request.flow,
        variables,
        links,
        Some(call),
    )
    .dialing(request.early_execution);
    actix_rt::spawn(ctx.into_future(activeflow).instrument(span));
    tracing::info!(parent: &leg.span, "outbound call placed");
    Ok(Originated {
        call_id: leg.call_id,
        activeflow_id: id,
        commands: leg.commands,
    })
}
