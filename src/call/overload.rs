//! Overload control: call sessions measure how long each request waited between the receive
//! thread and their handler (the arbiter's queue lag). When the moving average of that lag
//! (EWMA over ~8 requests, so one descheduled thread does not count as overload) passes the
//! threshold, the engine is overloaded for a hold period, during which the dispatcher answers new
//! INVITEs with a stateless 503 + Retry-After, so admitted calls keep completing instead of
//! everyone timing out.

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
    /// Moving average of the lag, in nanoseconds.
    average: AtomicU64,
}

/// Weight of one sample in the moving average: 1/2^EWMA_SHIFT.
const EWMA_SHIFT: u32 = 3;

impl OverloadGuard {
    /// `threshold`: average queue lag that means the engine is falling behind.
    pub fn new(threshold: Duration) -> Self {
        OverloadGuard {
            threshold,
            epoch: Instant::now(),
            until: AtomicU64::new(0),
            average: AtomicU64::new(0),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records the lag one request saw; when the average passes the threshold it (re)starts the
    /// hold period. Racing updates may lose a sample, which an average can afford.
    pub fn observe(&self, received_at: Instant) {
        let now = Instant::now();
        let lag = u64::try_from(now.saturating_duration_since(received_at).as_nanos())
            .unwrap_or(u64::MAX);
        let old = self.average.load(Ordering::Relaxed);
        let average = if lag >= old {
            old + ((lag - old) >> EWMA_SHIFT)
        } else {
            old - ((old - lag) >> EWMA_SHIFT)
        };
        self.average.store(average, Ordering::Relaxed);
        let threshold = u64::try_from(self.threshold.as_nanos()).unwrap_or(u64::MAX);
        if average > threshold {
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
    async fn sustained_lag_trips_the_guard_for_the_hold_period() {
        let guard = OverloadGuard::new(Duration::from_millis(100));
        let received = Instant::now();
        tokio::time::advance(Duration::from_millis(50)).await;
        guard.observe(received);
        assert!(!guard.is_overloaded());
        // One 500 ms spike among quick requests is not overload...
        tokio::time::advance(Duration::from_millis(450)).await;
        guard.observe(received);
        assert!(!guard.is_overloaded());
        // ...requests that keep waiting that long are.
        for _ in 0..4 {
            guard.observe(received);
        }
        assert!(guard.is_overloaded());
        tokio::time::advance(HOLD).await;
        assert!(!guard.is_overloaded());
    }
}
