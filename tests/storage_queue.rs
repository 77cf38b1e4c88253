//! The storage queue when it is full (README "Storage", `storage` module docs), driven through
//! the public `Storage` handle over a real store (SQLite, then PostgreSQL: issue 20) whose
//! commits a test gate holds back:
//! a running activeflow's progress write is refused at once and counted
//! (`activeflow_storage_queue_full_total{kind="running"}`), an end is counted (`kind="ended"`) but
//! never dropped: it waits on a task, without blocking the caller, and is committed once there is
//! room.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use activeflow::health::Health;
use activeflow::storage::{
    ActiveflowRow, EndedCall, EndedCursor, EndedRange, FlowRow, FlowSource, PgOptions, PgStore,
    Recovery, SqliteStore, Storage, StorageError, Store, Stored, Write, WriteKind, QUEUE_CAPACITY,
};
use serde_json::Value;

mod common;

/// A real store whose `apply` waits until the gate opens (a disk or a server that stalls).
struct Gated {
    inner: Box<dyn Store>,
    open: Mutex<bool>,
    opened: Condvar,
    /// Set once the writer is inside `apply`, holding the batch it took.
    entered: AtomicBool,
    /// Writes handed to `apply` after folding (barriers are never folded).
    applied: AtomicUsize,
}

impl Gated {
    fn new(inner: Box<dyn Store>) -> Gated {
        Gated {
            inner,
            open: Mutex::new(false),
            opened: Condvar::new(),
            entered: AtomicBool::new(false),
            applied: AtomicUsize::new(0),
        }
    }

