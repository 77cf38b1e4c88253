//! The operator console: a build-free browser page (HTML, CSS, ES modules) embedded in the
//! binary and served by the API listener at `/console/`. The assets carry no data, so they are
//! served without a token (outside the API's access guard); every `/v1` call the page makes
//! goes through the guard like any other client's. Every response here carries a strict
//! Content-Security-Policy (no inline script or style, same-origin only). Knows no engine state.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{guard, web, HttpRequest, HttpResponse};

/// The console's Content-Security-Policy: only its own files, no inline code, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the console serves; `index.html` is also `/console/`.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("events.js", JS),
    asset!("dom.js", JS),
    asset!("model.js", JS),
    asset!("activeflows.js", JS),
    asset!("detail.js", JS),
    asset!("calls.js", JS),
    asset!("flows.js", JS),
];

/// Mounts `/console` (a redirect to `/console/`), `/console/` and `/console/<file>`, for GET
/// and HEAD; other methods get 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let read = || web::route().guard(guard::Any(guard::Get()).or(guard::Head()));
    cfg.service(
        web::scope("/console")
            .route("", read().to(redirect))
            .route("/", read().to(index))
            .route("/{file}", read().to(file))
            .default_service(web::to(not_found)),
    );
}

async fn redirect() -> HttpResponse {
    with_headers(HttpResponse::PermanentRedirect())
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, "index.html")
}

async fn file(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    serve(&req, &name)
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    if !read {
        return with_headers(HttpResponse::MethodNotAllowed())
            .insert_header((header::ALLOW, "GET, HEAD"))
            .content_type("text/plain; charset=utf-8")
            .body("the console's files are read-only");
    }
    with_headers(HttpResponse::NotFound())
        .content_type("text/plain; charset=utf-8")
        .body("no such console file")
}

/// The asset `name` (200, or 304 when the client's `If-None-Match` is its ETag), else 404.
fn serve(req: &HttpRequest, name: &str) -> HttpResponse {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return with_headers(HttpResponse::NotFound())
            .content_type("text/plain; charset=utf-8")
            .body("no such console file");
    };
    let etag = etag(asset.body);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        with_headers(HttpResponse::NotModified())
    } else {
        with_headers(HttpResponse::Ok())
    };
    response
        .insert_header((header::ETAG, etag.clone()))
        // Revalidated on every load (a 304 costs a few bytes): a new binary's files are seen
        // at once, without file names carrying versions.
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if fresh {
        return response.finish();
    }
    response.content_type(asset.content_type).body(asset.body)
}

/// The headers every console response carries.
fn with_headers(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    builder
}

/// A strong ETag from the content (64-bit FNV-1a: change detection, not security).
fn etag(body: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{hash:016x}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_its_own_etag() {
        let mut tags: Vec<String> = ASSETS.iter().map(|a| etag(a.body)).collect();
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len());
        assert_eq!(etag(b"a"), etag(b"a"));
        assert_ne!(etag(b"a"), etag(b"b"));
    }
}
