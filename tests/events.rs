//! The event stream over real sockets: an SSE reader on a plain TCP connection sees a SIPp
//! call's and its activeflow's events in the engine's exact order; a reconnect with
//! `Last-Event-ID` gets every later event exactly once (or `window_exceeded` when it is older
//! than the window); global and per-flow webhooks on a loopback HTTP server get their events,
//! a 5xx answer retried; an activeflow deleted over the API is streamed as `activeflow_deleted`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::sse::{Message, SseReader};
use common::{http, TestEngine};
use serde_json::{json, Value};

fn types(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.event.as_str()).collect()
}

fn count(messages: &[Message], kind: &str) -> usize {
    messages.iter().filter(|m| m.event == kind).count()
}

/// Answers and holds; SIPp's `uac_caller_bye` hangs up after 200 ms.
fn hold(name: &str) -> Value {
    json!({"name": name, "actions": [
        {"type": "answer"},
        {"type": "sleep", "option": {"duration": 20000}}
    ]})
}

/// An engine (its RTP ports come from tests/common's range, outside the benchmarks').
fn start(flows: &[Value], routes: &[(&str, &str)], env: &[(&str, &str)]) -> TestEngine {
    common::start(flows, routes, env)
}

fn caller_bye(e: &TestEngine, number: &str, calls: u64) {
    let calls_s = calls.to_string();
    common::sipp(
        e.sip,
        "uac_caller_bye.xml",
        number,
        &["-m", &calls_s, "-r", "50"],
    )
    .assert_all_ok(calls);
}

/// One call's events in the engine's order: the call is offered, its activeflow starts and runs
/// `answer` and `sleep` in one go (the 200 OK goes out after, when the call session handles the
/// answer), the caller's BYE ends the call, and that ends the activeflow.
const ONE_CALL: [&str; 7] = [
    "call_created",
    "activeflow_created",
    "activeflow_updated",
    "activeflow_updated",
    "call_answered",
    "call_ended",
    "activeflow_ended",
];

#[test]
fn a_calls_events_arrive_in_order_with_one_update_per_executed_action() {
    let e = start(&[hold("hold")], &[("*", "hold")], &[]);
    let mut all = SseReader::connect(e.api, "", None);
    let mut calls_only = SseReader::connect(e.api, "?types=call_created,call_ended", None);
    caller_bye(&e, "100", 1);

    let got = all.until(|m| m.len() == ONE_CALL.len());
    assert_eq!(types(&got), ONE_CALL);
    // Consecutive ids, the JSON's `event_id` and `type` agreeing with the SSE fields.
    let first = got[0].id.unwrap();
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.id, Some(first + i as u64), "{m:?}");
        assert_eq!(m.data["event_id"], json!(m.id.unwrap()));
        assert_eq!(m.data["type"], m.event);
        assert!(m.data["tm"].as_str().unwrap().ends_with('Z'), "{m:?}");
    }
    let call_id = got[0].data["id"].as_str().unwrap().to_owned();
    let af_id = got[1].data["id"].as_str().unwrap().to_owned();
    for m in &got {
        let subject = if m.event.starts_with("call_") {
            &call_id
        } else {
            &af_id
        };
        assert_eq!(m.data["id"], json!(subject), "{m:?}");
    }
    assert_eq!(got[0].data["direction"], "incoming");
    assert_eq!(got[0].data["destination"], "100");
    assert_eq!(got[0].data["status"], "ringing");
    assert_eq!(got[1].data["reference_type"], "call");
    assert_eq!(got[1].data["reference_id"], json!(call_id));
    assert_eq!(got[4].data["status"], "answered");
    assert_eq!(
        (&got[5].data["status"], &got[5].data["end_cause"]),
        (&json!("ended"), &json!("remote_bye"))
    );
    assert_eq!(got[6].data["end_reason"], "hangup");
    assert_eq!(got[6].data["status"], "ended");

    // One update per executed action, carrying it as `executed_actions` holds it.
    let (status, record) = http(e.api, "GET", &format!("/v1/activeflows/{af_id}"), None);
    assert_eq!(status, 200);
    let executed = record["executed_actions"].as_array().unwrap();
    let updates: Vec<&Message> = got
        .iter()
        .filter(|m| m.event == "activeflow_updated")
        .collect();
    assert_eq!(updates.len(), executed.len());
    for (n, (u, x)) in updates.iter().zip(executed).enumerate() {
        assert_eq!(u.data["action"], *x, "update {n}");
        assert_eq!(u.data["current_action_id"], x["id"]);
        assert_eq!(u.data["execute_count"], json!(n + 1));
        assert_eq!(u.data["status"], "running");
    }
    assert_eq!(got[6].data["execute_count"], json!(executed.len()));

    // The filtered reader saw only the types it asked for, same ids.
    let filtered = calls_only.until(|m| m.len() == 2);
    assert_eq!(types(&filtered), ["call_created", "call_ended"]);
    assert_eq!((filtered[0].id, filtered[1].id), (got[0].id, got[5].id));
    calls_only.assert_quiet(Duration::from_millis(200));

    // An activeflow without a call: created, one update per action, ended.
    let (status, started) = http(
        e.api,
        "POST",
        "/v1/activeflows",
        Some(
            &json!({"actions": [
                {"type": "variable_set", "option": {"key": "a", "value": "1"}},
                {"type": "stop"}
            ]})
            .to_string(),
        ),
    );
    assert_eq!(status, 200, "{started}");
    let api = all.until(|m| m.len() == 4);
    assert_eq!(
        types(&api),
        [
            "activeflow_created",
            "activeflow_updated",
            "activeflow_updated",
            "activeflow_ended"
        ]
    );
    assert_eq!(api[0].id, Some(first + 7));
    assert_eq!(api[0].data["reference_type"], "api");
    assert_eq!(api[2].data["action"]["type"], "stop");
    assert_eq!(api[3].data["end_reason"], "stop_action");
    assert!(api.iter().all(|m| m.data["id"] == started["id"]));
}

