//! The drain of the real binary on SIGTERM and on SIGINT (README, ARCHITECTURE §16), with a call up:
//! `/readyz` turns 503 at once, new INVITEs get 503 (RFC 3261 §21.5.4) and `POST
//! /v1/activeflows` 503, the running activeflow keeps its call through the grace period and is
//! then ended `shutdown` with a BYE (RFC 3261 §15.1.1), and the process exits 0.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::rtp::MediaCaller;
use common::{header, RawPeer};
use serde_json::{json, Value};

const GRACE: Duration = Duration::from_secs(2);

/// A config whose number 1 routes to `hold` (answer, sleep a minute), in its own flows dir.
fn hold_config() -> (std::path::PathBuf, String) {
    let db = common::temp_db_path();
    let dir = std::path::PathBuf::from(&db)
        .parent()
        .unwrap()
        .to_path_buf();
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let hold = json!({"name": "hold", "actions": [
        {"type": "answer"}, {"type": "sleep", "option": {"duration": 60000}}]});
    std::fs::write(flows.join("hold.json"), hold.to_string()).unwrap();
    let config = dir.join("drain.toml");
    let text = format!(
        "{}\n[[routes]]\nnumber = \"1\"\nflow = \"hold\"\n",
        activeflow::config::DEFAULT_TOML
    );
    std::fs::write(&config, text).unwrap();
    (config, db)
}

fn drain_on(signal: &str) {
    let (config, db) = hold_config();
    let flows = config.parent().unwrap().join("flows");
    let grace = GRACE.as_secs().to_string();
    let mut engine = common::spawn_engine_with(
        &["--config", config.to_str().unwrap()],
        &[
            ("ACTIVEFLOW_FLOWS_DIR", flows.to_str().unwrap()),
            ("ACTIVEFLOW_STORAGE_PATH", &db),
            ("ACTIVEFLOW_ENGINE_SHUTDOWN_GRACE_SECONDS", &grace),
        ],
    );
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("1", 0);
    assert_eq!(common::http(engine.api, "GET", "/readyz", None).0, 200);

    let pid = engine.reaper.0.id().to_string();
    let signalled = Instant::now();
    assert!(std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap()
        .success());

    // Not ready from the start of the drain (a load balancer stops sending).
    let mut ready = (0, Value::Null);
    while signalled.elapsed() < Duration::from_secs(1) {
        ready = common::http(engine.api, "GET", "/readyz", None);
        if ready.0 == 503 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        ready.0, 503,
        "{signal}: /readyz while draining: {}",
        ready.1
    );
    // Nothing new is taken: an INVITE gets 503, an API start 503.
    let late = RawPeer::new(engine.sip);
    late.send(&late.invite("1", &format!("late-{signal}@t"), "z9hG4bK-late-drain"));
    let refused = late.recv_final();
    assert!(refused.starts_with("SIP/2.0 503"), "{signal}: {refused}");
    let reason = "activeflow_sip_unavailable_total{reason=\"shutting_down\"}";
    assert_eq!(common::scrape(engine.metrics, reason), 1.0, "{signal}");
    let body = json!({"actions": [{"type": "sleep", "option": {"duration": 1000}}]}).to_string();
    let (status, err) = common::http(engine.api, "POST", "/v1/activeflows", Some(&body));
    assert_eq!(status, 503, "{signal}: {err}");

    // The call stays up through the grace period, then gets the BYE.
    caller
        .sip
        .socket
        .set_read_timeout(Some(GRACE + Duration::from_secs(5)))
        .unwrap();
    let bye = caller.sip.recv_until("BYE ");
    let waited = signalled.elapsed();
    assert!(
        waited >= GRACE - Duration::from_millis(100),
        "{signal}: BYE after {waited:?}, inside the {GRACE:?} grace"
    );
    assert_eq!(header(&bye, "Call-ID"), Some(caller.call_id.as_str()));
    caller.sip.send(&format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        header(&bye, "Via").unwrap(),
        header(&bye, "From").unwrap(),
        header(&bye, "To").unwrap(),
        header(&bye, "Call-ID").unwrap(),
        header(&bye, "CSeq").unwrap(),
    ));

    // Then it exits 0 on its own.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = engine.reaper.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{signal}: still running after the drain"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{signal}: exit {status:?}");
    // Its end is on record: `shutdown`.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let ends: Vec<(String, Option<String>)> = conn
        .prepare("SELECT status, end_reason FROM activeflows")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        ends,
        [("ended".to_owned(), Some("shutdown".to_owned()))],
        "{signal}"
    );
}

#[test]
fn sigterm_drains_a_call_up_and_exits_zero() {
    drain_on("TERM");
}

#[test]
fn sigint_drains_a_call_up_and_exits_zero() {
    drain_on("INT");
}