    fn open_gate(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl Store for Gated {
    fn apply(&self, batch: &[Write]) -> Result<(), StorageError> {
        self.entered.store(true, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        drop(open);
        self.applied.fetch_add(batch.len(), Ordering::SeqCst);
        self.inner.apply(batch)
    }
    fn recover(&self, reason: &str, now: &str) -> Result<Recovery, StorageError> {
        self.inner.recover(reason, now)
    }
    fn replace_file_flows(&self, flows: &[FlowRow]) -> Result<(), StorageError> {
        self.inner.replace_file_flows(flows)
    }
    fn flows(&self, source: FlowSource) -> Result<Vec<FlowRow>, StorageError> {
        self.inner.flows(source)
    }
    fn activeflows(
        &self,
        status: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Stored>, StorageError> {
        self.inner.activeflows(status, before, limit)
    }
    fn activeflow(&self, id: &str) -> Result<Option<Stored>, StorageError> {
        self.inner.activeflow(id)
    }
    fn activeflow_variables(&self, id: &str) -> Result<Option<Value>, StorageError> {
        self.inner.activeflow_variables(id)
    }
    fn calls(
        &self,
        status: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Stored>, StorageError> {
        self.inner.calls(status, before, limit)
    }
    fn call(&self, id: &str) -> Result<Option<Stored>, StorageError> {
        self.inner.call(id)
    }
    fn ended_calls(
        &self,
        range: &EndedRange,
        after: Option<&EndedCursor>,
        limit: usize,
    ) -> Result<Vec<EndedCall>, StorageError> {
        self.inner.ended_calls(range, after, limit)
    }
}

/// A backend under test, with what must outlive it (its directory or scratch database).
enum Backend {
    Sqlite(std::path::PathBuf),
    Postgres(common::pg::ScratchDatabase),
}

impl Backend {
    fn sqlite(name: &str) -> Backend {
        let dir = std::env::temp_dir().join(format!("activeflow-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Backend::Sqlite(dir)
    }

    fn open(&self) -> Box<dyn Store> {
        match self {
            Backend::Sqlite(dir) => Box::new(SqliteStore::open(&dir.join("queue.db")).unwrap()),
            Backend::Postgres(db) => {
                Box::new(PgStore::open(&db.url, PgOptions::default(), "", "run-1").unwrap())
            }
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Backend::Sqlite(dir) = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn row(id: &str, sequence: u64, ended: bool) -> ActiveflowRow {
    let now = "2026-12-04T12:00:00.000000Z".to_owned();
    ActiveflowRow {
        id: id.to_owned(),
        sequence,
        flow_id: "00000000-0000-4000-8000-000000000001".to_owned(),
        status: if ended { "ended" } else { "running" },
        end_reason: ended.then_some("completed"),
        reference_type: "api",
        reference_id: String::new(),
        reference_activeflow_id: None,
        on_complete_flow_id: None,
        forward_action_id: None,
        webhook_uri: None,
        webhook_method: None,
        current_action: None,
        variables: ended.then(|| "{}".to_owned()),
        tm_create: now.clone(),
        tm_update: now.clone(),
        tm_end: ended.then_some(now),
    }
}

fn queue_full(metrics: &str, kind: &str) -> f64 {
    let series = format!("activeflow_storage_queue_full_total{{kind=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not exported"))
}

/// One recorder per process: both backends in one test, counted from where the last left.
#[test]
fn a_full_queue_defers_progress_and_never_drops_an_end() {
    let metrics = activeflow::metrics::install().expect("the only recorder in this process");
    full_queue(&Backend::sqlite("queue"), &metrics);
    full_queue(&Backend::Postgres(common::pg::database()), &metrics);
}

fn full_queue(backend: &Backend, metrics: &metrics_exporter_prometheus::PrometheusHandle) {
    let base = |kind| queue_full(&metrics.render(), kind);
    let (running0, ended0) = (base("running"), base("ended"));
    let gated = Arc::new(Gated::new(backend.open()));
    let (storage, _) = Storage::start(gated.clone(), &Health::new()).unwrap();

    // The writer takes a first write and stalls in its commit; then the queue fills.
    assert!(storage.try_write(Write::Barrier, WriteKind::Other));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gated.entered.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the writer never started a commit"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    for n in 0..QUEUE_CAPACITY {
        assert!(
            storage.try_write(Write::Barrier, WriteKind::Other),
            "write {n} of the queue's {QUEUE_CAPACITY} refused"
        );
    }
    assert_eq!(queue_full(&metrics.render(), "running"), running0);

    // A running activeflow's progress: refused at once (the caller keeps it for its next
    // write), counted.
    let running = "0190a000-0000-7000-8000-00000000aaaa";
    let progress = Write::Activeflow {
        row: row(running, 1, false),
        actions: Vec::new(),
    };
    assert!(!storage.try_write(progress, WriteKind::Running));
    assert_eq!(queue_full(&metrics.render(), "running"), running0 + 1.0);

    // An end: counted, handed to a task, and the caller is not held up.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ended = "0190a000-0000-7000-8000-00000000bbbb";
    let end = Write::Activeflow {
        row: row(ended, 2, true),
        actions: Vec::new(),
    };
    let called = Instant::now();
    rt.block_on(async { storage.write_eventually(end, WriteKind::Ended) });
    assert!(
        called.elapsed() < Duration::from_millis(500),
        "the end's caller waited"
    );
    assert_eq!(queue_full(&metrics.render(), "ended"), ended0 + 1.0);

    // The disk comes back: the end is committed, the refused progress write is not there.
    gated.open_gate();
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while gated.activeflow(ended).unwrap().is_none() {
            assert!(Instant::now() < deadline, "the end was dropped");
            assert!(storage.flush().await, "flush");
        }
    });
    let stored = gated.activeflow(ended).unwrap().unwrap();
    assert_eq!(stored.json["status"], "ended", "{}", stored.json);
    assert_eq!(stored.json["end_reason"], "completed", "{}", stored.json);
    assert_eq!(
        gated.activeflow(running).unwrap(),
        None,
        "a refused write is not queued"
    );
    rt.block_on(storage.close());
}

/// A normal shutdown under load loses no write: with the queue full and writes parked on
/// tasks waiting for room, `close` commits every one of them. The runtime's thread is held
/// while the writer drains the queue, so the parked writes are granted room but not pushed
/// yet: the queue looks empty for a while, and the writer must not take that for the end.
#[test]
fn close_with_a_full_queue_commits_the_writes_waiting_for_room_sqlite() {
    close_with_a_full_queue(&Backend::sqlite("close"));
}

#[test]
fn close_with_a_full_queue_commits_the_writes_waiting_for_room_postgres() {
    close_with_a_full_queue(&Backend::Postgres(common::pg::database()));
}

fn close_with_a_full_queue(backend: &Backend) {
    const PARKED: usize = 1000;
    let gated = Arc::new(Gated::new(backend.open()));
    let (storage, _) = Storage::start(gated.clone(), &Health::new()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let total = 1 + QUEUE_CAPACITY + PARKED;
    rt.block_on(async {
        // The writer takes a first write and stalls in its commit; the queue fills, and
        // the rest wait for room on tasks.
        storage.write_eventually(Write::Barrier, WriteKind::Other);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gated.entered.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the writer never started a commit"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        for _ in 1..total {
            storage.write_eventually(Write::Barrier, WriteKind::Other);
        }
        // The parked tasks run once and wait for room; then `close` starts.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let closing = tokio::spawn({
            let storage = storage.clone();
            async move { storage.close().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;

        // The disk comes back while this thread holds the runtime.
        gated.open_gate();
        let deadline = Instant::now() + Duration::from_secs(30);
        while gated.applied.load(Ordering::SeqCst) < 1 + QUEUE_CAPACITY {
            assert!(Instant::now() < deadline, "the queue was not drained");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(200));
        closing.await.unwrap();
    });
    assert_eq!(
        gated.applied.load(Ordering::SeqCst),
        total,
        "writes dropped at close"
    );
}
