//! Caps on the library's costly work, per engine: TTS processes (CPU) and prompt downloads
//! (sockets, memory). Over the cap a request waits for a slot, but only so long; then it fails
//! with [`AudioError::Busy`] (the `talk`/`play` action fails, counted) rather than queue
//! without bound behind a flood of distinct texts or URLs.

use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::AudioError;

/// Permits for one kind of work.
#[derive(Debug)]
pub(super) struct Slots {
    semaphore: Semaphore,
    limit: usize,
    /// What the work is, as `activeflow_outbound_refused_total{work}` and errors name it.
    work: &'static str,
}

impl Slots {
    pub(super) fn new(limit: usize, work: &'static str) -> Slots {
        let limit = limit.max(1);
        Slots {
            semaphore: Semaphore::new(limit),
            limit,
            work,
        }
    }

    /// A slot, waiting at most `wait` for one.
    pub(super) async fn take(&self, wait: Duration) -> Result<SemaphorePermit<'_>, AudioError> {
        match tokio::time::timeout(wait, self.semaphore.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            // Timed out (or closed, which never happens: the library owns the semaphore).
            _ => {
                crate::metrics::outbound_refused(self.work);
                Err(AudioError::Busy {
                    work: self.work,
                    limit: self.limit,
                    waited: wait,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn over_the_cap_waits_then_fails() {
        let slots = Slots::new(1, "tts");
        let held = slots.take(Duration::from_secs(1)).await.unwrap();
        let e = slots.take(Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(e, AudioError::Busy { limit: 1, .. }), "{e}");
        assert!(e.to_string().contains("tts"), "{e}");
        drop(held);
        assert!(slots.take(Duration::from_secs(1)).await.is_ok());
    }
}
