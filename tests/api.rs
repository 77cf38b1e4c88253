//! The REST API over a real socket: every route's success and error paths (400, 401, 404, 409,
//! 413), pagination across pages, bearer auth, and the OpenAPI document listing every route.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{flow, http, http_with, start, RawPeer};
use serde_json::{json, Value};

fn hold() -> Value {
    flow(
        "hold",
        json!([{"type": "answer"}, {"type": "sleep", "option": {"duration": 60000}}]),
    )
}

fn post(e: &common::TestEngine, path: &str, body: &Value) -> (u16, Value) {
    http(e.api, "POST", path, Some(&body.to_string()))
}

#[test]
fn flows_crud_with_validation_errors_naming_the_field() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    let (status, created) = post(
        &e,
        "/v1/flows",
        &flow("ivr", json!([{"type": "answer"}, {"type": "hangup"}])),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert!(created["actions"][0]["id"].is_string());
    let (status, got) = http(e.api, "GET", &format!("/v1/flows/{id}"), None);
    assert_eq!((status, &got["name"]), (200, &json!("ivr")));

    // 400 names the action index and field.
    let bad = flow(
        "bad",
        json!([{"type": "sleep", "option": {"duration": "soon"}}]),
    );
    let (status, err) = post(&e, "/v1/flows", &bad);
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("actions[0].option.duration"),
        "{err}"
    );
    let unsupported = flow("t", json!([{"type": "ai_talk", "option": {}}]));
    let (status, err) = post(&e, "/v1/flows", &unsupported);
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not supported"),
        "{err}"
    );
    let dangling = flow(
        "d",
        json!([{"type": "goto", "option": {"target_id": uuid::Uuid::new_v4()}}]),
    );
    let (status, err) = post(&e, "/v1/flows", &dangling);
    assert_eq!(status, 400);
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("actions[0].option.target_id"));
    let (status, _) = http(e.api, "POST", "/v1/flows", Some("{not json"));
    assert_eq!(status, 400);
    // Name taken → 409; same id again → 409.
    assert_eq!(
        post(&e, "/v1/flows", &flow("ivr", json!([{"type": "stop"}]))).0,
        409
    );
    assert_eq!(post(&e, "/v1/flows", &created).0, 409);

    // PUT replaces (the path's id wins); unknown id 404.
    let (status, replaced) = http(
        e.api,
        "PUT",
        &format!("/v1/flows/{id}"),
        Some(&flow("ivr2", json!([{"type": "stop"}])).to_string()),
    );
    assert_eq!((status, replaced["id"].as_str()), (200, Some(id.as_str())));
    assert_eq!(replaced["name"], "ivr2");
    let unknown = uuid::Uuid::new_v4();
    let body = flow("x", json!([{"type": "stop"}])).to_string();
    assert_eq!(
        http(e.api, "PUT", &format!("/v1/flows/{unknown}"), Some(&body)).0,
        404
    );
    assert_eq!(http(e.api, "GET", "/v1/flows/nope", None).0, 404);

    // DELETE, then it is gone.
    assert_eq!(
        http(e.api, "DELETE", &format!("/v1/flows/{id}"), None).0,
        200
    );
    assert_eq!(http(e.api, "GET", &format!("/v1/flows/{id}"), None).0, 404);
    assert_eq!(
        http(e.api, "DELETE", &format!("/v1/flows/{id}"), None).0,
        404
    );
}

#[test]
fn flows_created_over_the_api_are_routable_by_name() {
    let e = start(&[hold()], &[("555", "api-made")], &[]);
    let peer = RawPeer::new(e.sip);
    peer.send(&peer.invite("555", "before@t", "z9hG4bK-before"));
    assert!(peer.recv_final().starts_with("SIP/2.0 404"));
    let made = flow(
        "api-made",
        json!([{"type": "hangup", "option": {"reason": "busy"}}]),
    );
    assert_eq!(post(&e, "/v1/flows", &made).0, 201);
    peer.send(&peer.invite("555", "after@t", "z9hG4bK-after"));
    assert!(peer.recv_final().starts_with("SIP/2.0 486"));
}

