//! `/v1/nodes` (issue 20): the cluster's nodes as this node sees them — state (up, draining,
//! lost), last heartbeat age by this node's clock, and load (running activeflows, calls). A
//! single node (no `[cluster]`) lists just itself, `node_id` `"local"`, state `up`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::ApiState;
use crate::cluster::beat::{Load, NodeState, NodeView};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/nodes", web::get().to(list));
}

#[utoipa::path(operation_id = "nodes_list", get, path = "/v1/nodes", tag = "nodes",
    responses((status = 200, description = "{result: [{node_id, state (up | draining | lost), \
        incarnation, heartbeat_age_ms, sip, api, load: {activeflows, calls}, started_at, \
        version, self}]} by node id", body = serde_json::Value)))]
pub(super) async fn list(state: web::Data<ApiState>) -> HttpResponse {
    let membership = state.cluster.as_ref().and_then(|c| c.membership());
    let result = match membership {
        Some(m) => m.nodes(),
        None => vec![NodeView {
            node_id: state
                .cluster
                .as_ref()
                .map_or_else(|| "local".to_string(), |c| c.node_id.to_string()),
            state: NodeState::Up,
            incarnation: state
                .cluster
                .as_ref()
                .map(|c| c.current_incarnation().to_string()),
            heartbeat_age_ms: Some(0),
            sip: None,
            api: None,
            load: Some(Load {
                activeflows: state.registry.running(),
                calls: state.calls.active(),
            }),
            started_at: None,
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
            this_node: true,
        }],
    };
    HttpResponse::Ok().json(json!({ "result": result }))
}
