//! The actor shell of one trunk registration: sends what its [`Registration`] machine
//! outputs to the trunk's proxy, feeds it the responses the dispatcher routes here (by
//! Call-ID and our From tag) and its timer, and publishes its state (status board, the
//! `trunk_registered` gauge, `trunk_register_failures_total`).

use std::sync::Arc;

use actix::prelude::*;
use dashmap::DashMap;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::machine::{Registration, RegistrationOutput, RegistrationSpec, RegistrationState};
use super::RegistrationStatus;
use crate::call::registry::SessionAddr;
use crate::call::shared::{SessionShared, SipIn};
use crate::call::trunk::Trunk;
use crate::sip::transport::{Peer, TransportKind};

/// Remove the binding; the sender fires once the registrar answered (or gave up).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Unregister(pub(super) oneshot::Sender<()>);

pub struct RegisterClient {
    trunk: String,
    machine: Registration,
    shared: Arc<SessionShared>,
    peer: Peer,
    status: Arc<DashMap<String, RegistrationStatus>>,
    timer: Option<SpawnHandle>,
    unregistered: Option<oneshot::Sender<()>>,
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
        let proxy = trunk.outbound_proxy?;
        let domain = trunk.from_host()?;
        let ip = crate::sip::dialog::host(shared.public_ip);
        let sent_by = format!("{ip}:{}", shared.sender.local_addr().port());
        let spec = RegistrationSpec {
            registrar_uri: format!(
                "sip:{}:{}",
                crate::sip::dialog::host(proxy.ip()),
                proxy.port()
            ),
            aor: format!("sip:{}@{domain}", credentials.username),
            contact: format!("sip:{}@{sent_by}", credentials.username),
            sent_by,
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
            peer: Peer {
                addr: proxy,
                transport: TransportKind::Udp,
            },
            status: status.clone(),
            timer: None,
            unregistered: None,
        })
    }

    /// Sends what the machine produced, publishes its state, re-arms its timer.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        for out in self.machine.take_outputs() {
            match out {
                RegistrationOutput::Send(bytes) => {
                    if let Err(e) = self.shared.sender.send(&self.peer, &bytes) {
                        tracing::info!(trunk = %self.trunk, error = %e, "REGISTER not sent");
                    }
                }
                RegistrationOutput::Failure => crate::metrics::trunk_register_failure(&self.trunk),
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
                act.machine.on_tick(Instant::now());
                act.flush(ctx);
            }));
        }
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
        self.machine.start(Instant::now());
        self.flush(ctx);
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
