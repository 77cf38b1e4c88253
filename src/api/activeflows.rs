//! `/v1/activeflows`: list (newest first, `status` filter, pagination), start without a call,
//! read, stop, delete, continue, and variables. Activeflows no longer in memory are served from
//! storage (they have ended).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::caller_variables::CallerVariables;
use super::forward;
use super::history;
use super::page::{page_response, PageQuery};
use super::{ApiError, ApiState};
use crate::cluster::forward::ForwardOp;
use crate::engine::{
    ActiveflowId, Continue, ContinueError, EndReason, GetVariables, MergeError, MergeVariables,
    StartActiveflow, StartActiveflowAs, StartError, Status, Stop,
};
use crate::flow::webhook::WebhookMethod;
use crate::flow::{self, Action, Flow, FlowId};
use crate::storage::Write;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/activeflows", web::get().to(list))
        .route("/activeflows", web::post().to(create))
        .route("/activeflows/{id}", web::get().to(get))
        .route("/activeflows/{id}", web::delete().to(delete))
        .route("/activeflows/{id}/stop", web::post().to(stop))
        .route("/activeflows/{id}/continue", web::post().to(resume))
        .route("/activeflows/{id}/variables", web::get().to(get_variables))
        .route("/activeflows/{id}/variables", web::put().to(put_variables));
}

#[utoipa::path(operation_id = "activeflows_list", get, path = "/v1/activeflows", tag = "activeflows",
    params(("status" = Option<String>, Query, description = "running | ended"),
           ("page_size" = Option<i64>, Query, description = "default 100 (also for 0 or less), at most 1000 (larger is clamped)"),
           ("page_token" = Option<String>, Query, description = "next_page_token of the previous page, or a VoIPBIN timestamp (created before it)"),
           ("fields" = Option<String>, Query, description = "summary: each record without executed_actions (and executed_actions_dropped), with execute_count, the number of actions it has executed; current_action stays")),
    responses((status = 200, description = "newest first: {result, next_page_token}", body = serde_json::Value),
              (status = 400, description = "bad filter, fields or page parameters", body = serde_json::Value)))]
pub(super) async fn list(
    state: web::Data<ApiState>,
    query: web::Query<PageQuery>,
    fields: web::Query<FieldsQuery>,
) -> Result<HttpResponse, ApiError> {
    let status = query.status(Status::parse, "running or ended")?;
    let size = query.size()?;
    let summary = fields.summary()?;
    let token = history::cursor_sequence(
        &state.storage,
        query.cursor()?,
        |at| state.registry.first_since(at),
        |s, at| s.first_activeflow_since(at),
    )
    .await?;
    let mut page = state.registry.list(status, size, token);
    if summary {
        // Not serialised only to be dropped: the count moves into `executed_actions_dropped`,
        // which `summarize` adds to the (now empty) list's length, as for a stored record.
        for r in &mut page.items {
            r.executed_actions_dropped = r.executed_count();
            r.executed_actions.clear();
        }
    }
    let mut memory = history::as_json(&page.items, |r| r.sequence)?;
    memory
        .iter_mut()
        .for_each(|(_, json)| forward::tag(&state, json));
    let filter = status.map(Status::as_str);
    let stored = history::read(&state.storage, move |s| {
        s.activeflows(filter, token, size.saturating_add(1))
    })
    .await?
    .unwrap_or_default();
    let (mut items, next) = history::merge(memory, page.next_page_token.is_some(), stored, size);
    if summary {
        items.iter_mut().for_each(summarize);
    }
    Ok(page_response(&items, next))
}

/// `?fields=` of the activeflows list: absent (whole records) or `summary`.
#[derive(Deserialize)]
pub(super) struct FieldsQuery {
    fields: Option<String>,
}

impl FieldsQuery {
    /// Whether the list is asked for summaries; anything but `summary` (or nothing) is a 400.
    fn summary(&self) -> Result<bool, ApiError> {
        match self.fields.as_deref().map(str::trim) {
            None | Some("") => Ok(false),
            Some("summary") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!(
                "fields: {other:?} is not summary (the only lighter form: records without \
                 executed_actions, with execute_count)"
            ))),
        }
    }
}

