//! What every call session shares (sockets, timers, pools, where offers and records go) and the
//! message that carries SIP from the dispatcher to a session.

use std::net::IpAddr;
use std::sync::Arc;

use actix::prelude::*;

use super::events::CallOffer;
use super::leg::Env;
use super::{CallRegistry, OverloadGuard};
use crate::media::library::AudioLibrary;
use crate::media::{Recordings, RtpPortPool};
use crate::sip::transaction::{LingerTable, Timers};
use crate::sip::transport::{Inbound, SipSender};

/// Everything sessions share: sockets, timers, pools and where offers go.
pub struct SessionShared {
    pub sender: SipSender,
    pub registry: Arc<CallRegistry>,
    /// Where offers go, one sink per arbiter (index = the arbiter's), so a call's offer and its
    /// activeflow stay on the session's thread.
    pub offers: Vec<Recipient<CallOffer>>,
    pub timers: Timers,
    pub public_ip: IpAddr,
    pub rtp_ports: RtpPortPool,
    /// Answers of completed BYE/CANCEL transactions that outlive their session.
    pub linger: Arc<LingerTable>,
    /// Trips when INVITEs queue too long before their session starts.
    pub overload: OverloadGuard,
    /// Prompts and speech for media sessions.
    pub library: Arc<AudioLibrary>,
    pub recordings: Arc<Recordings>,
    /// Durable call rows.
    pub storage: crate::storage::Storage,
    /// Where call events go (SSE, webhooks).
    pub events: crate::events::EventBus,
    /// `engine.max_call_seconds`: every call ends this long after its INVITE (`None`: never).
    pub max_call: Option<std::time::Duration>,
    /// `sip.session_expires_seconds` (RFC 4028; `None`: session timers off).
    pub session_expires: Option<u32>,
    /// `sip.min_se_seconds`.
    pub min_se: u32,
    /// `media.rtp_timeout_seconds`: an answered call silent this long is hung up (`None`: off).
    pub rtp_timeout: Option<std::time::Duration>,
    /// RFC 3263 resolution of next hops (one resolver, one TTL cache, for every leg).
    pub resolver: crate::sip::resolve::SipResolver,
    /// `sip.failover_timeout_ms`.
    pub failover_timeout: std::time::Duration,
    /// Registered phones' contacts (`[[users]]`), where `extension` destinations go.
    pub location: Arc<crate::sip::registrar::LocationService>,
}

impl SessionShared {
    /// What a leg machine needs of this on each input.
    pub(crate) fn env(&self) -> Env {
        Env {
            timers: self.timers,
            public_ip: self.public_ip,
            port: self.sender.local_addr().port(),
            tls_port: self.sender.tls_local_addr().map(|a| a.port()),
            max_call: self.max_call,
            session_expires: self.session_expires,
            min_se: self.min_se,
            failover_timeout: self.failover_timeout,
        }
    }
}

/// A SIP message for a session, from the dispatcher.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SipIn {
    pub inbound: Inbound,
    /// The source is inside a trunk's `allow` (every request passes the ACL, RFC 3261 §26
    /// threat model: a stranger must not end or alter a dialog).
    pub acl_ok: bool,
}
