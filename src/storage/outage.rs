//! The writer's view of a storage outage (a commit failing for a transient cause: disk full,
//! busy, I/O error): how long to wait before the next attempt (a back-off doubling from
//! [`FIRST_RETRY`] to [`MAX_RETRY`]) and when to log, so a disk that stays full for an hour
//! logs a line per [`LOG_EVERY`], not one per attempt. Sans-IO: the caller passes the clock.

use std::time::{Duration, Instant};

/// The wait after the first failed commit.
pub(super) const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest wait between attempts: writing resumes at most this long after the cause goes.
pub(super) const MAX_RETRY: Duration = Duration::from_secs(2);
/// At most one log line per this interval while the outage lasts.
pub(super) const LOG_EVERY: Duration = Duration::from_secs(10);

/// A run of failed commits, from the first failure until a commit succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Outage {
    since: Instant,
    /// Failed commits so far.
    attempts: u64,
    next_wait: Duration,
    last_log: Instant,
}

/// What the writer does after a failed commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Retry {
    /// Sleep this long, then try again (with whatever was queued meanwhile).
    pub(super) wait: Duration,
    /// Log this failure (the first, then one per [`LOG_EVERY`]).
    pub(super) log: bool,
}

impl Outage {
    /// The first failed commit, at `now`.
    pub(super) fn begin(now: Instant) -> (Outage, Retry) {
        let outage = Outage {
            since: now,
            attempts: 1,
            next_wait: FIRST_RETRY,
            last_log: now,
        };
        let retry = Retry {
            wait: FIRST_RETRY,
            log: true,
        };
        (outage, retry)
    }

    /// Another failed commit, at `now`.
    pub(super) fn failed(&mut self, now: Instant) -> Retry {
        self.attempts += 1;
        self.next_wait = MAX_RETRY.min(self.next_wait * 2);
        let log = now.duration_since(self.last_log) >= LOG_EVERY;
        if log {
            self.last_log = now;
        }
        Retry {
            wait: self.next_wait,
            log,
        }
    }

    pub(super) fn attempts(&self) -> u64 {
        self.attempts
    }

    /// How long it has lasted at `now`.
    pub(super) fn lasted(&self, now: Instant) -> Duration {
        now.duration_since(self.since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits double up to the cap; the first failure logs, then one line per `LOG_EVERY`
    /// however often commits fail.
    #[test]
    fn backs_off_and_logs_once_per_interval() {
        let t0 = Instant::now();
        let (mut outage, first) = Outage::begin(t0);
        assert_eq!(
            first,
            Retry {
                wait: FIRST_RETRY,
                log: true
            }
        );
        let (mut now, mut wait) = (t0, first.wait);
        let (mut waits, mut logged) = (Vec::new(), 0);
        while now.duration_since(t0) < Duration::from_secs(60) {
            now += wait;
            let retry = outage.failed(now);
            waits.push(retry.wait.as_millis());
            logged += usize::from(retry.log);
            wait = retry.wait;
        }
        assert_eq!(waits[..6], [200, 400, 800, 1600, 2000, 2000]);
        assert!((5..=6).contains(&logged), "{logged} lines in a minute");
        assert_eq!(outage.attempts(), waits.len() as u64 + 1);
        assert!(outage.lasted(now) >= Duration::from_secs(60));
    }
}
