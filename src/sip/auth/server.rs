//! The UAS side of digest authentication (RFC 3261 §22.1, §22.4; RFC 7616): which requests
//! carry valid credentials for a configured user, and the challenges (SHA-256 first, then MD5,
//! both `qop="auth"`) the others get in a 401. Nonces are stateless ([`NonceIssuer`]); the
//! only state is each nonce's highest nonce count, kept for the nonce's life so a replayed
//! request is refused (RFC 7616 §3.4.6, §5.4). Sans-IO: the caller passes the clock and sends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rsip::headers::UntypedHeader;

use super::nonce::{NoRandom, NonceIssuer, NonceState, NONCE_LIFE};
use super::{Algorithm, Challenge, Credentials};

pub use super::ban::{AuthBans, BanSettings, Failure};

/// Nonces whose counts are remembered at most (only nonces that authenticated someone enter).
const MAX_TRACKED_NONCES: usize = 65_536;

/// `[[users]]` and `sip.realm`, checked by the config.
#[derive(Clone)]
pub struct AuthSettings {
    pub realm: String,
    /// Challenged with, most preferred first (`sip.auth_algorithms`; never empty).
    pub algorithms: Vec<Algorithm>,
    /// User name → password.
    pub users: HashMap<String, String>,
}

impl std::fmt::Debug for AuthSettings {
    /// Passwords never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.users.keys().collect();
        names.sort();
        f.debug_struct("AuthSettings")
            .field("realm", &self.realm)
            .field("algorithms", &self.algorithms)
            .field("users", &names)
            .finish()
    }
}

/// Why presented credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No such user (counts toward a ban).
    UnknownUser,
    /// The response does not match the user's password (counts toward a ban).
    WrongPassword,
    /// Credentials that do not parse, or name another URI than the request's.
    Malformed,
    /// A nonce this process did not issue (an old process's, or forged).
    BadNonce,
    /// A nonce count already used: a replayed request.
    Replay,
}

impl AuthFailure {
    /// The `reason` label of `activeflow_sip_auth_failures_total`.
    pub fn label(self) -> &'static str {
        match self {
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::WrongPassword => "wrong_password",
            AuthFailure::Malformed => "malformed",
            AuthFailure::BadNonce => "bad_nonce",
            AuthFailure::Replay => "replay",
        }
    }

    /// Whether this failure is a guess at a password (what bans a source).
    pub fn is_guess(self) -> bool {
        matches!(self, AuthFailure::UnknownUser | AuthFailure::WrongPassword)
    }

    pub const ALL: [AuthFailure; 5] = [
        AuthFailure::UnknownUser,
        AuthFailure::WrongPassword,
        AuthFailure::Malformed,
        AuthFailure::BadNonce,
        AuthFailure::Replay,
    ];
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid credentials of this user.
    Authenticated(String),
    /// No credentials for our realm: challenge (401). `stale`: the password was right but the
    /// nonce expired, so the client retries without asking its user (RFC 7616 §3.3).
    Challenge { stale: bool },
    /// Refused credentials: challenge again, and count the failure.
    Failed(AuthFailure),
}

