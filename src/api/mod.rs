//! The operator REST API (actix-web, ARCHITECTURE §9): a router function tests can mount without a
//! socket, one access guard in front of every route (scoped bearer tokens, or loopback-only
//! when none are configured; only the console's static files are outside it), security headers
//! on every answer, and JSON errors. Every `/v1/...` route also answers as
//! `/v1.0/...` (VoIPBIN's prefix). Reads the engine's registry and sends the engine
//! messages; holds no engine state of its own.

mod activeflows;
pub mod auth;
mod caller_variables;
mod calls;
mod cdr;
mod conferences;
pub mod error;
mod events;
mod flows;
pub mod forward;
mod headers;
mod health;
mod history;
mod nodes;
pub mod openapi;
mod outbound_calls;
mod page;
mod queues;
mod recordings;
mod registrations;
mod routes;
mod trunks;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use actix_web::{middleware, web};

pub use error::ApiError;

use crate::call::CallRegistry;
use crate::engine::{ActiveflowRegistry, Supervisors};
use crate::flow::FlowStore;
use crate::media::Recordings;

/// Largest request body accepted (413 above).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What handlers need.
pub struct ApiState {
    pub registry: Arc<ActiveflowRegistry>,
    pub flows: Arc<FlowStore>,
    pub calls: Arc<CallRegistry>,
    pub supervisors: Arc<Supervisors>,
    pub recordings: Arc<Recordings>,
    /// Durable history: pages past what memory holds, and flows written through.
    pub storage: crate::storage::Storage,
    /// The event stream (`GET /v1/events`).
    pub events: crate::events::EventBus,
    /// Who may call (tokens and scopes; none = loopback hosts only).
    pub access: auth::AccessPolicy,
    /// False until the engine is up, and again once shutdown starts.
    pub ready: Arc<AtomicBool>,
    /// The watched parts (`/readyz` answers 503 while one is down).
    pub health: crate::health::Health,
    /// The configured trunks and their registrations (`GET /v1/trunks`).
    pub trunks: Vec<crate::call::Trunk>,
    pub registrations: Arc<crate::call::registration::Registrations>,
    /// Registered phones (`GET /v1/registrations`).
    pub location: Arc<crate::sip::registrar::LocationService>,
    /// The queue manager (`/v1/queues`).
    pub queues: actix::Addr<crate::queue::QueueManager>,
    /// Conference rooms (`/v1/conferences`).
    pub conferences: Arc<crate::conference::Conferences>,
    /// This node in its cluster; `None` for a single node.
    pub cluster: Option<crate::cluster::Cluster>,
    /// The configured `[[routes]]` (`GET /v1/routes`).
    pub routes: Arc<crate::engine::RouteTable>,
}

/// Mounts every route; `state` must already be registered as `web::Data<ApiState>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(MAX_BODY_BYTES)
            .error_handler(|e, _| ApiError::from_json(e).into()),
    )
    .app_data(
        web::PathConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()),
    )
    // The console's files carry no data: served before (outside) the access guard.
    .configure(crate::console::configure)
    .service(
        // One scope around everything, so the guard sees every request, routes and 404s alike.
        web::scope("")
            .wrap(middleware::from_fn(headers::security_headers))
            .wrap(middleware::from_fn(auth::guard))
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .route("/v1/openapi.json", web::get().to(openapi::spec))
            .route("/v1.0/openapi.json", web::get().to(openapi::spec))
            .service(web::scope("/v1").configure(versioned))
            // VoIPBIN's clients call `/v1.0/...`: the same handlers behind the same guard
            // (`auth::scope` classifies `/v1.0/x` as `/v1/x`).
            .service(web::scope("/v1.0").configure(versioned))
            .default_service(web::to(no_such_route)),
    )
    // Nested scopes without a route fall back to the app's default (still behind the guard).
    .default_service(web::to(no_such_route));
}

/// Every route under a version prefix (`/v1` and its VoIPBIN spelling `/v1.0`).
fn versioned(cfg: &mut web::ServiceConfig) {
    cfg.configure(flows::configure)
        .configure(activeflows::configure)
        .configure(calls::configure)
        .configure(recordings::configure)
        .configure(registrations::configure)
        .configure(events::configure)
        .configure(trunks::configure)
        .configure(queues::configure)
        .configure(conferences::configure)
        .configure(nodes::configure)
        .configure(routes::configure);
}

async fn no_such_route() -> ApiError {
    ApiError::NotFound("no such route".into())
}
