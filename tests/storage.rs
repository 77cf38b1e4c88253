//! Durable history across a crash (issue 7): the real binary is killed with SIGKILL while 100
//! calls are held and more arrive and end continuously, at a moment the API shows progress the
//! database file does not have yet (a write in flight, inside the writer's 10 ms commit
//! interval), then started again on the same database. The README's loss
//! window is checked as it is written: the file is not corrupt, nothing shown ended is lost or
//! changed, a running activeflow loses at most the progress of the last commit interval plus
//! one commit, and every activeflow after the restart is consistent; a flow created over the API
//! survives and still routes calls. Run against both backends (issue 20): the SQLite file and
//! a scratch PostgreSQL database (`AF_TEST_PG_URL`).
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A config routing number 100 to `hold` and 200 to `churn`, flows that do not exist until the
/// test creates them over the API.
fn config() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(common::temp_db_path())
        .parent()
        .expect("dir")
        .to_path_buf();
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("hold.toml");
    let text = format!(
        "{}\n[[routes]]\nnumber = \"100\"\nflow = \"hold\"\n\
         [[routes]]\nnumber = \"200\"\nflow = \"churn\"\n",
        activeflow::config::DEFAULT_TOML
    );
    std::fs::write(&path, text).expect("config");
    path
}

/// Where the engine under test stores its history.
enum Backend {
    Sqlite(String),
    Postgres(common::pg::ScratchDatabase),
}

impl Backend {
    fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Backend::Sqlite(path) => vec![("ACTIVEFLOW_STORAGE_PATH", path.clone())],
            Backend::Postgres(db) => common::pg::engine_env(db).to_vec(),
        }
    }

    /// A connection of the test's own, as another process reads the rows.
    fn reader(&self) -> Reader {
        match self {
            Backend::Sqlite(path) => {
                Reader::Sqlite(rusqlite::Connection::open(path).expect("read the database"))
            }
            Backend::Postgres(db) => Reader::Postgres(common::pg::PgReader::connect(db)),
        }
    }
}

enum Reader {
    Sqlite(rusqlite::Connection),
    Postgres(common::pg::PgReader),
}

impl Reader {
    /// An integer from `sql` (`$1` is `id` when given: SQLite numbers `$1` as its first
    /// parameter too); 0 when the query fails (the file not created yet).
    fn count(&self, sql: &str, id: Option<&str>) -> i64 {
        match self {
            Reader::Sqlite(conn) => match id {
                Some(id) => conn.query_row(sql, [id], |r| r.get(0)),
                None => conn.query_row(sql, [], |r| r.get(0)),
            }
            .unwrap_or(0),
            Reader::Postgres(pg) => match id {
                Some(id) => pg.count(sql, &[&id]),
                None => pg.count(sql, &[]),
            },
        }
    }
}

fn spawn(config: &std::path::Path, backend: &Backend) -> common::Spawned {
    let env = backend.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    common::spawn_engine_with(&["--config", config.to_str().expect("path")], &env)
}

/// A record read back from a shared store names its node (PostgreSQL: "" for a single node);
/// one still in memory may not: records are compared without it.
fn without_node(a: &Value) -> Value {
    let mut a = a.clone();
    if let Some(node) = a.as_object_mut().and_then(|o| o.remove("node_id")) {
        assert!(node.is_string(), "{node}");
    }
    a
}

/// Every activeflow the API lists, following `next_page_token` (pages of 50, to page through
/// storage), by id.
fn all_activeflows(api: SocketAddr) -> HashMap<String, Value> {
    let mut all = HashMap::new();
    let mut token = String::new();
    loop {
        let path = format!("/v1/activeflows?page_size=50&page_token={token}");
        let (status, page) = common::http(api, "GET", &path, None);
        assert_eq!(status, 200, "{page}");
        let mut last_seen = None;
        for a in page["result"].as_array().expect("result") {
            let id = a["id"].as_str().expect("id").to_string();
            let a = without_node(a);
            assert!(
                all.insert(id.clone(), a.clone()).is_none(),
                "{id} listed twice"
            );
            last_seen = Some(id);
        }
        token = page["next_page_token"].as_str().unwrap_or("").to_string();
        if token.is_empty() || last_seen.is_none() {
            return all;
        }
    }
}