#[test]
fn a_reconnect_with_last_event_id_gets_every_later_event_exactly_once() {
    let e = start(&[hold("hold")], &[("*", "hold")], &[]);
    let mut first = SseReader::connect(e.api, "", None);
    caller_bye(&e, "100", 2);
    let read = first.until(|m| m.len() == 5);
    let start_id = read[0].id.unwrap();
    let last = read[4].id.unwrap();
    drop(first);

    // More calls while nobody listens.
    caller_bye(&e, "100", 3);
    e.wait_for("5 ended", Duration::from_secs(5), |all| {
        all.len() == 5 && all.iter().all(|a| a.end_reason.is_some())
    });
    std::thread::sleep(Duration::from_millis(100));
    let end_id = start_id + 5 * ONE_CALL.len() as u64 - 1;

    let mut again = SseReader::connect(e.api, "", Some(last));
    let rest = again.until(|m| m.len() as u64 == end_id - last);
    let ids: Vec<u64> = rest.iter().map(|m| m.id.unwrap()).collect();
    assert_eq!(ids, (last + 1..=end_id).collect::<Vec<_>>());
    assert_eq!(
        count(&rest, "call_created") + count(&read, "call_created"),
        5
    );
    assert_eq!(count(&rest, "activeflow_ended"), 5);
    // Then live: nothing repeated, and the next call's events follow on.
    again.assert_quiet(Duration::from_millis(300));
    caller_bye(&e, "100", 1);
    let live = again.until(|m| m.len() == ONE_CALL.len());
    assert_eq!(types(&live), ONE_CALL);
    assert_eq!(live[0].id, Some(end_id + 1));
    assert_eq!(live[6].id, Some(end_id + 7));
}

