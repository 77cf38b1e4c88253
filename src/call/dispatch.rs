//! The dispatcher: runs on the transport's threads for every parsed message. Routes in-dialog
//! traffic to its call session by Call-ID and tags (RFC 3261 §12), holds every other request
//! to the trunk ACL (403), admits new INVITEs (shutdown 503, `Require` 420, Max-Forwards 483,
//! capacity 503) and starts their session on the next arbiter, and answers the rest
//! statelessly (OPTIONS 200, in-dialog requests for no dialog 481, 405/501). Every request
//! outside a dialog first passes its source's rate limit
//! (`sip.max_new_calls_per_source_per_second`). An INVITE retransmission that arrives after its
//! call ended, or after a 503, is absorbed or refused again from the linger table rather than
//! taken for a new call. With `[[users]]`, a request from outside every ACL (and every
//! REGISTER) must authenticate instead (`phones`: 401 challenges, REGISTER to the location
//! service, banned sources dropped). Never blocks and never awaits.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use rsip::prelude::*;

use super::leg::{is_unsupported, unsupported_requirements, Leg, ALLOW};
use super::party::Parties;
use super::phones::{Admission as PhoneAdmission, PhoneGate};
use super::registry::SessionAddr;
use super::shared::{SessionShared, SipIn};
use super::{CallId, CallSession};
use crate::metrics::Unavailable;
use crate::net::Cidr;
use crate::sip::message::{method_name, reason_phrase, ResponseBuilder, TransactionKey};
use crate::sip::rate_limit::{Admission, SourceRateLimiter};
use crate::sip::transaction::InviteFate;
use crate::sip::transport::{Inbound, InboundHandler, Peer};

/// Seconds a caller is asked to wait after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 5;
/// Seconds a rate-limited source is asked to wait: its bucket refills within one.
pub const RATE_LIMIT_RETRY_AFTER_SECONDS: u32 = 1;

/// What the dispatcher needs besides the shared session state.
pub struct DispatcherConfig {
    /// Source networks allowed to send INVITEs (union of every trunk's `allow`).
    pub allow: Vec<Cidr>,
    /// Calls not yet ended plus outstanding MESSAGEs (the registry's `occupied`) beyond this
    /// get 503 before any session is made.
    pub max_active_calls: usize,
    /// Hard cap on call sessions (live and lingering), protecting memory under floods.
    pub max_sessions: usize,
    /// Per-source rate of requests outside any dialog.
    pub rate_limit: SourceRateLimiter,
    /// Phones: digest authentication, bans, registrations (disabled without `[[users]]`).
    pub phones: Arc<PhoneGate>,
    /// False while this cluster node cannot beat (`Cluster::reachable`): OPTIONS and new
    /// INVITEs get 503, so the proxy in front fails over; always true for a single node.
    pub cluster_reachable: Arc<AtomicBool>,
}

pub struct Dispatcher {
    shared: Arc<SessionShared>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    accepting: AtomicBool,
    config: DispatcherConfig,
}

impl Dispatcher {
    pub fn new(
        shared: Arc<SessionShared>,
        arbiters: Vec<ArbiterHandle>,
        config: DispatcherConfig,
    ) -> Self {
        Dispatcher {
            shared,
            arbiters,
            next_arbiter: AtomicUsize::new(0),
            accepting: AtomicBool::new(true),
            config,
        }
    }

