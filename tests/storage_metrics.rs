//! The storage counters across a failed commit and a row rejected on its own (`storage`
//! module docs): `activeflow_storage_writes_total` counts each write once, as queued, when it is
//! committed (not the folded batch of the attempt that succeeded, nor a write left out whole);
//! `activeflow_storage_write_errors_total` counts failed commit attempts.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use activeflow::health::Health;
use activeflow::storage::{
    ActiveflowRow, EndedCall, EndedCursor, EndedRange, FlowRow, FlowSource, Recovery, Storage,
    StorageError, Store, Stored, Write, WriteKind,
};
use serde_json::Value;

/// The flow id whose delete fails on its own (a write's own error, not transient).
const BAD: &str = "bad";

/// A store that commits nothing: its first two attempts wait for the test to let them go
/// (the first then succeeds, the second fails for a passing cause), and a delete of [`BAD`]
/// fails on its own.
#[derive(Default)]
struct Scripted {
    attempts: AtomicUsize,
    released: Mutex<usize>,
    release: Condvar,
}

impl Scripted {
    fn let_go(&self, attempt: usize) {
        *self.released.lock().unwrap() = attempt;
        self.release.notify_all();
    }

    fn wait_for_attempt(&self, attempt: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.attempts.load(Ordering::SeqCst) < attempt {
            assert!(Instant::now() < deadline, "no commit attempt {attempt}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Store for Scripted {
    fn apply(&self, batch: &[Write]) -> Result<(), StorageError> {
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        if attempt <= 2 {
            let mut released = self.released.lock().unwrap();
            while *released < attempt {
                released = self.release.wait(released).unwrap();
            }
        }
        if attempt == 2 {
            let full = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL);
            return Err(StorageError::Sqlite(rusqlite::Error::SqliteFailure(
                full, None,
            )));
        }
        if batch
            .iter()
            .any(|w| matches!(w, Write::DeleteFlow(id) if id == BAD))
        {
            return Err(StorageError::WriterGone);
        }
        Ok(())
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

/// One activeflow's progress (`running`) or its end, as the actor writes it.
fn progress(ended: bool) -> Write {
    let now = "2026-12-04T12:00:00.000000Z".to_owned();
    Write::Activeflow {
        row: ActiveflowRow {
            id: "0190a000-0000-7000-8000-00000000cccc".to_owned(),
            sequence: 1,
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
        },
        actions: Vec::new(),
    }
}

fn counter(metrics: &str, name: &str) -> f64 {
    let series = format!("{name} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_retried_batch_counts_each_write_once_and_not_the_ones_left_out() {
    let metrics = activeflow::metrics::install().expect("the only recorder in this process");
    let store = Arc::new(Scripted::default());
    let (storage, _) = Storage::start(store.clone(), &Health::new()).unwrap();

    // Attempt 1: a barrier alone, held while three writes to one activeflow queue up.
    assert!(storage.try_write(Write::Barrier, WriteKind::Other));
    store.wait_for_attempt(1);
    for ended in [false, false, true] {
        assert!(storage.try_write(progress(ended), WriteKind::Running));
    }
    store.let_go(1);
    // Attempt 2: the three folded into one; it fails (disk full) while two deletes queue up.
    store.wait_for_attempt(2);
    for id in ["a", BAD] {
        assert!(storage.try_write(Write::DeleteFlow(id.to_owned()), WriteKind::Flow));
    }
    store.let_go(2);
    // The retry takes the deletes too; the bad one is left out whole, the rest commits.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let flushed =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), storage.flush()).await });
    assert_eq!(flushed, Ok(true));

    let text = metrics.render();
    // The barrier, the three activeflow writes, the good delete, the flush's barrier.
    assert_eq!(
        counter(&text, "activeflow_storage_writes_total"),
        6.0,
        "{text}"
    );
    assert_eq!(
        counter(&text, "activeflow_storage_write_errors_total"),
        1.0,
        "{text}"
    );
    assert_eq!(
        counter(&text, "activeflow_storage_write_rejected_total"),
        1.0,
        "{text}"
    );
    rt.block_on(storage.close());
}
