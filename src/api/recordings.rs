//! `/v1/recordings`: what `recording_start` recorded, the WAV files themselves, and deleting
//! them (file and record; one still being recorded is a 409: stop it first).

use actix_web::{web, HttpResponse};

use super::page::{first_of, page_response, Cursor, PageQuery};
use super::{ApiError, ApiState};
use crate::media::recording::DeleteError;
use crate::media::{RecordingId, RecordingInfo, RecordingStatus};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/recordings", web::get().to(list))
        .route("/recordings/{id}", web::get().to(get))
        .route("/recordings/{id}", web::delete().to(delete))
        .route("/recordings/{id}/file", web::get().to(file));
}

#[utoipa::path(operation_id = "recordings_list", get, path = "/v1/recordings", tag = "recordings",
    params(("page_size" = Option<i64>, Query, description = "default 100 (also for 0 or less), at most 1000 (larger is clamped)"),
           ("page_token" = Option<String>, Query, description = "next_page_token of the previous page, or a VoIPBIN timestamp (started before it)")),
    responses((status = 200, description = "newest first: {result, next_page_token}", body = serde_json::Value),
              (status = 400, description = "bad page parameters", body = serde_json::Value)))]
pub(super) async fn list(
    state: web::Data<ApiState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let token = match query.cursor()? {
        None => None,
        Some(Cursor::Sequence(s)) => Some(s),
        Some(Cursor::CreatedBefore(at)) => first_of(state.recordings.first_since(&at), None),
    };
    let (items, next) = state.recordings.list(query.size()?, token);
    Ok(page_response(&items, next))
}

fn info(state: &ApiState, raw: &str) -> Result<RecordingInfo, ApiError> {
    let not_found = || ApiError::NotFound(format!("recording {raw:?} not found"));
    let id = raw.parse::<RecordingId>().map_err(|_| not_found())?;
    state.recordings.get(id).ok_or_else(not_found)
}

#[utoipa::path(operation_id = "recordings_get", get, path = "/v1/recordings/{id}", tag = "recordings",
    params(("id" = String, Path, description = "recording id")),
    responses((status = 200, description = "the recording", body = serde_json::Value),
              (status = 404, description = "unknown id", body = serde_json::Value)))]
pub(super) async fn get(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(info(&state, &id)?))
}

#[utoipa::path(operation_id = "recordings_file", get, path = "/v1/recordings/{id}/file", tag = "recordings",
    params(("id" = String, Path, description = "recording id")),
    responses((status = 200, description = "the WAV file (8 kHz mono 16-bit PCM)", content_type = "audio/wav"),
              (status = 404, description = "unknown id, or the file is gone", body = serde_json::Value),
              (status = 409, description = "still recording, or the recording failed", body = serde_json::Value)))]
pub(super) async fn file(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let info = info(&state, &id)?;
    match info.status {
        RecordingStatus::Ended => {}
        RecordingStatus::Recording => {
            return Err(ApiError::Conflict(format!(
                "recording {} is still in progress",
                info.id
            )))
        }
        RecordingStatus::Failed => {
            return Err(ApiError::Conflict(format!(
                "recording {} failed: {}",
                info.id,
                info.error.unwrap_or_default()
            )))
        }
    }
    let path = state.recordings.file_path(info.id);
    let bytes = web::block(move || std::fs::read(path))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::NotFound(format!("recording {} file: {e}", info.id)))?;
    Ok(HttpResponse::Ok()
        .content_type("audio/wav")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{}.wav\"", info.id),
        ))
        .body(bytes))
}

#[utoipa::path(operation_id = "recordings_delete", delete, path = "/v1/recordings/{id}", tag = "recordings",
    params(("id" = String, Path, description = "recording id")),
    responses((status = 204, description = "the file and its record are gone"),
              (status = 404, description = "unknown id (no record, no file)", body = serde_json::Value),
              (status = 409, description = "still recording: stop it first", body = serde_json::Value)))]
pub(super) async fn delete(
    state: web::Data<ApiState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let raw = id.into_inner();
    let id = raw
        .parse::<RecordingId>()
        .map_err(|_| ApiError::NotFound(format!("recording {raw:?} not found")))?;
    let recordings = state.recordings.clone();
    web::block(move || recordings.delete(id))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| match e {
            DeleteError::NotFound(_) => ApiError::NotFound(e.to_string()),
            DeleteError::InProgress(_) => ApiError::Conflict(e.to_string()),
            DeleteError::Io { .. } => ApiError::Internal(e.to_string()),
        })?;
    Ok(HttpResponse::NoContent().finish())
}