    /// New INVITEs get 503 from now on (shutdown has begun).
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Relaxed);
    }

    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Relaxed)
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.config.allow.iter().any(|c| c.contains(ip))
    }

    fn reply(&self, req: &rsip::Request, peer: &Peer, code: u16, headers: &[(&str, &str)]) {
        self.reply_kept(req, peer, code, headers, false);
    }

    /// 401 with our digest challenges (RFC 3261 §22.2), each a whole header: they are ours,
    /// bounded by `sip.realm`'s length, so the stateless cut of extra values does not apply.
    fn challenge(&self, req: &rsip::Request, peer: &Peer, challenges: &[String]) {
        let mut b = ResponseBuilder::stateless(req, 401, reason_phrase(401))
            .received_from(peer.addr)
            .to_tag(&crate::sip::message::new_tag());
        for c in challenges {
            b = b.header_uncut("WWW-Authenticate", c);
        }
        crate::metrics::sip_response_sent(401);
        if let Err(e) = self.shared.sender.send(peer, &b.build()) {
            tracing::debug!(%peer, error = %e, "401 failed");
        }
    }

    /// `reply`; with `keep`, the response also answers this transaction's retransmissions
    /// for 64·T1 (a non-INVITE whose effect must not repeat: a REGISTER's nonce count).
    fn reply_kept(
        &self,
        req: &rsip::Request,
        peer: &Peer,
        code: u16,
        headers: &[(&str, &str)],
        keep: bool,
    ) {
        let mut b =
            ResponseBuilder::stateless(req, code, reason_phrase(code)).received_from(peer.addr);
        if code >= 200
            && req
                .to_header()
                .is_ok_and(|t| t.tag().ok().flatten().is_none())
        {
            // Our final responses carry a To tag (RFC 3261 §8.2.6.2), even stateless ones.
            b = b.to_tag(&crate::sip::message::new_tag());
        }
        for (name, value) in headers {
            b = b.header(name, value);
        }
        crate::metrics::sip_response_sent(code);
        let response = b.build();
        if let Err(e) = self.shared.sender.send(peer, &response) {
            tracing::debug!(%peer, error = %e, "stateless reply failed");
        }
        if keep {
            if let Ok(key) = TransactionKey::from_request(req) {
                let until = tokio::time::Instant::now() + self.shared.timers.t1 * 64;
                self.shared.linger.insert(key, response, until);
            }
        }
    }

    fn on_request(&self, req: rsip::Request, peer: Peer, received_at: tokio::time::Instant) {
        crate::metrics::sip_request_received(method_name(&req.method));
        let Ok(call_id) = req.call_id_header().map(|h| h.value()) else {
            return;
        };
        let to_tag = super::leg::tag_of(req.to_header().ok().map(|h| h.value()));
        let from_tag = super::leg::tag_of(req.from_header().ok().map(|h| h.value()));
        let acl_ok = self.allowed(peer.addr.ip());
        let route =
            self.shared
                .registry
                .route_request(call_id, to_tag.as_deref(), from_tag.as_deref());
        if let Some(addr) = route {
            // The session itself decides on a source outside the ACL: only its own peer (a
            // callee we dialled may be outside every trunk) may speak in its dialog.
            addr.deliver(SipIn {
                inbound: Inbound {
                    message: rsip::SipMessage::Request(req),
                    peer,
                    received_at,
                },
                acl_ok,
            });
            return;
        }
        // A banned source's requests are dropped unanswered, but only those no dialog takes:
        // its established calls go on (the ban stops new requests, RFC-agnostic fail2ban).
        if self
            .config
            .phones
            .is_banned(peer.addr.ip(), received_at.into_std())
        {
            return;
        }
        // Retransmissions the linger table answers are not charged to the source's rate: over
        // it they would get 503 Retry-After instead of their own answer (or none).
        if self.answered_by_linger(&req, &peer, acl_ok && to_tag.is_none()) {
            return;
        }
        if req.method != rsip::Method::Ack
            && !self.within_rate(&req, &peer, acl_ok && to_tag.is_none(), received_at)
        {
            return;
        }
        // A phone's CANCEL that matched no INVITE (one challenged, or already over) gets 481.
        let phone_cancel = self.config.phones.is_enabled() && req.method == rsip::Method::Cancel;
        let mut user = None;
        if self.must_authenticate(&req, acl_ok) {
            match self
                .config
                .phones
                .admit(&req, peer.addr.ip(), acl_ok, received_at.into_std())
            {
                PhoneAdmission::User(name) => user = Some(name),
                PhoneAdmission::Challenge(challenges) => {
                    self.challenge(&req, &peer, &challenges);
                    return;
                }
                PhoneAdmission::Drop => return,
            }
        } else if !acl_ok && !phone_cancel {
            // Every request passes the trunk ACL, not only INVITE (never answer an ACK).
            if req.method != rsip::Method::Ack {
                let sip_call_id = req.call_id_header().map_or("", |h| h.value());
                tracing::info!(%peer, method = %req.method, sip_call_id, "request from outside every trunk ACL");
                self.reply(&req, &peer, 403, &[]);
            }
            return;
        }
        let in_dialog = to_tag.is_some();
        match req.method {
            rsip::Method::Invite if !in_dialog => self.on_new_invite(req, peer, received_at, user),
            rsip::Method::Register if !in_dialog && user.is_some() => {
                let name = user.unwrap_or_default();
                let now = received_at.into_std();
                let reply =
                    self.config
                        .phones
                        .register(&req, &name, peer, &self.shared.sender, now);
                let headers: Vec<(&str, &str)> = reply
                    .headers
                    .iter()
                    .map(|(n, v)| (*n, v.as_str()))
                    .collect();
                self.reply_kept(&req, &peer, reply.code, &headers, true);
            }
            // ACKs for stateless non-2xx answers, or stray ones: nothing to do.
            rsip::Method::Ack => {}
            // §12.2.2: a request inside a dialog we do not have gets 481.
            _ if in_dialog => self.reply(&req, &peer, 481, &[]),
            // A cluster node cut off from its cluster is out of rotation (RFC 3261 §11.2: the
            // answer to OPTIONS is the one an INVITE would get).
            rsip::Method::Options if !self.config.cluster_reachable.load(Ordering::Relaxed) => {
                crate::metrics::sip_unavailable(Unavailable::NodeIsolatedOptions);
                let retry = RETRY_AFTER_SECONDS.to_string();
                self.reply(&req, &peer, 503, &[("Retry-After", &retry)]);
            }
            rsip::Method::Options => self.reply(&req, &peer, 200, &[("Allow", ALLOW)]),
            rsip::Method::Invite
            | rsip::Method::Bye
            | rsip::Method::Cancel
            | rsip::Method::Info
            | rsip::Method::PRack
            // Only in-dialog REFER (RFC 3515 §2.4.2) and the NOTIFYs of our own REFER.
            | rsip::Method::Refer
            | rsip::Method::Notify => self.reply(&req, &peer, 481, &[]),
            ref m if is_unsupported(m) => self.reply(&req, &peer, 405, &[("Allow", ALLOW)]),
            _ => self.reply(&req, &peer, 501, &[]),
        }
    }

    /// Whether `req` must carry digest credentials: with users configured, any request from
    /// outside every trunk ACL and every REGISTER (a trunk has no AoR), but never an ACK or
    /// a CANCEL (RFC 3261 §22.1: they cannot be resubmitted; a CANCEL matches its INVITE's
    /// transaction or gets 481).
    fn must_authenticate(&self, req: &rsip::Request, acl_ok: bool) -> bool {
        let phones = &self.config.phones;
        phones.is_enabled()
            && !matches!(req.method, rsip::Method::Ack | rsip::Method::Cancel)
            && (!acl_ok || req.method == rsip::Method::Register)
    }

    /// Whether `req` is a retransmission the linger table answers: a non-INVITE's kept final
    /// response is sent again; a new INVITE (`new_call`: out of dialog, from inside a trunk's
    /// ACL, as when it was first seen) whose call ended is absorbed, one we refused is refused
    /// again.
    fn answered_by_linger(&self, req: &rsip::Request, peer: &Peer, new_call: bool) -> bool {
        let is_invite = req.method == rsip::Method::Invite;
        if req.method == rsip::Method::Ack || (is_invite && !new_call) {
            return false;
        }
        let Ok(key) = TransactionKey::from_request(req) else {
            return false;
        };
        if !is_invite {
            let Some(response) = self.shared.linger.lookup(&key) else {
                return false;
            };
            crate::metrics::sip_retransmission(true);
            let _ = self.shared.sender.send(peer, &response);
            return true;
        }
        match self.shared.linger.lookup_invite(&key) {
            Some(InviteFate::Absorb) => crate::metrics::sip_retransmission(true),
            Some(InviteFate::Refuse) => {
                crate::metrics::sip_retransmission(true);
                self.refuse(req, peer, None, Unavailable::Retransmission);
            }
            None => return false,
        }
        true
    }

    /// The source's rate limit, before the ACL (a stranger's flood costs no 403s either). Over
    /// it, a new INVITE from a trunk source gets 503 + Retry-After (RFC 3261 §21.5.4: its proxy
    /// may try elsewhere, its UA waits); any other request is dropped unanswered — an answer is
    /// what a flood from a spoofed source is after, and a real client's retransmissions
    /// (Timer E) are themselves rate-limited until its bucket refills.
    fn within_rate(
        &self,
        req: &rsip::Request,
        peer: &Peer,
        new_call: bool,
        received_at: tokio::time::Instant,
    ) -> bool {
        let method = method_name(&req.method);
        if self.admit_source(peer.addr.ip(), received_at, method) {
            return true;
        }
        if new_call && req.method == rsip::Method::Invite {
            crate::metrics::sip_unavailable(Unavailable::RateLimited);
            let retry_after = RATE_LIMIT_RETRY_AFTER_SECONDS.to_string();
            self.reply(req, peer, 503, &[("Retry-After", &retry_after)]);
        }
        false
    }

    /// One request from `ip` at `at` against its source's rate; a refusal is counted under
    /// `method`. Tokio's clock, so that tests on paused time drive it.
    fn admit_source(&self, ip: IpAddr, at: tokio::time::Instant, method: &str) -> bool {
        match self.config.rate_limit.admit(ip, at.into_std()) {
            Admission::Admitted | Admission::Exempt => true,
            Admission::Limited => {
                crate::metrics::sip_rate_limited(method);
                false
            }
        }
    }

    /// A new INVITE; `user`: the phone it authenticated as (`call.source.user`).
    fn on_new_invite(
        &self,
        req: rsip::Request,
        peer: Peer,
        received_at: tokio::time::Instant,
        user: Option<String>,
    ) {
        let Ok(key) = TransactionKey::from_request(&req) else {
            self.reply(&req, &peer, 400, &[]);
            return;
        };
        if !self.is_accepting() {
            self.refuse(&req, &peer, Some(&key), Unavailable::ShuttingDown);
            return;
        }
        // RFC 3261 §8.2.2.3: an extension we do not support is refused before anything else.
        if let Some(tags) = unsupported_requirements(&req.headers) {
            self.reply(&req, &peer, 420, &[("Unsupported", &tags)]);
            return;
        }
        // RFC 4028 §8.1: a session interval below our minimum gets 422 with ours.
        let env = self.shared.env();
        if super::leg::session_timer::as_uas(&req.headers, env.session_expires, env.min_se).is_err()
        {
            let min = env.min_se.to_string();
            self.reply(&req, &peer, 422, &[("Min-SE", &min)]);
            return;
        }
        // RFC 3261 §8.1.1.6, §16.3 step 2: a request that may travel no further ends here.
        if super::leg::max_forwards(&req.headers) == Some(0) {
            self.reply(&req, &peer, 483, &[]);
            return;
        }
        if let Some(reason) = self.full() {
            self.refuse(&req, &peer, Some(&key), reason);
            return;
        }
        let Ok(call_id) = req.call_id_header().map(|h| h.value().to_string()) else {
            return;
        };
        let remote_tag =
            super::leg::tag_of(req.from_header().ok().map(|h| h.value())).unwrap_or_default();
        let index = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiters.len().max(1);
        let Some(arbiter) = self.arbiters.get(index).cloned() else {
            return;
        };
        let shared = self.shared.clone();
        let phones = self.config.phones.clone();
        let local_tag = crate::sip::message::new_tag();
        let tag = local_tag.clone();
        self.shared
            .registry
            .insert_incoming(&call_id, &local_tag, &remote_tag, move || {
                SessionAddr::Call(CallSession::start_traced_in_arbiter(&arbiter, move || {
                    let source = user_of(req.from_header().ok().and_then(|f| f.uri().ok()));
                    let destination = req.uri.user().unwrap_or_default().to_string();
                    let parties = Parties::of_invite(&req, user.is_some(), |u| {
                        phones.is_enabled() && phones.is_registered(u, std::time::Instant::now())
                    });
                    let leg = Leg::new_incoming(
                        CallId::new(),
                        req,
                        key,
                        peer,
                        tag,
                        &shared.env(),
                        received_at,
                    );
                    let mut session =
                        CallSession::with_leg(leg, shared, index, None, None, source, destination);
                    session.source_user = user;
                    session.parties = parties;
                    session
                }))
            });
    }

    /// Why a new INVITE cannot be taken now, if it cannot (the first cap it meets).
    fn full(&self) -> Option<Unavailable> {
        let registry = &self.shared.registry;
        if self.shared.overload.is_overloaded() {
            Some(Unavailable::Overload)
        } else if !self.config.cluster_reachable.load(Ordering::Relaxed) {
            Some(Unavailable::NodeIsolated)
        } else if registry.occupied() >= self.config.max_active_calls {
            Some(Unavailable::MaxActiveflows)
        } else if self.shared.rtp_ports.available() == 0 {
            Some(Unavailable::RtpPortsExhausted)
        } else if registry.len() >= self.config.max_sessions {
            Some(Unavailable::MaxSessions)
        } else {
            None
        }
    }

    /// 503 + Retry-After, stateless, counted under `reason`. With `remember`, retransmissions
    /// of this INVITE are refused too for as long as its client may send them (64·T1), even
    /// once the engine could take them: its client has its answer, and a call made of a late
    /// retransmission would never be ACKed.
    fn refuse(
        &self,
        req: &rsip::Request,
        peer: &Peer,
        remember: Option<&TransactionKey>,
        reason: Unavailable,
    ) {
        crate::metrics::sip_unavailable(reason);
        let retry_after = RETRY_AFTER_SECONDS.to_string();
        self.reply(req, peer, 503, &[("Retry-After", &retry_after)]);
        if let Some(key) = remember {
            let until = tokio::time::Instant::now() + self.shared.timers.t1 * 64;
            self.shared
                .linger
                .insert_invite(key, InviteFate::Refuse, until);
        }
    }
}

