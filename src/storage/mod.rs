//! Durable history (issue 7): flows created over the API, every activeflow with its executed
//! actions, and CDR-like call rows, behind the [`Store`] trait; [`SqliteStore`] (embedded SQLite,
//! WAL) is the default backend. The in-memory registries stay the live view; this is the record.
//! Depends on nothing in the crate but `clock` and `metrics`: layers hand it plain rows.
//!
//! Writes never block an actor's thread. They go through one bounded queue
//! ([`QUEUE_CAPACITY`]) to a writer thread that commits whatever is queued as one transaction,
//! at once when idle and at most once per 10 ms under load (see `writer`). Loss window on a
//! process crash (kill -9):
//!
//! - **Ended activeflows: none.** The activeflow actor sends its `ended` write, waiting
//!   *asynchronously* for queue space if the queue is full (never dropped), and only marks the
//!   record ended in memory (API, metrics, `running` count) once the writer has committed it.
//!   Anything reported ended is on disk; a crash before that commit leaves it `running` in the
//!   store, and start-up recovery ends it with `engine_restart`, its executed actions kept.
//!   The one exception is a storage outage (below): after 5 s the end is shown anyway, and
//!   its write stays queued until storage recovers.
//! - **Running activeflows: the writes not yet committed** — those queued or in the commit in
//!   progress: at most the writer's 10 ms batching interval plus one commit
//!   (`activeflow_storage_batch_seconds` shows commit times; the target for the whole is under
//!   50 ms). When the queue is full a running update is not queued: it counts in
//!   `activeflow_storage_queue_full_total{kind="running"}` and its actions go with the activeflow's
//!   next write (each write carries every action not yet handed over), so nothing is skipped, only
//!   delayed.
//! - **Calls**: progress writes (ringing, answered) are skipped when the queue is full (the
//!   next write carries the whole row); the `ended` write waits for space on a task, never
//!   dropped. A call not yet committed as ended when the process dies is ended at recovery.
//! - **Flows created, replaced or deleted over the API**: committed before the API answers
//!   (during an outage, the request waits for the commit).
//!
//! The writer thread is watched (`health`): if it dies (a panic in a backend), `/readyz`
//! answers 503 naming `storage_writer` and the process drains and exits non-zero rather than
//! restart it. A writer that died mid-batch leaves the guarantees above unknowable (the batch's
//! acknowledgements are lost, ends may already be shown), while a restarted process keeps them:
//! start-up recovery ends what was left `running` with `engine_restart`.
//!
//! A batch that fails to commit is no death (see `writer`). A row that fails on its own (over
//! `storage.max_row_bytes`, a constraint) is left out, logged and counted, and the rest of its
//! batch commits; an activeflow's header too big with its final variables is stored without
//! them, so its end is kept. A passing cause (disk full, I/O error, busy) is an outage: `storage` is down in
//! `/readyz`, the batch stays pending and is retried with a back-off (up to 2 s apart), calls
//! go on, and the queue fills as above until a commit succeeds. Only a close during an outage
//! gives writes up (after 5 s; recovery at the next start ends what was left running).
//!
//! One process per database: the store holds an exclusive lock on `<path>.lock` (the path
//! canonicalized: a symlink or another spelling of the same file takes the same lock), and a
//! second engine on the same file refuses to start (see `sqlite::lock`).
//!
//! `synchronous = NORMAL` in WAL mode: a committed transaction survives the process dying; an
//! OS crash or power cut may lose the last transactions since the previous checkpoint.
//!
//! **PostgreSQL** (`storage.backend = "postgres"`, [`PgStore`], issue 20): the same writer,
//! batches, loss windows and row-by-row fallback; a commit is as durable as the server makes it
//! (`synchronous_commit = on` by default: survives a server crash too). A lost connection, a
//! server shutting down or out of connections, or a call with no answer within 10 s
//! (`postgres::CALL_TIMEOUT`: a half-open connection) is an outage as above. Many processes
//! share one database (a cluster): each writes as its node (`node_id`), recovery ends only its
//! own node's records, and once the cluster declares a node's run lost its batches are refused
//! ([`StorageError::Fenced`]) and dropped, counted as rejected (see `writer`), with `storage`
//! down ("storage fenced") until the node rejoins. One process per node id per database: a
//! session advisory lock on the node id, and a second process refuses to start
//! ([`StorageError::NodeLocked`]). Records are keyed by id (two nodes may share a sequence).

mod coalesce;
#[cfg(test)]
mod conformance;
mod error;
mod model;
mod outage;
pub mod postgres;
mod record_json;
pub mod sequence;
pub mod sqlite;
mod watched;
mod writer;

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::health::{spawn_watched, Component, Ended, Health, OnDeath, PartState};

