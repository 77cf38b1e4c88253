//! `/v1/activeflows`: list (newest first, `status` filter, pagination), read, and stop.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiState};
use crate::engine::{ActiveflowId, EndReason, Status, Stop};

/// Default and largest page sizes.
const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/activeflows", web::get().to(list))
        .route("/activeflows/{id}", web::get().to(get))
        .route("/activeflows/{id}/stop", web::post().to(stop));
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    page_size: Option<usize>,
    page_token: Option<String>,
}

async fn list(
    state: web::Data<ApiState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!("status: {s:?} is not running or ended"))
        })?),
    };
    let page_size = query.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if page_size == 0 || page_size > MAX_PAGE_SIZE {
        return Err(ApiError::BadRequest(format!(
            "page_size: must be 1..={MAX_PAGE_SIZE}"
        )));
    }
    let token = match query.page_token.as_deref() {
        None | Some("") => None,
        Some(t) => Some(
            t.parse::<u64>()
                .map_err(|_| ApiError::BadRequest("page_token: not a token we issued".into()))?,
        ),
    };
    let page = state.registry.list(status, page_size, token);
    Ok(HttpResponse::Ok().json(json!({
        "result": page.items,
        "next_page_token": page.next_page_token.unwrap_or_default(),
    })))
}

fn parse_id(raw: &str) -> Result<ActiveflowId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("activeflow {raw:?} not found")))
}

async fn get(state: web::Data<ApiState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let entry = state
        .registry
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("activeflow {id} not found")))?;
    Ok(HttpResponse::Ok().json(entry.snapshot()))
}

/// Ends the activeflow (`operator_stop`) and returns it; stopping an ended one changes nothing.
async fn stop(state: web::Data<ApiState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let entry = state
        .registry
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("activeflow {id} not found")))?;
    if entry.record().status == Status::Running {
        // Err means the actor is already gone: its record says how it ended.
        let _ = entry
            .addr
            .send(Stop {
                reason: EndReason::OperatorStop,
            })
            .await;
    }
    Ok(HttpResponse::Ok().json(entry.snapshot()))
}