/// SIPp's built-in caller: `calls` calls to `number` at `rate` a second, each held `hold_ms`
/// unless the engine hangs up first.
fn callers(sip: SocketAddr, number: &str, calls: u32, rate: u32, hold_ms: u32) -> common::Reaper {
    let child = Command::new("sipp")
        .current_dir(std::env::temp_dir())
        .arg(sip.to_string())
        .args(["-sn", "uac", "-s", number, "-i", "127.0.0.1"])
        .args(["-p", &common::free_port().to_string()])
        .args([
            "-m",
            &calls.to_string(),
            "-r",
            &rate.to_string(),
            "-d",
            &hold_ms.to_string(),
        ])
        .args(["-buff_size", "4194304", "-nostdin", "-timeout", "60s"])
        // A media port of its own: another SIPp on this machine may hold the default 6000.
        .args(["-mp", &common::free_port().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp (scripts/test.sh installs sip-tester)");
    common::Reaper(child)
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Rows in the database itself, read as another process would.
fn stored_running_with_actions(reader: &Reader) -> i64 {
    reader.count(
        "SELECT COUNT(*) FROM activeflows a WHERE a.status = 'running' AND
             (SELECT COUNT(*) FROM executed_actions e WHERE e.activeflow_sequence = a.sequence) >= 2",
        None,
    )
}

/// One page of up to 1,000 activeflows, the whole list (asserted): by id.
fn list_once(api: SocketAddr) -> HashMap<String, Value> {
    let (status, page) = common::http(api, "GET", "/v1/activeflows?page_size=1000", None);
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["next_page_token"], "", "more than one page");
    page["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|a| (a["id"].as_str().expect("id").to_owned(), without_node(a)))
        .collect()
}

/// One look at the first engine before the kill.
struct Snapshot {
    /// When the API's answer had fully arrived: what it lists existed by then.
    at: Instant,
    activeflows: HashMap<String, Value>,
    /// `activeflow_storage_writes_total` right after.
    writes: f64,
    /// The longest commit so far, from `activeflow_storage_batch_seconds` (its smallest bucket
    /// bound that holds every commit).
    longest_commit: Duration,
}

fn snapshot(api: SocketAddr, metrics: SocketAddr) -> Snapshot {
    let activeflows = list_once(api);
    let at = Instant::now();
    let text = common::raw_get(metrics, "/metrics");
    let count =
        common::metric(&text, "activeflow_storage_batch_seconds_count").expect("batch count");
    let longest = text
        .lines()
        .filter_map(|l| l.strip_prefix("activeflow_storage_batch_seconds_bucket{le=\""))
        .filter_map(|l| l.split_once("\"} "))
        .filter(|(_, n)| n.trim().parse::<f64>().ok() == Some(count))
        .filter_map(|(le, _)| le.parse::<f64>().ok())
        .fold(f64::INFINITY, f64::min);
    assert!(longest.is_finite(), "a commit beyond the largest bucket");
    Snapshot {
        at,
        activeflows,
        writes: common::metric(&text, "activeflow_storage_writes_total").expect("writes"),
        longest_commit: Duration::from_secs_f64(longest),
    }
}

/// (id, type, tm_execute) of each executed action: what a later look must start with.
fn executed(a: &Value) -> Vec<(Value, Value, Value)> {
    a["executed_actions"]
        .as_array()
        .expect("executed_actions")
        .iter()
        .map(|e| (e["id"].clone(), e["type"].clone(), e["tm_execute"].clone()))
        .collect()
}

/// The README's bound for a running activeflow's progress: a write waits for the commit in
/// progress or the rest of the 10 ms interval (`storage::writer::COMMIT_INTERVAL`), whichever
/// is longer, then for its own commit.
fn loss_window(longest_commit: Duration) -> Duration {
    const COMMIT_INTERVAL: Duration = Duration::from_millis(10);
    // An action is recorded and its write queued in the same actor turn; the slack covers
    // that turn and the clock reads on this side.
    const SLACK: Duration = Duration::from_millis(5);
    COMMIT_INTERVAL.max(longest_commit) + longest_commit + SLACK
}

/// One backend at a time: each run is a load of its own on a shared 2-core machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn kill_9_with_100_calls_up_then_restart_keeps_every_activeflow_sqlite() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    kill_9_with_100_calls_up_then_restart_keeps_every_activeflow(Backend::Sqlite(
        common::temp_db_path(),
    ));
}

