//! The operator REST API (actix-web, DESIGN §6): a router function tests can mount without a
//! socket, bearer-token auth, and JSON errors. Reads the engine's registry and sends the engine
//! messages; holds no engine state of its own.

mod activeflows;
mod auth;
mod calls;
pub mod error;
mod events;
mod flows;
mod health;
mod history;
pub mod openapi;
mod page;
mod recordings;

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
    /// Empty = no auth (only allowed on loopback, enforced by config validation).
    pub token: String,
    /// False until the engine is up, and again once shutdown starts.
    pub ready: Arc<AtomicBool>,
    /// The watched parts (`/readyz` answers 503 while one is down).
    pub health: crate::health::Health,
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
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/v1/openapi.json", web::get().to(openapi::spec))
    .service(
        web::scope("/v1")
            .wrap(middleware::from_fn(auth::require_token))
            .configure(flows::configure)
            .configure(activeflows::configure)
            .configure(calls::configure)
            .configure(recordings::configure)
            .configure(events::configure),
    )
    .default_service(web::to(|| async {
        ApiError::NotFound("no such route".into())
    }));
}
