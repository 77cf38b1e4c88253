//! `/v1/flows`: list, create, read, replace and delete flows, with the same validation as flow
//! files (400 names the action index and field; a taken name or id is 409). In a cluster a name
//! is unique across the nodes: the shared store holds it (a unique index on API flow names),
//! checked before the write and, when the write is refused, again to answer 409.

use actix_web::{web, HttpResponse};
use serde_json::Value;

use super::history;
use super::page::{page_response, PageQuery};
use super::{ApiError, ApiState};
use crate::cluster::flows::{FlowChange, FlowChangeOp};
use crate::flow::{Flow, FlowError, FlowId};
use crate::storage::{FlowSource, Write};
use std::sync::Arc;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/flows", web::get().to(list))
        .route("/flows", web::post().to(create))
        .route("/flows/{id}", web::get().to(get))
        .route("/flows/{id}", web::put().to(replace))
        .route("/flows/{id}", web::delete().to(delete));
}

fn flow_error(e: FlowError) -> ApiError {
    match e {
        FlowError::Flow { ref field, .. } if field == "name" => ApiError::Conflict(e.to_string()),
        other => ApiError::BadRequest(other.to_string()),
    }
}

fn parse_flow(body: &Value) -> Result<Flow, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Flow::from_json(&bytes).map_err(flow_error)
}

fn parse_id(raw: &str) -> Result<FlowId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("flow {raw:?} not found")))
}

#[utoipa::path(operation_id = "flows_list", get, path = "/v1/flows", tag = "flows",
    params(("page_size" = Option<i64>, Query, description = "default 100 (also for 0 or less), at most 1000 (larger is clamped)"),
           ("page_token" = Option<String>, Query, description = "next_page_token of the previous page")),
    responses((status = 200, description = "by name: {result, next_page_token}", body = serde_json::Value),
              (status = 400, description = "bad page parameters", body = serde_json::Value)))]
pub(super) async fn list(
    state: web::Data<ApiState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let size = query.size()?;
    // Flows page by name (they have no creation time): only the tokens this listing issued.
    let offset = usize::try_from(query.sequence_token()?.unwrap_or(0)).unwrap_or(usize::MAX);
    let all = state.flows.list();
    let page: Vec<&Flow> = all.iter().skip(offset).take(size).map(|f| &**f).collect();
    let next = offset.saturating_add(size);
    let token = (next < all.len()).then(|| next.to_string());
    Ok(page_response(&page, token))
}

#[utoipa::path(operation_id = "flows_create", post, path = "/v1/flows", tag = "flows",
    request_body(content = serde_json::Value, description = "a flow: {name, detail, actions, on_complete_flow_id}"),
    responses((status = 201, description = "the stored flow, ids assigned", body = serde_json::Value),
              (status = 400, description = "invalid flow (names the action index and field)", body = serde_json::Value),
              (status = 409, description = "the id or name is taken", body = serde_json::Value),
              (status = 413, description = "body over 1 MiB", body = serde_json::Value)))]
pub(super) async fn create(
    state: web::Data<ApiState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let flow = parse_flow(&body)?;
    if state.flows.get(&flow.id).is_some() {
        return Err(ApiError::Conflict(format!(
            "flow {} exists; PUT replaces it",
            flow.id
        )));
    }
    let stored = state.flows.insert(flow).map_err(flow_error)?;
    commit(&state, &stored, None).await?;
    announce(&state, stored.id, FlowChangeOp::Created).await;
    Ok(HttpResponse::Created().json(&*stored))
}

#[utoipa::path(operation_id = "flows_get", get, path = "/v1/flows/{id}", tag = "flows",
    params(("id" = String, Path, description = "flow id")),
    responses((status = 200, description = "the flow", body = serde_json::Value),
              (status = 404, description = "unknown id", body = serde_json::Value)))]
pub(super) async fn get(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let flow = state
        .flows
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("flow {id} not found")))?;
    Ok(HttpResponse::Ok().json(&*flow))
}

