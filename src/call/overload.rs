//! Overload control: admission of new INVITEs tracks what the engine can serve, instead of
//! tripping for everyone (RFC 7339's loss/rate model, RFC 7415's rate-based control, applied
//! to our own queues). Call sessions measure how long each request waited between the receive
//! thread and their handler (the arbiters' queue lag) and count the new calls they started;
//! every 100 ms the dispatcher's [`Admission`] closes a window:
//!
//! - average lag above `low` (a quarter of `sip.overload_lag_ms`): the engine is falling
//!   behind, so new calls are admitted at a rate a little under what the sessions served in the
//!   window (0.9×; 0.7× above `sip.overload_lag_ms` itself, to drain the backlog faster) —
//!   multiplicative decrease;
//! - lag below `low` with a limit in force: the limit grows by 10 % a window (recovery in under
//!   a second), and is lifted once it is twice what callers offer.
//!
//! Admission under a limit is a token bucket (20 ms of burst), so the calls admitted are spread
//! over the window and the rest get a cheap stateless 503 + Retry-After. At 2× the engine's
//! capacity it keeps completing close to its capacity instead of collapsing: the calls it admits
//! are the calls it can serve before callers retransmit (T1 = 500 ms).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How often admission re-decides its rate.
const WINDOW: Duration = Duration::from_millis(100);
/// Admitted rate under load, as a share of what the sessions served in the last window.
const DECREASE: f64 = 0.9;
/// The same above the configured lag threshold (a backlog to drain).
const DECREASE_HARD: f64 = 0.7;
/// Growth of the limit per window once the lag is back under `low`.
const INCREASE: f64 = 1.1;
/// A limit this many times the offered rate is lifted.
const LIFT: f64 = 2.0;
/// Never admit fewer new calls per second than this while limited.
const FLOOR: f64 = 20.0;
/// Tokens the bucket may hold, in seconds of the limit.
const BURST: f64 = 0.02;

/// The thread-safe guard the dispatcher and the call sessions share.
pub struct OverloadGuard {
    epoch: Instant,
    /// Sum and count of the lags observed in the current window, in nanoseconds.
    lag_sum: AtomicU64,
    lag_count: AtomicU64,
    /// New calls sessions started, ever.
    served: AtomicU64,
    admission: Mutex<Admission>,
}

