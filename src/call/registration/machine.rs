//! One trunk's registration as a UAC (RFC 3261 §10.2), sans-IO: REGISTER of the trunk's
//! `username` at its proxy with our Contact, 401/407 answered with the digest (§22), the
//! binding refreshed at half the interval the registrar granted (§10.2.4: the 2xx's Contact
//! `expires`, else its Expires), 423 retried once with `Min-Expires` (§10.2.8), failures
//! retried after an exponential, capped, jittered backoff, and the binding removed with
//! `Expires: 0` on shutdown (§10.2.2). One Call-ID for all, CSeq rising (§10.2.4).
//!
//! ```text
//!  Unregistered ──start──▶ Registering ──2xx──▶ Registered ──half the interval──▶ Registering
//!                              │ ▲                                                  │
//!                   failure ───┘ └── backoff ── Failed ◀──── failure ───────────────┘
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rsip::prelude::*;
use tokio::time::Instant;

use crate::call::auth::{is_challenge, new_cnonce, AuthHeader, DigestClient};
use crate::call::trunk::TrunkCredentials;
use crate::sip::message::{new_branch, RequestBuilder, TransactionKey};
use crate::sip::transaction::{ClientNonInviteTransaction, Timers, TransactionOutput};

/// The first retry after a failure; doubled for each further failure.
pub(crate) const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// The longest wait between attempts.
pub(crate) const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// No refresh comes sooner than this after a 2xx, whatever the registrar granted.
const MIN_REFRESH: Duration = Duration::from_secs(1);

/// Where a registration stands (the API's `registration.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationState {
    Unregistered,
    Registering,
    Registered,
    Failed,
}

/// What a registration is made of.
#[derive(Debug, Clone)]
pub(crate) struct RegistrationSpec {
    /// `sip:host:port` of the registrar (the trunk's proxy).
    pub(crate) registrar_uri: String,
    /// `sip:username@domain`: From and To.
    pub(crate) aor: String,
    /// Our Contact URI (`sip:username@our-address:port`).
    pub(crate) contact: String,
    /// Via sent-by (`our-address:port`) and transport token (`UDP`, `TCP`, `TLS`).
    pub(crate) sent_by: String,
    pub(crate) via: &'static str,
    /// TCP or TLS: no retransmissions (Timer E), §17.1.2.2.
    pub(crate) reliable: bool,
    /// The interval we ask for (`register_expires`).
    pub(crate) expires: u32,
    pub(crate) credentials: Arc<TrunkCredentials>,
}

/// What the shell must do or record after an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegistrationOutput {
    /// Send to the registrar.
    Send(Bytes),
    /// An attempt failed (counted in `activeflow_trunk_register_failures_total`).
    Failure,
}

pub(crate) struct Registration {
    spec: RegistrationSpec,
    timers: Timers,
    call_id: String,
    local_tag: String,
    cseq: u32,
    branch: String,
    tx: Option<ClientNonInviteTransaction>,
    /// The Expires of the request in flight (0: removing the binding).
    asking: u32,
    /// One 423 answered per attempt.
    brief_retried: bool,
    /// The registrar's `Min-Expires` (a 423's): every later REGISTER asks at least this.
    min_expires: u32,
    auth: DigestClient,
    auth_header: Option<AuthHeader>,
    state: RegistrationState,
    failures: u32,
    /// When the next REGISTER goes (a refresh or a retry).
    next_at: Option<Instant>,
    expires_at: Option<Instant>,
    last_code: Option<u16>,
    last_error: Option<String>,
    /// Shutdown: no more refreshes or retries.
    stopping: bool,
    /// xorshift state for the backoff's jitter.
    rng: u64,
    out: Vec<RegistrationOutput>,
}

impl Registration {
    pub(crate) fn new(
        spec: RegistrationSpec,
        timers: Timers,
        call_id: String,
        local_tag: String,
        seed: u64,
    ) -> Registration {
        let credentials = Some(spec.credentials.clone());
        Registration {
            asking: spec.expires,
            spec,
            timers,
            call_id,
            local_tag,
            cseq: 0,
            branch: new_branch(),
            tx: None,
            brief_retried: false,
            min_expires: 0,
            auth: DigestClient::new(credentials),
            auth_header: None,
            state: RegistrationState::Unregistered,
            failures: 0,
            next_at: None,
            expires_at: None,
            last_code: None,
            last_error: None,
            stopping: false,
            rng: seed | 1,
            out: Vec::new(),
        }
    }

