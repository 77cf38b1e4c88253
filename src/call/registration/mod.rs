//! Trunk registrations (RFC 3261 §10.2): for each trunk with `register = true`, a
//! [`RegisterClient`] actor drives its sans-IO `machine::Registration` through the SIP
//! sender; responses reach it through the call registry by Call-ID and From tag, as a
//! MESSAGE's do. [`Registrations`] is what the rest sees: each trunk's state for
//! `GET /v1/trunks`, and the unregistering at shutdown.

mod client;
mod machine;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use dashmap::DashMap;

pub use client::RegisterClient;
pub use machine::RegistrationState;

use super::shared::SessionShared;
use super::trunk::Trunk;

/// A trunk's registration as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RegistrationStatus {
    pub state: RegistrationState,
    /// When the binding lapses unless refreshed (RFC 3339 UTC), while registered.
    pub expires_at: Option<String>,
    /// The last final response's status code.
    pub last_code: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

impl RegistrationStatus {
    fn unregistered() -> Self {
        RegistrationStatus {
            state: RegistrationState::Unregistered,
            expires_at: None,
            last_code: None,
            last_error: None,
        }
    }
}

/// Every trunk registration: their states, and their actors for shutdown.
#[derive(Default)]
pub struct Registrations {
    status: Arc<DashMap<String, RegistrationStatus>>,
    clients: Mutex<Vec<Addr<RegisterClient>>>,
}

impl Registrations {
    /// Starts one client per trunk with `register` (on the current arbiter).
    pub fn start(trunks: &[Trunk], shared: &Arc<SessionShared>) -> Registrations {
        let registrations = Registrations::default();
        let mut clients = Vec::new();
        for trunk in trunks {
            let Some(client) = RegisterClient::for_trunk(trunk, shared, &registrations.status)
            else {
                continue;
            };
            registrations
                .status
                .insert(trunk.name.clone(), RegistrationStatus::unregistered());
            clients.push(client.start());
        }
        *registrations
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = clients;
        registrations
    }

    /// The registration state of `trunk`, if it registers.
    pub fn status(&self, trunk: &str) -> Option<RegistrationStatus> {
        self.status.get(trunk).map(|s| s.clone())
    }

    /// Removes every binding (REGISTER with `Expires: 0`) and waits up to `limit` for the
    /// registrars' answers.
    pub async fn unregister_all(&self, limit: Duration) {
        let clients = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let deadline = tokio::time::Instant::now() + limit;
        let mut done = Vec::with_capacity(clients.len());
        for client in &clients {
            let (tx, rx) = tokio::sync::oneshot::channel();
            client.do_send(client::Unregister(tx));
            done.push(rx);
        }
        for rx in done {
            let _ = tokio::time::timeout_at(deadline, rx).await;
        }
    }
}
