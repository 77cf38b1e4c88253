//! How waiting media actions end, each reason its own case: `digits_receive` runs out its
//! `duration` (`finished_by: "timeout"`, with or without keys pressed before), and a recording
//! ends by `recording_stop` (`stop_action`), its `duration`, `end_of_silence`, its `end_of_key`
//! (an RFC 4733 event), a second `recording_start` (`replaced`) or the call's end (`call_ended`),
//! as `GET /v1/recordings/{id}` reports.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use activeflow::engine::{ActiveflowRecord, Status};
use common::rtp::MediaCaller;
use common::{flow, free_port, http, start, TestEngine};
use serde_json::{json, Value};

fn engine(flows: &[Value]) -> TestEngine {
    let dir = std::env::temp_dir().join(format!(
        "activeflow-media-endings-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(dir.join("prompts")).unwrap();
    let dirs: Vec<String> = ["prompts", "recordings", "cache"]
        .iter()
        .map(|d| dir.join(d).display().to_string())
        .collect();
    let names: Vec<String> = flows
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    let routes: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), n.as_str())).collect();
    start(
        flows,
        &routes,
        &[
            ("ACTIVEFLOW_MEDIA_PROMPTS_DIR", &dirs[0]),
            ("ACTIVEFLOW_MEDIA_RECORDINGS_DIR", &dirs[1]),
            ("ACTIVEFLOW_MEDIA_CACHE_DIR", &dirs[2]),
        ],
    )
}

/// The ended activeflow of the call to `number`.
fn ended(e: &TestEngine, number: &str) -> ActiveflowRecord {
    let mine = |a: &ActiveflowRecord| a.variables.get("call.destination.target") == Some(number);
    e.wait_for("the activeflow to end", Duration::from_secs(20), |all| {
        all.iter().any(|a| mine(a) && a.status == Status::Ended)
    });
    e.activeflows().into_iter().find(mine).unwrap()
}

fn results(a: &ActiveflowRecord, kind: &str) -> Vec<Value> {
    a.executed_actions
        .iter()
        .filter(|x| x.action.kind == kind)
        .map(|x| x.result.clone().unwrap_or(Value::Null))
        .collect()
}

/// Microseconds between two RFC 3339 UTC timestamps of the same day.
fn micros_between(a: &str, b: &str) -> i64 {
    let of = |t: &str| -> i64 {
        let time = t.split('T').nth(1).unwrap().trim_end_matches('Z');
        let mut parts = time.split(':');
        let h: i64 = parts.next().unwrap().parse().unwrap();
        let m: i64 = parts.next().unwrap().parse().unwrap();
        let s: f64 = parts.next().unwrap().parse().unwrap();
        (h * 3600 + m * 60) * 1_000_000 + (s * 1e6) as i64
    };
    of(b) - of(a)
}

#[test]
fn digits_receive_ends_by_timeout_after_its_duration() {
    let f = |name: &str| {
        flow(
            name,
            json!([{"type": "answer"},
                   {"type": "digits_receive", "option": {"duration": 1000, "length": 4}},
                   {"type": "hangup"}]),
        )
    };
    let e = engine(&[f("silent"), f("one-key")]);

    // No key at all.
    let mut caller = MediaCaller::new(e.sip);
    caller.call("silent", 0);
    caller.expect_bye();
    let a = ended(&e, "silent");
    let r = &results(&a, "digits_receive")[0];
    assert_eq!(
        (&r["finished_by"], &r["digits"]),
        (&json!("timeout"), &json!("")),
        "{r}"
    );
    let started = &a.executed_actions[1].tm_execute;
    let next = &a.executed_actions[2].tm_execute;
    let waited = micros_between(started, next);
    assert!(
        (950_000..3_000_000).contains(&waited),
        "digits_receive waited {waited} µs for a 1000 ms duration"
    );

    // One key of the four asked for, then nothing: the timeout ends it with what it has.
    let mut caller = MediaCaller::new(e.sip);
    caller.call("one-key", 0);
    // Newest first: the second call's activeflow (a running record's variables live in its
    // actor, so the number cannot identify it yet).
    e.wait_for("digits_receive waiting", Duration::from_secs(5), |all| {
        all.len() == 2 && all[0].status == Status::Running && all[0].executed_actions.len() == 2
    });
    let mut seq = 1;
    caller.press(5, &mut seq, 8000);
    caller.expect_bye();
    let a = ended(&e, "one-key");
    let r = &results(&a, "digits_receive")[0];
    assert_eq!(
        (&r["finished_by"], &r["digits"]),
        (&json!("timeout"), &json!("5")),
        "{r}"
    );
}

/// The recording's `end_reason` as the API reports it once ended.
fn recording_end(e: &TestEngine, id: &str) -> Value {
    for _ in 0..250 {
        let (status, r) = http(e.api, "GET", &format!("/v1/recordings/{id}"), None);
        assert_eq!(status, 200, "{r}");
        if r["status"] != "recording" {
            return r;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("recording {id} never ended");
}

#[test]
fn each_recording_end_reason_is_reported() {
    let rec = |opt: Value| json!({"type": "recording_start", "option": opt});
    let sleep = |ms: u64| json!({"type": "sleep", "option": {"duration": ms}});
    let hangup = json!({"type": "hangup"});
    let flows = [
        flow(
            "by-stop",
            json!([{"type": "answer"}, rec(json!({})), sleep(500), {"type": "recording_stop"},
                   sleep(300), hangup]),
        ),
        flow(
            "by-duration",
            json!([{"type": "answer"}, rec(json!({"duration": 1})), sleep(2500), hangup]),
        ),
        flow(
            "by-silence",
            json!([{"type": "answer"}, rec(json!({"end_of_silence": 1, "duration": 30})),
                   sleep(2500), hangup]),
        ),
        flow(
            "by-key",
            json!([{"type": "answer"}, rec(json!({"end_of_key": "#"})), sleep(3000), hangup]),
        ),
        flow(
            "by-replace",
            json!([{"type": "answer"}, rec(json!({})), sleep(300), rec(json!({})), sleep(300),
                   hangup]),
        ),
    ];
    let e = engine(&flows);
    let cases: [(&str, &[&str]); 5] = [
        ("by-stop", &["stop_action"]),
        ("by-duration", &["duration"]),
        ("by-silence", &["silence"]),
        ("by-key", &["key"]),
        ("by-replace", &["replaced", "call_ended"]),
    ];
    for (number, want) in cases {
        let mut caller = MediaCaller::new(e.sip);
        caller.call(number, 0);
        if number == "by-key" {
            e.wait_for("recording", Duration::from_secs(5), |all| {
                all[0].status == Status::Running && all[0].executed_actions.len() == 3
            });
            std::thread::sleep(Duration::from_millis(200));
            let mut seq = 1;
            caller.press(11, &mut seq, 8000); // '#'
        }
        caller.expect_bye();
        let a = ended(&e, number);
        let ids: Vec<String> = results(&a, "recording_start")
            .iter()
            .map(|r| {
                r["recording_id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{r}"))
                    .to_owned()
            })
            .collect();
        let got: Vec<String> = ids
            .iter()
            .map(|id| {
                let r = recording_end(&e, id);
                assert_eq!(r["status"], "ended", "{number}: {r}");
                r["end_reason"].as_str().unwrap_or("").to_owned()
            })
            .collect();
        assert_eq!(got, want, "{number}");
    }
}