pub use error::StorageError;
pub use model::{
    ActionRow, ActiveflowRow, CallRow, EndedCall, EndedCursor, EndedRange, FlowRow, FlowSource,
    NodeLoss, Recovery, Rejected, RejectedPart, Store, Stored, Write,
};
pub use postgres::{PgOptions, PgStore};
pub use sequence::Sequences;
pub use sqlite::{SqliteOptions, SqliteStore};
use writer::{Queued, Shared};

/// Writes the queue holds before a write finds it full (about 3 s of a 3,000 calls/s load).
pub const QUEUE_CAPACITY: usize = 65_536;
/// How often ended records older than `storage.retention_days` are purged.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Which path a write takes, for `activeflow_storage_queue_full_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// A running activeflow's progress: deferred to its next write when the queue is full.
    Running,
    /// An activeflow's end: waits for space, never dropped.
    Ended,
    /// A call's row: progress skipped when full, the end waits for space.
    Call,
    /// A flow change over the API: waits for space and for the commit.
    Flow,
    /// Retention purges and flush barriers.
    Other,
}

impl WriteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteKind::Running => "running",
            WriteKind::Ended => "ended",
            WriteKind::Call => "call",
            WriteKind::Flow => "flow",
            WriteKind::Other => "other",
        }
    }
}

impl Inner {
    /// Queues `queued`; when the queue is full (counted), a task waits for space (or, outside
    /// a runtime, this thread). Nothing is dropped unless the writer is gone.
    fn enqueue(&self, queued: Queued, kind: WriteKind) {
        match self.tx.try_send(queued) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(queued)) => {
                crate::metrics::storage_queue_full(kind.as_str());
                let tx = self.tx.clone();
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => {
                        rt.spawn(async move {
                            let _ = tx.send(queued).await;
                        });
                    }
                    Err(_) => {
                        let _ = tx.blocking_send(queued);
                    }
                }
            }
        }
    }
}

/// The handle every layer holds: cheap to clone. A disabled handle (`storage.path = ""`)
/// accepts every write and keeps nothing.
#[derive(Clone, Default)]
pub struct Storage {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    tx: mpsc::Sender<Queued>,
    store: Arc<dyn Store>,
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Storage {
    /// No persistence: writes are accepted and dropped, reads find nothing.
    pub fn disabled() -> Storage {
        Storage { inner: None }
    }

    /// Opens the SQLite database at `path`, runs the migrations and start-up recovery (records
    /// a dead process left running are ended with `engine_restart`), and starts the writer,
    /// watched as `storage_writer` in `health` (its death is fatal).
    /// Refused with [`StorageError::Locked`] while another process has the database open.
    pub fn open_sqlite(
        path: &Path,
        options: SqliteOptions,
        health: &Health,
    ) -> Result<(Storage, Recovery), StorageError> {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_with(path, options)?);
        Self::start(store, health)
    }

    /// Connects to the PostgreSQL database at `url` as run `incarnation` of `node_id` ("" for a
    /// single node), migrates it, recovers this node's records and starts the writer (as
    /// [`Storage::open_sqlite`]).
    pub fn open_postgres(
        url: &str,
        options: PgOptions,
        node_id: &str,
        incarnation: &str,
        health: &Health,
    ) -> Result<(Storage, Recovery), StorageError> {
        let store: Arc<dyn Store> = Arc::new(PgStore::open(url, options, node_id, incarnation)?);
        Self::start(store, health)
    }

    /// Recovers `store` and starts its writer thread, watched in `health` (the thread as
    /// `storage_writer`, its commits as `storage`: down while they fail).
    pub fn start(
        store: Arc<dyn Store>,
        health: &Health,
    ) -> Result<(Storage, Recovery), StorageError> {
        let recovery = store.recover("engine_restart", &crate::clock::timestamp())?;
        let (tx, mut rx) = mpsc::channel(QUEUE_CAPACITY);
        let writer_store = store.clone();
        let shared = Arc::new(Shared {
            health: health.clone(),
            closing: AtomicBool::new(false),
            fenced: AtomicBool::new(false),
            fenced_down: AtomicBool::new(false),
        });
        let store: Arc<dyn Store> = Arc::new(watched::Watched {
            store,
            shared: shared.clone(),
        });
        let writer_shared = shared.clone();
        health.set(Component::Storage, PartState::Up);
        let component = Component::StorageWriter;
        let body = move || {
            writer::run(writer_store.as_ref(), &mut rx, &writer_shared);
            // It returns on `Stop` or once every handle is gone: both asked for.
            Ended::AsAsked
        };
        let thread = spawn_watched(
            "storage-writer",
            component,
            OnDeath::Exit,
            health.clone(),
            body,
        )
        .map_err(|e| StorageError::Open {
            path: "storage writer thread".into(),
            source: Box::new(e),
        })?;
        let inner = Inner {
            tx,
            store,
            shared,
            thread: Mutex::new(Some(thread)),
        };
        Ok((
            Storage {
                inner: Some(Arc::new(inner)),
            },
            recovery,
        ))
    }

