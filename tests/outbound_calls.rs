//! Outbound calls that run flows, with real peers: `POST /v1/calls` and the `call` action place
//! INVITEs (RFC 3261 §13.2 UAC) to SIPp callees (UAS scenarios); when a callee answers (2xx,
//! §13.2.2.4) its activeflow runs on that call; a callee that refuses (486, §21.4.24) ends the
//! call unanswered and runs nothing. The parent of a `call` moves on at once; `chained` calls get
//! BYE (§15.1.1) when the parent's caller hangs up.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use activeflow::engine::{ActiveflowRecord, EndReason, ReferenceType, Status};
use common::uas::SippUas;
use common::{executed_types, flow, free_port, http, start, TestEngine};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(30);

fn engine(flows: &[Value], routes: &[(&str, &str)]) -> TestEngine {
    start(flows, routes, &[])
}

fn post_calls(engine: &TestEngine, body: Value) -> (u16, Value) {
    http(engine.api, "POST", "/v1/calls", Some(&body.to_string()))
}

/// The activeflow with this id, once it has ended.
fn ended(engine: &TestEngine, id: &str) -> ActiveflowRecord {
    engine.wait_for("the activeflow to end", LIMIT, |all| {
        all.iter()
            .any(|a| a.id.to_string() == id && a.status == Status::Ended)
    });
    engine
        .activeflows()
        .into_iter()
        .find(|a| a.id.to_string() == id)
        .unwrap()
}

fn call_json(engine: &TestEngine, id: &str) -> Value {
    let (status, call) = http(engine.api, "GET", &format!("/v1/calls/{id}"), None);
    assert_eq!(status, 200, "{call}");
    call
}

/// RTP packets arriving on `socket` within `limit` (stops 500 ms after the last one).
fn count_rtp(socket: &UdpSocket, limit: Duration) -> usize {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let (mut n, mut last) = (0, Instant::now());
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        match socket.recv_from(&mut buf) {
            Ok((len, _)) if len > 12 && buf[0] >> 6 == 2 => {
                n += 1;
                last = Instant::now();
            }
            _ if n > 0 && last.elapsed() > Duration::from_millis(500) => break,
            _ => {}
        }
    }
    n
}

#[test]
fn post_calls_runs_the_flow_on_the_answered_call() {
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp = media.local_addr().unwrap().port();
    let callee = SippUas::start_with_rtp("uas_answer_wait_bye.xml", rtp, &[]);
    let engine = engine(&[], &[]);
    let (status, body) = post_calls(
        &engine,
        json!({
            "source": {"type": "tel", "target": "+15550100", "target_name": "Desk"},
            "destinations": [{"type": "sip", "target": callee.uri(), "target_name": "Bob"}],
            "actions": [
                {"type": "variable_set", "option": {"key": "seen", "value": "${call.direction} ${call.status} ${greeting}"}},
                {"type": "beep", "option": {"duration": 600}},
                {"type": "hangup"}
            ],
            "variables": {"greeting": "hello"}
        }),
    );
    assert_eq!(status, 200, "{body}");
    let entry = &body["calls"][0];
    assert_eq!(entry["status"], "dialing", "{body}");
    assert_eq!(entry["direction"], "outgoing");
    assert_eq!(entry["destination"]["target_name"], "Bob");
    let (call_id, af_id) = (
        entry["id"].as_str().unwrap().to_owned(),
        entry["activeflow_id"].as_str().unwrap().to_owned(),
    );
    // The beep is RTP to where the callee's SDP points (RFC 3264 §5).
    let packets = count_rtp(&media, Duration::from_secs(15));
    assert!(
        callee.succeeded(LIMIT),
        "the callee got BYE from the flow's hangup"
    );
    assert!(packets >= 20, "{packets} RTP packets of a 600 ms beep");
    let a = ended(&engine, &af_id);
    assert_eq!(a.reference_type, ReferenceType::Call);
    assert_eq!(a.reference_id, call_id);
    assert_eq!(a.end_reason, Some(EndReason::Completed));
    assert_eq!(executed_types(&a), ["variable_set", "beep", "hangup"]);
    // The flow ran after the answer, with the outgoing call's variables and the caller's.
    assert_eq!(a.variables.get("seen"), Some("outgoing progressing hello"));
    assert_eq!(a.variables.get("call.source.target"), Some("+15550100"));
    assert_eq!(a.variables.get("call.source.name"), Some("Desk"));
    assert_eq!(
        a.variables.get("call.destination.target"),
        Some(callee_uri_of(&body).as_str())
    );
    let call = call_json(&engine, &call_id);
    assert_eq!(call["direction"], "outgoing", "{call}");
    assert_eq!(call["status"], "ended", "{call}");
    assert!(call["tm_answer"].is_string(), "{call}");
}

fn callee_uri_of(body: &Value) -> String {
    body["calls"][0]["target"].as_str().unwrap().to_owned()
}

