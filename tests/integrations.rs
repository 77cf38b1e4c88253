//! HTTP actions against a real HTTP server on loopback: `fetch` pushes the actions it answers
//! (and refuses invalid ones, slow servers and denied destinations), `webhook_send` retries 5xx
//! with backoff, waits when `sync` and does not when not.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http_server::executed_results;
use common::{http, start, TestEngine};
use serde_json::{json, Value};

/// Requests the test server saw: (method, path, body).
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A small HTTP/1.1 server: `/actions` answers an action list, `/invalid` an unknown action,
/// `/slow` nothing for 3 s, `/flaky` 500 twice then 200, anything else 200 `{}`.
fn http_server() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut flaky = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (method, path, body) = common::read_http_request(&stream);
            log.lock()
                .unwrap()
                .push((method, path.clone(), String::from_utf8_lossy(&body).into()));
            let (status, answer) = match path.as_str() {
                "/actions" => (
                    200,
                    json!([{"type": "variable_set", "option": {"key": "fetched", "value": "yes"}}])
                        .to_string(),
                ),
                "/invalid" => (200, json!([{"type": "nope"}]).to_string()),
                "/slow" => {
                    std::thread::sleep(Duration::from_secs(3));
                    (200, "[]".into())
                }
                "/flaky" => {
                    flaky += 1;
                    if flaky <= 2 {
                        (500, "{}".into())
                    } else {
                        (200, "{}".into())
                    }
                }
                _ => (200, "{}".into()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (addr, seen)
}

fn engine(allow_loopback: bool) -> TestEngine {
    let hold = json!({"name": "hold", "actions": [{"type": "sleep", "option": {"duration": 1}}]});
    let mut env = vec![("ACTIVEFLOW_HTTP_TIMEOUT_MS", "500")];
    if allow_loopback {
        env.push(("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32"));
    }
    start(&[hold], &[("*", "hold")], &env)
}

/// Starts an activeflow with `actions` over the API and waits for it to end.
fn run(e: &TestEngine, actions: Value) -> Value {
    let (status, a) = http(
        e.api,
        "POST",
        "/v1/activeflows",
        Some(&json!({"actions": actions}).to_string()),
    );
    assert_eq!(status, 200, "{a}");
    let id = a["id"].as_str().unwrap();
    for _ in 0..1000 {
        let (_, a) = http(e.api, "GET", &format!("/v1/activeflows/{id}"), None);
        if a["status"] == "ended" {
            return a;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("activeflow {id} did not end");
}

#[test]
fn fetch_pushes_the_answered_actions_and_refuses_bad_answers() {
    let (server, seen) = http_server();
    let e = engine(true);
    let a = run(
        &e,
        json!([
            {"type": "variable_set", "option": {"key": "who", "value": "caller"}},
            {"type": "fetch", "option": {"event_url": format!("http://{server}/actions")}},
            {"type": "variable_set", "option": {"key": "after", "value": "${fetched}"}}
        ]),
    );
    assert_eq!(a["end_reason"], "completed", "{a}");
    let r = executed_results(&a);
    let kinds: Vec<&str> = r.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["variable_set", "fetch", "variable_set", "variable_set"]
    );
    assert_eq!(r[1].1["status"], 200);
    let id = a["id"].as_str().unwrap();
    let (_, vars) = http(
        e.api,
        "GET",
        &format!("/v1/activeflows/{id}/variables"),
        None,
    );
    assert_eq!(vars["variables"]["after"], "yes");
    // POST carried the activeflow's id and variables.
    let (method, path, body) = seen.lock().unwrap()[0].clone();
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/actions"));
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            body["activeflow_id"].as_str(),
            body["variables"]["who"].as_str()
        ),
        (Some(id), Some("caller"))
    );

    for (path, expect) in [
        ("/invalid", "unknown action type"),
        ("/slow", "no answer within 500 ms"),
    ] {
        let started = std::time::Instant::now();
        let a = run(
            &e,
            json!([{"type": "fetch", "option": {"event_url": format!("http://{server}{path}"), "event_method": "GET"}}]),
        );
        assert_eq!(a["end_reason"], "error", "{a}");
        let why = a["executed_actions"][0]["result"]["error"]
            .as_str()
            .unwrap();
        assert!(why.contains(expect), "{path}: {why}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn the_http_policy_denies_the_operators_own_network_by_default() {
    let (server, seen) = http_server();
    let e = engine(false);
    let a = run(
        &e,
        json!([{"type": "fetch", "option": {"event_url": format!("http://{server}/actions")}}]),
    );
    let why = a["executed_actions"][0]["result"]["error"]
        .as_str()
        .unwrap();
    assert!(why.contains("not allowed by the [http] policy"), "{why}");
    let a = run(
        &e,
        json!([{"type": "webhook_send", "option": {"uri": format!("http://localhost:{}/hook", server.port()), "sync": true}}]),
    );
    let why = a["executed_actions"][0]["result"]["error"]
        .as_str()
        .unwrap();
    assert!(why.contains("not allowed"), "{why}");
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the server"
    );
}

#[test]
fn webhook_send_retries_5xx_waits_when_sync_and_not_otherwise() {
    let (server, seen) = http_server();
    let e = engine(true);
    let started = std::time::Instant::now();
    let a = run(
        &e,
        json!([{"type": "webhook_send", "option": {"uri": format!("http://{server}/flaky"), "sync": true,
                "data": "{\"call\": \"${activeflow.id}\"}"}}]),
    );
    assert_eq!(a["end_reason"], "completed", "{a}");
    let result = &a["executed_actions"][0]["result"];
    assert_eq!(
        (result["status"].as_u64(), result["attempts"].as_u64()),
        (Some(200), Some(3)),
        "{result}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "backoff 0.5 s then 1 s"
    );
    let bodies: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, b)| b.clone())
        .collect();
    assert_eq!(bodies.len(), 3);
    assert!(
        bodies[2].contains(a["id"].as_str().unwrap()),
        "data substituted: {}",
        bodies[2]
    );

    // Not sync: the flow goes on while the (slow) webhook is still out.
    let started = std::time::Instant::now();
    let a = run(
        &e,
        json!([{"type": "webhook_send", "option": {"uri": format!("http://{server}/slow")}}]),
    );
    assert_eq!(a["executed_actions"][0]["result"]["sync"], false);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "did not wait: {:?}",
        started.elapsed()
    );
}