    pub(crate) fn state(&self) -> RegistrationState {
        self.state
    }
    pub(crate) fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }
    pub(crate) fn last_code(&self) -> Option<u16> {
        self.last_code
    }
    pub(crate) fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
    pub(crate) fn call_id(&self) -> &str {
        &self.call_id
    }
    pub(crate) fn local_tag(&self) -> &str {
        &self.local_tag
    }

    pub(crate) fn take_outputs(&mut self) -> Vec<RegistrationOutput> {
        std::mem::take(&mut self.out)
    }

    /// Shutdown began (no more refreshes or retries).
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Shutdown is over for this registration: no binding left to remove, none in flight.
    pub(crate) fn is_done(&self) -> bool {
        self.stopping && self.tx.is_none()
    }

    /// The first REGISTER.
    pub(crate) fn start(&mut self, now: Instant) {
        // A lookup finishing after shutdown's unregister registers nothing.
        if self.stopping {
            return;
        }
        self.begin(self.spec.expires, now);
    }

    /// A new request chain: fresh challenge state, the next CSeq.
    fn begin(&mut self, expires: u32, now: Instant) {
        self.auth = DigestClient::new(Some(self.spec.credentials.clone()));
        self.auth_header = None;
        self.brief_retried = false;
        self.asking = if expires > 0 {
            expires.max(self.min_expires)
        } else {
            0
        };
        self.next_at = None;
        if expires > 0 {
            self.state = RegistrationState::Registering;
        }
        self.send(now);
    }

    /// A REGISTER on a new branch with the next CSeq (also after a challenge or a 423).
    fn send(&mut self, now: Instant) {
        self.cseq += 1;
        self.branch = new_branch();
        let contact = format!("<{}>;expires={}", self.spec.contact, self.asking);
        let mut b = RequestBuilder::new(rsip::Method::Register, &self.spec.registrar_uri)
            .via(&self.spec.sent_by, self.spec.via, &self.branch)
            .from_addr(&format!("<{}>", self.spec.aor), &self.local_tag)
            .to_addr(&format!("<{}>", self.spec.aor), None)
            .call_id(&self.call_id)
            .cseq(self.cseq)
            .max_forwards(70)
            .contact(&contact)
            .header("Expires", &self.asking.to_string());
        if let Some(h) = &self.auth_header {
            b = b.header(h.name, &h.value);
        }
        let bytes = b.build();
        self.tx = Some(ClientNonInviteTransaction::new(
            bytes.clone(),
            self.spec.reliable,
            self.timers,
            now,
        ));
        self.out.push(RegistrationOutput::Send(bytes));
    }

    /// Removes the binding (Expires: 0) if there may be one; no refresh or retry after this.
    pub(crate) fn unregister(&mut self, now: Instant) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.next_at = None;
        // A failed refresh leaves the binding live until it expires: remove it too.
        let bound = self.state == RegistrationState::Registered
            || self.tx.is_some()
            || self.expires_at.is_some_and(|at| at > now);
        if bound {
            self.begin(0, now);
        } else {
            self.state = RegistrationState::Unregistered;
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [
            self.next_at,
            self.tx.as_ref().and_then(|t| t.next_deadline()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(crate) fn on_tick(&mut self, now: Instant) {
        let mut timed_out = false;
        if let Some(tx) = &mut self.tx {
            for out in tx.on_tick(now) {
                match out {
                    TransactionOutput::Retransmit(b) => {
                        crate::metrics::sip_retransmission(false);
                        self.out.push(RegistrationOutput::Send(b));
                    }
                    TransactionOutput::Timeout => timed_out = true,
                    TransactionOutput::Terminated => {}
                }
            }
        }
        if timed_out {
            self.fail(None, "no response from the registrar (Timer F)".into(), now);
        }
        if self.next_at.is_some_and(|at| at <= now) && self.tx.is_none() && !self.stopping {
            self.begin(self.spec.expires, now);
        }
    }

    /// The registrar could not be reached (its name did not resolve, TLS failed): a failure,
    /// retried after the backoff like any other.
    pub(crate) fn unreachable(&mut self, error: String, now: Instant) {
        self.state = RegistrationState::Registering;
        self.fail(None, error, now);
    }

    /// A response with our Call-ID and tag.
    pub(crate) fn on_response(&mut self, resp: &rsip::Response, now: Instant) {
        let ours = TransactionKey::for_response(resp)
            .is_ok_and(|k| k.branch() == self.branch && k.method() == rsip::Method::Register);
        let Some(tx) = self.tx.as_mut().filter(|_| ours) else {
            return;
        };
        let code = resp.status_code.code();
        tx.on_response(code, now);
        if code < 200 {
            return;
        }
        self.tx = None;
        self.last_code = Some(code);
        match code {
            200..=299 => self.on_success(resp, now),
            c if is_challenge(c) => {
                let uri = self.spec.registrar_uri.clone();
                match self.auth.answer(resp, "REGISTER", &uri, &new_cnonce()) {
                    Ok(header) => {
                        self.auth_header = Some(header);
                        self.send(now);
                    }
                    Err(e) => self.fail(Some(code), e.to_string(), now),
                }
            }
            423 if !self.brief_retried && self.asking > 0 => {
                // §10.2.8: ask again for at least the registrar's minimum.
                self.brief_retried = true;
                let min = header_u32(resp, "Min-Expires").unwrap_or(self.asking);
                self.min_expires = self.min_expires.max(min);
                self.asking = self.asking.max(min);
                // Never the same nonce count and cnonce twice (RFC 7616 §3.4): without the
                // used credentials, the registrar's next challenge is answered afresh.
                self.auth = DigestClient::new(Some(self.spec.credentials.clone()));
                self.auth_header = None;
                self.send(now);
            }
            _ => {
                let reason = format!("registrar answered {code} {}", resp.status_code);
                self.fail(Some(code), reason, now);
            }
        }
    }

    fn on_success(&mut self, resp: &rsip::Response, now: Instant) {
        if self.asking == 0 {
            self.state = RegistrationState::Unregistered;
            self.expires_at = None;
            return;
        }
        let granted = granted_expires(resp, &self.spec.contact).unwrap_or(self.asking);
        if granted == 0 {
            self.fail(
                Some(200),
                "registrar granted no binding (expires 0)".into(),
                now,
            );
            return;
        }
        let interval = Duration::from_secs(u64::from(granted));
        self.state = RegistrationState::Registered;
        self.failures = 0;
        self.last_error = None;
        self.expires_at = Some(now + interval);
        self.next_at = Some(now + (interval / 2).max(MIN_REFRESH));
    }

    fn fail(&mut self, code: Option<u16>, error: String, now: Instant) {
        tracing::info!(aor = %self.spec.aor, ?code, %error, "registration failed");
        self.tx = None;
        self.state = RegistrationState::Failed;
        self.last_code = code.or(self.last_code);
        self.last_error = Some(error);
        self.out.push(RegistrationOutput::Failure);
        if self.stopping {
            return;
        }
        self.failures += 1;
        self.next_at = Some(now + self.backoff());
    }

    /// `BACKOFF_BASE · 2^(failures-1)`, capped, then a random point in its upper half.
    fn backoff(&mut self) -> Duration {
        let exp = self.failures.saturating_sub(1).min(16);
        let full = BACKOFF_BASE.saturating_mul(1 << exp).min(BACKOFF_CAP);
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = full / 2;
        half + half.mul_f64((self.rng % 1000) as f64 / 1000.0)
    }
}

/// A numeric header (`Min-Expires`, `Expires`).
fn header_u32(resp: &rsip::Response, name: &str) -> Option<u32> {
    resp.headers.iter().find_map(|h| match h {
        rsip::Header::Expires(e) if name.eq_ignore_ascii_case("expires") => {
            e.value().trim().parse().ok()
        }
        rsip::Header::MinExpires(e) if name.eq_ignore_ascii_case("min-expires") => {
            e.value().trim().parse().ok()
        }
        rsip::Header::Other(n, v) if n.eq_ignore_ascii_case(name) => v.trim().parse().ok(),
        _ => None,
    })
}

/// The interval a 2xx granted our binding: its Contact's `expires` (§10.2.4), else Expires.
fn granted_expires(resp: &rsip::Response, contact: &str) -> Option<u32> {
    let contact = contact.to_ascii_lowercase();
    let from_contact = resp
        .headers
        .iter()
        .filter_map(|h| match h {
            rsip::Header::Contact(c) => Some(c.value().to_string()),
            _ => None,
        })
        .flat_map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>())
        .find(|v| v.to_ascii_lowercase().contains(&contact))
        .and_then(|v| {
            v.split(';').skip(1).find_map(|p| {
                let (name, value) = p.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("expires")
                    .then(|| value.trim().parse().ok())?
            })
        });
    from_contact.or_else(|| header_u32(resp, "Expires"))
}
