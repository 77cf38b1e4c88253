//! Recordings: their records (what the API lists) and the one writer thread that streams the
//! caller's audio into WAV files under `media.recordings_dir`, so no actor thread ever waits on
//! the disk. Media sessions hand it samples in ~1 s chunks; it must never block them: chunks are
//! dropped when the queue is full, and a close that finds it full waits on a task, not a thread.
//! The writer thread is watched (`health`): if it dies (a panic), `/readyz` answers 503 naming
//! `recording_writer`, the recordings it had open are marked failed, and it is restarted after
//! a back-off (`RESTART`) on the same queue. A recording is one call's audio, not the
//! engine's record, so losing those few is better than refusing calls.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::DashMap;
use serde::Serialize;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::wav::WavWriter;
use crate::health::{spawn_watched, Component, Ended, Health, OnDeath};

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
mod tests {
    use super::*;

    fn wait_ended(store: &Recordings, id: RecordingId) -> RecordingInfo {
        for _ in 0..5000 {
            let info = store.get(id).unwrap();
            if info.status != RecordingStatus::Recording {
                return info;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        panic!("recording {id} never finished");
    }

    #[test]
    fn writes_a_wav_and_keeps_the_newest_records() {
        let dir = std::env::temp_dir().join(format!("activeflow-rec-{}", uuid::Uuid::new_v4()));
        let store = Recordings::start(&dir, 2, &Health::new()).unwrap();
        let id = RecordingId::new();
        store.begin(id, "af", "call").unwrap();
        assert!(store.write(id, vec![1000; 8000]));
        assert!(store.write(id, vec![-1000; 4000]));
        store.finish(id, "stop_action");
        let info = wait_ended(&store, id);
        assert_eq!(info.status, RecordingStatus::Ended);
        assert_eq!(
            (info.duration_ms, info.end_reason),
            (1500, Some("stop_action"))
        );
        let bytes = std::fs::read(store.file_path(id)).unwrap();
        assert_eq!(bytes.len(), 44 + 12000 * 2);
        assert_eq!(
            crate::media::wav::decode_to_8k_mono(&bytes).unwrap().len(),
            12000
        );

        let (a, b) = (RecordingId::new(), RecordingId::new());
        for r in [a, b] {
            store.begin(r, "af", "call").unwrap();
            store.finish(r, "call_ended");
            wait_ended(&store, r);
        }
        let (page, next) = store.list(10, None);
        let ids: Vec<RecordingId> = page.iter().map(|r| r.id).collect();
        assert_eq!(
            (ids, next),
            (vec![b, a], None),
            "the oldest record is forgotten"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A media session finishing a recording while the writer is stalled and its queue full
    /// must not wait (it runs on an arbiter thread), and the close must still reach the writer.
    #[test]
    fn finish_never_waits_for_a_full_queue_and_the_close_is_not_lost() {
        let dir = std::env::temp_dir().join(format!("activeflow-rec-{}", uuid::Uuid::new_v4()));
        let store = Recordings::start_with(&dir, 10, 4, (&Health::new(), RESTART)).unwrap();
        let id = RecordingId::new();
        store.begin(id, "af", "call").unwrap();
        assert!(store.write(id, vec![7; 800]));
        let (go_on, stalled) = std::sync::mpsc::channel();
        store.send(WriterCommand::Stall(stalled)).unwrap();
        while store.write(id, vec![7; 800]) {}

        let (done_tx, done) = std::sync::mpsc::channel();
        let finishing = store.clone();
        let arbiter_like = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            runtime.block_on(async {
                finishing.finish(id, "stop_action");
                done_tx.send(()).unwrap();
                // Keep the runtime (and the close waiting on it) alive until the writer is back.
                while finishing.get(id).unwrap().status == RecordingStatus::Recording {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            });
        });
        let returned = done.recv_timeout(std::time::Duration::from_secs(2));
        go_on.send(()).unwrap();
        assert!(returned.is_ok(), "finish waited for the stalled writer");
        let info = wait_ended(&store, id);
        arbiter_like.join().unwrap();
        assert_eq!(
            (info.status, info.end_reason),
            (RecordingStatus::Ended, Some("stop_action"))
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A writer that dies is reported down during its back-off, the recording it had open is
    /// marked failed, and after the restart recordings work again.
    #[test]
    fn a_dead_writer_is_reported_and_restarted() {
        let dir = std::env::temp_dir().join(format!("activeflow-rec-{}", uuid::Uuid::new_v4()));
        let health = Health::new();
        let on_death = OnDeath::Restart {
            first: std::time::Duration::from_secs(1),
            max: std::time::Duration::from_secs(1),
        };
        let store = Recordings::start_with(&dir, 10, 64, (&health, on_death)).unwrap();
        let cut = RecordingId::new();
        store.begin(cut, "af", "call").unwrap();
        assert!(store.write(cut, vec![1; 800]));
        store.send(WriterCommand::Panic).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while health.deaths(Component::RecordingWriter) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the panic was not seen"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(health.down(), vec![Component::RecordingWriter]);
        let info = wait_ended(&store, cut);
        assert_eq!(
            (info.status, info.error.as_deref()),
            (RecordingStatus::Failed, Some("recording writer restarted"))
        );
        assert!(health.down().is_empty(), "up again once restarted");

        let id = RecordingId::new();
        store.begin(id, "af", "call").unwrap();
        assert!(store.write(id, vec![1; 800]));
        store.finish(id, "stop_action");
        assert_eq!(wait_ended(&store, id).status, RecordingStatus::Ended);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unwritable_directory_fails_the_recording_not_the_engine() {
        let dir = std::env::temp_dir().join(format!("activeflow-rec-{}", uuid::Uuid::new_v4()));
        let store = Recordings::start(&dir, 10, &Health::new()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let id = RecordingId::new();
        store.begin(id, "af", "call").unwrap();
        store.finish(id, "stop_action");
        let info = wait_ended(&store, id);
        assert_eq!(info.status, RecordingStatus::Failed);
        assert!(info.error.unwrap().contains(&id.to_string()));
    }
}
