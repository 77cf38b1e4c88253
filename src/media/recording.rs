//! Recordings: their records (what the API lists) and the one writer thread that streams the
//! caller's audio into WAV files under `media.recordings_dir`, so no actor thread ever waits on
//! the disk. Media sessions hand it samples in ~1 s chunks; it must never block them: chunks are
//! dropped when the queue is full, and a close that finds it full waits on a task, not a thread.
//! The writer thread is watched (`health`): if it dies (a panic), `/readyz` answers 503 naming
//! `recording_writer`, the recordings it had open are marked failed, and it is restarted after
//! a back-off (`RESTART`) on the same queue. A recording is one call's audio, not the
//! engine's record, so losing those few is better than refusing calls. Deleting and the
//! retention purge live in `retention`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::DashMap;
use serde::Serialize;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::wav::WavWriter;
use crate::health::{spawn_watched, Component, Ended, Health, OnDeath};

mod retention;
pub use retention::{DeleteError, RETENTION_SWEEP};

/// Chunks queued for the writer before sessions start dropping audio (each ~1 s of one call).
const WRITER_QUEUE: usize = 8192;
/// A dead writer is restarted after 100 ms, then up to 5 s while it keeps dying.
const RESTART: OnDeath = OnDeath::Restart {
    first: std::time::Duration::from_millis(100),
    max: std::time::Duration::from_secs(5),
};

/// A recording's id (the file is `<id>.wav`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct RecordingId(uuid::Uuid);

impl RecordingId {
    pub fn new() -> Self {
        RecordingId(uuid::Uuid::new_v4())
    }
}

impl Default for RecordingId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for RecordingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for RecordingId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(RecordingId)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingStatus {
    Recording,
    Ended,
    Failed,
}

/// The operator-visible record of one recording.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingInfo {
    pub id: RecordingId,
    pub activeflow_id: String,
    pub call_id: String,
    pub format: &'static str,
    pub status: RecordingStatus,
    /// `stop_action`, `key`, `duration`, `silence`, `call_ended`, `error`.
    pub end_reason: Option<&'static str>,
    pub duration_ms: u64,
    pub error: Option<String>,
    pub tm_start: String,
    pub tm_end: Option<String>,
    #[serde(skip)]
    pub sequence: u64,
}

enum WriterCommand {
    Open(RecordingId, PathBuf),
    Write(RecordingId, Vec<i16>),
    Close(RecordingId, &'static str),
    /// Tests: the writer waits here until told to go on (a disk that stalls).
    #[cfg(test)]
    Stall(std::sync::mpsc::Receiver<()>),
    /// Tests: the writer panics (a bug in it).
    #[cfg(test)]
    Panic,
}

/// Every recording's record, and the channel to the writer thread.
pub struct Recordings {
    dir: PathBuf,
    records: Arc<DashMap<RecordingId, RecordingInfo>>,
    writer: mpsc::Sender<WriterCommand>,
    sequence: std::sync::atomic::AtomicU64,
    /// Oldest first, for retention.
    order: Mutex<std::collections::VecDeque<RecordingId>>,
    retained: usize,
}

impl Recordings {
    /// Starts the writer thread, watched as `recording_writer` in `health`; `dir` is created
    /// if missing. Keeps the records of the newest `retained` recordings (the files stay on
    /// disk).
    pub fn start(dir: &Path, retained: usize, health: &Health) -> std::io::Result<Arc<Self>> {
        Self::start_with(dir, retained, WRITER_QUEUE, (health, RESTART))
    }

    fn start_with(
        dir: &Path,
        retained: usize,
        queue: usize,
        (health, on_death): (&Health, OnDeath),
    ) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(dir)?;
        let records = Arc::new(DashMap::new());
        let (writer, mut rx) = mpsc::channel(queue);
        let thread_records = records.clone();
        // Outlives a panic of the loop, so a restart knows which recordings it cut short.
        let mut open = HashMap::new();
        let body = move || {
            for (id, _) in open.drain() {
                mark_failed(&thread_records, id, "recording writer restarted".into());
            }
            write_loop(&mut rx, &thread_records, &mut open);
            // It returns once every handle is gone: asked for.
            Ended::AsAsked
        };
        let component = Component::RecordingWriter;
        spawn_watched(
            "recording-writer",
            component,
            on_death,
            health.clone(),
            body,
        )?;
        Ok(Arc::new(Recordings {
            dir: dir.to_path_buf(),
            records,
            writer,
            sequence: std::sync::atomic::AtomicU64::new(1),
            order: Mutex::new(std::collections::VecDeque::new()),
            retained: retained.max(1),
        }))
    }

    pub fn file_path(&self, id: RecordingId) -> PathBuf {
        self.dir.join(format!("{id}.wav"))
    }

