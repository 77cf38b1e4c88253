//! API errors and their HTTP mapping: `{"error": {"code", "message"}}` with the right status.
//! Unknown or malformed ids are 4xx, never 500.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use super::auth::Scope;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid bearer token (this route needs a token with scope \"{scope}\")")]
    Unauthorized { scope: Scope },
    #[error("token \"{token}\" lacks scope \"{scope}\", which this route needs")]
    Forbidden { token: String, scope: Scope },
    /// A token-less API answers only requests addressed to a loopback host.
    #[error(
        "Host {0:?} is not a loopback name or address: with no api.token the API serves only \
         requests addressed to localhost, 127.0.0.0/8 or [::1] (DNS-rebinding guard)"
    )]
    HostNotLoopback(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unavailable(String),
    /// Full for now: 503 with `Retry-After`.
    #[error("{message}")]
    Busy {
        message: String,
        retry_after_seconds: u32,
    },
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::HostNotLoopback(_) => "host_not_loopback",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::Unavailable(_) | ApiError::Busy { .. } => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// Maps actix-web's JSON extractor errors (size, syntax, content type).
    pub fn from_json(e: actix_web::error::JsonPayloadError) -> ApiError {
        use actix_web::error::JsonPayloadError as J;
        match e {
            J::Overflow { limit } | J::OverflowKnownLength { limit, .. } => {
                ApiError::PayloadTooLarge { limit }
            }
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } | ApiError::HostNotLoopback(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) | ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status_code());
        let mut error = json!({ "code": self.code(), "message": self.to_string() });
        match self {
            ApiError::Unauthorized { scope } => {
                r.insert_header(("WWW-Authenticate", "Bearer"));
                error["scope"] = scope.as_str().into();
            }
            ApiError::Forbidden { scope, .. } => {
                // RFC 6750 §3.1: the token is valid but too weak.
                r.insert_header((
                    "WWW-Authenticate",
                    format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\""),
                ));
                error["scope"] = scope.as_str().into();
            }
            ApiError::Busy {
                retry_after_seconds,
                ..
            } => {
                r.insert_header(("Retry-After", retry_after_seconds.to_string()));
            }
            _ => {}
        }
        let mut response = r.json(json!({ "error": error }));
        super::headers::insert(response.headers_mut());
        response
    }
}

impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _req: &actix_web::HttpRequest) -> HttpResponse {
        self.error_response()
    }
}
