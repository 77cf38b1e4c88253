//! Overload control: call sessions measure how long each request waited between the receive
//! thread and their handler (the arbiter's queue lag). Lag over the threshold marks the
//! engine overloaded for a hold period, during which the dispatcher answers new INVITEs with a
//! stateless 503 + Retry-After, so admitted calls keep completing instead of everyone timing out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How long the engine stays in overload after the last slow INVITE.
const HOLD: Duration = Duration::from_millis(100);

pub struct OverloadGuard {
    threshold: Duration,
    epoch: Instant,
    /// Nanoseconds since `epoch` until which new INVITEs are refused; 0 = not overloaded.
    until: AtomicU64,
}

impl OverloadGuard {
    /// `threshold`: queue lag of an INVITE that means the engine is falling behind.
    pub fn new(threshold: Duration) -> Self {
        OverloadGuard {
            threshold,
            epoch: Instant::now(),
            until: AtomicU64::new(0),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records the lag one INVITE saw; over the threshold it (re)starts the hold period.
    pub fn observe(&self, received_at: Instant) {
        let now = Instant::now();
        if now.saturating_duration_since(received_at) > self.threshold {
            self.until
                .fetch_max(self.nanos(now + HOLD), Ordering::Relaxed);
        }
    }

    /// Whether new INVITEs should be refused now.
    pub fn is_overloaded(&self) -> bool {
        self.until.load(Ordering::Relaxed) > self.nanos(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slow_invites_trip_the_guard_for_the_hold_period() {
        let guard = OverloadGuard::new(Duration::from_millis(100));
        let received = Instant::now();
        tokio::time::advance(Duration::from_millis(50)).await;
        guard.observe(received);
        assert!(!guard.is_overloaded());
        tokio::time::advance(Duration::from_millis(100)).await;
        guard.observe(received);
        assert!(guard.is_overloaded());
        tokio::time::advance(HOLD).await;
        assert!(!guard.is_overloaded());
    }
}