#[test]
fn a_resume_older_than_the_window_starts_at_the_oldest_event_and_says_so() {
    let e = start(
        &[hold("hold")],
        &[("*", "hold")],
        &[
            ("ACTIVEFLOW_EVENTS_WINDOW", "10"),
            ("ACTIVEFLOW_EVENTS_KEEPALIVE_MS", "200"),
        ],
    );
    let mut reader = SseReader::connect(e.api, "", None);
    // Idle: keep-alive comments.
    reader.comments.clear();
    let before = Instant::now();
    reader.assert_quiet(Duration::from_millis(500));
    assert!(
        reader.comments.iter().any(|c| c == ": keep-alive"),
        "{:?} after {:?}",
        reader.comments,
        before.elapsed()
    );
    caller_bye(&e, "100", 3);
    let seen = reader.until(|m| m.len() == 3 * ONE_CALL.len());
    let (start_id, end_id) = (seen[0].id.unwrap(), seen[20].id.unwrap());
    drop(reader);

    let mut late = SseReader::connect(e.api, "", Some(start_id));
    let m = late.next();
    assert_eq!(m.event, "window_exceeded");
    assert_eq!(m.id, None);
    assert_eq!(m.data["last_event_id"], json!(start_id));
    assert_eq!(m.data["oldest_id"], json!(end_id - 9));
    let rest = late.until(|m| m.len() == 10);
    let ids: Vec<u64> = rest.iter().map(|m| m.id.unwrap()).collect();
    assert_eq!(ids, (end_id - 9..=end_id).collect::<Vec<_>>());
    // An id from another run (ahead of this one) is treated the same way.
    let mut other = SseReader::connect(e.api, "", Some(end_id + 1000));
    assert_eq!(other.next().event, "window_exceeded");
}

#[test]
fn bad_filters_and_ids_are_400_and_the_token_is_required() {
    let e = start(
        &[hold("hold")],
        &[("*", "hold")],
        &[("ACTIVEFLOW_API_TOKEN", "secret")],
    );
    let auth = [("Authorization", "Bearer secret")];
    let (status, body) = common::http_with(
        e.api,
        "GET",
        "/v1/events?types=call_created,nope",
        None,
        &auth,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("nope"));
    let bad_id = [
        ("Authorization", "Bearer secret"),
        ("Last-Event-ID", "soon"),
    ];
    let (status, body) = common::http_with(e.api, "GET", "/v1/events", None, &bad_id);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Last-Event-ID"));
    let (status, _) = http(e.api, "GET", "/v1/events", None);
    assert_eq!(status, 401);
}

/// Webhook bodies received, by path, in arrival order: (path, status answered, body).
type Hooks = Arc<Mutex<Vec<(String, u16, Value)>>>;

/// A loopback HTTP server: `/global` answers 503 to its first request, then 200; anything
/// else 200.
fn hook_server() -> (SocketAddr, Hooks) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Hooks = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut global = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (_, path, body) = common::read_http_request(&stream);
            let status = if path == "/global" {
                global += 1;
                if global == 1 {
                    503
                } else {
                    200
                }
            } else {
                200
            };
            log.lock().unwrap().push((
                path,
                status,
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            ));
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (addr, seen)
}

