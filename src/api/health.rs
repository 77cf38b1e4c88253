//! Liveness and readiness probes.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::ApiState;

#[utoipa::path(operation_id = "health_healthz", get, path = "/healthz", tag = "meta",
    responses((status = 200, description = "the process is alive")))]
pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 while the engine takes calls; 503 before start-up completes and once draining.
#[utoipa::path(operation_id = "health_readyz", get, path = "/readyz", tag = "meta",
    responses((status = 200, description = "taking calls"), (status = 503, description = "starting or draining")))]
pub(super) async fn readyz(state: web::Data<ApiState>) -> HttpResponse {
    if state.ready.load(Ordering::Relaxed) {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "not_ready" }))
    }
}
