//! Security headers on every API response: the JSON and event-stream answers are never a
//! document to render, so `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`
//! and `X-Content-Type-Options: nosniff` keep a browser from running or framing anything they
//! hold. Handlers' answers get them here; errors (the access guard's refusals included, which
//! never reach a handler) get them from `ApiError::error_response`. The console's own files set
//! their own, stricter policy (`console`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::Next;

/// The policy of API responses.
pub(super) const API_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Adds the headers to `headers`, keeping a policy a handler set itself.
pub(super) fn insert(headers: &mut HeaderMap) {
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CONTENT_SECURITY_POLICY),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// The middleware (inside the access guard): adds the headers to every answer that got past it.
pub(super) async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(req).await?;
    insert(response.headers_mut());
    Ok(response)
}