#[test]
fn global_and_per_flow_webhooks_get_their_events_and_a_5xx_is_retried() {
    let (server, hooks) = hook_server();
    let mut with_hook = hold("hooked");
    with_hook["webhook_uri"] = json!(format!("http://{server}/flow"));
    let global = format!("http://{server}/global");
    let e = start(
        &[with_hook, hold("plain")],
        &[("100", "hooked"), ("200", "plain")],
        &[
            ("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32"),
            ("ACTIVEFLOW_EVENTS_WEBHOOK_URI", &global),
        ],
    );
    caller_bye(&e, "100", 1);
    caller_bye(&e, "200", 1);

    let deadline = Instant::now() + Duration::from_secs(8);
    let delivered = |path: &str| -> Vec<Value> {
        hooks
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, s, _)| p == path && *s == 200)
            .map(|(_, _, b)| b.clone())
            .collect()
    };
    while (delivered("/global").len() < 14 || delivered("/flow").len() < 6)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let global_events = delivered("/global");
    let flow_events = delivered("/flow");

    // Global: every event of both calls, in id order, each once; the first was answered 503
    // and delivered on the retry.
    assert_eq!(global_events.len(), 14, "{global_events:#?}");
    let ids: Vec<u64> = global_events
        .iter()
        .map(|b| b["event_id"].as_u64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    let log = hooks.lock().unwrap().clone();
    let (path, status, refused) = &log[log.iter().position(|(p, ..)| p == "/global").unwrap()];
    assert_eq!((path.as_str(), *status), ("/global", 503));
    assert_eq!(refused, &global_events[0]);

    // Per flow: only the hooked flow's activeflow, and its call from the answer on.
    let af_ids: Vec<&Value> = global_events
        .iter()
        .filter(|b| b["type"] == "activeflow_created")
        .map(|b| &b["id"])
        .collect();
    let hooked = global_events
        .iter()
        .find(|b| b["type"] == "activeflow_created" && b["reference_id"] == global_events[0]["id"])
        .unwrap();
    assert_eq!(af_ids.len(), 2);
    let kinds: Vec<&str> = flow_events
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "activeflow_created",
            "activeflow_updated",
            "activeflow_updated",
            "call_answered",
            "call_ended",
            "activeflow_ended"
        ]
    );
    for b in &flow_events {
        let subject = if b["type"].as_str().unwrap().starts_with("call_") {
            &hooked["reference_id"]
        } else {
            &hooked["id"]
        };
        assert_eq!(&b["id"], subject, "{b}");
    }

    // The flow field over the API: stored and returned; a bad one is a 400 naming it.
    let (status, body) = http(
        e.api,
        "POST",
        "/v1/flows",
        Some(
            &json!({"name": "bad", "webhook_uri": "ftp://x/", "actions": [{"type": "answer"}]})
                .to_string(),
        ),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("webhook_uri:"));
    let (status, body) = http(
        e.api,
        "POST",
        "/v1/flows",
        Some(&json!({"name": "good", "webhook_uri": "https://hooks.example/x", "actions": [{"type": "answer"}]}).to_string()),
    );
    assert_eq!(status, 201, "{body}");
    let (_, read) = http(
        e.api,
        "GET",
        &format!("/v1/flows/{}", body["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(read["webhook_uri"], "https://hooks.example/x");
    let by_type: HashMap<&str, usize> = flow_events.iter().fold(HashMap::new(), |mut m, b| {
        *m.entry(b["type"].as_str().unwrap()).or_default() += 1;
        m
    });
    assert_eq!(by_type.get("call_created"), None);
}

#[test]
fn webhook_metrics_are_exported_at_zero_from_start_up() {
    let (_engine, _sip, _api, metrics) = common::spawn_engine(&[]);
    let text = common::raw_get(metrics, "/metrics");
    for outcome in ["delivered", "failed", "dropped"] {
        let series = format!("activeflow_webhook_deliveries_total{{outcome=\"{outcome}\"}}");
        assert_eq!(common::metric(&text, &series), Some(0.0), "{series}");
    }
    assert_eq!(
        common::metric(&text, "activeflow_events_window_exceeded_total"),
        Some(0.0)
    );
}

/// A webhook destination that takes each request and answers it only once the gate opens:
/// a stalled receiver. Returns its address, the gate and the event bodies received.
fn stalled_server() -> (SocketAddr, Arc<(Mutex<bool>, std::sync::Condvar)>, Hooks) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let gate: Arc<(Mutex<bool>, std::sync::Condvar)> = Arc::default();
    let seen: Hooks = Arc::default();
    let (g, log) = (gate.clone(), seen.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (g, log) = (g.clone(), log.clone());
            std::thread::spawn(move || loop {
                let (method, path, body) = common::read_http_request(&stream);
                if method.is_empty() {
                    return; // the engine closed the connection
                }
                let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                log.lock().unwrap().push((path, 200, json));
                let (open, cv) = &*g;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = cv.wait(open).unwrap();
                }
                drop(open);
                if write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").is_err() {
                    return;
                }
            });
        }
    });
    (addr, gate, seen)
}

