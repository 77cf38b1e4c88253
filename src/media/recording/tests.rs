//! The recording writer: WAV output, retention, a full queue, an unwritable directory, and
//! the writer dying.

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

#[test]
fn delete_removes_file_and_record_but_not_one_in_progress() {
    let dir = std::env::temp_dir().join(format!("activeflow-rec-{}", uuid::Uuid::new_v4()));
    let store = Recordings::start(&dir, 10, &Health::new()).unwrap();
    let (done, live) = (RecordingId::new(), RecordingId::new());
    for r in [done, live] {
        store.begin(r, "af", "call").unwrap();
        assert!(store.write(r, vec![1; 800]));
    }
    store.finish(done, "stop_action");
    wait_ended(&store, done);
    assert!(matches!(
        store.delete(live),
        Err(DeleteError::InProgress(id)) if id == live
    ));
    store.delete(done).unwrap();
    assert!(store.get(done).is_none());
    assert!(!store.file_path(done).exists());
    assert!(matches!(store.delete(done), Err(DeleteError::NotFound(_))));
    // A file without a record (an earlier run's) is deleted too.
    let orphan = RecordingId::new();
    std::fs::write(store.file_path(orphan), b"RIFF").unwrap();
    store.delete(orphan).unwrap();
    assert!(!store.file_path(orphan).exists());
    store.finish(live, "stop_action");
    wait_ended(&store, live);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn purge_removes_only_old_finished_recordings() {
    let dir = std::env::temp_dir().join(format!("activeflow-rec-{}", uuid::Uuid::new_v4()));
    let store = Recordings::start(&dir, 10, &Health::new()).unwrap();
    let (old, new, live) = (RecordingId::new(), RecordingId::new(), RecordingId::new());
    for r in [old, new, live] {
        store.begin(r, "af", "call").unwrap();
    }
    for r in [old, new] {
        store.finish(r, "stop_action");
        wait_ended(&store, r);
    }
    let age = |id: RecordingId, secs: u64| {
        let f = std::fs::File::options()
            .write(true)
            .open(store.file_path(id))
            .unwrap();
        f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(secs))
            .unwrap();
    };
    age(old, 3 * 86_400);
    age(live, 3 * 86_400);
    std::fs::write(dir.join("notes.txt"), b"not a recording").unwrap();
    let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
    assert_eq!(store.purge_before(cutoff), 1);
    assert!(!store.file_path(old).exists() && store.get(old).is_none());
    assert!(store.file_path(new).exists() && store.get(new).is_some());
    assert!(store.file_path(live).exists(), "still being written");
    assert!(dir.join("notes.txt").exists());
    store.finish(live, "stop_action");
    wait_ended(&store, live);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn only_the_retention_sweep_counts_files_as_purged() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let dir = std::env::temp_dir().join(format!("activeflow-rec-{}", uuid::Uuid::new_v4()));
    let store = Recordings::start(&dir, 10, &Health::new()).unwrap();
    let (deleted, old) = (RecordingId::new(), RecordingId::new());
    for r in [deleted, old] {
        store.begin(r, "af", "call").unwrap();
        store.finish(r, "stop_action");
        wait_ended(&store, r);
    }
    let f = std::fs::File::options()
        .write(true)
        .open(store.file_path(old))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86_400))
        .unwrap();
    let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
    metrics::with_local_recorder(&recorder, || {
        store.delete(deleted).unwrap();
        assert_eq!(store.purge_before(cutoff), 1);
    });
    let text = handle.render();
    assert!(
        text.contains("activeflow_media_files_purged_total{kind=\"recording\"} 1\n"),
        "{text}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
