//! Webhooks in VoIPBIN's shape over real sockets (issue 18): a flow's own webhook with
//! `webhook_format: "voipbin"` and `webhook_method: "PUT"` gets `{type, data}` bodies whose data
//! is the whole activeflow (bin-flow-manager/models/activeflow/webhook.go, event.go), the global
//! webhook in `events.webhook_format = "voipbin"`, a flow that keeps the native shape, GET with a
//! body (as bin-webhook-manager/pkg/webhookhandler/message.go sends it), and
//! `activeflow_deleted` on `DELETE /v1/activeflows/{id}`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{http, TestEngine};
use serde_json::{json, Value};

/// Requests received: (method, path, body).
type Hooks = Arc<Mutex<Vec<(String, String, Value)>>>;

/// A loopback HTTP server answering 200 to everything.
fn hook_server() -> (SocketAddr, Hooks) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Hooks = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (method, path, body) = common::read_http_request(&stream);
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            log.lock().unwrap().push((method, path, body));
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (addr, seen)
}

/// The requests to `path` once `n` have arrived (waits up to 10 s, then a little more so extra
/// ones would show).
fn received(hooks: &Hooks, path: &str, n: usize) -> Vec<(String, Value)> {
    let of_path = || -> Vec<(String, Value)> {
        hooks
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, p, _)| p == path)
            .map(|(m, _, b)| (m.clone(), b.clone()))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while of_path().len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    of_path()
}

fn types(bodies: &[(String, Value)]) -> Vec<&str> {
    bodies
        .iter()
        .map(|(_, b)| b["type"].as_str().unwrap())
        .collect()
}

/// Answers and holds; SIPp's `uac_caller_bye` hangs up after 200 ms.
fn hold(name: &str, hook: Value) -> Value {
    let mut flow = json!({"name": name, "actions": [
        {"type": "answer"},
        {"type": "sleep", "option": {"duration": 20000}}
    ]});
    for (k, v) in hook.as_object().unwrap() {
        flow[k] = v.clone();
    }
    flow
}

fn caller_bye(e: &TestEngine, number: &str) {
    common::sipp(e.sip, "uac_caller_bye.xml", number, &["-m", "1"]).assert_all_ok(1);
}

#[test]
fn a_flows_voipbin_put_webhook_and_the_global_one_get_the_whole_activeflow() {
    let (server, hooks) = hook_server();
    let flow_hook = json!({"webhook_uri": format!("http://{server}/flow"),
        "webhook_method": "PUT", "webhook_format": "voipbin"});
    let native_hook =
        json!({"webhook_uri": format!("http://{server}/native"), "webhook_format": "native"});
    let global = format!("http://{server}/global");
    let e = common::start(
        &[
            hold("vb", flow_hook),
            hold("nat", native_hook),
            hold("bare", json!({})),
        ],
        &[("100", "vb"), ("200", "nat"), ("300", "bare")],
        &[
            ("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32"),
            ("ACTIVEFLOW_EVENTS_WEBHOOK_URI", &global),
            ("ACTIVEFLOW_EVENTS_WEBHOOK_FORMAT", "voipbin"),
        ],
    );
    caller_bye(&e, "100");
    let flow = received(&hooks, "/flow", 6);

    // bin-flow-manager publishes activeflow_created/updated (an ended activeflow is an update)
    // and bin-call-manager call_progressing (answered) and call_hangup.
    assert_eq!(
        types(&flow),
        [
            "activeflow_created",
            "activeflow_updated",
            "activeflow_updated",
            "call_progressing",
            "call_hangup",
            "activeflow_updated",
        ],
        "{flow:#?}"
    );
    assert!(flow.iter().all(|(m, _)| m == "PUT"), "{flow:#?}");
    assert!(flow.iter().all(|(_, b)| b.as_object().unwrap().len() == 2));
    let id = flow[0].1["data"]["id"].as_str().unwrap().to_owned();
    let executed: Vec<usize> = flow
        .iter()
        .filter(|(_, b)| b["type"].as_str().unwrap().starts_with("activeflow_"))
        .map(|(_, b)| {
            assert_eq!(b["data"]["id"], id.as_str(), "{b}");
            b["data"]["executed_actions"].as_array().unwrap().len()
        })
        .collect();
    assert_eq!(executed, [0, 1, 2, 2]);
    let statuses: Vec<&Value> = flow.iter().map(|(_, b)| &b["data"]["status"]).collect();
    assert_eq!(
        statuses,
        [
            "running",
            "running",
            "running",
            "progressing",
            "hangup",
            "ended"
        ]
    );
    for (_, call) in &flow[3..5] {
        assert_eq!(call["data"]["activeflow_id"], id.as_str(), "{call}");
    }
    assert_eq!(flow[4].1["data"]["hangup_by"], "remote");
    assert_eq!(flow[4].1["data"]["hangup_reason"], "normal");
    let last = &flow[5].1["data"];
    assert_eq!(last["executed_actions"][0]["type"], "answer");
    assert_eq!(last["executed_actions"][1]["type"], "sleep");

    // The data is the activeflow as the API returns it.
    let (status, read) = http(e.api, "GET", &format!("/v1/activeflows/{id}"), None);
    assert_eq!(status, 200, "{read}");
    for key in [
        "id",
        "flow_id",
        "status",
        "end_reason",
        "reference_type",
        "reference_id",
    ] {
        assert_eq!(last[key], read[key], "{key}");
    }
    assert_eq!(last["executed_actions"], read["executed_actions"]);

    // The global webhook: the same shapes, POSTed, call_created included.
    let global_bodies = received(&hooks, "/global", 7);
    assert!(global_bodies.iter().all(|(m, _)| m == "POST"));
    assert_eq!(types(&global_bodies)[0], "call_created");
    assert_eq!(&types(&global_bodies)[1..], types(&flow));
    assert_eq!(global_bodies[6].1, flow[5].1);

    // A flow that names the native format keeps it, with the global one in VoIPBIN's.
    caller_bye(&e, "200");
    let native = received(&hooks, "/native", 6);
    assert_eq!(
        types(&native),
        [
            "activeflow_created",
            "activeflow_updated",
            "activeflow_updated",
            "call_answered",
            "call_ended",
            "activeflow_ended",
        ]
    );
    assert!(native
        .iter()
        .all(|(m, b)| m == "POST" && b["event_id"].is_u64()));
    let global_bodies = received(&hooks, "/global", 14);
    assert_eq!(global_bodies.len(), 14);
    assert!(global_bodies
        .iter()
        .all(|(_, b)| b.get("event_id").is_none()));

    // A flow without a webhook of its own: its call's events to the VoIPBIN global webhook
    // still name the activeflow (VoIPBIN's call `activeflow_id`).
    caller_bye(&e, "300");
    let global_bodies = received(&hooks, "/global", 21);
    let bare = &global_bodies[14..];
    assert_eq!(types(bare)[0], "call_created", "{bare:#?}");
    let af = bare
        .iter()
        .find(|(_, b)| b["type"] == "activeflow_created")
        .map(|(_, b)| b["data"]["id"].clone())
        .unwrap();
    for kind in ["call_progressing", "call_hangup"] {
        let (_, call) = bare.iter().find(|(_, b)| b["type"] == kind).unwrap();
        assert_eq!(call["data"]["activeflow_id"], af, "{call}");
    }
}

