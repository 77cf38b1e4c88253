//! The writer thread: owns the store's write side, takes what is queued (up to [`MAX_BATCH`]
//! writes), applies it as one transaction and then acknowledges the writes that asked. Idle, it
//! commits a write at once; under load it starts at most one commit per [`COMMIT_INTERVAL`], so
//! batches grow and the pages every commit rewrites (b-tree tails, WAL frames) are paid once per
//! interval rather than once per few calls. Must not call back into the engine. Runs watched
//! (see `storage`): a panic here ends the process, a failed commit does not.

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

pub(super) fn run(store: &dyn Store, rx: &mut mpsc::Receiver<Queued>) {
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
        let ok = commit(store, &mut writes);
        for ack in acks.drain(..) {
            let _ = ack.send(ok);
        }
        writes.clear();
    }
    tracing::debug!("storage writer stopped");
}

/// Commits the batch as one transaction, its writes to the same row folded into one first
/// (`coalesce`); the counters count the writes as queued.
fn commit(store: &dyn Store, writes: &mut Vec<Write>) -> bool {
    let queued = writes.len();
    if queued == 0 {
        return true;
    }
    let started = Instant::now();
    super::coalesce::coalesce(writes);
    let result = store.apply(writes);
    crate::metrics::storage_batch(queued, started.elapsed(), result.is_ok());
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, writes = queued, "storage: batch not committed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Value;

    use crate::health::{Component, Health, PartState};
    use crate::storage::{
        FlowRow, FlowSource, Recovery, Storage, StorageError, Store, Stored, Write, WriteKind,
    };

    /// A backend with a bug: applying a batch panics.
    struct PanicsOnApply;

    impl Store for PanicsOnApply {
        fn apply(&self, _: &[Write]) -> Result<(), StorageError> {
            panic!("test: the backend panics");
        }
        fn recover(&self, _: &str, _: &str) -> Result<Recovery, StorageError> {
            Ok(Recovery::default())
        }
        fn replace_file_flows(&self, _: &[FlowRow]) -> Result<(), StorageError> {
            Ok(())
        }
        fn flows(&self, _: FlowSource) -> Result<Vec<FlowRow>, StorageError> {
            Ok(Vec::new())
        }
        fn activeflows(
            &self,
            _: Option<&str>,
            _: Option<u64>,
            _: usize,
        ) -> Result<Vec<Stored>, StorageError> {
            Ok(Vec::new())
        }
        fn activeflow(&self, _: &str) -> Result<Option<Stored>, StorageError> {
            Ok(None)
        }
        fn activeflow_variables(&self, _: &str) -> Result<Option<Value>, StorageError> {
            Ok(None)
        }
        fn calls(
            &self,
            _: Option<&str>,
            _: Option<u64>,
            _: usize,
        ) -> Result<Vec<Stored>, StorageError> {
            Ok(Vec::new())
        }
        fn call(&self, _: &str) -> Result<Option<Stored>, StorageError> {
            Ok(None)
        }
    }

    /// A writer that dies is reported down and fatal (the process must exit), the write in
    /// its batch reports not committed, and later writes fail at once instead of hanging.
    #[test]
    fn a_dead_writer_is_fatal_and_writes_fail_fast() {
        let health = Health::new();
        let (storage, _) = Storage::start(Arc::new(PanicsOnApply), &health).unwrap();
        assert_eq!(health.state(Component::StorageWriter), PartState::Up);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let limit = std::time::Duration::from_secs(10);
        let committed = rt.block_on(async {
            tokio::time::timeout(
                limit,
                storage.write_confirmed(Write::Barrier, WriteKind::Other),
            )
            .await
        });
        assert_eq!(committed, Ok(false));
        let fatal = rt.block_on(async { tokio::time::timeout(limit, health.fatal()).await });
        assert_eq!(fatal, Ok(Component::StorageWriter));
        assert_eq!(health.down(), vec![Component::StorageWriter]);
        let later = rt.block_on(async { tokio::time::timeout(limit, storage.flush()).await });
        assert_eq!(later, Ok(false));
    }
}