#[test]
fn flow_listing_pages() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    for i in 0..5 {
        assert_eq!(
            post(
                &e,
                "/v1/flows",
                &flow(&format!("f{i}"), json!([{"type": "stop"}]))
            )
            .0,
            201
        );
    }
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let (status, page) = http(
            e.api,
            "GET",
            &format!("/v1/flows?page_size=2&page_token={token}"),
            None,
        );
        assert_eq!(status, 200);
        names.extend(
            page["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].as_str().unwrap().to_string()),
        );
        token = page["next_page_token"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(names, ["f0", "f1", "f2", "f3", "f4", "hold"]);
    // As VoIPBIN: 0 or less is the default size, over the maximum is the maximum; only a
    // non-number is a 400.
    for size in ["0", "-3", "1001"] {
        let (status, page) = http(e.api, "GET", &format!("/v1/flows?page_size={size}"), None);
        assert_eq!(status, 200, "{size}: {page}");
        assert_eq!(page["result"].as_array().unwrap().len(), 6, "{size}");
    }
    assert_eq!(http(e.api, "GET", "/v1/flows?page_size=many", None).0, 400);
}

#[test]
fn activeflows_started_over_the_api_list_page_and_stop() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    let waiting = json!([{"type": "variable_set", "option": {"key": "greeting", "value": "hi ${who}"}},
                         {"type": "sleep", "option": {"duration": 60000}}]);
    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, a) = post(
            &e,
            "/v1/activeflows",
            &json!({"actions": waiting, "variables": {"who": format!("n{i}")}}),
        );
        assert_eq!(status, 200, "{a}");
        assert_eq!(a["reference_type"], "api");
        ids.push(a["id"].as_str().unwrap().to_string());
    }
    // By flow id (or name) too; unknown flow 404; neither 400 (both: flow_id wins); bad actions 400.
    let (status, by_name) = post(&e, "/v1/activeflows", &json!({"flow_id": "hold"}));
    assert_eq!(status, 200);
    // Its `answer` needs a call: skipped (VoIPBIN verifyActionType), the sleep runs.
    let by_name_id = by_name["id"].as_str().unwrap().to_owned();
    e.wait_for(
        "answer without a call skipped",
        Duration::from_secs(5),
        |all| {
            all.iter()
                .any(|a| a.id.to_string() == by_name_id && a.executed_actions.len() == 2)
        },
    );
    let (_, running) = http(e.api, "GET", &format!("/v1/activeflows/{by_name_id}"), None);
    assert_eq!(running["status"], "running", "{running}");
    assert_eq!(
        running["executed_actions"][0]["result"],
        json!({"skipped": "no call"}),
        "{running}"
    );
    let stop = format!("/v1/activeflows/{by_name_id}/stop");
    assert_eq!(post(&e, &stop, &json!({})).0, 200);
    assert_eq!(
        post(
            &e,
            "/v1/activeflows",
            &json!({"flow_id": uuid::Uuid::new_v4()})
        )
        .0,
        404
    );
    assert_eq!(post(&e, "/v1/activeflows", &json!({})).0, 400);
    assert_eq!(
        post(
            &e,
            "/v1/activeflows",
            &json!({"actions": [{"type": "nope"}]})
        )
        .0,
        400
    );
    assert_eq!(
        post(&e, "/v1/activeflows", &json!({"actions": [], "bogus": 1})).0,
        400
    );

    // Pagination: newest first, across pages, with the status filter.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let (status, page) = http(
            e.api,
            "GET",
            &format!("/v1/activeflows?status=running&page_size=2&page_token={token}"),
            None,
        );
        assert_eq!(status, 200);
        seen.extend(
            page["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_string()),
        );
        token = page["next_page_token"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    assert_eq!(
        http(e.api, "GET", "/v1/activeflows?status=sleeping", None).0,
        400
    );
    assert_eq!(
        http(e.api, "GET", "/v1/activeflows?page_token=zz", None).0,
        400
    );

    // Variables: substituted at execution, readable, mergeable while running.
    let id = &ids[0];
    let (status, vars) = http(
        e.api,
        "GET",
        &format!("/v1/activeflows/{id}/variables"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(vars["variables"]["greeting"], "hi n0");
    assert_eq!(vars["variables"]["activeflow.reference_type"], "api");
    let (status, merged) = http(
        e.api,
        "PUT",
        &format!("/v1/activeflows/{id}/variables"),
        Some(&json!({"variables": {"extra": "1"}}).to_string()),
    );
    assert_eq!((status, &merged["variables"]["extra"]), (200, &json!("1")));
    assert_eq!(merged["variables"]["greeting"], "hi n0");

    // continue: it is sleeping, not waiting in a block action → 409.
    assert_eq!(
        http(
            e.api,
            "POST",
            &format!("/v1/activeflows/{id}/continue"),
            None
        )
        .0,
        409
    );

    // Stop, idempotent; then variables cannot change.
    let (status, stopped) = http(e.api, "POST", &format!("/v1/activeflows/{id}/stop"), None);
    assert_eq!(
        (status, &stopped["end_reason"]),
        (200, &json!("operator_stop"))
    );
    let put = json!({"variables": {"x": "y"}}).to_string();
    assert_eq!(
        http(
            e.api,
            "PUT",
            &format!("/v1/activeflows/{id}/variables"),
            Some(&put)
        )
        .0,
        409
    );

    // DELETE stops a running one and soft-deletes it: still readable, with tm_delete.
    let other = &ids[1];
    let (status, deleted) = http(e.api, "DELETE", &format!("/v1/activeflows/{other}"), None);
    assert_eq!((status, &deleted["status"]), (200, &json!("ended")));
    assert!(deleted["tm_delete"].is_string(), "{deleted}");
    let (status, got) = http(e.api, "GET", &format!("/v1/activeflows/{other}"), None);
    assert_eq!((status, &got["tm_delete"]), (200, &deleted["tm_delete"]));
    for path in ["", "/stop", "/continue", "/variables"] {
        let method = if path.is_empty() || path == "/variables" {
            "GET"
        } else {
            "POST"
        };
        let unknown = uuid::Uuid::new_v4();
        assert_eq!(
            http(
                e.api,
                method,
                &format!("/v1/activeflows/{unknown}{path}"),
                None
            )
            .0,
            404,
            "{path}"
        );
        assert_eq!(
            http(e.api, method, &format!("/v1/activeflows/x{path}"), None).0,
            404,
            "{path}"
        );
    }
}

#[test]
fn calls_are_listed_read_and_hung_up() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    let peer = RawPeer::new(e.sip);
    peer.send(&peer.invite("42", "api-call@t", "z9hG4bK-api-call"));
    let ok = peer.recv_until("200 OK");
    assert!(ok.contains("m=audio"));
    let (status, list) = http(e.api, "GET", "/v1/calls?status=answered", None);
    assert_eq!(status, 200);
    let call = &list["result"][0];
    assert_eq!(call["destination"], "42");
    let id = call["id"].as_str().unwrap();
    let (status, one) = http(e.api, "GET", &format!("/v1/calls/{id}"), None);
    assert_eq!((status, &one["sip_call_id"]), (200, &json!("api-call@t")));
    // The activeflow references the call.
    assert_eq!(e.activeflows()[0].reference_id, id);
    let (status, _) = http(e.api, "POST", &format!("/v1/calls/{id}/hangup"), None);
    assert_eq!(status, 200);
    // Not ACKed yet, so the BYE follows... we ACK now and expect it.
    let ack = format!(
        "ACK sip:42@{engine} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-api-ack\r\n\
         From: {from}\r\nTo: {to}\r\nCall-ID: api-call@t\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        engine = e.sip,
        port = peer.port(),
        from = common::header(&ok, "From").unwrap(),
        to = common::header(&ok, "To").unwrap(),
    );
    peer.send(&ack);
    peer.recv_until("BYE ");
    e.wait_for("hangup", Duration::from_secs(5), |all| {
        all[0].end_reason.is_some()
    });
    let (_, ended) = http(e.api, "GET", &format!("/v1/calls/{id}"), None);
    assert_eq!(ended["status"], "ended");
    assert_eq!(
        http(
            e.api,
            "GET",
            &format!("/v1/calls/{}", uuid::Uuid::new_v4()),
            None
        )
        .0,
        404
    );
    assert_eq!(http(e.api, "POST", "/v1/calls/garbage/hangup", None).0, 404);
    assert_eq!(http(e.api, "GET", "/v1/calls?status=odd", None).0, 400);
}

#[test]
fn bearer_token_is_required_when_configured() {
    let e = start(
        &[hold()],
        &[("*", "hold")],
        &[("ACTIVEFLOW_API_TOKEN", "s3cret")],
    );
    let (status, err) = http(e.api, "GET", "/v1/activeflows", None);
    assert_eq!(
        (status, &err["error"]["code"]),
        (401, &json!("unauthorized"))
    );
    let wrong = [("Authorization", "Bearer nope")];
    assert_eq!(http_with(e.api, "GET", "/v1/flows", None, &wrong).0, 401);
    let right = [("Authorization", "Bearer s3cret")];
    assert_eq!(http_with(e.api, "GET", "/v1/flows", None, &right).0, 200);
    // Probes stay open.
    assert_eq!(http(e.api, "GET", "/healthz", None).0, 200);
    assert_eq!(http(e.api, "GET", "/readyz", None).0, 200);
}

#[test]
fn oversized_bodies_get_413_and_unknown_routes_404() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    let big = format!(
        "{{\"name\": \"big\", \"detail\": \"{}\", \"actions\": []}}",
        "x".repeat(1_100_000)
    );
    let (status, err) = http(e.api, "POST", "/v1/flows", Some(&big));
    assert_eq!(
        (status, &err["error"]["code"]),
        (413, &json!("payload_too_large"))
    );
    let (status, err) = http(e.api, "GET", "/v1/nothing", None);
    assert_eq!((status, &err["error"]["code"]), (404, &json!("not_found")));
}

#[test]
fn openapi_lists_every_route() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    let (status, doc) = http(e.api, "GET", "/v1/openapi.json", None);
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let routes = [
        ("get", "/v1/flows"),
        ("post", "/v1/flows"),
        ("get", "/v1/flows/{id}"),
        ("put", "/v1/flows/{id}"),
        ("delete", "/v1/flows/{id}"),
        ("get", "/v1/activeflows"),
        ("post", "/v1/activeflows"),
        ("get", "/v1/activeflows/{id}"),
        ("delete", "/v1/activeflows/{id}"),
        ("post", "/v1/activeflows/{id}/stop"),
        ("post", "/v1/activeflows/{id}/continue"),
        ("get", "/v1/activeflows/{id}/variables"),
        ("put", "/v1/activeflows/{id}/variables"),
        ("get", "/v1/calls"),
        ("post", "/v1/calls"),
        ("get", "/v1/calls/{id}"),
        ("post", "/v1/calls/{id}/hangup"),
        ("get", "/v1/recordings"),
        ("get", "/v1/recordings/{id}"),
        ("delete", "/v1/recordings/{id}"),
        ("get", "/v1/recordings/{id}/file"),
        ("get", "/v1/registrations"),
        ("get", "/v1/events"),
        ("get", "/v1/trunks"),
        ("get", "/v1/queues"),
        ("post", "/v1/queues"),
        ("get", "/v1/queues/{id}"),
        ("put", "/v1/queues/{id}"),
        ("delete", "/v1/queues/{id}"),
        ("get", "/v1/conferences"),
        ("post", "/v1/conferences"),
        ("get", "/v1/conferences/{id}"),
        ("delete", "/v1/conferences/{id}"),
        ("post", "/v1/conferences/{id}/participants/{call_id}/kick"),
        ("post", "/v1/conferences/{id}/participants/{call_id}/mute"),
        ("post", "/v1/conferences/{id}/participants/{call_id}/unmute"),
        ("get", "/v1/nodes"),
        ("get", "/v1/routes"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/v1/openapi.json"),
    ];
    for (method, path) in routes {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from the spec"
        );
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        routes.len(),
        "the spec has routes this test does not know"
    );
    let mut ops: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|p| {
            p.as_object()
                .unwrap()
                .values()
                .map(|o| o["operationId"].as_str().unwrap())
        })
        .collect();
    ops.sort_unstable();
    let n = ops.len();
    ops.dedup();
    assert_eq!(ops.len(), n, "operationIds must be unique");
    // Every documented route answers (no 404 from the router for a documented path).
    for (method, path) in routes {
        if path == "/v1/events" {
            continue; // a stream that never ends by itself: tests/events.rs reads it
        }
        let concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
        let (status, body) = http(e.api, &method.to_uppercase(), &concrete, Some("{}"));
        // An unknown id or an empty body is the client's fault: 2xx or 4xx with the error
        // shape, never a 5xx (ARCHITECTURE §9: unknown ids are 404, never 500).
        assert!(
            (200..500).contains(&status),
            "{method} {path} answered {status}: {body}"
        );
        if status >= 400 {
            assert!(
                body["error"]["code"].is_string(),
                "{method} {path} {status} without the error shape: {body}"
            );
        }
        if status == 404 {
            assert_ne!(
                body["error"]["message"], "no such route",
                "{method} {path} is not routed"
            );
        }
    }
}

