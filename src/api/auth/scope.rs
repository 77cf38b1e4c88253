//! What a request may do: the four token scopes and the classification of every (method, path)
//! of the API into the one scope it needs. Classifying by shape, not by route registration, so
//! a route someone adds later is covered at once: reads need `read`, the known writes their own
//! scope, and any other write `admin`, inside `/v1` or not. Sans-IO: plain strings in, a scope
//! out; the caller passes the path as the router decodes it.

use std::fmt;

/// One permission a token can hold (`[[api.tokens]] scopes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every `GET` (lists, records, the event stream, recordings).
    Read,
    /// Acting on what runs: stop, continue and delete activeflows, set their variables, hang up
    /// calls, delete recordings.
    Control,
    /// Creating, changing and deleting flows, and starting activeflows over the API (which runs
    /// flow code of the caller's choosing).
    Flows,
    /// Everything, including routes no other scope names.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Control, Scope::Flows, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Control => "control",
            Scope::Flows => "flows",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Read => 1,
            Scope::Control => 2,
            Scope::Flows => 4,
            // Admin holds every bit: it implies the others.
            Scope::Admin => 0xf,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not one of `read`, `control`, `flows`, `admin`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?} (expected read, control, flows or admin)")]
pub struct UnknownScope(pub String);

impl std::str::FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

/// The scopes one token holds.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// Every scope (`api.token`, or a token with `admin`).
    pub const ALL: Scopes = Scopes(0xf);

    pub fn with(self, scope: Scope) -> Scopes {
        Scopes(self.0 | scope.bit())
    }

    /// Whether a request needing `scope` is allowed.
    pub fn permits(self, scope: Scope) -> bool {
        self.0 & scope.bit() == scope.bit()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        iter.into_iter().fold(Scopes::default(), Scopes::with)
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let held = [Scope::Read, Scope::Control, Scope::Flows]
            .into_iter()
            .filter(|s| self.permits(*s));
        f.debug_list().entries(held.map(Scope::as_str)).finish()
    }
}

/// The paths served without a token (`GET`/`HEAD` only): the orchestrators' probes and the spec.
/// Exact: `/healthz/` or `/v1/openapi.json/` are other paths and need `read`.
pub const OPEN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/v1/openapi.json"];

/// The scope a request needs, or `None` for a read of one of the [`OPEN_PATHS`].
///
/// `path` must be the path the router matches: percent-decoded as actix decodes it (the guard
/// passes `match_info().as_str()`), or `/%761/flows` would not be seen as `/v1/flows`. Fails
/// closed: every other read needs `read`, and any write not spelled exactly as a known route
/// (`//v1/flows`, `/v1/flows/`, outside `/v1`) needs `admin`.
pub fn required_scope(method: &str, path: &str) -> Option<Scope> {
    let path = canonical(path);
    let path = path.as_ref();
    let read = matches!(method, "GET" | "HEAD");
    if read && OPEN_PATHS.contains(&path) {
        return None;
    }
    if read {
        return Some(Scope::Read);
    }
    let Some(rest) = path.strip_prefix("/v1/") else {
        return Some(Scope::Admin);
    };
    // No trimming: an empty segment is no route's, so it gets no discount.
    let segments: Vec<&str> = rest.split('/').collect();
    let scope = match (method, segments.as_slice()) {
        (_, ["flows", ..]) => Scope::Flows,
        ("POST", ["activeflows"]) => Scope::Flows,
        // Places calls that run flow code of the caller's choosing, as a started activeflow's
        // `call` action can.
        ("POST", ["calls"]) => Scope::Flows,
        ("DELETE", ["activeflows", _]) => Scope::Control,
        ("POST", ["activeflows", _, "stop" | "continue"]) => Scope::Control,
        ("PUT", ["activeflows", _, "variables"]) => Scope::Control,
        ("POST", ["calls", _, "hangup"]) => Scope::Control,
        ("DELETE", ["recordings", _]) => Scope::Control,
        ("POST", ["conferences"]) | ("DELETE", ["conferences", _]) => Scope::Control,
        ("POST", ["conferences", _, "participants", _, "kick" | "mute" | "unmute"]) => {
            Scope::Control
        }
        _ => Scope::Admin,
    };
    if scope != Scope::Admin && segments.iter().any(|s| s.is_empty()) {
        return Some(Scope::Admin);
    }
    Some(scope)
}