impl OverloadGuard {
    /// `threshold` (`sip.overload_lag_ms`): the queue lag at which admission cuts hard; it starts
    /// cutting at a quarter of it.
    pub fn new(threshold: Duration) -> Self {
        let high = u64::try_from(threshold.as_nanos()).unwrap_or(u64::MAX);
        OverloadGuard {
            epoch: Instant::now(),
            lag_sum: AtomicU64::new(0),
            lag_count: AtomicU64::new(0),
            served: AtomicU64::new(0),
            admission: Mutex::new(Admission::new(high / 4, high)),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records the lag one request saw between the receive thread and its handler.
    pub fn observe(&self, received_at: Instant) {
        let lag = Instant::now().saturating_duration_since(received_at);
        let lag = u64::try_from(lag.as_nanos()).unwrap_or(u64::MAX);
        self.lag_sum.fetch_add(lag, Ordering::Relaxed);
        self.lag_count.fetch_add(1, Ordering::Relaxed);
    }

    /// A session started a new call that waited since `received_at`.
    pub fn observe_new_call(&self, received_at: Instant) {
        self.served.fetch_add(1, Ordering::Relaxed);
        self.observe(received_at);
    }

    /// Whether a new INVITE arriving now may start a call; counts it as offered either way.
    pub fn admit(&self) -> bool {
        let now = self.nanos(Instant::now());
        let mut admission = self.admission.lock().unwrap_or_else(|p| p.into_inner());
        if admission.window_due(now) {
            let sum = self.lag_sum.swap(0, Ordering::Relaxed);
            let count = self.lag_count.swap(0, Ordering::Relaxed);
            let lag = sum.checked_div(count).unwrap_or(0);
            admission.close_window(now, lag, self.served.load(Ordering::Relaxed));
        }
        admission.admit(now)
    }

    /// The admitted rate in force (calls/s), `None` when unlimited.
    pub fn limit(&self) -> Option<f64> {
        self.admission
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .limit
    }
}

/// The admission decision as a pure state machine over nanosecond timestamps.
#[derive(Debug)]
pub struct Admission {
    low: u64,
    high: u64,
    window_start: u64,
    offered: u64,
    served_at_start: u64,
    /// New calls per second admitted; `None`: every INVITE is admitted.
    limit: Option<f64>,
    tokens: f64,
    refilled_at: u64,
}

impl Admission {
    /// Starts cutting at an average lag of `low` ns, hard above `high` ns.
    pub fn new(low: u64, high: u64) -> Admission {
        Admission {
            low,
            high,
            window_start: 0,
            offered: 0,
            served_at_start: 0,
            limit: None,
            tokens: 0.0,
            refilled_at: 0,
        }
    }

    pub fn window_due(&self, now: u64) -> bool {
        now.saturating_sub(self.window_start) >= WINDOW.as_nanos() as u64
    }

    /// Ends the window at `now` with its average `lag` and the sessions' `served` count.
    pub fn close_window(&mut self, now: u64, lag: u64, served: u64) {
        let secs = now.saturating_sub(self.window_start) as f64 / 1e9;
        let served_rate = served.saturating_sub(self.served_at_start) as f64 / secs.max(1e-3);
        let offered_rate = self.offered as f64 / secs.max(1e-3);
        if lag > self.low {
            let factor = if lag > self.high {
                DECREASE_HARD
            } else {
                DECREASE
            };
            let cut = (served_rate * factor).max(FLOOR);
            let limit = self
                .limit
                .map_or(cut, |l| l.min(cut.max(l * DECREASE_HARD)));
            if self.limit.is_none() {
                self.tokens = limit * BURST;
                self.refilled_at = now;
            }
            self.limit = Some(limit);
        } else if let Some(limit) = self.limit {
            let raised = limit * INCREASE;
            self.limit = (raised < offered_rate * LIFT).then_some(raised);
        }
        self.window_start = now;
        self.offered = 0;
        self.served_at_start = served;
    }

    /// Whether one INVITE arriving at `now` is admitted.
    pub fn admit(&mut self, now: u64) -> bool {
        self.offered += 1;
        let Some(limit) = self.limit else {
            return true;
        };
        let elapsed = now.saturating_sub(self.refilled_at) as f64 / 1e9;
        self.refilled_at = now;
        self.tokens = (self.tokens + elapsed * limit).min((limit * BURST).max(1.0));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Offers `rate`/s for one window starting at `start`; returns how many were admitted.
    fn offer(a: &mut Admission, start: u64, rate: u64) -> u64 {
        let n = rate / 10;
        (0..n).filter(|i| a.admit(start + i * 100 * MS / n)).count() as u64
    }

    #[test]
    fn without_lag_every_invite_is_admitted() {
        let mut a = Admission::new(50 * MS, 200 * MS);
        let mut served = 0;
        for w in 1..20u64 {
            assert_eq!(offer(&mut a, w * 100 * MS, 30_000), 3_000);
            served += 3_000;
            a.close_window((w + 1) * 100 * MS, MS, served);
        }
        assert_eq!(a.limit, None);
    }

    /// A simulated engine that serves `capacity`/s and queues the rest: offered 2× its
    /// capacity, admission settles near the capacity (not far under it: no collapse), and the
    /// queue lag stays bounded.
    #[test]
    fn at_twice_the_capacity_admission_tracks_the_capacity() {
        let capacity = 10_000.0;
        let mut a = Admission::new(50 * MS, 200 * MS);
        let (mut served, mut backlog) = (0u64, 0.0f64);
        let mut admitted_late = Vec::new();
        let mut max_lag = 0.0f64;
        for w in 1..100u64 {
            let admitted = offer(&mut a, w * 100 * MS, 20_000) as f64;
            backlog += admitted;
            let done = backlog.min(capacity / 10.0);
            backlog -= done;
            served += done as u64;
            let lag_ms = backlog / capacity * 1000.0;
            if w > 30 {
                admitted_late.push(admitted * 10.0);
                max_lag = max_lag.max(lag_ms);
            }
            a.close_window((w + 1) * 100 * MS, (lag_ms * MS as f64) as u64, served);
        }
        let mean = admitted_late.iter().sum::<f64>() / admitted_late.len() as f64;
        assert!(
            mean > 0.9 * capacity && mean < 1.05 * capacity,
            "admitted {mean:.0}/s at capacity {capacity}/s"
        );
        assert!(max_lag < 200.0, "lag reached {max_lag:.0} ms");
    }

    #[test]
    fn the_limit_is_lifted_once_the_load_is_gone() {
        let mut a = Admission::new(50 * MS, 200 * MS);
        offer(&mut a, 100 * MS, 20_000);
        a.close_window(200 * MS, 300 * MS, 1_000);
        assert!(a.limit.is_some());
        let mut served = 1_000;
        for w in 2..40u64 {
            let admitted = offer(&mut a, w * 100 * MS, 5_000);
            served += admitted;
            a.close_window((w + 1) * 100 * MS, MS, served);
        }
        assert_eq!(a.limit, None, "a light load is not limited for ever");
    }
}
