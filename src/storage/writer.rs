//! The writer thread: owns the store's write side, takes what is queued (up to [`MAX_BATCH`]
//! writes), applies it as one transaction and then acknowledges the writes that asked. Idle, it
//! commits a write at once; under load it starts at most one commit per [`COMMIT_INTERVAL`], so
//! batches grow and the pages every commit rewrites (b-tree tails, WAL frames) are paid once per
//! interval rather than once per few calls. Must not call back into the engine. Runs watched
//! (see `storage`): a panic here ends the process, a failed commit does not.
//!
//! A batch is never lost to one bad write or to a passing fault. When the whole batch fails
//! with an error of one write's own (a row over `storage.max_row_bytes`, a constraint), it is
//! applied again write by write (`Store::apply_each`): that write is left out, logged and
//! counted (`activeflow_storage_write_rejected_total`), the others commit. When it fails for a
//! transient cause (disk full, busy, I/O) it stays pending and is retried with a back-off
//! (`outage`), with what was queued meanwhile; `storage` is down in `/readyz` until a commit
//! succeeds. When the cluster has declared this node's run lost ([`StorageError::Fenced`],
//! PostgreSQL), the batch is dropped: its writes are acknowledged as not committed and counted as
//! rejected, logged (at most once per [`FENCED_LOG_EVERY`]), never retried (the cluster ended those
//! records `node_lost`; writing them would undo that). The node rejoins with a new run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::model::{RejectedPart, Store, Write};
use super::outage::{Outage, Retry};
use super::StorageError;
use crate::health::{Component, Health, PartState};

/// Most writes in one transaction (bounds a transaction's size and an acknowledgement's wait).
pub(super) const MAX_BATCH: usize = 4096;

/// Least time between the starts of two commits. A write waits at most this long for its
/// commit to start, so the loss window for running records stays well under 50 ms (see
/// `storage`); it is what the end of an activeflow waits for at most beyond its own commit.
/// Measured (docs/BENCHMARKS.md): committing as soon as free meant ~5 calls per commit at
/// 3,000 calls/s and ~47 KiB written per call.
pub(super) const COMMIT_INTERVAL: Duration = Duration::from_millis(10);

/// How long `Storage::close` waits for the writer to commit what is queued while commits fail
/// (and how long a writer whose handles are all gone retries), before the writes not committed
/// are given up (start-up recovery then ends their records with `engine_restart`).
pub(super) const CLOSE_RETRY: Duration = Duration::from_secs(5);

/// At most one log line per this interval while batches are fenced.
pub(super) const FENCED_LOG_EVERY: Duration = Duration::from_secs(10);

/// What the queue carries.
// Boxing `Write` would cost an allocation per write to save space on `Stop`, sent once.
#[allow(clippy::large_enum_variant)]
pub(super) enum Queued {
    Write {
        write: Write,
        /// Told `true` once the write is committed (`false` if it was rejected on its own, or
        /// given up at close).
        ack: Option<oneshot::Sender<bool>>,
    },
    /// Commit what came before, then end the thread. `Storage::close` waits for room to send
    /// it, so it comes after every write that was waiting for room (see `after_stop`).
    Stop,
}

/// What the writer shares with the `Storage` handle.
pub(super) struct Shared {
    pub(super) health: Health,
    /// Set by `Storage::close` once it has waited [`CLOSE_RETRY`] in vain (commits still
    /// failing): the writer gives up what is not committed at its next failed attempt. Never
    /// a reason to stop while commits succeed: only `Stop` is.
    pub(super) closing: AtomicBool,
    /// Set when a batch was refused as fenced; taken by `Storage::take_fenced` (the cluster
    /// membership then reads its lost mark and rejoins).
    pub(super) fenced: AtomicBool,
    /// Set with `storage` down when a batch was refused as fenced; cleared, `storage` up, by
    /// the next commit or a successful `Store::rejoin` (`watched`).
    pub(super) fenced_down: AtomicBool,
}

/// The row a write touches, to tell its acknowledgement whether it was the one rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WriteKey {
    Activeflow(u64),
    DeleteActiveflow(String),
    Call(u64),
    Flow(String),
    Other,
}

impl WriteKey {
    fn of(write: &Write) -> WriteKey {
        match write {
            Write::Activeflow { row, .. } => WriteKey::Activeflow(row.sequence),
            Write::DeleteActiveflow(id) => WriteKey::DeleteActiveflow(id.clone()),
            Write::Call(row) => WriteKey::Call(row.sequence),
            Write::Flow(row) => WriteKey::Flow(row.id.clone()),
            Write::DeleteFlow(id) => WriteKey::Flow(id.clone()),
            Write::Purge { .. } | Write::Barrier => WriteKey::Other,
        }
    }
}

/// The writes taken from the queue and not yet committed, with their acknowledgements.
#[derive(Default)]
struct Pending {
    writes: Vec<Write>,
    acks: Vec<(WriteKey, oneshot::Sender<bool>)>,
    /// Writes taken since the last commit, as queued: `writes` may hold fewer once a failed
    /// attempt has folded them (`coalesce`), and a retry adds what came meanwhile.
    queued: usize,
    /// `Stop` was taken: commit these and what is still on its way, then end.
    stop: bool,
}

