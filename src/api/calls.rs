//! `/v1/calls`: live and recently ended calls (older ones from storage), and hanging one up.

use actix_web::{web, HttpResponse};

use super::cdr::{self, ExportQuery};
use super::forward;
use super::history;
use super::page::{page_response, PageQuery};
use super::{ApiError, ApiState};
use crate::call::{CallCommand, CallId, CallStatus, HangupCause};
use crate::cluster::forward::ForwardOp;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/calls", web::get().to(list))
        .route("/calls", web::post().to(super::outbound_calls::create))
        .route("/calls/{id}", web::get().to(get))
        .route("/calls/{id}/hangup", web::post().to(hangup));
}

#[utoipa::path(operation_id = "calls_list", get, path = "/v1/calls", tag = "calls",
    params(("status" = Option<String>, Query, description = "ringing | answered | ended"),
           ("page_size" = Option<i64>, Query, description = "default 100 (also for 0 or less), at most 1000 (larger is clamped)"),
           ("page_token" = Option<String>, Query, description = "next_page_token of the previous page, or a VoIPBIN timestamp (created before it)"),
           ("format" = Option<String>, Query, description = "json (default) | csv: the CDR export, streamed from storage: every ended call (no paging)"),
           ("from" = Option<String>, Query, description = "format=csv only: RFC 3339; calls that ended at or after it"),
           ("to" = Option<String>, Query, description = "format=csv only: RFC 3339, after from; calls that ended before it")),
    responses((status = 200, description = "newest first: {result, next_page_token}; with format=csv, text/csv: a header row, then one row per ended call by end time (see the README's CDR export)", body = serde_json::Value),
              (status = 400, description = "bad filter, page, format, from or to parameter (the message names it)", body = serde_json::Value),
              (status = 503, description = "format=csv: storage is off or unavailable", body = serde_json::Value)))]
pub(super) async fn list(
    state: web::Data<ApiState>,
    query: web::Query<PageQuery>,
    export: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    if export.wants_csv()? {
        query.reject_for_export()?;
        return cdr::export(&state.storage, export.range()?).await;
    }
    let status = query.status(CallStatus::parse, "ringing, answered or ended")?;
    let size = query.size()?;
    let token = history::cursor_sequence(
        &state.storage,
        query.cursor()?,
        |at| state.calls.first_call_since(at),
        |s, at| s.first_call_since(at),
    )
    .await?;
    let (items, next) = state.calls.list_calls(status, size, token);
    let mut memory = history::as_json(&items, |c| c.sequence)?;
    memory
        .iter_mut()
        .for_each(|(_, json)| forward::tag(&state, json));
    let filter = status.map(CallStatus::as_str);
    let stored = history::read(&state.storage, move |s| {
        s.calls(filter, token, size.saturating_add(1))
    })
    .await?
    .unwrap_or_default();
    let (items, next) = history::merge(memory, next.is_some(), stored, size);
    Ok(page_response(&items, next))
}

/// A call only storage still has (ended), as JSON.
async fn stored(state: &ApiState, raw: &str) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::NotFound(format!("call {raw:?} not found"));
    let id = raw
        .parse::<uuid::Uuid>()
        .map_err(|_| not_found())?
        .to_string();
    let found = history::read(&state.storage, move |s| s.call(&id)).await?;
    let call = found.flatten().ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(call.json))
}

fn entry(
    state: &ApiState,
    raw: &str,
) -> Result<std::sync::Arc<crate::call::registry::CallEntry>, ApiError> {
    let not_found = || ApiError::NotFound(format!("call {raw:?} not found"));
    let id = raw.parse::<uuid::Uuid>().map_err(|_| not_found())?;
    state.calls.call(&CallId(id)).ok_or_else(not_found)
}

#[utoipa::path(operation_id = "calls_get", get, path = "/v1/calls/{id}", tag = "calls",
    params(("id" = String, Path, description = "call id")),
    responses((status = 200, description = "the call", body = serde_json::Value),
              (status = 404, description = "unknown id", body = serde_json::Value)))]
pub(super) async fn get(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    match entry(&state, &id) {
        Ok(entry) => Ok(HttpResponse::Ok().json(forward::tagged(&state, &entry.snapshot())?)),
        Err(ApiError::NotFound(_)) => stored(&state, &id).await,
        Err(e) => Err(e),
    }
}

#[utoipa::path(operation_id = "calls_hangup", post, path = "/v1/calls/{id}/hangup", tag = "calls",
    params(("id" = String, Path, description = "call id")),
    responses((status = 200, description = "the call after the hangup was sent (idempotent)", body = serde_json::Value),
              (status = 404, description = "unknown id", body = serde_json::Value)))]
pub(super) async fn hangup(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    forward::forward_or_local(&state, ForwardOp::Hangup, &id, None).await
}

/// `hangup` on the node holding the call (or answered from storage when it has ended).
pub(super) async fn hangup_local(state: &ApiState, id: &str) -> Result<HttpResponse, ApiError> {
    let entry = match entry(state, id) {
        Ok(entry) => entry,
        // Only storage has it: it has ended.
        Err(ApiError::NotFound(_)) => return stored(state, id).await,
        Err(e) => return Err(e),
    };
    if entry.info().status != CallStatus::Ended {
        // Err means the session is already gone: the record says how it ended.
        let _ = entry
            .commands
            .send(CallCommand::Hangup(HangupCause::Normal))
            .await;
    }
    Ok(HttpResponse::Ok().json(forward::tagged(state, &entry.snapshot())?))
}