/// A listed record as a summary: `executed_actions` (and `executed_actions_dropped`) replaced
/// by `execute_count`, how many actions it has executed; the rest (`current_action` included)
/// as is. A live view's list needs no history: that is the detail's (`GET .../{id}`).
fn summarize(record: &mut serde_json::Value) {
    let Some(map) = record.as_object_mut() else {
        return;
    };
    let listed = map
        .remove("executed_actions")
        .and_then(|a| a.as_array().map(Vec::len))
        .unwrap_or(0) as u64;
    let dropped = map
        .remove("executed_actions_dropped")
        .and_then(|d| d.as_u64())
        .unwrap_or(0);
    map.insert("execute_count".into(), (listed + dropped).into());
}

/// `POST /v1/activeflows` as VoIPBIN's `PostActiveflowsJSONBody` (bin-api-manager
/// `gens/openapi_server/gen.go`): unknown fields are ignored as VoIPBIN ignores them; a known
/// field of the wrong type is a 400 naming it.
#[derive(Deserialize)]
pub(super) struct CreateBody {
    /// A client-chosen activeflow id (a UUID; 409 when taken).
    id: Option<String>,
    flow_id: Option<String>,
    actions: Option<Vec<Action>>,
    #[serde(default)]
    variables: Option<CallerVariables>,
    webhook_uri: Option<String>,
    webhook_method: Option<String>,
}

#[utoipa::path(operation_id = "activeflows_create", post, path = "/v1/activeflows", tag = "activeflows",
    request_body(content = serde_json::Value, description = "{id?, flow_id | actions (flow_id wins when both), variables?, webhook_uri?, webhook_method?}"),
    responses((status = 200, description = "the started activeflow (200 as VoIPBIN)", body = serde_json::Value),
              (status = 400, description = "invalid id, actions, variables (a reserved key: voipbin.*, activeflow.*, call.id, call.direction, call.status, call.source.*, call.destination.*), webhook_uri or webhook_method", body = serde_json::Value),
              (status = 404, description = "unknown flow_id", body = serde_json::Value),
              (status = 409, description = "an activeflow with this id exists", body = serde_json::Value),
              (status = 503, description = "at capacity or shutting down", body = serde_json::Value)))]
pub(super) async fn create(
    state: web::Data<ApiState>,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let variables = body.variables.unwrap_or_default().checked()?;
    let id = chosen_id(&state, body.id.as_deref()).await?;
    let flow_id = body.flow_id.filter(|f| !f.is_empty());
    let mut flow = match (flow_id, body.actions) {
        // VoIPBIN: a flow_id, when given, wins over actions.
        (Some(id), _) => state
            .flows
            .get_by_name_or_id(&id)
            .ok_or_else(|| ApiError::NotFound(format!("flow {id:?} not found")))?,
        (None, Some(actions)) => {
            flow::validate_actions(&actions).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            if actions.is_empty() {
                return Err(ApiError::BadRequest("actions: at least one action".into()));
            }
            let mut inline = Flow::new("", actions);
            inline.id = FlowId::nil();
            std::sync::Arc::new(inline)
        }
        (None, None) => return Err(ApiError::BadRequest("give flow_id or actions".into())),
    };
    if let Some(webhook) = webhook(body.webhook_uri, body.webhook_method.as_deref())? {
        flow = std::sync::Arc::new(webhook.apply(&flow)?);
    }
    let supervisor = state
        .supervisors
        .next()
        .ok_or_else(|| ApiError::Unavailable("no supervisor".into()))?;
    let start = StartActiveflow {
        flow,
        variables,
        parent: None,
    };
    let started = match id {
        Some(id) => supervisor.send(StartActiveflowAs { id, start }).await,
        None => supervisor.send(start).await,
    }
    .map_err(|e| ApiError::Unavailable(format!("engine unavailable: {e}")))?;
    let id = started.map_err(|e| match e {
        StartError::AtCapacity(_) | StartError::Draining => ApiError::Unavailable(e.to_string()),
        StartError::Variables(_) => ApiError::BadRequest(e.to_string()),
        StartError::IdTaken(_) => ApiError::Conflict(e.to_string()),
    })?;
    // One that ended at once may have left memory already (`engine.ended_retained`): storage
    // has it then, as for GET.
    Ok(match find(&state, &id.to_string()).await? {
        Found::Live(entry) => HttpResponse::Ok().json(forward::tagged(&state, &entry.snapshot())?),
        Found::Stored(json) => HttpResponse::Ok().json(json),
    })
}

