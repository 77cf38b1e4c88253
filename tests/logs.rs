//! `log.format` on the real binary: a SIPp call whose caller sends no RTP runs a flow (answer,
//! sleep) until the RTP timeout ends it, so the call session, its media session and the
//! activeflow all log about it. With `json` every stderr line is a JSON object and every line
//! that names the call or its activeflow carries all three ids (the activeflow's id, the call's
//! id and the Call-ID SIPp sent) under `span`; with `text` the same ids are printed as
//! `key=value` in the span prefix. A leg the engine places (`POST /v1/calls` to a busy SIPp
//! callee) names its activeflow the same way.
#![allow(clippy::unwrap_used)] // the shared harness unwraps: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::uas::SippUas;
use common::{http, sipp, spawn_engine_keeping_log, wait_until, Spawned};
use serde_json::{json, Value};

/// Generous: the call itself lasts about one second (the RTP timeout).
const LIMIT: Duration = Duration::from_secs(30);

/// A flows dir with `demo` (the default route's flow): answer, then wait far longer than the
/// RTP timeout, so that the timeout ends the call.
fn flows_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("activeflow-logs-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("flows dir");
    let flow = json!({
        "name": "demo",
        "actions": [
            {"type": "answer"},
            {"type": "sleep", "option": {"duration": 60000}},
            {"type": "hangup"}
        ]
    });
    std::fs::write(dir.join("demo.json"), flow.to_string()).expect("flow file");
    dir
}

/// The ids of one finished call.
struct Ids {
    activeflow_id: String,
    call_id: String,
    sip_call_id: String,
}

/// Starts an engine printing `format`, runs one SIPp call with a Call-ID of our choosing and
/// waits until the activeflow's end is logged; returns the engine, its stderr lines and the ids.
fn one_call(format: &str) -> (Spawned, Vec<String>, Ids) {
    let flows = flows_dir(format);
    let engine = spawn_engine_keeping_log(
        &[],
        &[
            ("ACTIVEFLOW_LOG_FORMAT", format),
            ("ACTIVEFLOW_FLOWS_DIR", flows.to_str().expect("path")),
            ("ACTIVEFLOW_MEDIA_RTP_TIMEOUT_SECONDS", "1"),
        ],
    );
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    // SIPp's `-cid_str`: %u is the call number (1 for the only call).
    let sip_call_id = format!("logs-{format}-{nonce}-1@sipp.test");
    let cid_str = format!("logs-{format}-{nonce}-%u@sipp.test");
    sipp(
        engine.sip,
        "uac_engine_bye.xml",
        "100",
        &["-m", "1", "-cid_str", &cid_str],
    )
    .assert_all_ok(1);

    let call_id = wait_until("the call in /v1/calls", LIMIT, || {
        let (_, calls) = http(engine.api, "GET", "/v1/calls", None);
        calls["result"]
            .as_array()?
            .iter()
            .find(|c| c["sip_call_id"] == sip_call_id.as_str())
            .and_then(|c| c["id"].as_str().map(str::to_owned))
    });
    let activeflow_id = wait_until("its activeflow ended", LIMIT, || {
        let (_, list) = http(engine.api, "GET", "/v1/activeflows", None);
        list["result"]
            .as_array()?
            .iter()
            .find(|a| a["reference_id"] == call_id.as_str() && a["status"] == "ended")
            .and_then(|a| {
                assert_eq!(a["end_reason"], "rtp_timeout", "{a}");
                a["id"].as_str().map(str::to_owned)
            })
    });
    let ids = Ids {
        activeflow_id,
        call_id,
        sip_call_id,
    };
    let lines = lines_until_end(&engine, &ids);
    (engine, lines, ids)
}

/// The engine's stderr once it logged the end of `ids`' activeflow.
fn lines_until_end(engine: &Spawned, ids: &Ids) -> Vec<String> {
    wait_until("the activeflow's end in the log", LIMIT, || {
        let lines = engine.stderr_lines();
        lines
            .iter()
            .any(|l| l.contains("activeflow ended") && l.contains(&ids.activeflow_id))
            .then_some(lines)
    })
}

/// Every line parsed as a JSON object (panics on one that is not); the lines that name any of
/// `ids`, each checked to carry all three under `span`.
fn json_about(lines: &[String], ids: &Ids) -> Vec<Value> {
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for v in &parsed {
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
        assert!(v["message"].is_string(), "{v}");
    }
    let named = |v: &Value| {
        let text = v.to_string();
        [&ids.activeflow_id, &ids.call_id, &ids.sip_call_id]
            .iter()
            .any(|id| text.contains(id.as_str()))
    };
    let about: Vec<Value> = parsed.into_iter().filter(named).collect();
    for v in &about {
        let span = &v["span"];
        assert_eq!(span["activeflow_id"], ids.activeflow_id.as_str(), "{v}");
        assert_eq!(span["call_id"], ids.call_id.as_str(), "{v}");
        assert_eq!(span["sip_call_id"], ids.sip_call_id.as_str(), "{v}");
    }
    about
}

