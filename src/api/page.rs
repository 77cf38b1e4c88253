//! Pagination shared by list endpoints: `page_size` (default 100, max 1000) and an opaque
//! `page_token` the server issued.

use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};

use super::ApiError;

pub(super) const DEFAULT_PAGE_SIZE: usize = 100;
pub(super) const MAX_PAGE_SIZE: usize = 1000;

#[derive(Deserialize)]
pub(super) struct PageQuery {
    pub(super) status: Option<String>,
    pub(super) page_size: Option<usize>,
    pub(super) page_token: Option<String>,
}

impl PageQuery {
    pub(super) fn size(&self) -> Result<usize, ApiError> {
        let size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if size == 0 || size > MAX_PAGE_SIZE {
            return Err(ApiError::BadRequest(format!(
                "page_size: must be 1..={MAX_PAGE_SIZE}"
            )));
        }
        Ok(size)
    }

    pub(super) fn token(&self) -> Result<Option<u64>, ApiError> {
        match self.page_token.as_deref() {
            None | Some("") => Ok(None),
            Some(t) => t
                .parse()
                .map(Some)
                .map_err(|_| ApiError::BadRequest("page_token: not a token we issued".into())),
        }
    }

    /// The `status` filter parsed by `parse`; the error names the allowed values.
    pub(super) fn status<T>(
        &self,
        parse: impl Fn(&str) -> Option<T>,
        allowed: &str,
    ) -> Result<Option<T>, ApiError> {
        match self.status.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => parse(s)
                .map(Some)
                .ok_or_else(|| ApiError::BadRequest(format!("status: {s:?} is not {allowed}"))),
        }
    }
}

/// The list response shape: `{"result": [...], "next_page_token": "..."}` ("" on the last page).
pub(super) fn page_response<T: Serialize>(items: &[T], next: Option<String>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "result": items,
        "next_page_token": next.unwrap_or_default(),
    }))
}
