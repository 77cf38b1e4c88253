//! The writer thread: owns the store's write side, takes what is queued when it is free (up to
//! [`MAX_BATCH`] writes), applies it as one transaction and then acknowledges the writes that
//! asked. It never waits to fill a batch: under load batches grow by themselves, idle it commits
//! each write at once. Must not call back into the engine.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::model::{Store, Write};

/// Most writes in one transaction (bounds a transaction's size and an acknowledgement's wait).
pub(super) const MAX_BATCH: usize = 4096;

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
    while !stop {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
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
