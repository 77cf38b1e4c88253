//! The supervisor actor, one shard per arbiter: admits offered calls (route → 404, capacity or
//! draining → 503) and starts one activeflow actor per admitted call on its own arbiter, which is
//! the call session's (no cross-thread hop on a call's hot path); starts API activeflows too.
//! Shards share every piece of state (flows, routes, registry), so any shard can answer for all.
//! Supervised: a restart keeps all shared state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use tracing::Instrument;

use super::activeflow::CallLink;
use super::record::timestamp;
use super::{
    Activeflow, ActiveflowId, ActiveflowRecord, ActiveflowRegistry, EngineLimits, ReferenceType,
    RouteTable, Status, Stop,
};
use crate::call::outbound::Dialer;
use crate::call::{CallCommand, CallOffer, Refusal};
use crate::events::EventBus;
use crate::flow::{self, Flow, FlowStore, Variables};
use crate::http::HttpClient;
use crate::metrics::Unavailable;
use crate::storage::Storage;

mod place;
pub use place::{PlaceCalls, PlaceError, PlacedCall};

/// Start an activeflow without a call: over the API (reference type `api`), or as the next
/// flow of a completed one (`on_complete_flow_id`, `parent` set).
#[derive(Message)]
#[rtype(result = "Result<ActiveflowId, StartError>")]
pub struct StartActiveflow {
    pub flow: Arc<Flow>,
    pub variables: Variables,
    pub parent: Option<Parent>,
}

/// `call.status` of an incoming call not answered yet (VoIPBIN call status).
pub const CALL_RINGING: &str = "ringing";
/// `call.status` once answered.
pub const CALL_PROGRESSING: &str = "progressing";
/// `call.status` once the flow hangs the call up (its BYE or final response is on its way).
pub const CALL_TERMINATING: &str = "terminating";
/// `call.status` once the call is over.
pub const CALL_HANGUP: &str = "hangup";

/// Where a new activeflow stands in an `on_complete_flow_id` chain.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChainPosition {
    /// The activeflow whose end started it.
    pub parent: Option<ActiveflowId>,
    /// 1 for one started by a call or the API, its parent's + 1 for a successor.
    pub depth: u8,
}

impl ChainPosition {
    pub(crate) const FIRST: ChainPosition = ChainPosition {
        parent: None,
        depth: 1,
    };
}

/// [`StartActiveflow`] with the id the caller chose (VoIPBIN's `POST /activeflows` `id`);
/// refused with [`StartError::IdTaken`] when the registry already holds that id.
#[derive(Message)]
#[rtype(result = "Result<ActiveflowId, StartError>")]
pub struct StartActiveflowAs {
    pub id: ActiveflowId,
    pub start: StartActiveflow,
}

/// The activeflow an `on_complete_flow_id` chain continues.
#[derive(Debug, Clone)]
pub struct Parent {
    pub id: ActiveflowId,
    pub reference_type: ReferenceType,
    pub reference_id: String,
    /// The parent's position in its chain (1 = started by a call or the API).
    pub depth: u8,
    /// The parent's tree of placed calls: the successor stays in it.
    pub call_tree: super::call_tree::CallTree,
}

/// What an activeflow actor reaches beyond its own record: registered flows (`fetch_flow`) and
/// a supervisor to start its `on_complete_flow_id` successor.
#[derive(Clone)]
pub(crate) struct Links {
    pub(crate) flows: Arc<FlowStore>,
    pub(crate) supervisor: Recipient<StartActiveflow>,
    /// Position in an `on_complete_flow_id` chain (1 = started by a call or the API).
    pub(crate) depth: u8,
    pub(crate) limits: EngineLimits,
    /// `fetch` and `webhook_send` go through it (timeouts, size limit, `[http]` policy).
    pub(crate) http: HttpClient,
    /// Where the activeflow's history is made durable.
    pub(crate) storage: Storage,
    /// Places `connect` legs and sends `message_send` messages.
    pub(crate) dialer: Arc<Dialer>,
    /// Where its events go (SSE, webhooks).
    pub(crate) events: EventBus,
    /// The queue manager (`queue_join`).
    pub(crate) queues: Addr<crate::queue::QueueManager>,
    /// Conference rooms (`conference_join`).
    pub(crate) conferences: Arc<crate::conference::Conferences>,
    /// Set once shutdown drains the shard that started it: `call` places nothing more.
    pub(crate) draining: Arc<AtomicBool>,
    /// Its generation and budget of placed calls (`call`).
    pub(crate) call_tree: super::call_tree::CallTree,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StartError {
    #[error("at capacity ({0} activeflows running)")]
    AtCapacity(usize),
    #[error("the engine is shutting down")]
    Draining,
    /// The variables it would start with break a cap (`engine.max_variable_bytes`,
    /// `engine.max_variables_bytes`): nothing starts.
    #[error(transparent)]
    Variables(#[from] crate::flow::VariableError),
    #[error("activeflow {0} already exists")]
    IdTaken(ActiveflowId),
}

/// Stop admitting new calls (shutdown has begun).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// End every running activeflow with `reason`.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct StopAll {
    pub reason: super::EndReason,
}

pub struct Supervisor {
    flows: Arc<FlowStore>,
    routes: Arc<RouteTable>,
    registry: Arc<ActiveflowRegistry>,
    limits: EngineLimits,
    services: Services,
    draining: bool,
    /// `draining`, shared with the activeflows this shard starts (their `call` action).
    drain_flag: Arc<AtomicBool>,
}

/// The engine-wide services every activeflow reaches: outgoing HTTP, storage, the dialer for
/// outbound legs and the event bus. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub http: HttpClient,
    pub storage: Storage,
    pub dialer: Arc<Dialer>,
    pub events: EventBus,
    pub queues: Addr<crate::queue::QueueManager>,
    pub conferences: Arc<crate::conference::Conferences>,
}

