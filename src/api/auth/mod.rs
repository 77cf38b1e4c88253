//! Who may call the API, as one guard in front of every route (so routes added later are
//! covered by default). With tokens configured, every request needs a bearer token holding the
//! scope the (method, decoded path) needs ([`scope::required_scope`]), except reads of
//! [`scope::OPEN_PATHS`] (`/healthz`, `/readyz` so orchestrators can probe, and the spec).
//! With none, the API is open only to local processes: every request must address a loopback
//! host ([`host`], the DNS-rebinding guard). The token may come as `Authorization: Bearer <t>`
//! or, as VoIPBIN's clients send it, as `?token=<t>` ([`query`]); the header wins when both are
//! given. The API keeps no access log, and nothing here logs a request's query string.

pub mod host;
pub mod query;
pub mod scope;
pub mod token;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

pub use scope::{Scope, Scopes};
pub use token::{ApiToken, TokenDigest, Tokens};

use super::{ApiError, ApiState};

/// The API's access rule, decided from the config.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    tokens: Tokens,
}

/// What the guard looks at in a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The `Host` header (or the authority of an absolute-form request target).
    pub host: Option<&'a str>,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The `token` query parameter, percent-decoded (VoIPBIN's `?token=`).
    pub query_token: Option<&'a str>,
}

impl AccessPolicy {
    pub fn new(tokens: Tokens) -> AccessPolicy {
        AccessPolicy { tokens }
    }

    /// No token configured: only requests addressed to a loopback host are served.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Admits or refuses one request.
    pub fn admit(&self, request: &RequestFacts<'_>) -> Result<(), ApiError> {
        if self.is_open() {
            let host = request.host.unwrap_or("");
            if !host::is_loopback_host(host) {
                return Err(ApiError::HostNotLoopback(host.to_owned()));
            }
            return Ok(());
        }
        let Some(needed) = scope::required_scope(request.method, request.path) else {
            return Ok(());
        };
        // RFC 7235 §2.1: the scheme is case-insensitive. A header, when sent, is the
        // credential (a bad one is not rescued by a query token); else `?token=`.
        let presented = match request.authorization {
            Some(header) => header
                .trim()
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim()),
            None => request.query_token,
        };
        let Some(token) = presented.and_then(|t| self.tokens.find(t)) else {
            return Err(ApiError::Unauthorized { scope: needed });
        };
        if !token.scopes.permits(needed) {
            return Err(ApiError::Forbidden {
                token: token.name.clone(),
                scope: needed,
            });
        }
        Ok(())
    }
}

/// The middleware: refuses what [`AccessPolicy::admit`] refuses, before any handler runs.
pub(super) async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<ApiState>>() else {
        // Fail closed: an app mounted without its state has no policy to apply.
        return Err(ApiError::Internal("API state not registered".into()).into());
    };
    let headers = req.headers();
    let host = headers
        .get(actix_web::http::header::HOST)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"))
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let query_token = query::token(req.query_string());
    let facts = RequestFacts {
        method: req.method().as_str(),
        // The path the router matches, percent-decoded (actix's `Url`), not the raw
        // `req.path()`: `/%761/flows` is routed to `/v1/flows` and must be classified as it.
        path: req.match_info().as_str(),
        host,
        authorization: headers
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
        query_token: query_token.as_deref(),
    };
    state.access.admit(&facts)?;
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(method: &'a str, path: &'a str, auth: Option<&'a str>) -> RequestFacts<'a> {
        RequestFacts {
            method,
            path,
            host: Some("api.example:8080"),
            authorization: auth,
            query_token: None,
        }
    }

    fn scoped() -> AccessPolicy {
        let token = |name: &str, secret: &str, scopes: &[Scope]| ApiToken {
            name: name.into(),
            digest: TokenDigest::of(secret),
            scopes: scopes.iter().copied().collect(),
        };
        AccessPolicy::new(Tokens::new(vec![
            token("api.token", "root", &[Scope::Admin]),
            token("dashboard", "look", &[Scope::Read]),
            token("ops", "act", &[Scope::Read, Scope::Control]),
        ]))
    }

    #[test]
    fn an_open_api_serves_loopback_hosts_only() {
        let open = AccessPolicy::default();
        assert!(open.is_open());
        let mut request = facts("POST", "/v1/flows", None);
        let refused = open.admit(&request).unwrap_err();
        assert!(matches!(refused, ApiError::HostNotLoopback(ref h) if h == "api.example:8080"));
        request.host = None;
        assert!(open.admit(&request).is_err());
        request.host = Some("127.0.0.1:8080");
        assert!(open.admit(&request).is_ok());
        request.host = Some("localhost");
        assert!(open.admit(&facts("GET", "/healthz", None)).is_err());
        assert!(open.admit(&request).is_ok());
    }

    #[test]
    fn tokens_are_checked_then_their_scope() {
        let p = scoped();
        let status = |r: Result<(), ApiError>| match r {
            Ok(()) => 200,
            Err(ApiError::Unauthorized { .. }) => 401,
            Err(ApiError::Forbidden { .. }) => 403,
            Err(e) => panic!("{e}"),
        };
        // Any Host: with tokens, the token is the guard.
        assert_eq!(status(p.admit(&facts("GET", "/readyz", None))), 200);
        assert_eq!(status(p.admit(&facts("GET", "/v1/calls", None))), 401);
        let wrong = facts("GET", "/v1/calls", Some("Bearer nope"));
        assert_eq!(status(p.admit(&wrong)), 401);
        let no_scheme = facts("GET", "/v1/calls", Some("look"));
        assert_eq!(status(p.admit(&no_scheme)), 401);
        let read = facts("GET", "/v1/calls", Some("Bearer look"));
        assert_eq!(status(p.admit(&read)), 200);
        let stop = "/v1/activeflows/x/stop";
        assert_eq!(
            status(p.admit(&facts("POST", stop, Some("Bearer look")))),
            403
        );
        assert_eq!(
            status(p.admit(&facts("POST", stop, Some("Bearer act")))),
            200
        );
        assert_eq!(
            status(p.admit(&facts("POST", "/v1/flows", Some("Bearer act")))),
            403
        );
        assert_eq!(
            status(p.admit(&facts("POST", "/v1/flows", Some("Bearer root")))),
            200
        );
        assert_eq!(
            status(p.admit(&facts("POST", "/v1/new", Some("Bearer act")))),
            403
        );
        match p.admit(&facts("POST", stop, Some("Bearer look"))) {
            Err(ApiError::Forbidden { token, scope }) => {
                assert_eq!((token.as_str(), scope), ("dashboard", Scope::Control));
            }
            other => panic!("{other:?}"),
        }
        // VoIPBIN's `?token=`: the same tokens, the same scopes; the header wins.
        let mut q = facts("POST", stop, None);
        q.query_token = Some("act");
        assert_eq!(status(p.admit(&q)), 200);
        q.query_token = Some("look");
        assert_eq!(status(p.admit(&q)), 403);
        q.query_token = Some("nope");
        assert_eq!(status(p.admit(&q)), 401);
        q.query_token = Some("act");
        q.authorization = Some("Bearer nope");
        assert_eq!(status(p.admit(&q)), 401);
        q.path = "/v1.0/activeflows/x/stop";
        q.authorization = None;
        assert_eq!(status(p.admit(&q)), 200);
        q.query_token = Some("look");
        assert_eq!(status(p.admit(&q)), 403);
        match p.admit(&facts("DELETE", "/v1/flows/x", None)) {
            Err(ApiError::Unauthorized { scope }) => assert_eq!(scope, Scope::Flows),
            other => panic!("{other:?}"),
        }
    }
}