/// The client's `id`: `None` to have one made (absent, empty or the nil UUID, as VoIPBIN),
/// 400 when not a UUID, 409 when an activeflow (in memory or storage) has it.
async fn chosen_id(state: &ApiState, raw: Option<&str>) -> Result<Option<ActiveflowId>, ApiError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let id: ActiveflowId = raw
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("id: {raw:?} is not a UUID")))?;
    if id.0.is_nil() {
        return Ok(None);
    }
    // Only "not found" means free: a storage that cannot answer is an error, not a yes.
    match find(state, &id.to_string()).await {
        Ok(_) => Err(ApiError::Conflict(format!(
            "activeflow {id} already exists"
        ))),
        Err(ApiError::NotFound(_)) => Ok(Some(id)),
        Err(e) => Err(e),
    }
}

/// The per-activeflow webhook (`webhook_uri` + `webhook_method`), when either is given.
struct Webhook {
    uri: Option<String>,
    method: Option<WebhookMethod>,
}

fn webhook(uri: Option<String>, method: Option<&str>) -> Result<Option<Webhook>, ApiError> {
    let uri = uri.filter(|u| !u.is_empty());
    let method = match method.filter(|m| !m.is_empty()) {
        None => None,
        Some(m) => Some(WebhookMethod::parse(m).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "webhook_method: {m:?} is not one of POST, GET, PUT or DELETE"
            ))
        })?),
    };
    Ok((uri.is_some() || method.is_some()).then_some(Webhook { uri, method }))
}

impl Webhook {
    /// A copy of `flow` whose webhook is this one, the URI checked as `Flow::validate` checks
    /// a flow's.
    fn apply(self, flow: &Flow) -> Result<Flow, ApiError> {
        let mut copy = flow.clone();
        if self.uri.is_some() {
            copy.webhook_uri = self.uri;
        }
        if self.method.is_some() {
            copy.webhook_method = self.method;
        }
        copy.validate()
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(copy)
    }
}

fn parse_id(raw: &str) -> Result<ActiveflowId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("activeflow {raw:?} not found")))
}

fn entry(
    state: &ApiState,
    raw: &str,
) -> Result<std::sync::Arc<crate::engine::registry::ActiveflowEntry>, ApiError> {
    let id = parse_id(raw)?;
    state
        .registry
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("activeflow {id} not found")))
}

/// An activeflow in memory, or else one only storage still has (ended).
enum Found {
    Live(std::sync::Arc<crate::engine::registry::ActiveflowEntry>),
    Stored(serde_json::Value),
}

async fn find(state: &ApiState, raw: &str) -> Result<Found, ApiError> {
    let id = parse_id(raw)?;
    if let Some(entry) = state.registry.get(&id) {
        return Ok(Found::Live(entry));
    }
    let key = id.to_string();
    history::read(&state.storage, move |s| s.activeflow(&key))
        .await?
        .flatten()
        .map(|stored| Found::Stored(stored.json))
        .ok_or_else(|| ApiError::NotFound(format!("activeflow {id} not found")))
}

#[utoipa::path(operation_id = "activeflows_get", get, path = "/v1/activeflows/{id}", tag = "activeflows",
    params(("id" = String, Path, description = "activeflow id")),
    responses((status = 200, description = "the activeflow with executed_actions", body = serde_json::Value),
              (status = 404, description = "unknown id", body = serde_json::Value)))]
