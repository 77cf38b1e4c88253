//! Rate limit for log lines on per-message receive paths: a peer that floods malformed input
//! must not flood the log too. At most `per_second` lines pass in each one-second window; the
//! first line of a later window carries how many were suppressed since. Shared by UDP and TCP.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One second of log budget.
const WINDOW: Duration = Duration::from_secs(1);

/// The receive path's shared budget for per-message log lines.
pub static RECEIVE_LOG: LogLimit = LogLimit::new(10);

/// A fixed-window counter. Cheap enough for error paths (one uncontended mutex).
#[derive(Debug)]
pub struct LogLimit {
    per_second: u32,
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    start: Option<Instant>,
    emitted: u32,
    suppressed: u64,
}

impl LogLimit {
    pub const fn new(per_second: u32) -> LogLimit {
        LogLimit {
            per_second,
            state: Mutex::new(Window {
                start: None,
                emitted: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(suppressed)` when a line may be logged now (`suppressed` lines were dropped since
    /// the last one that passed); `None` when this line must be dropped.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    /// [`LogLimit::allow`] at a given instant (for tests).
    pub fn allow_at(&self, now: Instant) -> Option<u64> {
        // A poisoned lock only means another thread panicked mid-update: the counts still work.
        let mut w = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let expired = w
            .start
            .is_none_or(|s| now.saturating_duration_since(s) >= WINDOW);
        if expired {
            w.start = Some(now);
            w.emitted = 0;
        }
        if w.emitted < self.per_second {
            w.emitted += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed = w.suppressed.saturating_add(1);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_n_per_second_then_reports_the_suppressed() {
        let limit = LogLimit::new(3);
        let t0 = Instant::now();
        let passed: Vec<_> = (0..10).map(|_| limit.allow_at(t0)).collect();
        assert_eq!(passed[..3], [Some(0), Some(0), Some(0)]);
        assert!(passed[3..].iter().all(Option::is_none));
        let t1 = t0 + Duration::from_millis(999);
        assert_eq!(limit.allow_at(t1), None);
        let t2 = t0 + WINDOW;
        assert_eq!(limit.allow_at(t2), Some(8), "7 + 1 suppressed before");
        assert_eq!(limit.allow_at(t2), Some(0));
    }
}