    /// Registers a recording and opens its file (on the writer thread).
    pub fn begin(&self, id: RecordingId, activeflow_id: &str, call_id: &str) -> Result<(), String> {
        let info = RecordingInfo {
            id,
            activeflow_id: activeflow_id.to_owned(),
            call_id: call_id.to_owned(),
            format: "wav",
            status: RecordingStatus::Recording,
            end_reason: None,
            duration_ms: 0,
            error: None,
            tm_start: crate::clock::timestamp(),
            tm_end: None,
            sequence: self
                .sequence
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
        self.records.insert(id, info);
        self.retain(id);
        self.send(WriterCommand::Open(id, self.file_path(id)))
    }

    /// Queues samples; false when the writer is behind and this chunk was dropped.
    pub fn write(&self, id: RecordingId, samples: Vec<i16>) -> bool {
        self.send(WriterCommand::Write(id, samples)).is_ok()
    }

    /// Finishes the file; the record turns `ended` once the writer has closed it. Never waits:
    /// a close must not be lost to a full queue (the file would keep placeholder sizes), so
    /// then a task waits for room instead of the caller (a media session on an arbiter thread).
    pub fn finish(&self, id: RecordingId, reason: &'static str) {
        let command = match self.writer.try_send(WriterCommand::Close(id, reason)) {
            Ok(()) => return,
            Err(TrySendError::Closed(_)) => {
                return mark_failed(&self.records, id, "recording writer stopped".into())
            }
            Err(TrySendError::Full(command)) => command,
        };
        let (writer, records) = (self.writer.clone(), self.records.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if writer.send(command).await.is_err() {
                        mark_failed(&records, id, "recording writer stopped".into());
                    }
                });
            }
            // Not on a runtime, so not on an arbiter: this thread may wait.
            Err(_) => {
                if writer.blocking_send(command).is_err() {
                    mark_failed(&records, id, "recording writer stopped".into());
                }
            }
        }
    }

    pub fn get(&self, id: RecordingId) -> Option<RecordingInfo> {
        self.records.get(&id).map(|r| r.clone())
    }

    /// The lowest sequence of a recording started at or after `at`, read without copying
    /// records (the API's timestamp page token).
    pub fn first_since(&self, at: &str) -> Option<u64> {
        self.records
            .iter()
            .filter(|r| r.tm_start.as_str() >= at)
            .map(|r| r.sequence)
            .min()
    }

    /// Newest first, paged like every other list.
    pub fn list(
        &self,
        page_size: usize,
        before: Option<u64>,
    ) -> (Vec<RecordingInfo>, Option<String>) {
        let items = self.records.iter().map(|r| (r.sequence, r.clone()));
        crate::paging::newest_first(items, page_size, before)
    }

    fn send(&self, command: WriterCommand) -> Result<(), String> {
        match self.writer.try_send(command) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                tracing::warn!("recording writer queue full; audio dropped");
                Err("recording writer queue full".into())
            }
            Err(TrySendError::Closed(_)) => Err("recording writer stopped".into()),
        }
    }

    fn retain(&self, id: RecordingId) {
        let mut order = lock(&self.order);
        order.push_back(id);
        // Forget the oldest finished records; one still recording stays (and keeps its place).
        let mut kept = 0;
        while order.len() > self.retained + kept {
            let Some(old) = order.pop_front() else { break };
            let removed = self
                .records
                .remove_if(&old, |_, r| r.status != RecordingStatus::Recording);
            if removed.is_none() && self.records.contains_key(&old) {
                order.push_back(old);
                kept += 1;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn mark_failed(records: &DashMap<RecordingId, RecordingInfo>, id: RecordingId, error: String) {
    if let Some(mut r) = records.get_mut(&id) {
        r.status = RecordingStatus::Failed;
        r.end_reason = Some("error");
        r.error = Some(error);
        r.tm_end.get_or_insert_with(crate::clock::timestamp);
    }
}

/// The writer thread's loop: owns every open file (in `open`); ends when the store is dropped.
fn write_loop(
    rx: &mut mpsc::Receiver<WriterCommand>,
    records: &DashMap<RecordingId, RecordingInfo>,
    open: &mut HashMap<RecordingId, WavWriter>,
) {
    while let Some(command) = rx.blocking_recv() {
        match command {
            WriterCommand::Open(id, path) => match WavWriter::create(&path) {
                Ok(w) => {
                    open.insert(id, w);
                }
                Err(e) => mark_failed(records, id, format!("{}: {e}", path.display())),
            },
            WriterCommand::Write(id, samples) => {
                let Some(w) = open.get_mut(&id) else { continue };
                if let Err(e) = w.write_samples(&samples) {
                    open.remove(&id);
                    mark_failed(records, id, e.to_string());
                    continue;
                }
                if let Some(mut r) = records.get_mut(&id) {
                    r.duration_ms = w.samples_written() / 8;
                }
            }
            WriterCommand::Close(id, reason) => {
                let Some(w) = open.remove(&id) else { continue };
                match w.finalize() {
                    Ok(samples) => {
                        if let Some(mut r) = records.get_mut(&id) {
                            r.status = RecordingStatus::Ended;
                            r.end_reason = Some(reason);
                            r.duration_ms = samples / 8;
                            r.tm_end = Some(crate::clock::timestamp());
                        }
                    }
                    Err(e) => mark_failed(records, id, e.to_string()),
                }
            }
            #[cfg(test)]
            WriterCommand::Stall(go_on) => {
                let _ = go_on.recv();
            }
            #[cfg(test)]
            WriterCommand::Panic => panic!("test: the recording writer panics"),
        }
    }
}

#[cfg(test)]
mod tests;