/// `/v1.0/...` (VoIPBIN's version prefix, an alias of every `/v1` route) as `/v1/...`; any
/// other path as it is. Only the exact segment `v1.0`: `/v1.0x` stays what it is.
pub fn canonical(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/v1.0") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("/v1{rest}").into(),
        _ => path.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_of_the_api_needs_its_scope() {
        let cases = [
            ("GET", "/healthz", None),
            ("GET", "/readyz", None),
            ("GET", "/v1/openapi.json", None),
            ("GET", "/v1/activeflows", Some(Scope::Read)),
            ("GET", "/v1/events", Some(Scope::Read)),
            ("GET", "/v1/recordings/abc/file", Some(Scope::Read)),
            ("HEAD", "/v1/calls", Some(Scope::Read)),
            ("GET", "/v1/trunks", Some(Scope::Read)),
            ("POST", "/v1/flows", Some(Scope::Flows)),
            ("PUT", "/v1/flows/abc", Some(Scope::Flows)),
            ("DELETE", "/v1/flows/abc", Some(Scope::Flows)),
            ("POST", "/v1/activeflows", Some(Scope::Flows)),
            ("POST", "/v1/calls", Some(Scope::Flows)),
            ("DELETE", "/v1/activeflows/abc", Some(Scope::Control)),
            ("POST", "/v1/activeflows/abc/stop", Some(Scope::Control)),
            ("POST", "/v1/activeflows/abc/continue", Some(Scope::Control)),
            ("PUT", "/v1/activeflows/abc/variables", Some(Scope::Control)),
            ("POST", "/v1/calls/abc/hangup", Some(Scope::Control)),
            ("DELETE", "/v1/recordings/abc", Some(Scope::Control)),
            ("POST", "/v1/conferences", Some(Scope::Control)),
            ("DELETE", "/v1/conferences/abc", Some(Scope::Control)),
            (
                "POST",
                "/v1/conferences/abc/participants/c/kick",
                Some(Scope::Control),
            ),
            (
                "POST",
                "/v1/conferences/abc/participants/c/mute",
                Some(Scope::Control),
            ),
            (
                "POST",
                "/v1/conferences/abc/participants/c/unmute",
                Some(Scope::Control),
            ),
            (
                "POST",
                "/v1/conferences/abc/participants/c/other",
                Some(Scope::Admin),
            ),
        ];
        for (method, path, want) in cases {
            assert_eq!(required_scope(method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn unknown_writes_need_admin_and_lookalikes_get_no_discount() {
        for (method, path) in [
            ("POST", "/v1/activeflows/abc/explode"),
            ("PATCH", "/v1/activeflows/abc"),
            ("POST", "/v1/storage/vacuum"),
            ("DELETE", "/v1/activeflows"),
            ("POST", "/v1/calls/abc/hangup/now"),
            // Calls are hung up, not deleted: no such route, no discount.
            ("DELETE", "/v1/calls/abc"),
            ("OPTIONS", "/v1/calls"),
            ("POST", "/v1"),
            ("POST", "/v1/"),
            // What actix leaves encoded (`%2F`) is not the route it spells.
            ("POST", "/v1/activeflows/abc%2Fstop"),
            // Empty segments and other prefixes are no route's.
            ("POST", "/v1/flows/"),
            ("POST", "/v1//flows"),
            ("POST", "//v1/flows"),
            ("DELETE", "/v1/recordings/abc/"),
            ("POST", "/v1/activeflows//stop"),
            ("POST", "/v1foo"),
            ("POST", "/flows"),
            ("POST", "/healthz"),
            ("DELETE", "/v1/openapi.json"),
        ] {
            assert_eq!(
                required_scope(method, path),
                Some(Scope::Admin),
                "{method} {path}"
            );
        }
        assert_eq!(required_scope("GET", "/v1"), Some(Scope::Read));
        // Only the exact open paths are open.
        for path in [
            "/healthz/",
            "//healthz",
            "/v1/openapi.json/",
            "/v1foo",
            "/",
            "",
        ] {
            assert_eq!(required_scope("GET", path), Some(Scope::Read), "{path}");
        }
        assert_eq!(required_scope("HEAD", "/readyz"), None);
    }

    #[test]
    fn the_voipbin_prefix_needs_the_same_scopes_as_v1() {
        let cases = [
            ("GET", "/v1.0/openapi.json", None),
            ("GET", "/v1.0/activeflows", Some(Scope::Read)),
            ("POST", "/v1.0/activeflows", Some(Scope::Flows)),
            ("DELETE", "/v1.0/activeflows/abc", Some(Scope::Control)),
            ("POST", "/v1.0/activeflows/abc/stop", Some(Scope::Control)),
            (
                "PUT",
                "/v1.0/activeflows/abc/variables",
                Some(Scope::Control),
            ),
            ("PUT", "/v1.0/flows/abc", Some(Scope::Flows)),
            ("POST", "/v1.0x/flows", Some(Scope::Admin)),
            ("POST", "/v1.0//flows", Some(Scope::Admin)),
            ("POST", "/v1.0", Some(Scope::Admin)),
            ("DELETE", "/v1.0/openapi.json", Some(Scope::Admin)),
        ];
        for (method, path, want) in cases {
            assert_eq!(required_scope(method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn admin_implies_every_scope_and_others_only_themselves() {
        let admin: Scopes = [Scope::Admin].into_iter().collect();
        assert!(Scope::ALL.iter().all(|s| admin.permits(*s)));
        let reader: Scopes = [Scope::Read].into_iter().collect();
        assert!(reader.permits(Scope::Read));
        assert!(!reader.permits(Scope::Control) && !reader.permits(Scope::Admin));
        let both: Scopes = [Scope::Read, Scope::Control].into_iter().collect();
        assert!(both.permits(Scope::Control) && !both.permits(Scope::Flows));
        assert!(!both.permits(Scope::Admin));
        assert_eq!("flows".parse::<Scope>(), Ok(Scope::Flows));
        assert!("Read".parse::<Scope>().is_err());
    }
}
