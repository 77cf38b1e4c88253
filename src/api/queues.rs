//! `/v1/queues`: create, list, read (waiting callers, agents with their state), replace and
//! delete queues. Validation errors are 400 naming the field; unknown ids 404. Asks the queue
//! manager actor; holds no queue state itself. Queues live in memory (not in storage).

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::{ApiError, ApiState};
use crate::queue::manager::{
    CreateQueue, DeleteQueue, GetQueue, ListQueues, QueueError, QueueManager, UpdateQueue,
};
use crate::queue::{QueueId, QueueSpec};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/queues", web::get().to(list))
        .route("/queues", web::post().to(create))
        .route("/queues/{id}", web::get().to(get))
        .route("/queues/{id}", web::put().to(replace))
        .route("/queues/{id}", web::delete().to(delete));
}

fn parse_id(raw: &str) -> Result<QueueId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("queue {raw:?} not found")))
}

fn parse_spec(body: &Value) -> Result<QueueSpec, ApiError> {
    QueueSpec::from_json(body).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn queue_error(e: QueueError) -> ApiError {
    match e {
        QueueError::NotFound(_) => ApiError::NotFound(e.to_string()),
        QueueError::TooMany(_) => ApiError::Conflict(e.to_string()),
    }
}

fn mailbox(e: actix::MailboxError) -> ApiError {
    ApiError::Unavailable(format!("queue manager: {e}"))
}

/// Asks the queue manager for one queue's view (create, read, replace, delete).
async fn ask<M>(state: &ApiState, message: M) -> Result<Value, ApiError>
where
    M: actix::Message<Result = Result<Value, QueueError>> + Send + 'static,
    QueueManager: actix::Handler<M>,
{
    state
        .queues
        .send(message)
        .await
        .map_err(mailbox)?
        .map_err(queue_error)
}

#[utoipa::path(operation_id = "queues_list", get, path = "/v1/queues", tag = "queues",
    responses((status = 200, description = "every queue, oldest first: {result}", body = serde_json::Value)))]
pub(super) async fn list(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let all = state.queues.send(ListQueues).await.map_err(mailbox)?;
    Ok(HttpResponse::Ok().json(json!({ "result": all, "next_page_token": null })))
}

#[utoipa::path(operation_id = "queues_create", post, path = "/v1/queues", tag = "queues",
    request_body(content = serde_json::Value, description = "{name, detail, agents, strategy, wait_timeout (ms), ring_timeout (ms), trunk, wait_actions}"),
    responses((status = 201, description = "the queue, id assigned", body = serde_json::Value),
              (status = 400, description = "invalid definition (names the field)", body = serde_json::Value),
              (status = 409, description = "the most queues exist already", body = serde_json::Value)))]
pub(super) async fn create(
    state: web::Data<ApiState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let spec = parse_spec(&body)?;
    let view = ask(&state, CreateQueue(spec)).await?;
    Ok(HttpResponse::Created().json(view))
}

#[utoipa::path(operation_id = "queues_get", get, path = "/v1/queues/{id}", tag = "queues",
    params(("id" = String, Path, description = "queue id")),
    responses((status = 200, description = "the queue with waiting_callers and agents' status", body = serde_json::Value),
              (status = 404, description = "unknown id", body = serde_json::Value)))]
pub(super) async fn get(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let view = ask(&state, GetQueue(id)).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(operation_id = "queues_replace", put, path = "/v1/queues/{id}", tag = "queues",
    params(("id" = String, Path, description = "queue id")),
    request_body(content = serde_json::Value, description = "the whole new definition"),
    responses((status = 200, description = "the queue (waiting callers keep their wait_actions and timeout)", body = serde_json::Value),
              (status = 400, description = "invalid definition", body = serde_json::Value),
              (status = 404, description = "unknown id", body = serde_json::Value)))]
pub(super) async fn replace(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let spec = parse_spec(&body)?;
    let view = ask(&state, UpdateQueue(id, spec)).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(operation_id = "queues_delete", delete, path = "/v1/queues/{id}", tag = "queues",
    params(("id" = String, Path, description = "queue id")),
    responses((status = 200, description = "the deleted queue; its waiting callers leave with queue.result closed", body = serde_json::Value),
              (status = 404, description = "unknown id", body = serde_json::Value)))]
pub(super) async fn delete(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let view = ask(&state, DeleteQueue(id)).await?;
    Ok(HttpResponse::Ok().json(view))
}