impl Supervisor {
    pub fn new(
        flows: Arc<FlowStore>,
        routes: Arc<RouteTable>,
        registry: Arc<ActiveflowRegistry>,
        limits: EngineLimits,
        services: Services,
    ) -> Self {
        Supervisor {
            flows,
            routes,
            registry,
            limits,
            services,
            draining: false,
            drain_flag: Arc::new(AtomicBool::new(false)),
        }
    }

    fn links(&self, ctx: &Context<Self>, depth: u8) -> Links {
        Links {
            flows: self.flows.clone(),
            supervisor: ctx.address().recipient(),
            depth,
            limits: self.limits,
            http: self.services.http.clone(),
            storage: self.services.storage.clone(),
            dialer: self.services.dialer.clone(),
            events: self.services.events.clone(),
            queues: self.services.queues.clone(),
            conferences: self.services.conferences.clone(),
            draining: self.drain_flag.clone(),
            call_tree: Default::default(),
        }
    }

    /// The flow for `offer`, or how to refuse it. A 503 is counted by the call's leg as it
    /// sends it (a CANCEL may come first).
    fn admit(&self, offer: &CallOffer) -> Result<Arc<Flow>, Refusal> {
        if self.draining {
            return Err(Refusal::Unavailable(Unavailable::ShuttingDown));
        }
        if self.registry.running() >= self.limits.max_activeflows {
            return Err(Refusal::Unavailable(Unavailable::MaxActiveflows));
        }
        let not_found = Refusal::Status(404);
        let flow_ref = self.routes.lookup(&offer.destination).ok_or(not_found)?;
        self.flows.get_by_name_or_id(flow_ref).ok_or(not_found)
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;
}

impl Supervised for Supervisor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::warn!("supervisor restarting");
    }
}

impl Handler<CallOffer> for Supervisor {
    type Result = ();

    fn handle(&mut self, offer: CallOffer, ctx: &mut Self::Context) {
        // Lines about the offer carry the call's ids.
        let _call_span = offer.span.enter();
        let flow = match self.admit(&offer) {
            Ok(f) => f,
            Err(refusal) => {
                let status = refusal.status();
                tracing::info!(call_id = %offer.call_id, number = %offer.destination, status, "call refused");
                offer.commands.do_send(CallCommand::Reject(refusal));
                return;
            }
        };
        let id = ActiveflowId::new();
        let mut variables = Variables::new();
        variables.set(flow::CALL_ID, offer.call_id.to_string());
        variables.set(flow::CALL_SOURCE_TARGET, offer.source.clone());
        if let Some(user) = &offer.source_user {
            variables.set(flow::CALL_SOURCE_USER, user.clone());
        }
        variables.set(flow::CALL_DESTINATION_TARGET, offer.destination.clone());
        variables.set(flow::CALL_DIRECTION, "incoming");
        variables.set(flow::CALL_DIGITS, "");
        // VoIPBIN's names for the parties (bin-call-manager `call.Source`/`Destination`) and
        // its call status: an incoming call not answered yet is `ringing`.
        let parties = &offer.parties;
        variables.set(
            flow::variables::CALL_SOURCE_TYPE,
            parties.source.kind.as_str(),
        );
        variables.set(
            flow::variables::CALL_SOURCE_NAME,
            parties.source.name.clone(),
        );
        // Read by `connect`'s `"anonymous": "auto"`.
        variables.set(
            flow::variables::CALL_SOURCE_PRIVACY,
            if parties.source_privacy { "yes" } else { "no" },
        );
        variables.set(
            flow::variables::CALL_DESTINATION_TYPE,
            parties.destination.kind.as_str(),
        );
        variables.set(
            flow::variables::CALL_DESTINATION_NAME,
            parties.destination.name.clone(),
        );
        variables.set(flow::variables::CALL_STATUS, CALL_RINGING);
        // The caller chose the source and destination: addresses over the caps refuse the
        // call (400) before anything runs, rather than starting a flow that cannot hold them.
        if let Err(e) = variables.check(&self.limits.variables) {
            crate::metrics::flow_limit_exceeded(e.limit());
            tracing::info!(call_id = %offer.call_id, error = %e, "call refused");
            offer
                .commands
                .do_send(CallCommand::Reject(Refusal::Status(400)));
            return;
        }
        let record = new_record(
            &self.registry,
            id,
            &flow,
            ReferenceType::Call,
            offer.call_id.to_string(),
            ChainPosition::FIRST,
            &mut variables,
        );
        crate::call::span::record_activeflow(&offer.span, id);
        let call = CallLink {
            id: offer.call_id,
            commands: offer.commands,
            sip_call_id: offer.sip_call_id,
        };
        let links = self.links(ctx, 1);
        self.spawn(record, flow, variables, links, Some(call));
    }
}