#[test]
fn a_busy_callee_ends_the_call_with_486_and_runs_nothing() {
    let callee = SippUas::start("uas_busy.xml", &[]);
    let engine = engine(&[], &[]);
    let (status, body) = post_calls(
        &engine,
        json!({
            "source": {"type": "tel", "target": "+15550100"},
            "destinations": [{"type": "sip", "target": callee.uri()}],
            "actions": [{"type": "talk", "option": {"text": "never"}}, {"type": "hangup"}]
        }),
    );
    assert_eq!(status, 200, "{body}");
    let call_id = body["calls"][0]["id"].as_str().unwrap().to_owned();
    let af_id = body["calls"][0]["activeflow_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        callee.succeeded(LIMIT),
        "486 sent and ACKed (RFC 3261 §17.1.1.3)"
    );
    let a = ended(&engine, &af_id);
    assert_eq!(a.end_reason, Some(EndReason::NotAnswered));
    assert!(a.executed_actions.is_empty(), "{:?}", executed_types(&a));
    assert_eq!(a.variables.get("call.status"), Some("hangup"));
    let call = call_json(&engine, &call_id);
    assert_eq!(
        (&call["end_cause"], &call["end_code"]),
        (&json!("rejected"), &json!(486)),
        "{call}"
    );
    assert!(call["tm_answer"].is_null(), "{call}");
}

#[test]
fn two_destinations_are_two_calls_with_two_activeflows() {
    let first = SippUas::start_with_rtp("uas_answer_wait_bye.xml", free_port(), &[]);
    let second = SippUas::start_with_rtp("uas_answer_wait_bye.xml", free_port(), &[]);
    let f = flow(
        "greet",
        json!([{"type": "sleep", "option": {"duration": 200}}, {"type": "hangup"}]),
    );
    let engine = engine(&[f], &[]);
    let flow_id = engine_flow_id(&engine, "greet");
    let (status, body) = post_calls(
        &engine,
        json!({
            "source": {"type": "tel", "target": "+15550100"},
            "destinations": [{"type": "sip", "target": first.uri()},
                             {"type": "sip", "target": second.uri()}],
            "flow_id": flow_id
        }),
    );
    assert_eq!(status, 200, "{body}");
    let calls = body["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{body}");
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    assert_ne!(calls[0]["activeflow_id"], calls[1]["activeflow_id"]);
    assert!(first.succeeded(LIMIT) && second.succeeded(LIMIT));
    for c in calls {
        let a = ended(&engine, c["activeflow_id"].as_str().unwrap());
        assert_eq!(a.flow_id.to_string(), flow_id);
        assert_eq!(a.reference_id, c["id"].as_str().unwrap());
        assert_eq!(executed_types(&a), ["sleep", "hangup"]);
    }
}

