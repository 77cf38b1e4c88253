//! `/v1/trunks`: the configured trunks (never their credentials) and the state of those that
//! register (RFC 3261 §10.2).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::ApiState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/trunks", web::get().to(list));
}

#[utoipa::path(operation_id = "trunks_list", get, path = "/v1/trunks", tag = "trunks",
    responses((status = 200, description = "{result: [{name, outbound_proxy, transport, \
        register, username, registration: {state (unregistered | registering | registered | \
        failed), expires_at, last_code, last_error} | null}]}", body = serde_json::Value)))]
pub(super) async fn list(state: web::Data<ApiState>) -> HttpResponse {
    let result: Vec<_> = state
        .trunks
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "outbound_proxy": t.outbound_proxy.as_ref().map(ToString::to_string),
                "transport": t.transport.map(|t| t.label()),
                "register": t.account.register_expires.is_some(),
                "username": t.account.credentials.as_ref().map(|c| &c.username),
                "registration": state.registrations.status(&t.name),
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({ "result": result }))
}
