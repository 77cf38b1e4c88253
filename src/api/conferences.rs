//! `/v1/conferences`: conference rooms and their participants (create, list, read, delete;
//! kick, mute, unmute a participant). Reads and changes the conference registry only; the
//! rooms' mixing and the participants' flows are the engine's.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{ApiError, ApiState};
use crate::conference::ConferenceError;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/conferences", web::get().to(list))
        .route("/conferences", web::post().to(create))
        .route("/conferences/{id}", web::get().to(get))
        .route("/conferences/{id}", web::delete().to(delete))
        .route(
            "/conferences/{id}/participants/{call_id}/kick",
            web::post().to(kick),
        )
        .route(
            "/conferences/{id}/participants/{call_id}/mute",
            web::post().to(mute),
        )
        .route(
            "/conferences/{id}/participants/{call_id}/unmute",
            web::post().to(unmute),
        );
}

impl From<ConferenceError> for ApiError {
    fn from(e: ConferenceError) -> Self {
        match e {
            ConferenceError::NotFound(_) | ConferenceError::NoParticipant { .. } => {
                ApiError::NotFound(e.to_string())
            }
            ConferenceError::BadId(_) | ConferenceError::NameTooLong => {
                ApiError::BadRequest(e.to_string())
            }
            ConferenceError::Full(_) | ConferenceError::TooManyRooms => ApiError::Busy {
                message: e.to_string(),
                retry_after_seconds: 5,
            },
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    name: String,
}

#[utoipa::path(operation_id = "conferences_list", get, path = "/v1/conferences", tag = "conferences",
    responses((status = 200, description = "every room, oldest first: {result}", body = serde_json::Value)))]
pub(super) async fn list(state: web::Data<ApiState>) -> HttpResponse {
    let rooms: Vec<_> = state
        .conferences
        .list()
        .iter()
        .map(|r| r.to_json())
        .collect();
    HttpResponse::Ok().json(json!({ "result": rooms }))
}

#[utoipa::path(operation_id = "conferences_create", post, path = "/v1/conferences", tag = "conferences",
    request_body(content = serde_json::Value, description = "optional: {\"name\": \"...\"}"),
    responses((status = 201, description = "the new room (id generated; kept until deleted)", body = serde_json::Value),
              (status = 400, description = "bad body", body = serde_json::Value),
              (status = 503, description = "too many rooms", body = serde_json::Value)))]
pub(super) async fn create(
    state: web::Data<ApiState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: CreateBody = if body.iter().all(u8::is_ascii_whitespace) {
        CreateBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?
    };
    let room = state.conferences.create(body.name)?;
    Ok(HttpResponse::Created().json(room.to_json()))
}

#[utoipa::path(operation_id = "conferences_get", get, path = "/v1/conferences/{id}", tag = "conferences",
    params(("id" = String, Path, description = "conference id")),
    responses((status = 200, description = "the room with its participants (call_id, activeflow_id, joined_at, muted)", body = serde_json::Value),
              (status = 404, description = "unknown id", body = serde_json::Value)))]
pub(super) async fn get(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.conferences.get(&id)?.to_json()))
}

#[utoipa::path(operation_id = "conferences_delete", delete, path = "/v1/conferences/{id}", tag = "conferences",
    params(("id" = String, Path, description = "conference id")),
    responses((status = 204, description = "deleted; every participant left (their flows move on, ended_by \"deleted\")"),
              (status = 404, description = "unknown id", body = serde_json::Value)))]
pub(super) async fn delete(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.conferences.delete(&id)?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(operation_id = "conferences_kick", post, path = "/v1/conferences/{id}/participants/{call_id}/kick", tag = "conferences",
    params(("id" = String, Path, description = "conference id"), ("call_id" = String, Path, description = "the participant's call id")),
    responses((status = 200, description = "the participant as it left (its flow moves on, ended_by \"kicked\")", body = serde_json::Value),
              (status = 404, description = "unknown room or participant", body = serde_json::Value)))]
pub(super) async fn kick(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, call_id) = path.into_inner();
    Ok(HttpResponse::Ok().json(state.conferences.kick(&id, &call_id)?.to_json()))
}

#[utoipa::path(operation_id = "conferences_mute", post, path = "/v1/conferences/{id}/participants/{call_id}/mute", tag = "conferences",
    params(("id" = String, Path, description = "conference id"), ("call_id" = String, Path, description = "the participant's call id")),
    responses((status = 200, description = "the participant, muted: its audio is mixed for no one", body = serde_json::Value),
              (status = 404, description = "unknown room or participant", body = serde_json::Value)))]
pub(super) async fn mute(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, call_id) = path.into_inner();
    Ok(HttpResponse::Ok().json(state.conferences.set_muted(&id, &call_id, true)?.to_json()))
}

#[utoipa::path(operation_id = "conferences_unmute", post, path = "/v1/conferences/{id}/participants/{call_id}/unmute", tag = "conferences",
    params(("id" = String, Path, description = "conference id"), ("call_id" = String, Path, description = "the participant's call id")),
    responses((status = 200, description = "the participant, heard again", body = serde_json::Value),
              (status = 404, description = "unknown room or participant", body = serde_json::Value)))]
pub(super) async fn unmute(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, call_id) = path.into_inner();
    Ok(HttpResponse::Ok().json(state.conferences.set_muted(&id, &call_id, false)?.to_json()))
}