/// Checks credentials and makes challenges.
pub struct Authenticator {
    settings: AuthSettings,
    nonces: NonceIssuer,
    /// Nonce → (highest nonce count seen, when the nonce was issued).
    counts: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Authenticator {
    pub fn new(settings: AuthSettings, epoch: Instant) -> Result<Self, NoRandom> {
        Ok(Authenticator {
            settings,
            nonces: NonceIssuer::new(epoch, NONCE_LIFE)?,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// Whether any user is configured (without, nothing is challenged).
    pub fn is_enabled(&self) -> bool {
        !self.settings.users.is_empty()
    }

    /// `WWW-Authenticate` values for a 401, in the configured order of preference (RFC 7616
    /// §3.7, RFC 8760 §2.4: SHA-256 before MD5 by default), sharing one fresh nonce bound to
    /// `source`, the IP the 401 goes to.
    pub fn challenges(&self, stale: bool, now: Instant, source: IpAddr) -> Vec<String> {
        let nonce = self.nonces.issue(now, source);
        self.settings
            .algorithms
            .iter()
            .map(|&algorithm| {
                Challenge {
                    realm: self.settings.realm.clone(),
                    nonce: nonce.clone(),
                    opaque: None,
                    algorithm,
                    qop_auth: true,
                    stale,
                }
                .to_header_value()
            })
            .collect()
    }

    /// The verdict on `req`'s `Authorization` for our realm, received from `source` at `now`.
    pub fn check(&self, req: &rsip::Request, now: Instant, source: IpAddr) -> Verdict {
        let mut ours = None;
        for header in req.headers.iter() {
            let rsip::Header::Authorization(h) = header else {
                continue;
            };
            match Credentials::parse(h.value()) {
                Ok(c) if c.realm == self.settings.realm => {
                    ours = Some(c);
                    break;
                }
                Ok(_) => {}
                Err(_) => return Verdict::Failed(AuthFailure::Malformed),
            }
        }
        let Some(creds) = ours else {
            return Verdict::Challenge { stale: false };
        };
        let method = crate::sip::message::method_name(&req.method);
        self.verify(&creds, method, &req.uri.to_string(), now, source)
    }

    fn verify(
        &self,
        creds: &Credentials,
        method: &str,
        request_uri: &str,
        now: Instant,
        source: IpAddr,
    ) -> Verdict {
        // Only what we challenged with is accepted: an algorithm the operator removed from
        // `sip.auth_algorithms`, or the RFC 2069 form without `qop` (every challenge offers
        // `qop="auth"`, RFC 7616 §3.4: the client MUST then use it), is malformed.
        if !self.settings.algorithms.contains(&creds.algorithm) || creds.qop.is_none() {
            return Verdict::Failed(AuthFailure::Malformed);
        }
        // RFC 7616 §3.4.6: the credentials are for this request's URI.
        if !same_uri(&creds.uri, request_uri) {
            tracing::debug!(credentials_uri = %creds.uri, %request_uri, "digest uri is not the Request-URI");
            return Verdict::Failed(AuthFailure::Malformed);
        }
        let state = self.nonces.check(&creds.nonce, now, source);
        let password = self.settings.users.get(&creds.username);
        let right = password.is_some_and(|p| creds.verify(p, method));
        let issued = match state {
            NonceState::Fresh { issued } => issued,
            // RFC 7616 §3.3: the password was right but the nonce is not (expired, an earlier
            // process's, or sent to the phone's previous address): retry with a new one
            // without asking the user (`stale=true`).
            NonceState::Stale | NonceState::Invalid if right => {
                return Verdict::Challenge { stale: true }
            }
            // A nonce we did not send to this source proves nothing about who sent the
            // request (a forged source): a failure, never a guess that bans.
            NonceState::Invalid => return Verdict::Failed(AuthFailure::BadNonce),
            NonceState::Stale => now,
        };
        if password.is_none() {
            return Verdict::Failed(AuthFailure::UnknownUser);
        }
        if !right {
            return Verdict::Failed(AuthFailure::WrongPassword);
        }
        let nc = creds.qop.as_ref().map_or(0, |q| q.nc);
        if !self.count(&creds.nonce, nc, issued, now) {
            return Verdict::Failed(AuthFailure::Replay);
        }
        Verdict::Authenticated(creds.username.clone())
    }

    /// Records nonce count `nc` for `nonce`; false when it is not above the last one seen.
    fn count(&self, nonce: &str, nc: u32, issued: Instant, now: Instant) -> bool {
        let Ok(mut counts) = self.counts.lock() else {
            return false;
        };
        if let Some((last, _)) = counts.get_mut(nonce) {
            if nc <= *last {
                return false;
            }
            *last = nc;
            return true;
        }
        if counts.len() >= MAX_TRACKED_NONCES {
            let life = self.nonces.life();
            counts.retain(|_, (_, at)| now.saturating_duration_since(*at) <= life);
            if counts.len() >= MAX_TRACKED_NONCES {
                // Full of live nonces: the client is challenged again rather than untracked.
                return false;
            }
        }
        counts.insert(nonce.to_string(), (nc, issued));
        true
    }

    /// Forgets the counts of nonces past their life (they can no longer authenticate).
    pub fn purge(&self, now: Instant) {
        let life = self.nonces.life() + Duration::from_secs(1);
        if let Ok(mut counts) = self.counts.lock() {
            counts.retain(|_, (_, at)| now.saturating_duration_since(*at) <= life);
        }
    }
}

/// The credentials' `uri` against the Request-URI: equal text, or equal once parsed (a client
/// may quote it with other spacing or case of the scheme and host).
fn same_uri(credentials_uri: &str, request_uri: &str) -> bool {
    if credentials_uri == request_uri {
        return true;
    }
    match (
        rsip::Uri::try_from(credentials_uri),
        rsip::Uri::try_from(request_uri),
    ) {
        (Ok(a), Ok(b)) => {
            a.user() == b.user()
                && a.host_with_port
                    .to_string()
                    .eq_ignore_ascii_case(&b.host_with_port.to_string())
        }
        _ => false,
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
