//! `/v1/routes`: the configured `[[routes]]` in effect (dialled number → flow), each with the
//! id of the flow it names as resolved now (null when no flow has that name or id any more).
//! Read-only: routes come from the config.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::ApiState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/routes", web::get().to(list));
}

#[utoipa::path(operation_id = "routes_list", get, path = "/v1/routes", tag = "routes",
    responses((status = 200, description = "{result: [{number, flow, flow_id}]}: exact numbers \
        in order, then `*`; `flow` as configured (a name or an id), `flow_id` the flow it \
        resolves to now, or null", body = serde_json::Value)))]
pub(super) async fn list(state: web::Data<ApiState>) -> HttpResponse {
    let result: Vec<_> = state
        .routes
        .entries()
        .into_iter()
        .map(|(number, flow)| {
            let flow_id = state
                .flows
                .get_by_name_or_id(flow)
                .map(|f| f.id.to_string());
            json!({ "number": number, "flow": flow, "flow_id": flow_id })
        })
        .collect();
    HttpResponse::Ok().json(json!({ "result": result }))
}
