//! "History is not lost" (issue 16, README "Security"), on real SQLite files and the real
//! binary with SIPp callers: a write that fails on its own never takes its batch down with it;
//! an activeflow's end survives a database locked past the 5 s end timeout; a second engine on
//! the same database refuses to start; and a full disk (a size-limited tmpfs the test mounts)
//! fails writes visibly (`/readyz`, metrics, a log line) while calls go on, and writing resumes
//! with everything held back once space returns.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use activeflow::health::Health;
use activeflow::storage::{
    ActiveflowRow, CallRow, SqliteOptions, SqliteStore, Storage, Store, Write, WriteKind,
};
use serde_json::{json, Value};

/// A scratch directory of this test's own.
fn scratch(name: &str) -> PathBuf {
    let db = PathBuf::from(common::temp_db_path());
    let dir = db.parent().unwrap().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A flows directory whose `demo` flow (the default route's) answers and waits: the caller's
/// BYE ends it (`hangup`) after `answer` and `sleep` were executed.
fn flows_dir() -> PathBuf {
    let dir = scratch("flows");
    let flow = json!({"name": "demo", "actions": [
        {"type": "answer"},
        {"type": "sleep", "option": {"duration": 60000}}
    ]});
    std::fs::write(dir.join("demo.json"), flow.to_string()).unwrap();
    dir
}

fn spawn(db: &Path) -> common::Spawned {
    let flows = flows_dir();
    common::spawn_engine_with(
        &[],
        &[
            ("ACTIVEFLOW_STORAGE_PATH", db.to_str().unwrap()),
            ("ACTIVEFLOW_FLOWS_DIR", flows.to_str().unwrap()),
        ],
    )
}

/// An activeflow as the database file has it, read as another process would: status, end
/// reason and how many executed actions.
fn stored(db: &Path, id: &str) -> Option<(String, Option<String>, i64)> {
    let conn = rusqlite::Connection::open(db).ok()?;
    conn.query_row(
        "SELECT status, end_reason, (SELECT COUNT(*) FROM executed_actions e
             WHERE e.activeflow_sequence = a.sequence) FROM activeflows a WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .ok()
}

/// Activeflows the database file holds ended, with their end reasons.
fn stored_ended(db: &Path) -> Vec<String> {
    let Ok(conn) = rusqlite::Connection::open(db) else {
        return Vec::new();
    };
    let Ok(mut stmt) =
        conn.prepare("SELECT end_reason FROM activeflows WHERE status = 'ended' ORDER BY sequence")
    else {
        return Vec::new();
    };
    stmt.query_map([], |r| r.get::<_, String>(0))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// Ended calls in the database file.
fn stored_ended_calls(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .and_then(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM calls WHERE status = 'ended'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or(0)
}

/// The activeflows the API lists (memory first, then storage), newest first.
fn listed(api: SocketAddr) -> Vec<Value> {
    let (status, page) = common::http(api, "GET", "/v1/activeflows?page_size=100", None);
    assert_eq!(status, 200, "{page}");
    page["result"].as_array().unwrap().clone()
}

fn readyz(api: SocketAddr) -> (u16, Value) {
    common::http(api, "GET", "/readyz", None)
}

/// Calls from SIPp that hang up 200 ms after their ACK; all must complete.
fn calls(sip: SocketAddr, n: u32) {
    common::sipp(sip, "uac_caller_bye.xml", "100", &["-m", &n.to_string()])
        .assert_all_ok(u64::from(n));
}

fn row(id: &str, sequence: u64, variables: Option<String>) -> ActiveflowRow {
    let now = "2026-12-04T12:00:00.000000Z".to_owned();
    ActiveflowRow {
        id: id.to_owned(),
        sequence,
        flow_id: "00000000-0000-4000-8000-000000000001".to_owned(),
        status: "ended",
        end_reason: Some("completed"),
        reference_type: "api",
        reference_id: String::new(),
        reference_activeflow_id: None,
        on_complete_flow_id: None,
        forward_action_id: None,
        webhook_uri: None,
        webhook_method: None,
        current_action: None,
        variables,
        tm_create: now.clone(),
        tm_update: now.clone(),
        tm_end: Some(now),
    }
}

/// One batch, five writes, two of them bad on their own: an ended activeflow whose header is
/// over `storage.max_row_bytes` with its final variables (SQLite's "too big"), and a second
/// activeflow with an id already stored (a UNIQUE constraint). The batch is held together by a
/// write lock another connection takes on the file, so the writer's next transaction holds all
/// five. The three good writes commit; the big one is stored without its variables (its end
/// kept); the duplicate is left out and acknowledged `false`; both count in
/// `activeflow_storage_write_rejected_total`. (Before: the one transaction failed, and every write
/// of the batch was lost.)
#[test]
fn a_write_that_fails_on_its_own_is_dropped_and_the_rest_of_its_batch_commits() {
    let metrics = activeflow::metrics::install().expect("the only recorder in this process");
    let db = scratch("poisoned").join("activeflow.db");
    let options = SqliteOptions {
        max_row_bytes: 64 * 1024,
    };
    let store = std::sync::Arc::new(SqliteStore::open_with(&db, options).unwrap());
    let (storage, _) = Storage::start(store.clone(), &Health::new()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let write = |row: ActiveflowRow| Write::Activeflow {
        row,
        actions: Vec::new(),
    };
    let first = "0190a000-0000-7000-8000-000000000001";
    assert!(rt.block_on(storage.write_confirmed(write(row(first, 1, None)), WriteKind::Ended)));

    // Another process takes the write lock: the writer's next commit (one write) waits for it
    // (its busy timeout is 5 s) while the five writes queue behind it, for the commit after.
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let waiting = "0190a000-0000-7000-8000-000000000006";
    assert!(storage.try_write(write(row(waiting, 6, None)), WriteKind::Ended));
    std::thread::sleep(Duration::from_millis(300));
    let good = "0190a000-0000-7000-8000-000000000002";
    let big = "0190a000-0000-7000-8000-000000000003";
    let after = "0190a000-0000-7000-8000-000000000004";
    let huge = Some(format!(r#"{{"x":"{}"}}"#, "y".repeat(100 * 1024)));
    let call = CallRow {
        id: "0190a000-0000-7000-8000-0000000000c1".to_owned(),
        sequence: 1,
        sip_call_id: "c1@test".to_owned(),
        direction: "incoming",
        source: "alice".to_owned(),
        destination: "100".to_owned(),
        peer: "127.0.0.1:5060/udp".to_owned(),
        status: "ended",
        end_cause: Some("normal".to_owned()),
        end_code: None,
        codec: None,
        tm_create: "2026-12-04T12:00:00.000000Z".to_owned(),
        tm_answer: None,
        tm_end: Some("2026-12-04T12:00:01.000000Z".to_owned()),
    };
    let acks = [
        storage.write_confirmed(write(row(good, 2, None)), WriteKind::Ended),
        storage.write_confirmed(write(row(big, 3, huge)), WriteKind::Ended),
        // Sequence 4 under the id of sequence 1: activeflows.id is UNIQUE.
        storage.write_confirmed(write(row(first, 4, None)), WriteKind::Ended),
        storage.write_confirmed(write(row(after, 5, None)), WriteKind::Ended),
        storage.write_confirmed(Write::Call(call), WriteKind::Call),
    ];
    std::thread::sleep(Duration::from_millis(500));
    holder.execute_batch("ROLLBACK").unwrap();

    let acked: Vec<bool> = rt.block_on(async {
        let mut out = Vec::new();
        for ack in acks {
            let limit = Duration::from_secs(30);
            out.push(
                tokio::time::timeout(limit, ack)
                    .await
                    .expect("acknowledged"),
            );
        }
        out
    });
    assert_eq!(acked, [true, true, false, true, true]);
    for id in [waiting, good, big, after] {
        let a = store.activeflow(id).unwrap();
        assert_eq!(a.unwrap().json["status"], "ended", "{id}");
    }
    let variables = store.activeflow_variables(big).unwrap();
    assert_eq!(variables, Some(json!({})), "stored without its variables");
    let big = store.activeflow(big).unwrap().unwrap().json;
    assert_eq!(big["end_reason"], "completed", "{big}");
    let one = store.activeflow(first).unwrap().unwrap();
    assert_eq!(one.sequence, 1, "the duplicate id did not replace it");
    assert!(store
        .call("0190a000-0000-7000-8000-0000000000c1")
        .unwrap()
        .is_some());
    let text = metrics.render();
    assert_eq!(
        common::metric(&text, "activeflow_storage_write_rejected_total"),
        Some(2.0),
        "{text}"
    );
}

/// RFC 3261 §15.1.2: the caller's BYE ends the call and, with it, the activeflow; its end must
/// reach the database even when the database cannot take it in time. Another connection holds
/// the write lock for 12 s (longer than two of the writer's 5 s busy waits) while a SIPp call
/// comes, is answered and hangs up. The call completes; `/readyz` names `storage`; after the
/// 5 s end timeout the API shows the activeflow ended while the file does not have it; once
/// the lock goes, the file gets the end (`hangup`) with its executed actions. (Before: each
/// failed batch was dropped, so the file kept nothing of the call.)
#[test]
fn an_end_not_committed_in_time_stays_queued_until_storage_recovers() {
    let db = scratch("locked").join("activeflow.db");
    let engine = spawn(&db);
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let locked_at = Instant::now();

    calls(engine.sip, 1);
    let id = common::wait_until(
        "the end shown after the timeout",
        Duration::from_secs(15),
        || {
            let all = listed(engine.api);
            let a = all.first()?;
            (a["status"] == "ended").then(|| a["id"].as_str().unwrap().to_owned())
        },
    );
    let (status, ready) = common::wait_until("/readyz 503", Duration::from_secs(10), || {
        let r = readyz(engine.api);
        (r.0 == 503).then_some(r)
    });
    assert_eq!(status, 503);
    assert_eq!(ready["down"], json!(["storage"]), "{ready}");
    assert_eq!(ready["components"]["storage"], "down", "{ready}");
    assert_eq!(stored(&db, &id), None, "nothing committed under the lock");

    let hold = Duration::from_secs(12);
    std::thread::sleep(hold.saturating_sub(locked_at.elapsed()));
    holder.execute_batch("ROLLBACK").unwrap();

    let (status, reason, actions) =
        common::wait_until("the end in the file", Duration::from_secs(20), || {
            stored(&db, &id).filter(|(s, _, _)| s == "ended")
        });
    assert_eq!(status, "ended");
    assert_eq!(reason.as_deref(), Some("hangup"));
    assert!(actions >= 2, "answer and sleep kept: {actions}");
    assert_eq!(stored_ended_calls(&db), 1, "the call's end too");
    common::wait_until("/readyz 200", Duration::from_secs(10), || {
        (readyz(engine.api).0 == 200).then_some(())
    });
    engine.reaper.assert_no_panic();
}

/// The binary on `db` like `common::spawn_engine_with`, expected to exit: its exit status and
/// stderr (panics if it is still running after `limit`: it started on a held database).
fn run_to_exit(db: &Path, limit: Duration) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_activeflow"))
        .arg("serve")
        .env("ACTIVEFLOW_SIP_LISTEN", "127.0.0.1:0")
        .env("ACTIVEFLOW_API_LISTEN", "127.0.0.1:0")
        .env("ACTIVEFLOW_METRICS_LISTEN", "127.0.0.1:0")
        .env("ACTIVEFLOW_FLOWS_DIR", flows_dir())
        .env("ACTIVEFLOW_STORAGE_PATH", db)
        .env("ACTIVEFLOW_MEDIA_RTP_PORTS", common::rtp_port_range())
        .env("ACTIVEFLOW_MEDIA_RECORDINGS_DIR", scratch("recordings"))
        .env("ACTIVEFLOW_MEDIA_CACHE_DIR", scratch("cache"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a second engine started on a database another engine holds");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

/// A second engine on the database file of a running one exits non-zero at start, naming the
/// file and saying another process holds it. It never runs start-up recovery: the first
/// engine's running activeflow stays `running` in the file (not `engine_restart`), and the
/// first engine goes on taking calls and writing them. (Before: the second started, ended the
/// first one's running records and wrote beside it.)
#[test]
fn a_second_engine_on_the_same_database_refuses_to_start() {
    let db = scratch("shared").join("activeflow.db");
    let first = spawn(&db);
    let body = json!({"actions": [{"type": "sleep", "option": {"duration": 60000}}]});
    let (status, running) = common::http(
        first.api,
        "POST",
        "/v1/activeflows",
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{running}");
    let running = running["id"].as_str().unwrap().to_owned();
    common::wait_until("the running record stored", Duration::from_secs(10), || {
        stored(&db, &running).filter(|(s, _, _)| s == "running")
    });

    let (exit, stderr) = run_to_exit(&db, Duration::from_secs(30));
    assert!(!exit.success(), "{exit}: {stderr}");
    assert!(stderr.contains(db.to_str().unwrap()), "{stderr}");
    assert!(
        stderr.contains("another process holds this database"),
        "{stderr}"
    );

    let (status, _, _) = stored(&db, &running).unwrap();
    assert_eq!(status, "running", "the refused engine recovered nothing");
    calls(first.sip, 1);
    common::wait_until(
        "the first engine's call stored",
        Duration::from_secs(15),
        || (stored_ended(&db) == ["hangup"]).then_some(()),
    );
    assert_eq!(readyz(first.api).0, 200);
    first.reaper.assert_no_panic();
}

/// A tmpfs of `size` mounted on `dir`, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// `None` (after a loud message) only when this process may not mount (not root, no
    /// CAP_SYS_ADMIN); any other failure fails the test.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount(8) (util-linux) is installed");
        if out.status.success() {
            return Some(Tmpfs {
                dir: dir.to_path_buf(),
            });
        }
        let why = String::from_utf8_lossy(&out.stderr).to_lowercase();
        let not_permitted = [
            "permission denied",
            "not permitted",
            "must be superuser",
            "only root",
        ]
        .iter()
        .any(|m| why.contains(m));
        assert!(not_permitted, "mount failed: {why}");
        eprintln!(
            "\n*** SKIPPED: the disk-full test needs to mount a tmpfs (root or CAP_SYS_ADMIN) \
             and this process may not: {}***\n",
            why
        );
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Writes zeros to `path` until the file system is full (ENOSPC).
fn fill(path: &Path) {
    use std::io::Write as _;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    let _ = f.sync_all();
}

/// The database on a 4 MiB tmpfs. Filled up, commits fail (SQLITE_FULL): `/readyz` answers
/// 503 naming `storage`, `activeflow_component_up{component="storage"}` is 0,
/// `activeflow_storage_write_errors_total` counts, the engine logs it (one line, not one per
/// attempt), and SIPp's calls still all complete; the API shows them ended while the file does not
/// have them. Space returns: within the writer's back-off the held-back ends (and calls) are
/// committed and `/readyz` is 200.
#[test]
fn a_full_disk_fails_writes_visibly_calls_go_on_and_writing_resumes() {
    let dir = scratch("tmpfs");
    let Some(_mount) = Tmpfs::mount(&dir, "4M") else {
        return;
    };
    let db = dir.join("activeflow.db");
    let engine = spawn(&db);
    calls(engine.sip, 1);
    common::wait_until("the first call stored", Duration::from_secs(15), || {
        (stored_ended(&db).len() == 1).then_some(())
    });

    let filler = dir.join("filler");
    fill(&filler);
    let full_at = Instant::now();
    calls(engine.sip, 5);
    let (_, ready) = common::wait_until("/readyz 503", Duration::from_secs(15), || {
        let r = readyz(engine.api);
        (r.0 == 503).then_some(r)
    });
    assert_eq!(ready["down"], json!(["storage"]), "{ready}");
    common::wait_until("6 ends shown", Duration::from_secs(20), || {
        let all = listed(engine.api);
        (all.iter().filter(|a| a["status"] == "ended").count() == 6).then_some(())
    });
    let text = common::raw_get(engine.metrics, "/metrics");
    let up = common::metric(&text, "activeflow_component_up{component=\"storage\"}");
    assert_eq!(up, Some(0.0), "storage reported down");
    let errors = common::metric(&text, "activeflow_storage_write_errors_total").unwrap();
    assert!(errors >= 1.0, "failed commits counted: {errors}");
    assert_eq!(
        stored_ended(&db).len(),
        1,
        "nothing committed on a full disk"
    );
    let log = common::engine_log::of(engine.reaper.0.id()).unwrap();
    let failed_lines = || {
        log.tail()
            .iter()
            .filter(|l| l.contains("storage: commit failed"))
            .count()
    };
    assert!(failed_lines() >= 1, "{:#?}", log.tail());

    std::fs::remove_file(&filler).unwrap();
    common::wait_until("writing resumed", Duration::from_secs(20), || {
        (stored_ended(&db).len() == 6).then_some(())
    });
    assert_eq!(stored_ended(&db), ["hangup"; 6]);
    assert_eq!(stored_ended_calls(&db), 6, "the calls' ends too");
    common::wait_until("/readyz 200", Duration::from_secs(10), || {
        (readyz(engine.api).0 == 200).then_some(())
    });
    // Logged on the first failure and then once per 10 s, not per attempt (every ≤ 2 s).
    let allowed = 2 + (full_at.elapsed().as_secs() / 10) as usize;
    assert!(failed_lines() <= allowed, "{:#?}", log.tail());
    engine.reaper.assert_no_panic();
}