/// README "Events": a full webhook queue drops the event and counts it
/// (`activeflow_webhook_deliveries_total{outcome="dropped"}`); the engine never waits for the
/// receiver, and what was queued is delivered in order once the receiver answers again.
#[test]
fn a_full_webhook_queue_drops_and_counts_without_holding_up_the_engine() {
    let (server, gate, hooks) = stalled_server();
    let uri = format!("http://{server}/stalled");
    let (_engine, _sip, api, metrics) = common::spawn_engine(&[
        ("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32"),
        ("ACTIVEFLOW_HTTP_TIMEOUT_MS", "30000"),
        ("ACTIVEFLOW_EVENTS_WEBHOOK_URI", &uri),
        ("ACTIVEFLOW_EVENTS_WEBHOOK_QUEUE", "2"),
    ]);
    let outcome = |o: &str| {
        let text = common::raw_get(metrics, "/metrics");
        common::metric(
            &text,
            &format!("activeflow_webhook_deliveries_total{{outcome=\"{o}\"}}"),
        )
        .unwrap()
    };
    // Ten activeflows, each created, updated and ended: 30 events or more for a queue of two
    // behind one delivery stuck at the receiver.
    let mut ids = Vec::new();
    for n in 0..10 {
        let body = json!({"actions": [
            {"type": "variable_set", "option": {"key": "n", "value": n.to_string()}}]});
        let (status, a) = common::http(api, "POST", "/v1/activeflows", Some(&body.to_string()));
        assert_eq!(status, 200, "{a}");
        ids.push(a["id"].as_str().unwrap().to_owned());
    }
    // The engine is not held up: every one ends while the receiver is stuck.
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, a) = common::http(api, "GET", &format!("/v1/activeflows/{id}"), None);
            if a["status"] == "ended" {
                assert_eq!(a["end_reason"], "completed", "{a}");
                break;
            }
            assert!(Instant::now() < deadline, "{id} never ended: {a}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // 30 events (created, one update, ended for each); the queue holds two, and the worker may
    // have taken one of them to the stalled receiver before the rest came: three or two are
    // kept, the rest dropped.
    const EVENTS: f64 = 30.0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while outcome("dropped") < EVENTS - 3.0 {
        assert!(
            Instant::now() < deadline,
            "dropped {} of {EVENTS} events with one in flight and two queued",
            outcome("dropped")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let dropped = outcome("dropped");
    assert!(
        dropped <= EVENTS - 2.0,
        "dropped {dropped}: the queue holds two"
    );
    assert_eq!(hooks.lock().unwrap().len(), 1, "one delivery in flight");
    assert_eq!(outcome("delivered"), 0.0);

    // The receiver answers again: exactly what was not dropped arrives, in order, and nothing
    // that was dropped comes later.
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    let kept = EVENTS - dropped;
    let deadline = Instant::now() + Duration::from_secs(10);
    while outcome("delivered") < kept {
        assert!(
            Instant::now() < deadline,
            "the queued events were not delivered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(outcome("delivered"), kept);
    assert_eq!(
        outcome("dropped"),
        dropped,
        "nothing dropped after the receiver came back"
    );
    let got = hooks.lock().unwrap().clone();
    assert_eq!(got.len() as f64, kept, "{got:#?}");
    let event_ids: Vec<u64> = got
        .iter()
        .map(|(_, _, b)| b["event_id"].as_u64().unwrap())
        .collect();
    assert!(event_ids.windows(2).all(|w| w[0] < w[1]), "{event_ids:?}");
    assert_eq!(got[0].2["type"], "activeflow_created", "{:#?}", got[0].2);
    assert_eq!(outcome("failed"), 0.0);
}

#[test]
fn deleting_an_activeflow_streams_activeflow_deleted_and_the_filter_takes_it() {
    let waits = json!({"name": "waits", "actions": [{"type": "block"}]});
    let e = start(&[waits], &[], &[]);
    let mut deleted_only = SseReader::connect(e.api, "?types=activeflow_deleted", None);
    let (status, started) = http(
        e.api,
        "POST",
        "/v1/activeflows",
        Some(&json!({"flow_id": "waits"}).to_string()),
    );
    assert_eq!(status, 200, "{started}");
    let id = started["id"].as_str().unwrap();
    let (status, _) = http(e.api, "DELETE", &format!("/v1/activeflows/{id}"), None);
    assert_eq!(status, 200);
    // Created, updated and ended were filtered out: the first message is the deletion.
    let m = deleted_only.next();
    assert_eq!(m.event, "activeflow_deleted");
    assert_eq!(m.data["type"], "activeflow_deleted");
    assert_eq!(m.data["id"], id);
    assert_eq!(m.data["status"], "ended");
    assert_eq!(m.data["reference_type"], "api");
    assert_eq!(m.data["execute_count"], 1);
    assert_eq!(m.data["event_id"].as_u64(), m.id);
}
