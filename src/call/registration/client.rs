//! The actor shell of one trunk registration: sends what its [`Registration`] machine
//! outputs to the trunk's proxy, feeds it the responses the dispatcher routes here (by
//! Call-ID and our From tag) and its timer, and publishes its state (status board, the
//! `activeflow_trunk_registered` gauge, `activeflow_trunk_register_failures_total`).

use std::sync::Arc;

use actix::prelude::*;
use dashmap::DashMap;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::machine::{Registration, RegistrationOutput, RegistrationSpec, RegistrationState};
use super::RegistrationStatus;
use crate::call::outbound::Route;
use crate::call::registry::SessionAddr;
use crate::call::shared::{SessionShared, SipIn};
use crate::call::trunk::Trunk;
use crate::sip::resolve::Transport;
use crate::sip::transport::{Peer, TransportKind};

/// Remove the binding; the sender fires once the registrar answered (or gave up).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Unregister(pub(super) oneshot::Sender<()>);

pub struct RegisterClient {
    trunk: String,
    machine: Registration,
    shared: Arc<SessionShared>,
    /// How the registrar is reached (its host resolved, over TLS the connection checked).
    route: Route,
    peer: Option<Peer>,
    status: Arc<DashMap<String, RegistrationStatus>>,
    timer: Option<SpawnHandle>,
    unregistered: Option<oneshot::Sender<()>>,
    /// An attempt failed: the next one resolves the registrar again (RFC 3263 §4.3).
    re_resolve: bool,
    /// Failed attempts: the next resolution starts at this target (mod their number).
    rotate: usize,
    /// REGISTERs sent: a connect failure reported for an older one is stale.
    sends: u64,
}

impl RegisterClient {
    /// The client of `trunk`, if it registers (it has credentials and a proxy then).
    pub(super) fn for_trunk(
        trunk: &Trunk,
        shared: &Arc<SessionShared>,
        status: &Arc<DashMap<String, RegistrationStatus>>,
    ) -> Option<RegisterClient> {
        let expires = trunk.account.register_expires?;
        let credentials = trunk.account.credentials.clone()?;
        let proxy = trunk.outbound_proxy.clone()?;
        let domain = trunk.from_host()?;
        // The trunk's transport, UDP when unset: REGISTER skips NAPTR (its Via and Contact are
        // fixed when the client is made) and takes the first SRV/A target.
        let transport = trunk.transport.unwrap_or(Transport::Udp);
        let kind = transport.kind();
        let sent_by = shared.env().sent_by_over(kind);
        let registrar_uri = format!("sip:{proxy}");
        let transport_param = match kind {
            TransportKind::Udp => "",
            TransportKind::Tcp => ";transport=tcp",
            TransportKind::Tls => ";transport=tls",
        };
        let route = Route {
            request_uri: registrar_uri.clone(),
            user: credentials.username.clone(),
            next_hop: proxy,
            transport: Some(transport),
            tls_ca: trunk.tls_ca.clone(),
        };
        let spec = RegistrationSpec {
            registrar_uri,
            aor: format!("sip:{}@{domain}", credentials.username),
            contact: format!("sip:{}@{sent_by}{transport_param}", credentials.username),
            sent_by,
            via: kind.via_token(),
            reliable: kind.is_reliable(),
            expires,
            credentials,
        };
        let call_id = format!("{}@activeflow", uuid::Uuid::new_v4().simple());
        let seed = uuid::Uuid::new_v4().as_u128() as u64;
        let machine = Registration::new(
            spec,
            shared.timers,
            call_id,
            crate::sip::message::new_tag(),
            seed,
        );
        Some(RegisterClient {
            trunk: trunk.name.clone(),
            machine,
            shared: shared.clone(),
            route,
            peer: None,
            status: status.clone(),
            timer: None,
            unregistered: None,
            re_resolve: false,
            rotate: 0,
            sends: 0,
        })
    }

