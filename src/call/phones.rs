//! The dispatcher's door for phones (`[[users]]`): requests that must authenticate (any from
//! outside every trunk's ACL, and every REGISTER) are checked against digest credentials
//! (RFC 3261 §22.1, §22.4); failures are counted per source and ban it (fail2ban-style);
//! authenticated REGISTERs go to the location service (RFC 3261 §10.3). Decides only: the
//! dispatcher sends what this says.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::sip::auth::server::{AuthBans, Authenticator, Failure, Verdict};
use crate::sip::registrar::{LocationService, RegisterReply};
use crate::sip::transport::Peer;

/// What to do with a request that must authenticate.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Authenticated as this user: go on.
    User(String),
    /// Answer 401 with these `WWW-Authenticate` values.
    Challenge(Vec<String>),
    /// Banned by this very failure: drop it unanswered.
    Drop,
}

/// Authentication, the ban table and the location service.
pub struct PhoneGate {
    auth: Authenticator,
    bans: AuthBans,
    location: Arc<LocationService>,
}

impl PhoneGate {
    pub fn new(auth: Authenticator, bans: AuthBans, location: Arc<LocationService>) -> Self {
        PhoneGate {
            auth,
            bans,
            location,
        }
    }

    /// Whether users are configured (without, nothing authenticates: the trunk ACL's 403).
    pub fn is_enabled(&self) -> bool {
        self.auth.is_enabled()
    }

    /// Whether `ip` is banned at `now` (its requests are dropped).
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.bans.is_banned(ip, now)
    }

    /// Checks `req`'s credentials from `ip` at `now`.
    pub(crate) fn admit(&self, req: &rsip::Request, ip: IpAddr, now: Instant) -> Admission {
        match self.auth.check(req, now) {
            Verdict::Authenticated(user) => Admission::User(user),
            Verdict::Challenge { stale } => Admission::Challenge(self.auth.challenges(stale, now)),
            Verdict::Failed(reason) => {
                crate::metrics::sip_auth_failure(reason.label());
                tracing::info!(%ip, reason = reason.label(), method = %req.method, "digest authentication failed");
                if reason.is_guess() && self.bans.failed(ip, now) == Failure::Banned {
                    crate::metrics::sip_auth_banned();
                    tracing::warn!(%ip, "source banned after repeated failed authentication");
                    return Admission::Drop;
                }
                Admission::Challenge(self.auth.challenges(false, now))
            }
        }
    }

    /// An authenticated REGISTER of `user` from `source`.
    pub(crate) fn register(
        &self,
        req: &rsip::Request,
        user: &str,
        source: Peer,
        now: Instant,
    ) -> RegisterReply {
        let reply = crate::sip::registrar::process(&self.location, req, user, source, now);
        if let Some(active) = reply.active {
            crate::metrics::registrations_active(active);
        }
        reply
    }

    /// Expired bindings, nonce counts and bans are forgotten (called periodically).
    pub fn purge(&self, now: Instant) {
        crate::metrics::registrations_active(self.location.purge(now));
        self.auth.purge(now);
        self.bans.purge(now);
    }
}