#[test]
fn kill_9_with_100_calls_up_then_restart_keeps_every_activeflow_postgres() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    kill_9_with_100_calls_up_then_restart_keeps_every_activeflow(Backend::Postgres(
        common::pg::database(),
    ));
}

fn kill_9_with_100_calls_up_then_restart_keeps_every_activeflow(backend: Backend) {
    let config = config();
    let mut first = spawn(&config, &backend);
    let reader = backend.reader();

    // Flows created over the API: calls to 100 answer and hold; calls to 200 answer and step
    // through actions every 100 ms until the caller hangs up (progress writes all the time).
    let hold = json!({"name": "hold", "actions": [
        {"type": "answer"}, {"type": "sleep", "option": {"duration": 120000}}]});
    let (status, flow) = common::http(first.api, "POST", "/v1/flows", Some(&hold.to_string()));
    assert_eq!(status, 201, "{flow}");
    let flow_id = flow["id"].as_str().expect("flow id").to_string();
    let mut churn_actions = vec![json!({"type": "answer"})];
    for step in 1..=3 {
        churn_actions.push(
            json!({"type": "variable_set", "option": {"key": "step", "value": step.to_string()}}),
        );
        let ms = if step == 3 { 120_000 } else { 100 };
        churn_actions.push(json!({"type": "sleep", "option": {"duration": ms}}));
    }
    let churn = json!({"name": "churn", "actions": churn_actions});
    let (status, churn) = common::http(first.api, "POST", "/v1/flows", Some(&churn.to_string()));
    assert_eq!(status, 201, "{churn}");
    let churn_id = churn["id"].as_str().expect("flow id").to_string();

    // Activeflows that end before the kill: API-started ones and calls the caller hangs up.
    for n in 0..5 {
        let body = json!({"actions": [
            {"type": "variable_set", "option": {"key": "n", "value": n.to_string()}}]});
        let (status, a) = common::http(
            first.api,
            "POST",
            "/v1/activeflows",
            Some(&body.to_string()),
        );
        assert_eq!(status, 200, "{a}");
    }
    let short = common::sipp(
        first.sip,
        "uac_caller_bye.xml",
        "100",
        &["-m", "5", "-r", "50"],
    );
    short.assert_all_ok(5);
    wait_for("10 ended activeflows", Duration::from_secs(20), || {
        all_activeflows(first.api)
            .values()
            .filter(|a| a["status"] == "ended")
            .count()
            == 10
    });
    let ended_before = all_activeflows(first.api);

    // 100 calls up, each answered and sleeping, all written to the database.
    let _held = callers(first.sip, "100", 100, 50, 120_000);
    wait_for(
        "100 running activeflows in the database",
        Duration::from_secs(60),
        || stored_running_with_actions(&reader) == 100,
    );
    let before_kill = all_activeflows(first.api);
    assert_eq!(before_kill.len(), 110);

    // Then the load: 40 calls/s to 200, each up 700 ms (seven writes per call, ~300 writes/s),
    // watched through the API until the kill.
    let _churn = callers(first.sip, "200", 100_000, 40, 700);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = std::thread::spawn({
        let (api, metrics, stop) = (first.api, first.metrics, stop.clone());
        move || {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seen.push(snapshot(api, metrics));
            }
            seen
        }
    });
    wait_for("calls to 200 ending", Duration::from_secs(30), || {
        all_activeflows(first.api)
            .values()
            .filter(|a| a["flow_id"] == churn_id.as_str() && a["status"] == "ended")
            .count()
            >= 40
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let snapshots = poller.join().expect("poller");
    // A flow created over the API moments before the kill: committed before the API answered.
    let late = json!({"name": "late", "actions": [{"type": "hangup"}]});
    let (status, late) = common::http(first.api, "POST", "/v1/flows", Some(&late.to_string()));
    assert_eq!(status, 201, "{late}");

    // Kill while writes are in flight: look at the newest activeflows until the API shows
    // progress the database file does not have yet (queued, or in the up to 10 ms the writer
    // lets a batch fill), and kill right then.
    let on_disk = |id: &str| -> usize {
        reader.count(
            "SELECT COUNT(*) FROM executed_actions e JOIN activeflows a
               ON e.activeflow_sequence = a.sequence WHERE a.id = $1",
            Some(id),
        ) as usize
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let last_look = loop {
        let (status, page) = common::http(first.api, "GET", "/v1/activeflows?page_size=5", None);
        assert_eq!(status, 200, "{page}");
        let look: HashMap<String, Value> = page["result"]
            .as_array()
            .expect("result")
            .iter()
            .map(|a| (a["id"].as_str().expect("id").to_owned(), a.clone()))
            .collect();
        if look.iter().any(|(id, a)| executed(a).len() > on_disk(id)) {
            break look;
        }
        assert!(Instant::now() < deadline, "never caught a write in flight");
    };
    let killed_at = Instant::now();
    first.reaper.0.kill().expect("SIGKILL");
    first.reaper.0.wait().expect("reaped");

    // Writes were in flight: the storage counter moved between the last two looks, the last of
    // which ended moments before the kill; at ~300 writes/s the writer is always inside a
    // commit interval with writes queued.
    let last = snapshots.last().expect("a snapshot");
    let previous = &snapshots[snapshots.len() - 2];
    assert!(
        last.writes > previous.writes,
        "no writes in the last {:?} before the kill",
        killed_at - previous.at
    );
    let window = loss_window(last.longest_commit);
    eprintln!(
        "{} snapshots; the last {:?} before the kill; longest commit ≤ {:?}, loss window {window:?}",
        snapshots.len(),
        killed_at - last.at,
        last.longest_commit
    );

    // No corruption: SQLite's own check of the file the dead process left (PostgreSQL is a
    // server of its own: the dead client leaves it whole, its open transaction rolled back).
    if let Backend::Sqlite(db) = &backend {
        let conn = rusqlite::Connection::open(db).expect("open the database");
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(check, "ok");
    }

    let second = spawn(&config, &backend);
    let after = all_activeflows(second.api);

    // Nothing shown ended is lost or changed, whenever it was seen.
    for snap in &snapshots {
        for (id, seen) in snap
            .activeflows
            .iter()
            .filter(|(_, a)| a["status"] == "ended")
        {
            assert_eq!(
                after.get(id),
                Some(seen),
                "shown ended before the kill: {id}"
            );
        }
    }
    // A running activeflow loses at most the window: the newest look older than it is all on
    // disk (each activeflow present, its executed actions starting with what was seen).
    let settled = snapshots
        .iter()
        .rev()
        .find(|s| killed_at - s.at >= window)
        .expect("a snapshot older than the loss window");
    assert!(
        settled.activeflows.len() > before_kill.len(),
        "the settled look saw the load"
    );
    for (id, seen) in &settled.activeflows {
        let now = after.get(id).unwrap_or_else(|| {
            panic!(
                "{id} seen {:?} before the kill is gone",
                killed_at - settled.at
            )
        });
        let (had, has) = (executed(seen), executed(now));
        assert!(
            has.len() >= had.len() && has[..had.len()] == had[..],
            "{id}: progress seen {:?} before the kill is lost: had {had:?}, has {has:?}",
            killed_at - settled.at
        );
    }

    // What the last look showed but the disk did not have: the writes in flight at the kill
    // (allowed: the look was inside the loss window).
    let in_flight = last_look
        .iter()
        .filter(|(id, seen)| {
            after
                .get(*id)
                .is_none_or(|now| executed(now).len() < executed(seen).len())
        })
        .count();
    eprintln!("{in_flight} activeflows had progress in flight at the kill, lost as allowed");

    // Every activeflow after the restart is consistent.
    let expected_types = |flow: &Value| -> Vec<&str> {
        if flow == flow_id.as_str() {
            vec!["answer", "sleep"]
        } else if flow == churn_id.as_str() {
            vec![
                "answer",
                "variable_set",
                "sleep",
                "variable_set",
                "sleep",
                "variable_set",
                "sleep",
            ]
        } else {
            vec!["variable_set"]
        }
    };
    let shown_ended: std::collections::HashSet<&String> = snapshots
        .iter()
        .flat_map(|s| s.activeflows.iter())
        .filter(|(_, a)| a["status"] == "ended")
        .map(|(id, _)| id)
        .collect();
    let (_, calls) = common::http(
        second.api,
        "GET",
        "/v1/calls?status=ended&page_size=1000",
        None,
    );
    assert_eq!(calls["next_page_token"], "", "one page of calls");
    let call_ids: std::collections::HashSet<&str> = calls["result"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| c["id"].as_str().expect("call id"))
        .collect();
    for (id, a) in &after {
        assert_eq!(a["status"], "ended", "{a}");
        assert!(a["tm_end"].is_string(), "{a}");
        let reason = a["end_reason"].as_str().expect("end_reason");
        if reason == "engine_restart" {
            assert!(!shown_ended.contains(id), "{id} was shown ended: {a}");
        } else {
            assert!(["hangup", "completed"].contains(&reason), "{a}");
        }
        let types: Vec<&str> = a["executed_actions"]
            .as_array()
            .expect("executed_actions")
            .iter()
            .map(|e| e["type"].as_str().expect("type"))
            .collect();
        let want = expected_types(&a["flow_id"]);
        assert!(
            types.len() <= want.len() && types[..] == want[..types.len()],
            "{id}: executed {types:?}, not a prefix of its flow {want:?}"
        );
        let times: Vec<&str> = a["executed_actions"]
            .as_array()
            .expect("executed_actions")
            .iter()
            .map(|e| e["tm_execute"].as_str().expect("tm_execute"))
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{id}: {times:?}");
        if a["reference_type"] == "call" {
            let call = a["reference_id"].as_str().expect("reference_id");
            assert!(
                call_ids.contains(call),
                "{id}'s call {call} is not an ended call"
            );
        }
    }

    // The ones from before the load: ended ones unchanged, held ones ended by the restart.
    let mut restarted = 0;
    for (id, old) in &before_kill {
        let new = &after[id];
        if let Some(ended) = ended_before.get(id) {
            assert_eq!(new, ended, "ended before the kill: unchanged");
            continue;
        }
        restarted += 1;
        assert_eq!(old["status"], "running");
        assert_eq!(new["status"], "ended", "{new}");
        assert_eq!(new["end_reason"], "engine_restart", "{new}");
        assert_eq!(new["executed_actions"], old["executed_actions"], "{id}");
        assert_eq!(new["flow_id"], flow_id.as_str());
        assert_eq!(new["tm_create"], old["tm_create"]);
    }
    assert_eq!(restarted, 100);
    let (status, one) = common::http(
        second.api,
        "GET",
        &format!(
            "/v1/activeflows/{}",
            before_kill.keys().next().expect("one")
        ),
        None,
    );
    assert_eq!(status, 200, "{one}");

    let late_id = late["id"].as_str().expect("flow id");
    let (status, got) = common::http(second.api, "GET", &format!("/v1/flows/{late_id}"), None);
    assert_eq!((status, &got["name"]), (200, &json!("late")), "{got}");

    // The API flow came back and still routes: one more call to 100 is answered by it.
    let (status, flow) = common::http(second.api, "GET", &format!("/v1/flows/{flow_id}"), None);
    assert_eq!(status, 200, "{flow}");
    let run = common::sipp(second.sip, "uac_caller_bye.xml", "100", &["-m", "1"]);
    run.assert_all_ok(1);
    wait_for("the new call's activeflow", Duration::from_secs(10), || {
        all_activeflows(second.api).values().any(|a| {
            a["flow_id"] == flow_id.as_str() && !after.contains_key(a["id"].as_str().unwrap_or(""))
        })
    });
    // New records list first: their sequence continues after the old ones.
    let (_, newest) = common::http(second.api, "GET", "/v1/activeflows?page_size=1", None);
    let newest_id = newest["result"][0]["id"]
        .as_str()
        .expect("newest")
        .to_string();
    assert!(
        !after.contains_key(&newest_id),
        "newest first after a restart"
    );
}