/// The line of `about` with `message` logged in the span named `span` (panics if none).
fn find<'a>(about: &'a [Value], message: &str, span: &str) -> &'a Value {
    about
        .iter()
        .find(|v| v["message"] == message && v["span"]["name"] == span)
        .unwrap_or_else(|| panic!("no {message:?} line in the {span} span: {about:#?}"))
}

#[test]
fn json_lines_about_a_call_carry_its_three_ids() {
    let (engine, lines, ids) = one_call("json");
    let about = json_about(&lines, &ids);
    // The activeflow's own lines: each action, and its end.
    let executed: Vec<&Value> = about
        .iter()
        .filter(|v| v["message"] == "action executed")
        .collect();
    let types: Vec<&str> = executed
        .iter()
        .filter_map(|v| v["action_type"].as_str())
        .collect();
    assert_eq!(types, ["answer", "sleep"], "{executed:#?}");
    assert_eq!(
        find(&about, "activeflow ended", "activeflow")["end_reason"],
        "rtp_timeout"
    );
    // The call session's line (its leg machine) and its media session's.
    find(&about, "no RTP from the peer; hanging up", "call");
    find(&about, "no RTP from the peer: RTP timeout", "call");
    engine.reaper.assert_no_panic();
}

/// A leg the engine places: its session's lines name the activeflow placed with it, and the
/// activeflow's lines name the leg and the Call-ID of our INVITE.
#[test]
fn json_lines_about_a_placed_leg_carry_its_activeflow() {
    let callee = SippUas::start("uas_busy.xml", &[]);
    // The leg machine says "call ended" at debug.
    let engine = spawn_engine_keeping_log(
        &[],
        &[
            ("ACTIVEFLOW_LOG_FORMAT", "json"),
            ("RUST_LOG", "info,activeflow::call::leg=debug"),
        ],
    );
    let body = json!({
        "source": {"type": "tel", "target": "+15550100"},
        "destinations": [{"type": "sip", "target": callee.uri()}],
        "actions": [{"type": "hangup"}]
    });
    let (status, placed) = http(engine.api, "POST", "/v1/calls", Some(&body.to_string()));
    assert_eq!(status, 200, "{placed}");
    let placed = &placed["calls"][0];
    let (call_id, activeflow_id) = (
        placed["id"].as_str().expect("call id").to_owned(),
        placed["activeflow_id"]
            .as_str()
            .expect("activeflow id")
            .to_owned(),
    );
    assert!(callee.succeeded(LIMIT), "486 sent and ACKed");
    let (_, call) = http(engine.api, "GET", &format!("/v1/calls/{call_id}"), None);
    let sip_call_id = call["sip_call_id"]
        .as_str()
        .expect("sip_call_id")
        .to_owned();
    let ids = Ids {
        activeflow_id,
        call_id,
        sip_call_id,
    };
    let lines = lines_until_end(&engine, &ids);
    let about = json_about(&lines, &ids);
    find(&about, "outbound call placed", "call");
    find(&about, "call ended", "call");
    assert_eq!(
        find(&about, "activeflow ended", "activeflow")["end_reason"],
        "not_answered"
    );
    engine.reaper.assert_no_panic();
}

#[test]
fn text_lines_about_a_call_carry_its_three_ids() {
    let (engine, lines, ids) = one_call("text");
    let about: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(&ids.activeflow_id) || l.contains(&ids.sip_call_id))
        .collect();
    for line in &about {
        assert!(
            line.contains(&format!("activeflow_id={}", ids.activeflow_id))
                && line.contains(&format!("call_id={}", ids.call_id))
                && line.contains(&format!("sip_call_id={}", ids.sip_call_id)),
            "{line}"
        );
        assert!(!line.starts_with('{'), "text, not JSON: {line}");
    }
    for message in [
        "action executed",
        "activeflow ended",
        "no RTP from the peer; hanging up",
    ] {
        assert!(
            about.iter().any(|l| l.contains(message)),
            "no {message:?} line: {about:#?}"
        );
    }
    assert!(
        about
            .iter()
            .any(|l| l.contains("activeflow{activeflow_id=")),
        "{about:#?}"
    );
    assert!(
        about.iter().any(|l| l.contains("call{call_id=")),
        "{about:#?}"
    );
    engine.reaper.assert_no_panic();
}

/// A bad `log.format` stops the engine before it binds anything, naming the key.
#[test]
fn a_bad_log_format_is_refused_naming_the_key() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_activeflow"))
        .arg("serve")
        .env("ACTIVEFLOW_LOG_FORMAT", "xml")
        .env("ACTIVEFLOW_SIP_LISTEN", "127.0.0.1:0")
        .env("ACTIVEFLOW_API_LISTEN", "127.0.0.1:0")
        .env("ACTIVEFLOW_METRICS_LISTEN", "127.0.0.1:0")
        .output()
        .expect("run activeflow");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("log.format"), "{stderr}");
    assert!(!stderr.contains("activeflow listening"), "{stderr}");
}
