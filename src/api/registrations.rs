//! `GET /v1/registrations`: the phones (`[[users]]`) registered now, one row per contact
//! (RFC 3261 §10.3 bindings): user, contact, where the REGISTER came from, and when the
//! binding expires. Read-only: phones register over SIP.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::ApiState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/registrations", web::get().to(list));
}

#[utoipa::path(operation_id = "registrations_list", get, path = "/v1/registrations", tag = "registrations",
    responses((status = 200, description = "{result: [{user, contact, source, transport, expires_at}]} by user, then contact", body = serde_json::Value)))]
pub(super) async fn list(state: web::Data<ApiState>) -> HttpResponse {
    let now = tokio::time::Instant::now().into_std();
    let wall = chrono::Utc::now();
    let rows: Vec<_> = state
        .location
        .all(now)
        .into_iter()
        .map(|(user, b)| {
            let left = chrono::Duration::from_std(b.expires_at.saturating_duration_since(now))
                .unwrap_or_default();
            json!({
                "user": user,
                "contact": b.contact,
                "source": b.source.addr.to_string(),
                "transport": b.source.transport.label(),
                "expires_at": (wall + left).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({ "result": rows }))
}