/// `trunk` names the trunk a `tel` destination goes out through: its outbound proxy gets the
/// INVITE (RFC 3261 §8.1.2: sent to the proxy, the Request-URI the number), and the flow runs
/// on the answered call. A trunk that does not exist fails that destination, named in its entry.
#[test]
fn the_trunk_option_places_tel_destinations_through_that_trunk() {
    let callee = SippUas::start_with_rtp("uas_answer_wait_bye.xml", free_port(), &[]);
    let proxy = format!("127.0.0.1:{}", callee.port);
    let engine = common::start_with(&[], &[], &[], |config| {
        let mut carrier = config.trunks[0].clone();
        carrier.name = "carrier".into();
        carrier.outbound_proxy = proxy;
        config.trunks.push(carrier);
    });
    let body = |trunk: &str| {
        json!({
            "source": {"type": "tel", "target": "+15550100"},
            "destinations": [{"type": "tel", "target": "+15550199"}],
            "trunk": trunk,
            "actions": [{"type": "sleep", "option": {"duration": 200}}, {"type": "hangup"}]
        })
    };
    let (status, placed) = post_calls(&engine, body("carrier"));
    assert_eq!(status, 200, "{placed}");
    assert!(callee.succeeded(LIMIT), "the carrier's proxy got the call");
    let a = ended(
        &engine,
        placed["calls"][0]["activeflow_id"].as_str().unwrap(),
    );
    assert_eq!(executed_types(&a), ["sleep", "hangup"]);
    let call = call_json(&engine, placed["calls"][0]["id"].as_str().unwrap());
    assert!(call["tm_answer"].is_string(), "{call}");

    // Each destination has its own result: this one failed, naming the trunk; no activeflow.
    let (status, placed) = post_calls(&engine, body("nope"));
    assert_eq!(status, 200, "{placed}");
    let entry = &placed["calls"][0];
    assert_eq!(
        (&entry["status"], &entry["reason"]),
        (&json!("failed"), &json!("no_route")),
        "{placed}"
    );
    assert_eq!(entry["error"], r#"no trunk named "nope""#, "{placed}");
    assert!(entry["activeflow_id"].is_null(), "{placed}");
}

fn engine_flow_id(engine: &TestEngine, name: &str) -> String {
    let (status, list) = http(engine.api, "GET", "/v1/flows", None);
    assert_eq!(status, 200);
    list["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn bad_requests_name_the_field() {
    let engine = engine(&[], &[]);
    let one = json!([{"type": "tel", "target": "+15550100"}]);
    let actions = json!([{"type": "hangup"}]);
    let cases = [
        (
            json!({"destinations": [{"type": "tel", "target": "1"}, {"type": "tel", "target": "x1"}], "actions": actions}),
            400,
            "destinations[1].target",
        ),
        (json!({"destinations": one}), 400, "flow_id"),
        (
            json!({"destinations": one, "actions": actions, "flow_id": "33333333-3333-4333-8333-333333333333"}),
            400,
            "actions",
        ),
        (
            json!({"destinations": one, "flow_id": "33333333-3333-4333-8333-333333333333"}),
            404,
            "flow_id",
        ),
        (
            json!({"destinations": [], "actions": actions}),
            400,
            "destinations",
        ),
        (
            json!({"destinations": vec![json!({"type": "tel", "target": "1"}); 17], "actions": actions}),
            400,
            "destinations",
        ),
        (
            json!({"destinations": one, "actions": [{"type": "talk", "option": {}}]}),
            400,
            "actions[0].option.text",
        ),
        (
            json!({"destinations": one, "actions": actions, "variables": {"call.id": "x"}}),
            400,
            "variables",
        ),
        (
            json!({"destinations": one, "actions": actions, "anonymous": "maybe"}),
            400,
            "anonymous",
        ),
    ];
    for (body, want, field) in cases {
        for prefix in ["/v1", "/v1.0"] {
            let (status, answer) = http(
                engine.api,
                "POST",
                &format!("{prefix}/calls"),
                Some(&body.to_string()),
            );
            assert_eq!(status, want, "{body} → {answer}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.starts_with(field), "{field}: {message}");
        }
    }
    assert!(engine.activeflows().is_empty(), "nothing started");
    assert!(
        engine.calls.list_calls(None, 10, None).0.is_empty(),
        "nothing placed"
    );
}

/// Capacity: with `engine.max_activeflows` 1 and one outbound call ringing, the next request is
/// refused whole (503 + Retry-After); hanging up the ringing call over the API cancels it (RFC
/// 3261 §9.1 CANCEL, the callee answers 487) and ends its activeflow `not_answered`.
#[test]
fn a_full_engine_answers_503_and_a_ringing_call_can_be_hung_up() {
    let callee = SippUas::start("uas_ring_cancel.xml", &[]);
    let engine = start(&[], &[], &[("ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS", "1")]);
    let body = |target: String| {
        json!({"destinations": [{"type": "sip", "target": target}],
               "actions": [{"type": "hangup"}]})
    };
    let (status, first) = post_calls(&engine, body(callee.uri()));
    assert_eq!(status, 200, "{first}");
    let call_id = first["calls"][0]["id"].as_str().unwrap().to_owned();
    let af = first["calls"][0]["activeflow_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, refused) = post_calls(&engine, body("sip:carol@127.0.0.1:9".into()));
    assert_eq!(status, 503, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("at capacity"), "{message}");
    // Wait for the ringing before the CANCEL (a CANCEL needs a provisional, RFC 3261 §9.1).
    common::wait_until("the call to ring", LIMIT, || {
        let c = call_json(&engine, &call_id);
        (c["status"] == "ringing").then_some(())
    });
    let (status, _) = http(
        engine.api,
        "POST",
        &format!("/v1/calls/{call_id}/hangup"),
        None,
    );
    assert_eq!(status, 200);
    assert!(callee.succeeded(LIMIT), "the callee got CANCEL");
    let a = ended(&engine, &af);
    assert_eq!(a.end_reason, Some(EndReason::NotAnswered));
    assert!(a.executed_actions.is_empty());
}

/// `POST /v1/calls` sits behind the token guard like every route, with the `flows` scope.
#[test]
fn posting_calls_needs_a_token() {
    let engine = start(&[], &[], &[("ACTIVEFLOW_API_TOKEN", "s3cret")]);
    let body = json!({"destinations": [{"type": "tel", "target": "1"}],
                      "actions": [{"type": "hangup"}]})
    .to_string();
    let (status, _) = common::http_with(engine.api, "POST", "/v1/calls", Some(&body), &[]);
    assert_eq!(status, 401);
    let (status, _) = common::http_with(
        engine.api,
        "POST",
        "/v1.0/calls",
        Some(&body),
        &[("Authorization", "Bearer wrong")],
    );
    assert_eq!(status, 401);
    let bad = json!({"destinations": []}).to_string();
    let (status, answer) = common::http_with(
        engine.api,
        "POST",
        "/v1/calls",
        Some(&bad),
        &[("Authorization", "Bearer s3cret")],
    );
    assert_eq!(status, 400, "past the guard: {answer}");
}

#[path = "outbound_calls/action.rs"]
mod action;
#[path = "outbound_calls/figures.rs"]
mod figures;
