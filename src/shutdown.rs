//! The drain sequence (ARCHITECTURE §16): on SIGINT/SIGTERM stop taking INVITEs (503), give
//! running activeflows a grace period, end the rest with reason `shutdown` (their calls get BYE),
//! give those BYEs a moment to be answered, remove trunk registrations (Expires: 0), then stop.
//! The same drain runs when a watched part whose death is fatal dies (the storage writer, see
//! `health`); the process then exits non-zero.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::app::App;
use crate::engine::{Drain, EndReason, StopAll};
use crate::health::{Component, Health};

/// How long BYEs sent at shutdown may take to be answered before the process exits.
pub const BYE_WAIT: Duration = Duration::from_secs(2);
/// How long the registrars may take to answer our unregistering REGISTERs.
pub const UNREGISTER_WAIT: Duration = Duration::from_secs(2);
/// Poll interval while waiting for counts to drop (shutdown only, not a hot path).
const POLL: Duration = Duration::from_millis(20);

/// Resolves on the first SIGINT or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Why the engine stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// SIGINT or SIGTERM: exit 0 after the drain.
    Signal,
    /// A watched part died for good: exit non-zero after the drain.
    Died(Component),
}

/// Resolves on the first SIGINT or SIGTERM, or when a part whose death is fatal has died.
pub async fn stop_requested(health: &Health) -> StopCause {
    tokio::select! {
        _ = signal() => StopCause::Signal,
        part = health.fatal() => StopCause::Died(part),
    }
}

/// Drains and stops the engine; returns how many activeflows were ended with `shutdown`.
pub async fn drain(app: App, grace: Duration) -> usize {
    tracing::info!(
        running = app.registry.running(),
        ?grace,
        "shutdown: draining"
    );
    app.ready.store(false, Ordering::Relaxed);
    if let Some(m) = app.cluster.as_ref().and_then(|c| c.membership()) {
        m.set_draining();
    }
    app.dispatcher.stop_accepting();
    for shard in app.supervisors.all() {
        shard.do_send(Drain);
    }
    wait_until(grace, || app.registry.running() == 0).await;
    let stopped = app
        .supervisor
        .send(StopAll {
            reason: EndReason::Shutdown,
        })
        .await
        .unwrap_or(0);
    if stopped > 0 {
        tracing::info!(stopped, "shutdown: ended remaining activeflows");
    }
    wait_until(BYE_WAIT, || app.calls.active() == 0 && app.calls.is_empty()).await;
    // RFC 3261 §10.2.2: trunks we registered lose their binding (Expires: 0) before we go.
    app.registrations.unregister_all(UNREGISTER_WAIT).await;
    app.stop().await;
    stopped
}

async fn wait_until(limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{spawn_watched, Ended, OnDeath};

    /// The storage writer dying stops the engine with a cause the binary exits non-zero on.
    #[test]
    fn a_fatal_death_requests_the_stop() {
        let health = Health::new();
        let c = Component::StorageWriter;
        let dies = || -> Ended { panic!("test: the writer dies") };
        spawn_watched("t", c, OnDeath::Exit, health.clone(), dies).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let limit = Duration::from_secs(10);
        let cause =
            rt.block_on(async { tokio::time::timeout(limit, stop_requested(&health)).await });
        assert_eq!(cause, Ok(StopCause::Died(c)));
    }
}