#[test]
fn deleting_an_activeflow_publishes_activeflow_deleted_in_both_shapes() {
    let (server, hooks) = hook_server();
    let waiting = json!({"name": "waits", "webhook_uri": format!("http://{server}/flow"),
        "webhook_method": "GET", "webhook_format": "voipbin",
        "actions": [{"type": "block"}]});
    let global = format!("http://{server}/global");
    let e = common::start(
        &[waiting],
        &[],
        &[
            ("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32"),
            ("ACTIVEFLOW_EVENTS_WEBHOOK_URI", &global),
        ],
    );
    let (status, started) = http(
        e.api,
        "POST",
        "/v1/activeflows",
        Some(&json!({"flow_id": "waits"}).to_string()),
    );
    assert_eq!(status, 200, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    // Running, waiting in its block action: created and one update so far.
    received(&hooks, "/flow", 2);
    let (status, deleted) = http(e.api, "DELETE", &format!("/v1/activeflows/{id}"), None);
    assert_eq!(status, 200, "{deleted}");

    // The flow's webhook: GET with the JSON body, as VoIPBIN's webhook-manager sends it.
    let flow = received(&hooks, "/flow", 4);
    assert!(flow.iter().all(|(m, _)| m == "GET"), "{flow:#?}");
    assert_eq!(
        types(&flow),
        [
            "activeflow_created",
            "activeflow_updated",
            "activeflow_updated",
            "activeflow_deleted"
        ]
    );
    let data = &flow[3].1["data"];
    assert_eq!(data["id"], id.as_str());
    assert_eq!(data["status"], "ended");
    assert_eq!(data["end_reason"], "operator_stop");
    assert!(data["tm_delete"].as_str().unwrap().ends_with('Z'), "{data}");
    assert_eq!(data["executed_actions"], deleted["executed_actions"]);

    // The global webhook stays native (the default format).
    let global_bodies = received(&hooks, "/global", 4);
    let last = &global_bodies.last().unwrap().1;
    assert_eq!(last["type"], "activeflow_deleted");
    assert_eq!(last["id"], id.as_str());
    assert_eq!(last["status"], "ended");
    assert_eq!(last["execute_count"], 1);
    assert!(last["event_id"].is_u64());

    // Deleting it again answers the same soft-deleted record and publishes nothing more.
    let (status, again) = http(e.api, "DELETE", &format!("/v1/activeflows/{id}"), None);
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["tm_delete"], data["tm_delete"], "{again}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(received(&hooks, "/global", 4).len(), 4);
}

/// `POST /v1/activeflows` with its own `webhook_uri` and `webhook_method` (VoIPBIN's
/// bin-api-manager activeflow create): every event of that activeflow, `activeflow_deleted`
/// included, goes there with that method, and none to its flow's own webhook.
#[test]
fn an_activeflows_own_webhook_gets_its_events_and_its_deletion() {
    let (server, hooks) = hook_server();
    let waiting = json!({"name": "waits", "webhook_uri": format!("http://{server}/flow"),
        "actions": [{"type": "block"}]});
    let e = common::start(
        &[waiting],
        &[],
        &[("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32")],
    );
    let body = json!({"flow_id": "waits", "webhook_uri": format!("http://{server}/own"),
        "webhook_method": "PUT"});
    let (status, started) = http(e.api, "POST", "/v1/activeflows", Some(&body.to_string()));
    assert_eq!(status, 200, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    received(&hooks, "/own", 2);
    let (status, deleted) = http(e.api, "DELETE", &format!("/v1/activeflows/{id}"), None);
    assert_eq!(status, 200, "{deleted}");

    let own = received(&hooks, "/own", 4);
    assert!(own.iter().all(|(m, _)| m == "PUT"), "{own:#?}");
    assert_eq!(
        types(&own),
        [
            "activeflow_created",
            "activeflow_updated",
            "activeflow_ended",
            "activeflow_deleted"
        ]
    );
    assert!(own.iter().all(|(_, b)| b["id"] == id.as_str()), "{own:#?}");
    assert!(received(&hooks, "/flow", 0).is_empty());
}
