//! The location service of the registrar (RFC 3261 §10.3): each user's bindings of its
//! address-of-record to Contact URIs, in memory, with when they expire and where the REGISTER
//! came from (a phone behind NAT is reached at that source address and transport, not at the
//! private address its Contact names; RFC 5626-lite). `register` turns one authenticated
//! REGISTER into changes here and the response. Sans-IO: the caller passes the clock.

mod register;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use register::{process, RegisterReply};

use crate::sip::transport::Peer;

/// Contacts one user may have bound at once.
pub const MAX_CONTACTS_PER_USER: usize = 10;

/// `sip.register_min_expires` / `sip.register_max_expires`, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryLimits {
    pub min: u32,
    pub max: u32,
}

/// One binding of a user's AoR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI as registered (the Request-URI of requests to the phone).
    pub contact: String,
    /// Where the REGISTER came from: requests to the phone go there.
    pub source: Peer,
    pub expires_at: Instant,
    /// Call-ID and CSeq of the REGISTER that made or refreshed it (§10.3 step 7 ordering).
    pub call_id: String,
    pub cseq: u32,
}

impl Binding {
    /// Whole seconds left at `now` (0 once expired).
    pub fn remaining(&self, now: Instant) -> u64 {
        self.expires_at.saturating_duration_since(now).as_secs()
    }
}

/// Every user's bindings.
pub struct LocationService {
    limits: ExpiryLimits,
    bindings: Mutex<HashMap<String, Vec<Binding>>>,
}

impl LocationService {
    pub fn new(limits: ExpiryLimits) -> Self {
        LocationService {
            limits,
            bindings: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> ExpiryLimits {
        self.limits
    }

    /// `user`'s live bindings at `now`.
    pub fn lookup(&self, user: &str, now: Instant) -> Vec<Binding> {
        let Ok(map) = self.bindings.lock() else {
            return Vec::new();
        };
        map.get(user)
            .map(|list| {
                list.iter()
                    .filter(|b| b.expires_at > now)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every live binding at `now`, by user name then contact.
    pub fn all(&self, now: Instant) -> Vec<(String, Binding)> {
        let Ok(map) = self.bindings.lock() else {
            return Vec::new();
        };
        let mut out: Vec<(String, Binding)> = map
            .iter()
            .flat_map(|(user, list)| {
                list.iter()
                    .filter(|b| b.expires_at > now)
                    .map(|b| (user.clone(), b.clone()))
            })
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1.contact).cmp(&(&b.0, &b.1.contact)));
        out
    }

    /// Applies `f` to `user`'s bindings (expired ones removed first) under the lock; returns
    /// its result and the number of live bindings over all users afterwards.
    fn update<T>(
        &self,
        user: &str,
        now: Instant,
        f: impl FnOnce(&mut Vec<Binding>) -> T,
    ) -> Option<(T, usize)> {
        let mut map = self.bindings.lock().ok()?;
        let list = map.entry(user.to_string()).or_default();
        list.retain(|b| b.expires_at > now);
        let out = f(list);
        if list.is_empty() {
            map.remove(user);
        }
        let total = map.values().map(Vec::len).sum();
        Some((out, total))
    }

    /// Removes expired bindings; the number of live ones left (for the gauge).
    pub fn purge(&self, now: Instant) -> usize {
        let Ok(mut map) = self.bindings.lock() else {
            return 0;
        };
        map.retain(|_, list| {
            list.retain(|b| b.expires_at > now);
            !list.is_empty()
        });
        map.values().map(Vec::len).sum()
    }
}

/// Seconds as a `Duration`.
fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

#[cfg(test)]
mod tests;
