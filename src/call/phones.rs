//! The dispatcher's door for phones (`[[users]]`): requests that must authenticate (any from
//! outside every trunk's ACL, and every REGISTER) are checked against digest credentials
//! (RFC 3261 §22.1, §22.4); failures are counted per source and ban it (fail2ban-style);
//! authenticated REGISTERs go to the location service (RFC 3261 §10.3). Decides only: the
//! dispatcher sends what this says.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::sip::auth::server::{AuthBans, Authenticator, Failure, Verdict};
use crate::sip::registrar::{LocationService, RegisterReply};
use crate::sip::transport::{ConnectionHold, Peer, SipSender};

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
    /// The TCP connections registered phones came over, kept open from idle close while a
    /// binding made over them lives: calls to the phone go back over it (a phone behind NAT
    /// cannot be connected to; RFC 5626-lite). By user and source.
    connections: Mutex<HashMap<(String, Peer), (ConnectionHold, Instant)>>,
}

impl PhoneGate {
    pub fn new(auth: Authenticator, bans: AuthBans, location: Arc<LocationService>) -> Self {
        PhoneGate {
            auth,
            bans,
            location,
            connections: Mutex::new(HashMap::new()),
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

    /// An authenticated REGISTER of `user` from `source`; over TCP, its connection is held
    /// (through `sender`) as long as a binding made over it lives.
    pub(crate) fn register(
        &self,
        req: &rsip::Request,
        user: &str,
        source: Peer,
        sender: &SipSender,
        now: Instant,
    ) -> RegisterReply {
        let reply = crate::sip::registrar::process(&self.location, req, user, source, now);
        if let Some(active) = reply.active {
            crate::metrics::registrations_active(active);
            if let Ok(mut held) = self.connections.lock() {
                let key = (user.to_string(), source);
                match (reply.source_until, sender.hold(&source)) {
                    (Some(until), Some(hold)) => {
                        held.insert(key, (hold, until));
                    }
                    _ => {
                        held.remove(&key);
                    }
                }
            }
        }
        reply
    }

    /// Expired bindings, nonce counts and bans are forgotten (called periodically).
    pub fn purge(&self, now: Instant) {
        crate::metrics::registrations_active(self.location.purge(now));
        if let Ok(mut held) = self.connections.lock() {
            held.retain(|_, (_, until)| *until > now);
        }
        self.auth.purge(now);
        self.bans.purge(now);
    }
}