impl Handler<StartActiveflow> for Supervisor {
    type Result = Result<ActiveflowId, StartError>;

    fn handle(&mut self, msg: StartActiveflow, ctx: &mut Self::Context) -> Self::Result {
        self.start(msg, ActiveflowId::new(), ctx)
    }
}

impl Handler<StartActiveflowAs> for Supervisor {
    type Result = Result<ActiveflowId, StartError>;

    fn handle(&mut self, msg: StartActiveflowAs, ctx: &mut Self::Context) -> Self::Result {
        // A cheap early answer; the registry's atomic insert (`try_spawn`) is what decides.
        if self.registry.get(&msg.id).is_some() {
            return Err(StartError::IdTaken(msg.id));
        }
        self.start(msg.start, msg.id, ctx)
    }
}

impl Supervisor {
    /// Starts `msg` as activeflow `id` (capacity, draining and variable caps checked).
    fn start(
        &mut self,
        msg: StartActiveflow,
        id: ActiveflowId,
        ctx: &mut <Self as Actor>::Context,
    ) -> Result<ActiveflowId, StartError> {
        if self.draining {
            return Err(StartError::Draining);
        }
        let running = self.registry.running();
        if running >= self.limits.max_activeflows {
            return Err(StartError::AtCapacity(running));
        }
        let mut variables = msg.variables;
        // Checked before the `activeflow.*` seeds are added (they are the engine's, a few
        // dozen bytes): an API start over a cap is a 400; a chain's successor starts with its
        // parent's final set, which was within them.
        if let Err(e) = variables.check(&self.limits.variables) {
            crate::metrics::flow_limit_exceeded(e.limit());
            tracing::warn!(parent = ?msg.parent.as_ref().map(|p| p.id), error = %e, "activeflow not started");
            return Err(e.into());
        }
        let call_tree = msg.parent.as_ref().map(|p| p.call_tree.clone());
        let (reference_type, reference_id, depth) = match &msg.parent {
            Some(p) => (p.reference_type, p.reference_id.clone(), p.depth + 1),
            // VoIPBIN's reference_id is a UUID: the nil one when nothing started it.
            None => (ReferenceType::Api, super::record::NIL_ID.to_owned(), 1),
        };
        let record = new_record(
            &self.registry,
            id,
            &msg.flow,
            reference_type,
            reference_id,
            ChainPosition {
                parent: msg.parent.map(|p| p.id),
                depth,
            },
            &mut variables,
        );
        let mut links = self.links(ctx, depth);
        if let Some(tree) = call_tree {
            links.call_tree = tree;
        }
        self.try_spawn(record, msg.flow, variables, links, None)
    }
}

impl Handler<Drain> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Drain, _ctx: &mut Self::Context) {
        self.draining = true;
        self.drain_flag.store(true, Ordering::Relaxed);
    }
}

impl Handler<StopAll> for Supervisor {
    type Result = usize;

    fn handle(&mut self, msg: StopAll, _ctx: &mut Self::Context) -> usize {
        let actors = self.registry.running_actors();
        for a in &actors {
            a.do_send(Stop { reason: msg.reason });
        }
        actors.len()
    }
}