impl InboundHandler for Dispatcher {
    /// A malformed or extension-method request is answered only inside a trunk's ACL and
    /// within its source's rate, as any request outside a dialog.
    fn may_answer(&self, peer: &Peer) -> bool {
        let ip = peer.addr.ip();
        let now = tokio::time::Instant::now();
        let phones = &self.config.phones;
        let known =
            self.allowed(ip) || (phones.is_enabled() && !phones.is_banned(ip, now.into_std()));
        known && self.admit_source(ip, now, "OTHER")
    }

    /// A source banned for failed authentication gets no new connection (its open ones, which
    /// may carry its established calls, stay).
    fn may_connect(&self, ip: IpAddr) -> bool {
        let now = tokio::time::Instant::now().into_std();
        !self.config.phones.is_banned(ip, now)
    }

    fn on_message(&self, inbound: Inbound) {
        match inbound.message {
            rsip::SipMessage::Request(req) => {
                self.on_request(req, inbound.peer, inbound.received_at)
            }
            rsip::SipMessage::Response(ref resp) => {
                let Ok(call_id) = resp.call_id_header().map(|h| h.value()) else {
                    return;
                };
                let from_tag = super::leg::tag_of(resp.from_header().ok().map(|h| h.value()));
                if let Some(addr) = self
                    .shared
                    .registry
                    .route_response(call_id, from_tag.as_deref())
                {
                    addr.deliver(SipIn {
                        inbound,
                        acl_ok: true,
                    });
                }
            }
        }
    }
}

/// The user part of a URI (the caller's number).
fn user_of(uri: Option<rsip::Uri>) -> String {
    uri.and_then(|u| u.user().map(str::to_string))
        .unwrap_or_default()
}