impl Pending {
    fn take(&mut self, queued: Queued) {
        match queued {
            Queued::Write { write, ack } => {
                if let Some(ack) = ack {
                    self.acks.push((WriteKey::of(&write), ack));
                }
                self.writes.push(write);
                self.queued += 1;
            }
            Queued::Stop => self.stop = true,
        }
    }

    /// Takes what is queued until the batch is full (past `Stop` too: see `after_stop`).
    fn fill(&mut self, rx: &mut mpsc::Receiver<Queued>) {
        while self.writes.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(q) => self.take(q),
                Err(_) => break,
            }
        }
    }

    /// Tells every waiting write whether it is committed: all but the `rejected` rows.
    fn acknowledge(&mut self, rejected: &[WriteKey]) {
        for (key, ack) in self.acks.drain(..) {
            let _ = ack.send(!rejected.contains(&key));
        }
        self.writes.clear();
        self.queued = 0;
    }
}

pub(super) fn run(store: &dyn Store, rx: &mut mpsc::Receiver<Queued>, shared: &Shared) {
    let mut pending = Pending::default();
    let mut last_commit: Option<Instant> = None;
    let mut outage: Option<Outage> = None;
    let mut closing_since: Option<Instant> = None;
    let mut fenced_log: Option<Instant> = None;
    loop {
        if pending.writes.is_empty() && pending.acks.is_empty() {
            // Never "closing and the queue momentarily empty": a write granted room may not
            // be pushed yet, and stopping then would drop it (issue: ends lost at shutdown).
            let first = if pending.stop {
                after_stop(rx, shared)
            } else {
                rx.blocking_recv()
            };
            let Some(first) = first else {
                break;
            };
            // Under load, let the batch fill until the interval is up (the queue keeps taking
            // writes meanwhile); after an idle spell the first write commits at once.
            if let Some(wait) = last_commit.and_then(|t| COMMIT_INTERVAL.checked_sub(t.elapsed())) {
                std::thread::sleep(wait);
            }
            pending.take(first);
        }
        pending.fill(rx);
        last_commit = Some(Instant::now());
        match commit(store, &mut pending.writes, pending.queued) {
            Ok(rejected) => {
                pending.acknowledge(&rejected);
                if let Some(o) = outage.take() {
                    resumed(&o, &shared.health);
                } else if shared.fenced_down.swap(false, Ordering::SeqCst) {
                    shared.health.set(Component::Storage, PartState::Up);
                }
            }
            Err(StorageError::Fenced) => {
                shared
                    .fenced
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                let now = Instant::now();
                if fenced_log.is_none_or(|t| now.duration_since(t) >= FENCED_LOG_EVERY) {
                    fenced_log = Some(now);
                    tracing::error!(
                        writes = pending.writes.len(),
                        "storage: this node's run was declared lost by the cluster; its writes \
                         are dropped until it rejoins"
                    );
                }
                for _ in 0..pending.queued {
                    crate::metrics::storage_write_rejected();
                }
                let all: Vec<WriteKey> = pending.acks.iter().map(|(k, _)| k.clone()).collect();
                pending.acknowledge(&all);
                // Not an outage (nothing to retry), but nothing commits: `storage` is down
                // ("storage fenced") until the node rejoins.
                outage = None;
                if !shared.fenced_down.swap(true, Ordering::SeqCst) {
                    tracing::error!("storage fenced: storage is down until this node rejoins");
                }
                shared.health.set(Component::Storage, PartState::Down);
            }
            Err(e) => {
                let now = Instant::now();
                let retry = failed(&mut outage, &e, pending.writes.len(), now, &shared.health);
                if give_up(shared, rx, &mut closing_since, now) {
                    tracing::error!(error = %e, writes = pending.writes.len(),
                        "storage: closing with writes not committed; start-up recovery ends \
                         their records with engine_restart");
                    let all: Vec<WriteKey> = pending.acks.iter().map(|(k, _)| k.clone()).collect();
                    pending.acknowledge(&all);
                    break;
                }
                std::thread::sleep(retry.wait);
            }
        }
    }
    tracing::debug!("storage writer stopped");
}

/// A failed commit at `now`: starts or extends the outage (`storage` down at its start), logs
/// as the outage says, and tells how long to wait before the next attempt.
fn failed(
    outage: &mut Option<Outage>,
    error: &StorageError,
    writes: usize,
    now: Instant,
    health: &Health,
) -> Retry {
    let retry = match outage {
        Some(o) => o.failed(now),
        None => {
            let (o, retry) = Outage::begin(now);
            health.set(Component::Storage, PartState::Down);
            *outage = Some(o);
            retry
        }
    };
    if retry.log {
        let attempts = outage.as_ref().map_or(1, Outage::attempts);
        tracing::error!(error = %error, writes, attempts, retry_in = ?retry.wait,
            "storage: commit failed; the writes stay queued and are retried");
    }
    retry
}

