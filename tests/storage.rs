//! Durable history across a crash (issue 7): the real binary is killed with SIGKILL while 100
//! calls are up, then started again on the same database. Every activeflow it had is listed,
//! the running ones ended with `engine_restart` and their executed actions intact, the ones that
//! had ended unchanged; a flow created over the API survives and still routes calls.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A config routing number 100 to `hold`, a flow that does not exist until the test creates
/// it over the API.
fn config() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(common::temp_db_path())
        .parent()
        .expect("dir")
        .to_path_buf();
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("hold.toml");
    let text = format!(
        "{}\n[[routes]]\nnumber = \"100\"\nflow = \"hold\"\n",
        activeflow::config::DEFAULT_TOML
    );
    std::fs::write(&path, text).expect("config");
    path
}

fn spawn(config: &std::path::Path, db: &str) -> common::Spawned {
    common::spawn_engine_with(
        &["--config", config.to_str().expect("path")],
        &[("ACTIVEFLOW_STORAGE_PATH", db)],
    )
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

/// SIPp's built-in caller: `calls` calls to `number`, each held `hold_ms` unless the engine
/// hangs up first.
fn callers(sip: SocketAddr, calls: u32, hold_ms: u32) -> common::Reaper {
    let child = Command::new("sipp")
        .current_dir(std::env::temp_dir())
        .arg(sip.to_string())
        .args(["-sn", "uac", "-s", "100", "-i", "127.0.0.1"])
        .args(["-p", &common::free_port().to_string()])
        .args([
            "-m",
            &calls.to_string(),
            "-r",
            "50",
            "-d",
            &hold_ms.to_string(),
        ])
        .args(["-buff_size", "4194304", "-nostdin", "-timeout", "60s"])
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

/// Rows in the database file itself, read as another process would.
fn stored_running_with_actions(db: &str) -> i64 {
    let Ok(conn) = rusqlite::Connection::open(db) else {
        return 0;
    };
    conn.query_row(
        "SELECT COUNT(*) FROM activeflows a WHERE a.status = 'running' AND
             (SELECT COUNT(*) FROM executed_actions e WHERE e.activeflow_sequence = a.sequence) >= 2",
        [],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

#[test]
fn kill_9_with_100_calls_up_then_restart_keeps_every_activeflow() {
    let db = common::temp_db_path();
    let config = config();
    let mut first = spawn(&config, &db);

    // A flow created over the API: calls to 100 answer and hold.
    let hold = json!({"name": "hold", "actions": [
        {"type": "answer"}, {"type": "sleep", "option": {"duration": 120000}}]});
    let (status, flow) = common::http(first.api, "POST", "/v1/flows", Some(&hold.to_string()));
    assert_eq!(status, 201, "{flow}");
    let flow_id = flow["id"].as_str().expect("flow id").to_string();

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
        assert_eq!(status, 201, "{a}");
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
    let _callers = callers(first.sip, 100, 120_000);
    wait_for(
        "100 running activeflows in the database",
        Duration::from_secs(60),
        || stored_running_with_actions(&db) == 100,
    );
    let before_kill = all_activeflows(first.api);
    assert_eq!(before_kill.len(), 110);

    first.reaper.0.kill().expect("SIGKILL");
    first.reaper.0.wait().expect("reaped");

    let second = spawn(&config, &db);
    let after = all_activeflows(second.api);
    assert_eq!(
        after.len(),
        110,
        "every activeflow listed after the restart"
    );
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

    // The calls are history too, ended by the restart.
    let (_, calls) = common::http(
        second.api,
        "GET",
        "/v1/calls?status=ended&page_size=1000",
        None,
    );
    assert_eq!(
        calls["result"].as_array().map(Vec::len),
        Some(105),
        "{calls}"
    );

    // The API flow came back and still routes: one more call to 100 is answered by it.
    let (status, flow) = common::http(second.api, "GET", &format!("/v1/flows/{flow_id}"), None);
    assert_eq!(status, 200, "{flow}");
    let run = common::sipp(second.sip, "uac_caller_bye.xml", "100", &["-m", "1"]);
    run.assert_all_ok(1);
    wait_for("the new call's activeflow", Duration::from_secs(10), || {
        all_activeflows(second.api).values().any(|a| {
            a["flow_id"] == flow_id.as_str()
                && !before_kill.contains_key(a["id"].as_str().unwrap_or(""))
        })
    });
    // New records list first: their sequence continues after the old ones.
    let (_, newest) = common::http(second.api, "GET", "/v1/activeflows?page_size=1", None);
    let newest_id = newest["result"][0]["id"]
        .as_str()
        .expect("newest")
        .to_string();
    assert!(
        !before_kill.contains_key(&newest_id),
        "newest first after a restart"
    );
}