/// A fresh running record, with the seeded `activeflow.*` variables.
pub(crate) fn new_record(
    registry: &ActiveflowRegistry,
    id: ActiveflowId,
    flow: &Flow,
    reference_type: ReferenceType,
    reference_id: String,
    chain: ChainPosition,
    variables: &mut Variables,
) -> Arc<Mutex<ActiveflowRecord>> {
    variables.set(flow::ACTIVEFLOW_ID, id.to_string());
    variables.set(flow::ACTIVEFLOW_FLOW_ID, flow.id.to_string());
    variables.set(flow::ACTIVEFLOW_REFERENCE_TYPE, reference_type.as_str());
    variables.set(flow::ACTIVEFLOW_REFERENCE_ID, reference_id.clone());
    // VoIPBIN activeflowhandler `variableCreate`: the chain's parent (nil UUID when none) and
    // how many on-complete hops led here, set last so inherited values cannot forge them.
    variables.set(
        flow::variables::ACTIVEFLOW_REFERENCE_ACTIVEFLOW_ID,
        chain
            .parent
            .map_or_else(|| uuid::Uuid::nil().to_string(), |p| p.to_string()),
    );
    variables.set(
        flow::variables::ACTIVEFLOW_COMPLETE_COUNT,
        chain.depth.saturating_sub(1).to_string(),
    );
    let now = timestamp();
    Arc::new(Mutex::new(ActiveflowRecord {
        id,
        flow_id: flow.id,
        status: Status::Running,
        end_reason: None,
        reference_type,
        reference_id,
        reference_activeflow_id: chain.parent,
        on_complete_flow_id: flow.on_complete_flow_id,
        webhook_uri: flow.webhook_uri.clone(),
        webhook_method: flow
            .webhook_uri
            .as_ref()
            .map(|_| flow.webhook_method.unwrap_or_default()),
        current_action: None,
        forward_action_id: None,
        executed_actions: std::collections::VecDeque::new(),
        executed_actions_dropped: 0,
        tm_create: now.clone(),
        tm_update: now,
        tm_end: None,
        tm_delete: None,
        variables: Variables::new(),
        sequence: registry.next_sequence(),
    }))
}

impl Supervisor {
    /// Starts the activeflow actor on this shard's arbiter and registers it (its id is fresh).
    fn spawn(
        &self,
        record: Arc<Mutex<ActiveflowRecord>>,
        flow: Arc<Flow>,
        variables: Variables,
        links: Links,
        call: Option<CallLink>,
    ) -> ActiveflowId {
        let id = super::registry::lock(&record).id;
        // A fresh v7 id is never taken; were it, nothing would have started.
        if let Err(e) = self.try_spawn(record, flow, variables, links, call) {
            tracing::error!(%id, error = %e, "activeflow not started");
        }
        id
    }

    /// Registers the activeflow, then starts its actor on this shard's arbiter; `IdTaken`
    /// (nothing started, nothing counted) when the registry already holds the id. The id is
    /// claimed before the actor runs, so of two concurrent starts with one client-chosen id
    /// (requests spread over shards) exactly one wins.
    fn try_spawn(
        &self,
        record: Arc<Mutex<ActiveflowRecord>>,
        flow: Arc<Flow>,
        variables: Variables,
        links: Links,
        call: Option<CallLink>,
    ) -> Result<ActiveflowId, StartError> {
        let id = super::registry::lock(&record).id;
        let ctx = Context::<Activeflow>::new();
        if !self.registry.insert_new(id, record.clone(), ctx.address()) {
            return Err(StartError::IdTaken(id));
        }
        self.registry.started();
        let span = super::span::new(id, call.as_ref().map(|c| (c.id, c.sip_call_id.as_str())));
        let activeflow =
            Activeflow::new(record, self.registry.clone(), flow, variables, links, call);
        // Runs on the current arbiter (this shard's), as `start_in_arbiter` would, inside its span.
        actix_rt::spawn(ctx.into_future(activeflow).instrument(span));
        Ok(id)
    }
}

/// Every supervisor shard (one per arbiter); API requests spread over them round-robin.
pub struct Supervisors {
    shards: Vec<Addr<Supervisor>>,
    next: std::sync::atomic::AtomicUsize,
}

impl Supervisors {
    /// `shards` must not be empty.
    pub fn new(shards: Vec<Addr<Supervisor>>) -> Self {
        Supervisors {
            shards,
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The next shard, round-robin.
    pub fn next(&self) -> Option<&Addr<Supervisor>> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.shards.get(i % self.shards.len().max(1))
    }

    pub fn all(&self) -> &[Addr<Supervisor>] {
        &self.shards
    }
}