/// After a failed commit: whether to give up the pending writes. `Storage::close` has waited
/// [`CLOSE_RETRY`] (`closing`), or every handle is gone and commits have failed that long.
fn give_up(
    shared: &Shared,
    rx: &mpsc::Receiver<Queued>,
    closing_since: &mut Option<Instant>,
    now: Instant,
) -> bool {
    shared.closing.load(Ordering::SeqCst)
        || (rx.is_closed() && now.duration_since(*closing_since.get_or_insert(now)) >= CLOSE_RETRY)
}

/// Once `Stop` is taken and committed up to: the next write still on its way, or `None` when
/// there is none. `close` sent `Stop` only once its turn for room came, after every write that
/// waited for room; but room is granted in turn and used (the write pushed) when its task
/// next runs, so such a write can land after `Stop`. The queue is settled when nothing is in
/// it and all its room is free (no room granted and not yet used). A task dropped with its
/// room (a runtime shutting down) frees it. Writes that keep coming after `Stop` are
/// committed too, until `close` gives up waiting (`closing`): then an empty queue ends it,
/// so a steady trickle cannot hold shutdown for ever.
fn after_stop(rx: &mut mpsc::Receiver<Queued>, shared: &Shared) -> Option<Queued> {
    loop {
        match rx.try_recv() {
            Ok(q) => return Some(q),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty)
                if rx.capacity() == rx.max_capacity() || shared.closing.load(Ordering::SeqCst) =>
            {
                return None;
            }
            Err(mpsc::error::TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// The end of an outage: logged once, `storage` up again.
fn resumed(outage: &Outage, health: &Health) {
    let lasted = outage.lasted(Instant::now());
    tracing::warn!(failed_commits = outage.attempts(), lasted = ?lasted,
        "storage: commits succeed again; the writes held back are committed");
    health.set(Component::Storage, PartState::Up);
}

/// Commits the batch as one transaction, its writes to the same row folded into one first
/// (`coalesce`). A write that fails on its own is left out (logged, counted, its row key
/// returned); a transient failure is the error. Counted: a failed attempt in
/// `activeflow_storage_write_errors_total`; on success, the `queued` writes (as queued, not as
/// folded) but those left out whole in `activeflow_storage_writes_total`.
fn commit(
    store: &dyn Store,
    writes: &mut Vec<Write>,
    queued: usize,
) -> Result<Vec<WriteKey>, StorageError> {
    if writes.is_empty() {
        return Ok(Vec::new());
    }
    let started = Instant::now();
    super::coalesce::coalesce(writes);
    let result = match store.apply(writes) {
        // Refused whole, and row by row would be refused again.
        Err(StorageError::Fenced) => Err(StorageError::Fenced),
        Err(e) if !e.is_transient() => {
            tracing::warn!(error = %e, writes = writes.len(),
                "storage: batch refused; applying its writes one by one");
            store.apply_each(writes).map(|rejected| {
                rejected
                    .into_iter()
                    .filter_map(|r| {
                        let write = writes.get(r.index)?;
                        rejected_row(write, r.part, &r.error);
                        // Only a write left out whole is not committed; a part left out is
                        // logged and counted, its record is stored.
                        (r.part == RejectedPart::Whole).then(|| WriteKey::of(write))
                    })
                    .collect()
            })
        }
        other => other.map(|()| Vec::new()),
    };
    // A write left out whole counts as one even if it folded several (they are one row).
    let committed = result
        .as_ref()
        .map_or(0, |r| queued.saturating_sub(r.len()));
    crate::metrics::storage_batch(committed, started.elapsed(), result.is_ok());
    result
}

/// Logs and counts a row left out of its batch, naming its record and what of it was lost.
fn rejected_row(write: &Write, part: RejectedPart, error: &StorageError) {
    crate::metrics::storage_write_rejected();
    let what = "storage: row rejected on its own and dropped; the rest of its batch committed";
    match write {
        Write::Activeflow { row, .. } => {
            let dropped = match part {
                RejectedPart::Whole => "the whole write".to_owned(),
                RejectedPart::Variables => "its final variables (stored without)".to_owned(),
                RejectedPart::Action(i) => format!("executed action {i}"),
            };
            tracing::error!(activeflow_id = %row.id, status = row.status, dropped,
                error = %error, "{what}");
        }
        Write::Call(row) => tracing::error!(call_id = %row.id, error = %error, "{what}"),
        Write::Flow(row) => tracing::error!(flow_id = %row.id, error = %error, "{what}"),
        Write::DeleteActiveflow(id) => {
            tracing::error!(activeflow_id = %id, error = %error, "{what}");
        }
        Write::DeleteFlow(id) => tracing::error!(flow_id = %id, error = %error, "{what}"),
        Write::Purge { .. } | Write::Barrier => tracing::error!(error = %error, "{what}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Value;

    use crate::health::{Component, Health, PartState};
    use crate::storage::{
        EndedCall, EndedCursor, EndedRange, FlowRow, FlowSource, Recovery, Storage, StorageError,
        Store, Stored, Write, WriteKind,
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
        fn ended_calls(
            &self,
            _: &EndedRange,
            _: Option<&EndedCursor>,
            _: usize,
        ) -> Result<Vec<EndedCall>, StorageError> {
            Ok(Vec::new())
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