pub(super) async fn get(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(match find(&state, &id).await? {
        Found::Live(entry) => HttpResponse::Ok().json(forward::tagged(&state, &entry.snapshot())?),
        Found::Stored(json) => HttpResponse::Ok().json(json),
    })
}

/// Ends a running activeflow with `reason`; an ended one is left as it is.
async fn end(entry: &crate::engine::registry::ActiveflowEntry, reason: EndReason) {
    if entry.record().status == Status::Running {
        // Err means the actor is already gone: its record says how it ended.
        let _ = entry.addr.send(Stop { reason }).await;
    }
}

#[utoipa::path(operation_id = "activeflows_stop", post, path = "/v1/activeflows/{id}/stop", tag = "activeflows",
    params(("id" = String, Path, description = "activeflow id")),
    responses((status = 200, description = "the ended activeflow (idempotent)", body = serde_json::Value),
              (status = 404, description = "unknown id", body = serde_json::Value)))]
pub(super) async fn stop(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    forward::forward_or_local(&state, ForwardOp::Stop, &id, None).await
}

/// `stop` on the node holding the activeflow (or answered from storage).
pub(super) async fn stop_local(state: &ApiState, id: &str) -> Result<HttpResponse, ApiError> {
    Ok(match find(state, id).await? {
        Found::Live(entry) => {
            end(&entry, EndReason::OperatorStop).await;
            HttpResponse::Ok().json(forward::tagged(state, &entry.snapshot())?)
        }
        Found::Stored(json) => HttpResponse::Ok().json(json),
    })
}

#[utoipa::path(operation_id = "activeflows_delete", delete, path = "/v1/activeflows/{id}", tag = "activeflows",
    params(("id" = String, Path, description = "activeflow id")),
    responses((status = 200, description = "the soft-deleted activeflow (stopped first if running), tm_delete set; still readable by GET, left out of listings", body = serde_json::Value),
              (status = 404, description = "unknown id", body = serde_json::Value)))]
pub(super) async fn delete(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    forward::forward_or_local(&state, ForwardOp::Delete, &id, None).await
}

/// `delete` on the node holding the activeflow (or on its stored row).
pub(super) async fn delete_local(state: &ApiState, id: &str) -> Result<HttpResponse, ApiError> {
    // bin-api-manager `server/activeflows.go` DeleteActiveflowsId answers 200 with the record
    // (its tutorial's 204 is not what the handler does).
    let mut announce = true;
    let (key, mut body) = match find(state, id).await? {
        Found::Live(entry) => {
            end(&entry, EndReason::OperatorStop).await;
            let record = entry.snapshot();
            // Of concurrent DELETEs only the one that removed it announces the deletion.
            announce = state.registry.remove(&record.id);
            let json = forward::tagged(state, &record)?;
            (record.id.to_string(), json)
        }
        // Deleted already: the same answer again, nothing written or published twice.
        Found::Stored(json) if !json["tm_delete"].is_null() => {
            return Ok(HttpResponse::Ok().json(json))
        }
        Found::Stored(json) => (json["id"].as_str().unwrap_or_default().to_string(), json),
    };
    history::write(&state.storage, Write::DeleteActiveflow(key.clone())).await?;
    // The stored row is the record now (with the tm_delete storage set); without storage,
    // the record as it was, marked.
    match history::read(&state.storage, move |s| s.activeflow(&key)).await? {
        Some(Some(stored)) => body = stored.json,
        _ => body["tm_delete"] = crate::clock::timestamp().into(),
    }
    if announce {
        state.events.publish_deleted(&body, &state.flows);
    }
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(operation_id = "activeflows_resume", post, path = "/v1/activeflows/{id}/continue", tag = "activeflows",
    params(("id" = String, Path, description = "activeflow id")),
    responses((status = 200, description = "the activeflow, resumed after its block action", body = serde_json::Value),
              (status = 409, description = "the activeflow is not waiting in a block action, or ended", body = serde_json::Value),
              (status = 404, description = "unknown id", body = serde_json::Value)))]
