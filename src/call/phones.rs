//! The dispatcher's door for phones (`[[users]]`): requests that must authenticate (any from
//! outside every trunk's ACL, and every REGISTER) are checked against digest credentials
//! (RFC 3261 §22.1, §22.4); failures are counted per source and ban it (fail2ban-style),
//! except a source inside a trunk ACL (a carrier is never banned); authenticated REGISTERs go to the location service (RFC 3261 §10.3). Decides only: the
//! dispatcher sends what this says.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::sip::auth::server::{AuthBans, Authenticator, Failure, Verdict};
use crate::sip::registrar::{LocationService, RegisterReply};
use crate::sip::transport::log_limit::LogLimit;
use crate::sip::transport::{ConnectionHold, Peer, SipSender};

/// Failed authentications logged per second at most (a guesser must not flood the log).
static AUTH_LOG: LogLimit = LogLimit::new(10);

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

    /// Whether `user` has a live registration (a call to it is to an `extension`).
    pub fn is_registered(&self, user: &str, now: std::time::Instant) -> bool {
        !self.location.lookup(user, now).is_empty()
    }

    /// Whether `ip` is banned at `now` (its requests are dropped).
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.bans.is_banned(ip, now)
    }

    /// Checks `req`'s credentials from `ip` at `now`; `in_trunk_acl`: `ip` is inside a
    /// trunk's ACL, so its failures never count toward a ban.
    pub(crate) fn admit(
        &self,
        req: &rsip::Request,
        ip: IpAddr,
        in_trunk_acl: bool,
        now: Instant,
    ) -> Admission {
        match self.auth.check(req, now, ip) {
            Verdict::Authenticated(user) => Admission::User(user),
            Verdict::Challenge { stale } => {
                Admission::Challenge(self.auth.challenges(stale, now, ip))
            }
            Verdict::Failed(reason) => {
                crate::metrics::sip_auth_failure(reason.label());
                if let Some(suppressed) = AUTH_LOG.allow() {
                    tracing::info!(%ip, reason = reason.label(), method = %req.method, suppressed, "digest authentication failed");
                }
                let counts = reason.is_guess() && !in_trunk_acl;
                if counts && self.bans.failed(ip, now) == Failure::Banned {
                    crate::metrics::sip_auth_banned();
                    tracing::warn!(%ip, "source banned after repeated failed authentication");
                    return Admission::Drop;
                }
                Admission::Challenge(self.auth.challenges(false, now, ip))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::auth::server::{AuthSettings, BanSettings};
    use crate::sip::auth::{Algorithm, Challenge};
    use crate::sip::registrar::ExpiryLimits;
    use std::time::Duration;

    fn gate(now: Instant) -> PhoneGate {
        let auth = Authenticator::new(
            AuthSettings {
                realm: "activeflow".into(),
                algorithms: vec![Algorithm::Sha256],
                users: HashMap::from([("alice".to_string(), "secret".to_string())]),
            },
            now,
        )
        .unwrap();
        let bans = AuthBans::new(
            BanSettings {
                limit: 3,
                window: Duration::from_secs(60),
                ban: Duration::from_secs(300),
            },
            Vec::new(),
        );
        let location = Arc::new(LocationService::new(ExpiryLimits { min: 60, max: 3600 }));
        PhoneGate::new(auth, bans, location)
    }

    /// A REGISTER from `ip` answering a fresh challenge to `ip` with a wrong password.
    fn wrong_register(g: &PhoneGate, ip: IpAddr, now: Instant) -> rsip::Request {
        let Admission::Challenge(c) = g.admit(&register(None), ip, false, now) else {
            panic!("no challenge");
        };
        let creds = Challenge::parse(&c[0])
            .unwrap()
            .answer("alice", "guess", "REGISTER", "sip:127.0.0.1:5060", 1, "cn")
            .to_header_value();
        register(Some(creds))
    }

    fn register(authorization: Option<String>) -> rsip::Request {
        let mut text = String::from(
            "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             From: <sip:alice@127.0.0.1>;tag=a\r\nTo: <sip:alice@127.0.0.1>\r\n\
             Call-ID: c1\r\nCSeq: 2 REGISTER\r\nContent-Length: 0\r\n",
        );
        if let Some(a) = authorization {
            text.push_str(&format!("Authorization: {a}\r\n"));
        }
        text.push_str("\r\n");
        rsip::Request::try_from(text.as_bytes()).unwrap()
    }

    /// Wrong passwords from a source inside a trunk's ACL never ban it (a carrier's calls
    /// must not be cut by failures a forger provokes); outside every ACL the limit-th does.
    #[test]
    fn a_trunk_source_is_never_banned() {
        let now = Instant::now();
        let g = gate(now);
        let carrier: IpAddr = "192.0.2.10".parse().unwrap();
        for _ in 0..10 {
            let req = wrong_register(&g, carrier, now);
            assert!(matches!(
                g.admit(&req, carrier, true, now),
                Admission::Challenge(_)
            ));
        }
        assert!(!g.is_banned(carrier, now));
        let phone: IpAddr = "198.51.100.7".parse().unwrap();
        for _ in 0..2 {
            let req = wrong_register(&g, phone, now);
            assert!(matches!(
                g.admit(&req, phone, false, now),
                Admission::Challenge(_)
            ));
        }
        let req = wrong_register(&g, phone, now);
        assert_eq!(g.admit(&req, phone, false, now), Admission::Drop);
        assert!(g.is_banned(phone, now));
    }

    /// The spoofing attack: a nonce fetched from the forger's own address, then wrong answers
    /// with a victim's forged source address, never ban the victim (bad nonce, not a guess).
    #[test]
    fn forged_sources_cannot_get_a_victim_banned() {
        let now = Instant::now();
        let g = gate(now);
        let forger: IpAddr = "203.0.113.66".parse().unwrap();
        let victim: IpAddr = "198.51.100.7".parse().unwrap();
        for _ in 0..10 {
            let req = wrong_register(&g, forger, now);
            assert!(matches!(
                g.admit(&req, victim, false, now),
                Admission::Challenge(_)
            ));
        }
        assert!(!g.is_banned(victim, now));
    }
}