    /// True once after the store refused a batch because this node's run was declared lost
    /// (cluster, PostgreSQL): the membership then checks its lost mark and rejoins.
    pub fn take_fenced(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| i.shared.fenced.swap(false, Ordering::Relaxed))
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The store, for reads (run them off the event loop: they touch the disk).
    pub fn store(&self) -> Option<Arc<dyn Store>> {
        self.inner.as_ref().map(|i| i.store.clone())
    }

    /// Queues `write` if there is room; false (counted) when the queue is full or the writer
    /// is gone. Never waits.
    pub fn try_write(&self, write: Write, kind: WriteKind) -> bool {
        let Some(inner) = &self.inner else {
            return true;
        };
        match inner.tx.try_send(Queued::Write { write, ack: None }) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                crate::metrics::storage_queue_full(kind.as_str());
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues `write`, never dropping it: when the queue is full a task waits for space (the
    /// caller's thread does not). Must run inside a tokio runtime when the queue is full.
    pub fn write_eventually(&self, write: Write, kind: WriteKind) {
        if let Some(inner) = &self.inner {
            inner.enqueue(Queued::Write { write, ack: None }, kind);
        }
    }

    /// Queues `write` at once (waiting for space on a task, as [`Storage::write_eventually`])
    /// and returns a future that resolves once it is committed: true, or false if it was
    /// rejected on its own or the writer is gone. The write stays queued if the future is
    /// dropped (an end whose wait timed out is still committed when storage recovers).
    /// Disabled storage answers true at once.
    pub fn write_confirmed(
        &self,
        write: Write,
        kind: WriteKind,
    ) -> impl Future<Output = bool> + Send + 'static {
        let done = self.inner.as_ref().map(|inner| {
            let (ack, done) = oneshot::channel();
            let ack = Some(ack);
            inner.enqueue(Queued::Write { write, ack }, kind);
            done
        });
        async move {
            match done {
                None => true,
                Some(done) => done.await.unwrap_or(false),
            }
        }
    }

    /// Resolves once everything queued before it is committed.
    pub async fn flush(&self) -> bool {
        self.write_confirmed(Write::Barrier, WriteKind::Other).await
    }

    /// Commits what is queued, the writes waiting for room included, and stops the writer
    /// thread (at the end of shutdown). While commits fail (a full disk), it gives up after
    /// the writer's `CLOSE_RETRY`: start-up recovery then ends what was left running.
    pub async fn close(&self) {
        let Some(inner) = &self.inner else {
            return;
        };
        let deadline = tokio::time::Instant::now() + writer::CLOSE_RETRY;
        // Room is granted in turn, so `Stop` waits behind every write parked on a full queue
        // and the writer meets it after them (see `writer::after_stop`).
        let stop = inner.tx.send(Queued::Stop);
        tokio::pin!(stop);
        let sent = tokio::time::timeout_at(deadline, stop.as_mut())
            .await
            .is_ok();
        let thread = inner
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(t) = thread {
            let mut joined = tokio::task::spawn_blocking(move || t.join());
            if tokio::time::timeout_at(deadline, &mut joined)
                .await
                .is_err()
            {
                // Not done in time, commits failing: the writer gives up at its next failed
                // attempt. Should they succeed again, `Stop` keeps its place and ends it.
                inner.shared.closing.store(true, Ordering::SeqCst);
                let stop = async {
                    if !sent {
                        let _ = stop.await;
                    }
                };
                let _ = tokio::join!(joined, stop);
            }
        }
        inner.shared.health.set(Component::Storage, PartState::Off);
    }

    /// Purges ended records older than `retention_days` now and every [`PURGE_INTERVAL`]
    /// (0 keeps them for ever). Must run inside a tokio runtime.
    pub fn spawn_retention(&self, retention_days: u32) {
        if self.inner.is_none() || retention_days == 0 {
            return;
        }
        let storage = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PURGE_INTERVAL);
            loop {
                tick.tick().await;
                let cut = chrono::Utc::now() - chrono::Duration::days(i64::from(retention_days));
                let ended_before = cut.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                storage.write_eventually(Write::Purge { ended_before }, WriteKind::Other);
            }
        });
    }
}