pub(super) async fn resume(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    forward::forward_or_local(&state, ForwardOp::Continue, &id, None).await
}

/// `continue` on the node holding the activeflow.
pub(super) async fn resume_local(state: &ApiState, id: &str) -> Result<HttpResponse, ApiError> {
    let entry = entry(state, id)?;
    let id = entry.record().id;
    // A send error means the actor is gone: it ended.
    let resumed = entry
        .addr
        .send(Continue)
        .await
        .unwrap_or(Err(ContinueError::Ended));
    match resumed {
        Ok(()) => Ok(HttpResponse::Ok().json(forward::tagged(state, &entry.snapshot())?)),
        Err(e) => Err(ApiError::Conflict(format!("activeflow {id} is {e}"))),
    }
}

#[utoipa::path(operation_id = "activeflows_get_variables", get, path = "/v1/activeflows/{id}/variables", tag = "activeflows",
    params(("id" = String, Path, description = "activeflow id")),
    responses((status = 200, description = "{variables: {...}}", body = serde_json::Value),
              (status = 404, description = "unknown id", body = serde_json::Value)))]
pub(super) async fn get_variables(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let entry = match find(&state, &id).await? {
        Found::Live(entry) => entry,
        Found::Stored(json) => {
            let key = json["id"].as_str().unwrap_or_default().to_string();
            let variables = history::read(&state.storage, move |s| s.activeflow_variables(&key))
                .await?
                .flatten()
                .unwrap_or_else(|| json!({}));
            return Ok(HttpResponse::Ok().json(json!({ "variables": variables })));
        }
    };
    // Running: the actor has them. Ended (or the actor just went): the record has the final set.
    // Read the status into a local first: the record's lock must not be held across the await.
    let status = entry.record().status;
    let live = match status {
        Status::Running => entry.addr.send(GetVariables).await.ok().flatten(),
        Status::Ended => None,
    };
    let variables = live.unwrap_or_else(|| entry.record().variables.clone());
    Ok(HttpResponse::Ok().json(json!({ "variables": variables })))
}

#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VariablesBody {
    variables: CallerVariables,
}

#[utoipa::path(operation_id = "activeflows_put_variables", put, path = "/v1/activeflows/{id}/variables", tag = "activeflows",
    params(("id" = String, Path, description = "activeflow id")),
    request_body(content = serde_json::Value, description = "{variables: {name: value}} merged into the activeflow's"),
    responses((status = 200, description = "{variables: {...}} after the merge", body = serde_json::Value),
              (status = 400, description = "a reserved key (as on create), or the merge would break engine.max_variable_bytes or engine.max_variables_bytes", body = serde_json::Value),
              (status = 404, description = "unknown id", body = serde_json::Value),
              (status = 409, description = "the activeflow has ended", body = serde_json::Value)))]
pub(super) async fn put_variables(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<VariablesBody>,
) -> Result<HttpResponse, ApiError> {
    let body =
        serde_json::to_value(body.into_inner()).map_err(|e| ApiError::Internal(e.to_string()))?;
    forward::forward_or_local(&state, ForwardOp::Variables, &id, Some(body)).await
}

/// `PUT variables` on the node holding the activeflow.
pub(super) async fn put_variables_local(
    state: &ApiState,
    id: &str,
    body: VariablesBody,
) -> Result<HttpResponse, ApiError> {
    let variables = body.variables.checked()?;
    let entry = entry(state, id)?;
    let ended = || ApiError::Conflict("the activeflow has ended".into());
    let merged = entry
        .addr
        .send(MergeVariables(variables))
        .await
        .map_err(|_| ended())?
        .map_err(|e| match e {
            MergeError::Ended => ended(),
            MergeError::TooLarge(e) => ApiError::BadRequest(e.to_string()),
        })?;
    Ok(HttpResponse::Ok().json(json!({ "variables": merged })))
}