#[test]
fn media_actions_are_validated_and_recordings_listed() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    let cases = [
        (
            json!({"type": "play", "option": {}}),
            "actions[1].option.stream_urls",
        ),
        (
            json!({"type": "talk", "option": {"text": "hi", "language": "en us"}}),
            "actions[1].option.language",
        ),
        (
            json!({"type": "digits_receive", "option": {"duration": 1000, "key": "x"}}),
            "actions[1].option.key",
        ),
        (
            json!({"type": "digits_send", "option": {"digits": "12z"}}),
            "actions[1].option.digits",
        ),
        (
            json!({"type": "recording_start", "option": {"format": "mp3"}}),
            "actions[1].option.format",
        ),
        (
            // No duration is VoIPBIN's 180 s default; a string is still refused.
            json!({"type": "echo", "option": {"duration": "10"}}),
            "actions[1].option.duration",
        ),
        (
            json!({"type": "beep", "option": {"duration": 0}}),
            "actions[1].option.duration",
        ),
    ];
    for (action, field) in cases {
        let (status, err) = post(
            &e,
            "/v1/flows",
            &flow("m", json!([{"type": "answer"}, action])),
        );
        assert_eq!(status, 400, "{err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{message} should name {field}");
    }
    let ok = flow(
        "media",
        json!([{"type": "answer"}, {"type": "talk", "option": {"text": "hi"}},
               {"type": "play", "option": {"stream_urls": ["a.wav"], "digits_handle": "next"}},
               {"type": "digits_receive", "option": {"duration": 5000, "length": 4, "key": "#"}},
               {"type": "recording_start", "option": {"end_of_key": "any", "beep_start": true}},
               {"type": "recording_stop"}, {"type": "beep"}, {"type": "echo", "option": {"duration": 10}},
               {"type": "digits_send", "option": {"digits": "${call.digits}"}}]),
    );
    let (status, body) = post(&e, "/v1/flows", &ok);
    assert_eq!(status, 201, "{body}");
    let (status, list) = http(e.api, "GET", "/v1/recordings", None);
    assert_eq!(
        (status, list["result"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let (status, _) = http(e.api, "GET", "/v1/recordings/not-a-uuid/file", None);
    assert_eq!(status, 404);
}

/// Polls `GET /v1/activeflows/{id}` until it has ended; returns it.
fn ended_activeflow(e: &common::TestEngine, id: &str) -> Value {
    for _ in 0..500 {
        let (status, a) = http(e.api, "GET", &format!("/v1/activeflows/{id}"), None);
        assert_eq!(status, 200, "{a}");
        if a["status"] == "ended" {
            return a;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("activeflow {id} did not end");
}

fn types(a: &Value) -> Vec<String> {
    a["executed_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["type"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn block_waits_for_continue_and_fetch_flow_pushes_a_registered_flow() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    let sub = flow(
        "sub",
        json!([{"type": "variable_set", "option": {"key": "x", "value": "from sub"}}]),
    );
    let (status, sub) = post(&e, "/v1/flows", &sub);
    assert_eq!(status, 201, "{sub}");
    let sub_id = sub["id"].as_str().unwrap();
    let actions = json!([
        {"type": "block"},
        {"type": "fetch_flow", "option": {"flow_id": sub_id}},
        {"type": "variable_set", "option": {"key": "y", "value": "after ${x}"}}
    ]);
    let (status, a) = post(&e, "/v1/activeflows", &json!({"actions": actions}));
    assert_eq!(status, 200, "{a}");
    let id = a["id"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(100));
    let (_, still) = http(e.api, "GET", &format!("/v1/activeflows/{id}"), None);
    assert_eq!(
        (still["status"].as_str(), types(&still)),
        (Some("running"), vec!["block".to_owned()])
    );
    let (status, resumed) = post(&e, &format!("/v1/activeflows/{id}/continue"), &json!({}));
    assert_eq!(status, 200, "{resumed}");
    let done = ended_activeflow(&e, &id);
    assert_eq!(done["end_reason"], "completed", "{done}");
    assert_eq!(
        types(&done),
        ["block", "fetch_flow", "variable_set", "variable_set"]
    );
    assert_eq!(done["executed_actions"][1]["result"]["flow_id"], sub_id);
    let (_, vars) = http(
        e.api,
        "GET",
        &format!("/v1/activeflows/{id}/variables"),
        None,
    );
    assert_eq!(vars["variables"]["y"], "after from sub", "{vars}");
    // Not blocked any more: 409; unknown: 404.
    let (status, _) = post(&e, &format!("/v1/activeflows/{id}/continue"), &json!({}));
    assert_eq!(status, 409);
    let (status, _) = post(
        &e,
        "/v1/activeflows/00000000-0000-4000-8000-000000000000/continue",
        &json!({}),
    );
    assert_eq!(status, 404);
    // A running activeflow that is not in a block action: 409.
    let (_, sleeping) = post(
        &e,
        "/v1/activeflows",
        &json!({"actions": [{"type": "sleep", "option": {"duration": 60000}}]}),
    );
    let sleeping = sleeping["id"].as_str().unwrap();
    let (status, err) = post(
        &e,
        &format!("/v1/activeflows/{sleeping}/continue"),
        &json!({}),
    );
    assert_eq!(status, 409, "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not waiting in a block"));
    // fetch_flow of a flow that does not exist: the activeflow ends with `error`, saying why.
    let missing = json!([{"type": "fetch_flow", "option": {"flow_id": "00000000-0000-4000-8000-00000000dead"}}]);
    let (_, a) = post(&e, "/v1/activeflows", &json!({"actions": missing}));
    let failed = ended_activeflow(&e, a["id"].as_str().unwrap());
    assert_eq!(failed["end_reason"], "error");
    let why = failed["executed_actions"][0]["result"]["error"]
        .as_str()
        .unwrap();
    assert!(why.contains("not found"), "{why}");
}

#[test]
fn on_complete_flow_id_chains_children_at_most_five_deep() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    // A flow that names itself as its successor: the chain must stop at five activeflows.
    let id = "7a7a7a7a-0000-4000-8000-000000000001";
    let looping = json!({"id": id, "name": "again", "on_complete_flow_id": id, "actions": [
        {"type": "variable_set", "option": {"key": "count", "value": "${count}x"}}]});
    let (status, body) = post(&e, "/v1/flows", &looping);
    assert_eq!(status, 201, "{body}");
    let (status, first) = post(&e, "/v1/activeflows", &json!({"flow_id": "again"}));
    assert_eq!(status, 200, "{first}");
    e.wait_for("five chained activeflows", Duration::from_secs(10), |all| {
        all.len() == 5 && all.iter().all(|a| a.end_reason.is_some())
    });
    std::thread::sleep(Duration::from_millis(200));
    let (_, list) = http(e.api, "GET", "/v1/activeflows", None);
    let chain = list["result"].as_array().unwrap();
    assert_eq!(chain.len(), 5, "no sixth activeflow: {list}");
    // Newest first: each names the one before it; the first names none.
    for w in chain.windows(2) {
        assert_eq!(w[0]["reference_activeflow_id"], w[1]["id"]);
    }
    assert_eq!(chain[4]["id"], first["id"]);
    assert_eq!(
        chain[4]["reference_activeflow_id"],
        "00000000-0000-0000-0000-000000000000"
    );
    let newest = chain[0]["id"].as_str().unwrap();
    let (_, vars) = http(
        e.api,
        "GET",
        &format!("/v1/activeflows/{newest}/variables"),
        None,
    );
    assert_eq!(
        vars["variables"]["count"], "xxxxx",
        "variables are inherited: {vars}"
    );
}

/// The keys ARCHITECTURE §7 seeds into an activeflow a SIP call starts.
const SEEDED: [&str; 9] = [
    "activeflow.id",
    "activeflow.flow_id",
    "activeflow.reference_type",
    "activeflow.reference_id",
    "call.id",
    "call.source.target",
    "call.destination.target",
    "call.direction",
    "call.digits",
];

#[test]
fn a_calls_seeded_variables_and_their_voipbin_aliases_read_back_over_the_api() {
    // Each seeded key is copied through its `voipbin.` alias into `via.<key>`: substitution
    // of the alias must give the same value as the key itself.
    let mut actions: Vec<Value> = vec![json!({"type": "answer"})];
    for key in SEEDED {
        actions.push(json!({"type": "variable_set",
            "option": {"key": format!("via.{key}"), "value": format!("<${{voipbin.{key}}}>")}}));
    }
    actions.push(json!({"type": "sleep", "option": {"duration": 60000}}));
    let seeded = flow("seeded", Value::Array(actions));
    let e = start(&[seeded], &[("7001", "seeded")], &[]);
    let peer = RawPeer::new(e.sip);
    // RawPeer makes its From tag from the Call-ID: no `@` in it, so the tag stays an RFC 3261
    // token (§25.1) and the From header parses.
    peer.send(&peer.invite("7001", "seeded-call", "z9hG4bK-seeded"));
    peer.recv_until("200 OK");
    e.wait_for("the variables copied", Duration::from_secs(10), |all| {
        all.len() == 1 && all[0].executed_actions.len() == SEEDED.len() + 2
    });
    let (_, calls) = http(e.api, "GET", "/v1/calls", None);
    let call_id = calls["result"][0]["id"].as_str().unwrap().to_owned();
    let (_, list) = http(e.api, "GET", "/v1/activeflows", None);
    let a = &list["result"][0];
    let id = a["id"].as_str().unwrap();
    let (status, vars) = http(
        e.api,
        "GET",
        &format!("/v1/activeflows/{id}/variables"),
        None,
    );
    assert_eq!(status, 200, "{vars}");
    let v = &vars["variables"];
    let expected = [
        ("activeflow.id", id),
        ("activeflow.flow_id", a["flow_id"].as_str().unwrap()),
        ("activeflow.reference_type", "call"),
        ("activeflow.reference_id", call_id.as_str()),
        ("call.id", call_id.as_str()),
        // RawPeer's From is <sip:raw@...>: the From URI's user part.
        ("call.source.target", "raw"),
        // The Request-URI's user part: the dialled number.
        ("call.destination.target", "7001"),
        ("call.direction", "incoming"),
        ("call.digits", ""),
    ];
    for (key, want) in expected {
        assert_eq!(v[key], want, "{key}: {vars}");
        assert_eq!(
            v[format!("via.{key}")],
            format!("<{want}>"),
            "${{voipbin.{key}}}: {vars}"
        );
    }
    assert_eq!(a["reference_id"], call_id.as_str());
    // Writes may not use the alias: `voipbin.*` keys are reserved over the API, as VoIPBIN
    // reserves them (issue 18); the plain key sets the same variable.
    let path = format!("/v1/activeflows/{id}/variables");
    let put = json!({"variables": {"voipbin.call.digits": "42"}}).to_string();
    let (status, err) = http(e.api, "PUT", &path, Some(&put));
    assert_eq!(status, 400, "{err}");
    let put = json!({"variables": {"call.digits": "42"}}).to_string();
    let (status, merged) = http(e.api, "PUT", &path, Some(&put));
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["variables"]["call.digits"], "42", "{merged}");
}

#[test]
fn starting_an_activeflow_over_the_api_at_capacity_is_503() {
    let e = start(
        &[hold()],
        &[("*", "hold")],
        &[("ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS", "2")],
    );
    let sleeping = json!({"actions": [{"type": "sleep", "option": {"duration": 60000}}]});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, a) = post(&e, "/v1/activeflows", &sleeping);
        assert_eq!(status, 200, "{a}");
        ids.push(a["id"].as_str().unwrap().to_owned());
    }
    let (status, err) = post(&e, "/v1/activeflows", &sleeping);
    assert_eq!(
        (status, &err["error"]["code"]),
        (503, &json!("unavailable")),
        "{err}"
    );
    assert_eq!(e.activeflows().len(), 2, "the refused one was not created");
    // A call is refused the same way (RFC 3261 §21.5.4: 503 with Retry-After).
    let peer = RawPeer::new(e.sip);
    peer.send(&peer.invite("1", "full@t", "z9hG4bK-full"));
    let busy = peer.recv_final();
    assert!(busy.starts_with("SIP/2.0 503"), "{busy}");
    // Room again once one ends.
    let (status, _) = post(&e, &format!("/v1/activeflows/{}/stop", ids[0]), &json!({}));
    assert_eq!(status, 200);
    let (status, again) = post(&e, "/v1/activeflows", &sleeping);
    assert_eq!(status, 200, "{again}");
}
