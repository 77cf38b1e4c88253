//! The drain sequence (DESIGN, STYLE §8): on SIGINT/SIGTERM stop taking INVITEs (503), give
//! running activeflows a grace period, end the rest with reason `shutdown` (their calls get BYE),
//! give those BYEs a moment to be answered, then stop.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::app::App;
use crate::engine::{Drain, EndReason, StopAll};

/// How long BYEs sent at shutdown may take to be answered before the process exits.
const BYE_WAIT: Duration = Duration::from_secs(2);
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

/// Drains and stops the engine; returns how many activeflows were ended with `shutdown`.
pub async fn drain(app: App, grace: Duration) -> usize {
    tracing::info!(
        running = app.registry.running(),
        ?grace,
        "shutdown: draining"
    );
    app.ready.store(false, Ordering::Relaxed);
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
    app.stop().await;
    stopped
}

async fn wait_until(limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
}