    /// Sends what the machine produced, publishes its state, re-arms its timer.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        for out in self.machine.take_outputs() {
            match out {
                RegistrationOutput::Send(bytes) => {
                    let Some(peer) = self.peer else { continue };
                    self.sends += 1;
                    let sends = self.sends;
                    match self.shared.sender.send_watched(&peer, &bytes) {
                        Ok(None) => {}
                        Ok(Some(failed)) => {
                            // A connect or TLS failure is a failed attempt at once.
                            ctx.spawn(failed.into_actor(self).map(move |result, act, ctx| {
                                if result.is_ok() && act.sends == sends {
                                    let now = Instant::now();
                                    act.machine
                                        .unreachable("connect to the registrar failed".into(), now);
                                    act.flush(ctx);
                                }
                            }));
                        }
                        Err(e) => {
                            tracing::info!(trunk = %self.trunk, error = %e, "REGISTER not sent");
                        }
                    }
                }
                RegistrationOutput::Failure => {
                    crate::metrics::trunk_register_failure(&self.trunk);
                    self.re_resolve = true;
                    self.rotate = self.rotate.wrapping_add(1);
                }
            }
        }
        self.publish();
        if self.machine.is_done() {
            if let Some(done) = self.unregistered.take() {
                let _ = done.send(());
            }
        }
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        if let Some(at) = self.machine.next_deadline() {
            let delay = at.saturating_duration_since(Instant::now());
            self.timer = Some(ctx.run_later(delay, |act, ctx| {
                act.timer = None;
                if act.peer.is_none() || (act.re_resolve && !act.machine.is_stopping()) {
                    // The last attempt failed: resolve again, from the next target.
                    act.re_resolve = false;
                    return act.reach(ctx);
                }
                act.machine.on_tick(Instant::now());
                act.flush(ctx);
            }));
        }
    }

    /// Resolves the registrar (RFC 3263; a TLS target learns the proxy's name and CA), then
    /// registers with the first target.
    fn reach(&mut self, ctx: &mut Context<Self>) {
        let (resolver, sender) = (self.shared.resolver.clone(), self.shared.sender.clone());
        let route = self.route.clone();
        let rotate = self.rotate;
        let lookup = async move {
            let found = resolver.resolve(&route.next_hop, route.transport).await;
            let peers = crate::call::outbound::peers(found, &route, &sender);
            let n = peers.len().max(1);
            peers.into_iter().nth(rotate % n)
        };
        ctx.spawn(lookup.into_actor(self).map(|found, act, ctx| {
            let now = Instant::now();
            match found {
                Some(peer) => {
                    act.peer = Some(peer);
                    act.machine.start(now);
                }
                None => act
                    .machine
                    .unreachable("the registrar did not resolve".into(), now),
            }
            act.flush(ctx);
        }));
    }

    fn publish(&self) {
        let state = self.machine.state();
        let now = Instant::now();
        let expires_at = self
            .machine
            .expires_at()
            .filter(|_| state == RegistrationState::Registered)
            .map(|at| {
                let left = at.saturating_duration_since(now);
                let wall = chrono::Utc::now()
                    + chrono::Duration::from_std(left).unwrap_or_else(|_| chrono::Duration::zero());
                wall.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            });
        crate::metrics::trunk_registered(&self.trunk, state == RegistrationState::Registered);
        self.status.insert(
            self.trunk.clone(),
            RegistrationStatus {
                state,
                expires_at,
                last_code: self.machine.last_code(),
                last_error: self.machine.last_error().map(str::to_string),
            },
        );
    }
}

impl Actor for RegisterClient {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        crate::metrics::trunk_register_init(&self.trunk);
        self.shared.registry.insert_outgoing(
            self.machine.call_id(),
            self.machine.local_tag(),
            SessionAddr::Register(ctx.address()),
        );
        self.reach(ctx);
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        self.shared
            .registry
            .remove(self.machine.call_id(), self.machine.local_tag());
        Running::Stop
    }
}

impl Handler<SipIn> for RegisterClient {
    type Result = ();

    fn handle(&mut self, msg: SipIn, ctx: &mut Self::Context) {
        if let rsip::SipMessage::Response(resp) = msg.inbound.message {
            self.machine.on_response(&resp, Instant::now());
            self.flush(ctx);
        }
    }
}

impl Handler<Unregister> for RegisterClient {
    type Result = ();

    fn handle(&mut self, msg: Unregister, ctx: &mut Self::Context) {
        self.unregistered = Some(msg.0);
        self.machine.unregister(Instant::now());
        self.flush(ctx);
    }
}
