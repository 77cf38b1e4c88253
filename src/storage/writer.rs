//! The writer thread: owns the store's write side, takes what is queued (up to [`MAX_BATCH`]
//! writes), applies it as one transaction and then acknowledges the writes that asked. Idle, it
//! commits a write at once; under load it starts at most one commit per [`COMMIT_INTERVAL`], so
//! batches grow and the pages every commit rewrites (b-tree tails, WAL frames) are paid once per
//! interval rather than once per few calls. Must not call back into the engine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::model::{Store, Write};

/// Most writes in one transaction (bounds a transaction's size and an acknowledgement's wait).
pub(super) const MAX_BATCH: usize = 4096;

/// Least time between the starts of two commits. A write waits at most this long for its
/// commit to start, so the loss window for running records stays well under 50 ms (see
/// `storage`); it is what the end of an activeflow waits for at most beyond its own commit.
/// Measured (docs/BENCHMARKS.md): committing as soon as free meant ~5 calls per commit at
/// 3,000 calls/s and ~47 KiB written per call.
pub(super) const COMMIT_INTERVAL: Duration = Duration::from_millis(10);

/// What the queue carries.
// Boxing `Write` would cost an allocation per write to save space on `Stop`, sent once.
#[allow(clippy::large_enum_variant)]
pub(super) enum Queued {
    Write {
        write: Write,
        /// Told `true` once the write is committed (`false` if its batch failed).
        ack: Option<oneshot::Sender<bool>>,
    },
    /// Commit what came before, then end the thread.
    Stop,
}

pub(super) fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Queued>) {
    let mut writes: Vec<Write> = Vec::with_capacity(MAX_BATCH);
    let mut acks: Vec<oneshot::Sender<bool>> = Vec::new();
    let mut stop = false;
    let mut last_commit: Option<Instant> = None;
    while !stop {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        // Under load, let the batch fill until the interval is up (the queue keeps taking
        // writes meanwhile); after an idle spell the first write commits at once.
        if let Some(wait) = last_commit.and_then(|t| COMMIT_INTERVAL.checked_sub(t.elapsed())) {
            std::thread::sleep(wait);
        }
        let mut next = Some(first);
        while let Some(q) = next.take() {
            match q {
                Queued::Write { write, ack } => {
                    writes.push(write);
                    acks.extend(ack);
                }
                Queued::Stop => {
                    stop = true;
                    break;
                }
            }
            if writes.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        last_commit = Some(Instant::now());
        let ok = commit(store.as_ref(), &writes);
        for ack in acks.drain(..) {
            let _ = ack.send(ok);
        }
        writes.clear();
    }
    tracing::debug!("storage writer stopped");
}

fn commit(store: &dyn Store, writes: &[Write]) -> bool {
    if writes.is_empty() {
        return true;
    }
    let started = Instant::now();
    let result = store.apply(writes);
    crate::metrics::storage_batch(writes.len(), started.elapsed(), result.is_ok());
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, writes = writes.len(), "storage: batch not committed");
            false
        }
    }
}