#[utoipa::path(operation_id = "flows_replace", put, path = "/v1/flows/{id}", tag = "flows",
    params(("id" = String, Path, description = "flow id")),
    request_body(content = serde_json::Value, description = "the whole new flow; its id is the path's"),
    responses((status = 200, description = "the replaced flow (running activeflows keep the old one)", body = serde_json::Value),
              (status = 400, description = "invalid flow", body = serde_json::Value),
              (status = 404, description = "unknown id", body = serde_json::Value),
              (status = 409, description = "the name is taken by another flow", body = serde_json::Value)))]
pub(super) async fn replace(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let Some(previous) = state.flows.get(&id) else {
        return Err(ApiError::NotFound(format!("flow {id} not found")));
    };
    let mut flow = parse_flow(&body)?;
    flow.id = id;
    let stored = state.flows.insert(flow).map_err(flow_error)?;
    commit(&state, &stored, Some(previous)).await?;
    announce(&state, stored.id, FlowChangeOp::Replaced).await;
    Ok(HttpResponse::Ok().json(&*stored))
}

#[utoipa::path(operation_id = "flows_delete", delete, path = "/v1/flows/{id}", tag = "flows",
    params(("id" = String, Path, description = "flow id")),
    responses((status = 200, description = "the deleted flow", body = serde_json::Value),
              (status = 404, description = "unknown id", body = serde_json::Value)))]
pub(super) async fn delete(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let flow = state
        .flows
        .remove(&id)
        .ok_or_else(|| ApiError::NotFound(format!("flow {id} not found")))?;
    history::write(&state.storage, Write::DeleteFlow(id.to_string())).await?;
    announce(&state, id, FlowChangeOp::Deleted).await;
    Ok(HttpResponse::Ok().json(&*flow))
}

/// Commits `flow` (just put in memory, over `previous` when it replaced one) before the API
/// answers; in a cluster, a name another node's flow holds in the store is 409 and memory is
/// put back as it was.
async fn commit(
    state: &ApiState,
    flow: &Arc<Flow>,
    previous: Option<Arc<Flow>>,
) -> Result<(), ApiError> {
    // A failed read is no answer: the write goes on, the store's index still guards it.
    let taken = match name_taken(state, flow).await {
        Ok(Some(conflict)) => Some(conflict),
        _ => persist(state, flow).await.err(),
    };
    let Some(error) = taken else {
        return Ok(());
    };
    // The store refused the write: a name claimed meanwhile by another node is the cause
    // when the store now shows it held (the unique index refused our row).
    let error = match error {
        ApiError::Internal(_) => name_taken(state, flow)
            .await
            .ok()
            .flatten()
            .unwrap_or(error),
        other => other,
    };
    if matches!(error, ApiError::Conflict(_)) {
        state.flows.remove(&flow.id);
        if let Some(previous) = previous {
            let _ = state.flows.insert((*previous).clone());
        }
    }
    Err(error)
}

/// In a cluster: the conflict when another API flow holds `flow`'s name in the shared store.
async fn name_taken(state: &ApiState, flow: &Flow) -> Result<Option<ApiError>, ApiError> {
    if state.cluster.is_none() || flow.name.is_empty() {
        return Ok(None);
    }
    let rows = history::read(&state.storage, |s| s.flows(FlowSource::Api)).await?;
    let id = flow.id.to_string();
    let holder = rows
        .unwrap_or_default()
        .into_iter()
        .find(|r| r.name == flow.name && r.id != id);
    Ok(holder.map(|r| {
        ApiError::Conflict(format!(
            "name: name {:?} is already used by flow {} (in the cluster)",
            flow.name, r.id
        ))
    }))
}

/// Commits a flow created or replaced over the API before the API answers.
async fn persist(state: &ApiState, flow: &crate::flow::Flow) -> Result<(), ApiError> {
    let row = crate::engine::persist::flow_row(flow, FlowSource::Api);
    history::write(&state.storage, Write::Flow(row)).await
}

/// Tells the other nodes of a cluster that flow `id` changed (after the store committed it).
async fn announce(state: &ApiState, id: FlowId, op: FlowChangeOp) {
    if let Some(cluster) = &state.cluster {
        let change = FlowChange {
            flow_id: id.to_string(),
            op,
        };
        crate::cluster::flows::publish(cluster, &change).await;
    }
}
