//! Hostile flows and history (issue 16), through the engine's real paths: activeflows started
//! over the API or by a SIPp call, webhooks and fetches to a real HTTP server on loopback,
//! records read back from the real SQLite store once they have left memory.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{flow, http, sipp, start, TestEngine};
use serde_json::{json, Value};

/// Requests the test server saw: (method, path and query, body).
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A small HTTP/1.1 server on loopback: every request is logged and answered 200 with a one
/// action list (what `fetch` wants; webhooks ignore it) after `delay` (so an activeflow's
/// progress write goes out while it waits).
fn http_server(delay: Duration) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (method, path, body) = common::read_http_request(&stream);
            log.lock()
                .unwrap()
                .push((method, path, String::from_utf8_lossy(&body).into()));
            std::thread::sleep(delay);
            let answer =
                r#"[{"type": "variable_set", "option": {"key": "fetched", "value": "1"}}]"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (addr, seen)
}

/// An engine whose flows may reach 127.0.0.1 and which keeps no ended activeflow in memory
/// (`engine.ended_retained` 0): an ended record is served from storage only.
fn engine(flows: &[Value], routes: &[(&str, &str)], env: &[(&str, &str)]) -> TestEngine {
    let mut all = vec![
        ("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32"),
        ("ACTIVEFLOW_HTTP_TIMEOUT_MS", "5000"),
        ("ACTIVEFLOW_ENGINE_ENDED_RETAINED", "0"),
    ];
    all.extend_from_slice(env);
    start(flows, routes, &all)
}

/// Starts an activeflow with `actions` over the API; its id.
fn start_api(e: &TestEngine, actions: Value) -> String {
    let (status, a) = http(
        e.api,
        "POST",
        "/v1/activeflows",
        Some(&json!({ "actions": actions }).to_string()),
    );
    assert_eq!(status, 201, "{a}");
    a["id"].as_str().unwrap().to_owned()
}

/// The stored record once it has ended and left memory (`ended_retained` 0 drops it at its
/// end): the API serves it from storage.
fn stored(e: &TestEngine, id: &str) -> Value {
    let parsed = id.parse().unwrap();
    common::wait_until(
        "the activeflow to end and leave memory",
        Duration::from_secs(30),
        || {
            if e.registry.get(&parsed).is_some() {
                return None;
            }
            let (status, a) = http(e.api, "GET", &format!("/v1/activeflows/{id}"), None);
            (status == 200 && a["status"] == "ended").then_some(a)
        },
    )
}

/// The `result` of the executed action of type `kind`.
fn result_of<'a>(a: &'a Value, kind: &str) -> &'a Value {
    &a["executed_actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {a}"))["result"]
}

// ---- History: a result merged after its row was queued is written ----

/// `webhook_send` with `sync` waits for its answer: the progress write before the wait queues
/// its row without a result, and the answer's status is merged in afterwards. The stored record
/// (served once the activeflow has left memory) must still carry it.
#[test]
fn a_webhook_status_merged_after_the_progress_write_is_stored() {
    let (server, seen) = http_server(Duration::from_millis(300));
    let e = engine(&[], &[], &[]);
    let id = start_api(
        &e,
        json!([
            {"type": "webhook_send", "option": {"uri": format!("http://{server}/hook"), "sync": true}},
            {"type": "variable_set", "option": {"key": "after", "value": "1"}},
            {"type": "sleep", "option": {"duration": 1}}
        ]),
    );
    let a = stored(&e, &id);
    assert_eq!(a["end_reason"], "completed", "{a}");
    let result = result_of(&a, "webhook_send");
    assert_eq!(result["status"], 200, "stored record lost the status: {a}");
    assert_eq!(result["attempts"], 1, "{a}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

/// The same for `digits_receive` on a real call: SIPp presses 1 (RFC 4733 events from its
/// pcap) while the activeflow waits; the stored record keeps the digits.
#[test]
fn digits_merged_after_the_progress_write_are_stored() {
    let f = flow(
        "ivr",
        json!([
            {"type": "answer"},
            {"type": "digits_receive", "option": {"duration": 10000, "length": 1}},
            {"type": "variable_set", "option": {"key": "pressed", "value": "${call.digits}"}},
            {"type": "hangup"}
        ]),
    );
    let e = engine(&[f], &[("ivr", "ivr")], &[]);
    let mp = common::reserve_ports(4).release().to_string();
    let run = sipp(e.sip, "uac_dtmf.xml", "ivr", &["-m", "1", "-mp", &mp]);
    run.assert_all_ok(1);
    let a = common::wait_until("the stored activeflow", Duration::from_secs(30), || {
        let (_, list) = http(e.api, "GET", "/v1/activeflows?status=ended", None);
        list["result"].as_array()?.first().cloned()
    });
    let id = a["id"].as_str().unwrap();
    let a = stored(&e, id);
    let digits = result_of(&a, "digits_receive");
    assert_eq!(digits["digits"], "1", "stored record lost the digits: {a}");
    assert_eq!(digits["finished_by"], "length", "{a}");
}
