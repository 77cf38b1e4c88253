//! Hostile flows and history (issue 16), through the engine's real paths: activeflows started
//! over the API or by a SIPp call, webhooks and fetches to a real HTTP server on loopback,
//! records read back from the real SQLite store once they have left memory.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::http_server::{http_server_answering, Seen};
use common::{flow, http, sipp, start, TestEngine};
use serde_json::{json, Value};

/// A small HTTP/1.1 server on loopback: every request is logged and answered 200 with a one
/// action list (what `fetch` wants; webhooks ignore it) after `delay` (so an activeflow's
/// progress write goes out while it waits).
fn http_server(delay: Duration) -> (SocketAddr, Seen) {
    let answer = r#"[{"type": "variable_set", "option": {"key": "fetched", "value": "1"}}]"#;
    http_server_answering(delay, move |_| answer.to_owned())
}

/// An engine whose flows may reach 127.0.0.1.
fn engine(flows: &[Value], routes: &[(&str, &str)], env: &[(&str, &str)]) -> TestEngine {
    let mut all = vec![
        ("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32"),
        ("ACTIVEFLOW_HTTP_TIMEOUT_MS", "5000"),
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
    assert_eq!(status, 200, "{a}");
    a["id"].as_str().unwrap().to_owned()
}

/// Keeps no ended activeflow in memory: an ended record is served from storage only. (Only
/// for activeflows that do not end at once: `POST /v1/activeflows` answers 500 when the one
/// it started has already left memory.)
const LEAVE_MEMORY: (&str, &str) = ("ACTIVEFLOW_ENGINE_ENDED_RETAINED", "0");

/// Polls `GET /v1/activeflows/{id}` until it says ended; the record.
fn ended(e: &TestEngine, id: &str) -> Value {
    common::wait_until("the activeflow to end", Duration::from_secs(30), || {
        let (status, a) = http(e.api, "GET", &format!("/v1/activeflows/{id}"), None);
        (status == 200 && a["status"] == "ended").then_some(a)
    })
}

/// The stored record once it has ended and left memory (with [`LEAVE_MEMORY`]): the API
/// serves it from storage.
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
    let e = engine(&[], &[], &[LEAVE_MEMORY]);
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
    let e = engine(&[f], &[("ivr", "ivr")], &[LEAVE_MEMORY]);
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

// ---- Flows cannot exhaust the engine: variable caps ----

/// `x = "${x}${x}"` in a `goto` loop doubles `x` each time: at 2^17 bytes it is over
/// `engine.max_variable_bytes` (64 KiB by default), and the activeflow ends `error` with the
/// failing action's result naming the cap, instead of growing until the process dies. (On the
/// old engine this loop of 20 completes with a 1 MiB variable.)
#[test]
fn a_doubling_variable_ends_the_activeflow_with_error_naming_the_cap() {
    let e = engine(&[], &[], &[]);
    let id = start_api(
        &e,
        json!([
            {"type": "variable_set", "option": {"key": "x", "value": "a"}},
            {"id": A, "type": "variable_set", "option": {"key": "x", "value": "${x}${x}"}},
            {"type": "goto", "option": {"target_id": A, "loop_count": 20}}
        ]),
    );
    let a = ended(&e, &id);
    assert_eq!(a["end_reason"], "error", "{}", summary(&a));
    let executed = a["executed_actions"].as_array().unwrap();
    let last = executed.last().unwrap();
    assert_eq!(last["type"], "variable_set");
    assert_eq!(
        last["result"]["error"],
        "variable x would be 131072 bytes, over engine.max_variable_bytes 65536"
    );
    // 1 + 16 doublings with their gotos, then the 17th doubling fails.
    assert_eq!(executed.len(), 1 + 16 * 2 + 1);
    let (_, vars) = http(
        e.api,
        "GET",
        &format!("/v1/activeflows/{id}/variables"),
        None,
    );
    assert_eq!(vars["variables"]["x"].as_str().unwrap().len(), 65536);
}

/// Every name and value of one activeflow together are capped too
/// (`engine.max_variables_bytes`): many variables each under the value cap end it as well.
#[test]
fn the_variables_of_one_activeflow_are_capped_together() {
    let e = engine(
        &[],
        &[],
        &[
            ("ACTIVEFLOW_ENGINE_MAX_VARIABLE_BYTES", "2048"),
            ("ACTIVEFLOW_ENGINE_MAX_VARIABLES_BYTES", "8192"),
        ],
    );
    let chunk = "c".repeat(1950); // room for the ~300 bytes of `activeflow.*` seeds
    let (status, a) = http(
        e.api,
        "POST",
        "/v1/activeflows",
        Some(
            &json!({"variables": {"chunk": chunk}, "actions": [
                {"type": "variable_set", "option": {"key": "a", "value": "${chunk}"}},
                {"type": "variable_set", "option": {"key": "b", "value": "${chunk}"}},
                {"type": "variable_set", "option": {"key": "c", "value": "${chunk}"}},
                {"type": "variable_set", "option": {"key": "d", "value": "${chunk}"}},
                {"type": "stop"}
            ]})
            .to_string(),
        ),
    );
    assert_eq!(status, 200, "{a}");
    let a = ended(&e, a["id"].as_str().unwrap());
    assert_eq!(a["end_reason"], "error", "{}", summary(&a));
    let last = a["executed_actions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["option"]["key"], "d", "{last}");
    let why = last["result"]["error"].as_str().unwrap();
    assert!(
        why.starts_with("variable d would bring the variables to ")
            && why.ends_with(" bytes, over engine.max_variables_bytes 8192"),
        "{why}"
    );
}

/// `PUT /v1/activeflows/{id}/variables` and `POST /v1/activeflows` over a cap are refused with
/// 400 naming it; the running activeflow keeps its variables as they were.
#[test]
fn the_api_refuses_variables_over_the_caps() {
    let e = engine(&[], &[], &[]);
    let id = start_api(&e, json!([{"type": "block"}]));
    let path = format!("/v1/activeflows/{id}/variables");
    let big = "v".repeat(65_537);
    let (status, body) = http(
        e.api,
        "PUT",
        &path,
        Some(&json!({"variables": {"ok": "1", "big": big}}).to_string()),
    );
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert_eq!(
        message,
        "variable big would be 65537 bytes, over engine.max_variable_bytes 65536"
    );
    let (status, vars) = http(e.api, "GET", &path, None);
    assert_eq!(status, 200);
    assert!(
        vars["variables"].get("ok").is_none(),
        "nothing merged: {vars}"
    );
    // Values of 60,000 bytes, each under the value cap: 16 fit in 1 MiB (one request body
    // at most), two more do not.
    let put = |range: std::ops::Range<usize>| {
        let many: serde_json::Map<String, Value> = range
            .map(|i| (format!("v{i}"), json!("w".repeat(60_000))))
            .collect();
        http(
            e.api,
            "PUT",
            &path,
            Some(&json!({ "variables": many }).to_string()),
        )
    };
    assert_eq!(put(0..16).0, 200);
    let (status, body) = put(16..18);
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("variable v1")
            && message.ends_with("over engine.max_variables_bytes 1048576"),
        "{message}"
    );
    let (_, vars) = http(e.api, "GET", &path, None);
    assert!(vars["variables"].get("v15").is_some());
    assert!(
        vars["variables"].get("v16").is_none(),
        "nothing of the refused merge"
    );
    let (status, _) = http(
        e.api,
        "PUT",
        &path,
        Some(&json!({"variables": {"ok": "1"}}).to_string()),
    );
    assert_eq!(status, 200, "a merge within the caps still works");

    let (status, body) = http(
        e.api,
        "POST",
        "/v1/activeflows",
        Some(&json!({"variables": {"big": big}, "actions": [{"type": "stop"}]}).to_string()),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("over engine.max_variable_bytes 65536"),
        "{body}"
    );
    let (status, _) = http(e.api, "POST", &format!("/v1/activeflows/{id}/stop"), None);
    assert_eq!(status, 200);
}

/// The caller's own addresses are seeded as `call.source.target` and
/// `call.destination.target`: an INVITE whose From user is over the value cap is refused with
/// a final 400 (RFC 3261 §21.4.1) and starts nothing.
#[test]
fn a_caller_address_over_the_cap_refuses_the_call() {
    let f = flow(
        "hold",
        json!([{"type": "sleep", "option": {"duration": 60000}}]),
    );
    let e = engine(
        &[f],
        &[("*", "hold")],
        &[("ACTIVEFLOW_ENGINE_MAX_VARIABLE_BYTES", "64")],
    );
    let peer = common::RawPeer::new(e.sip);
    let user = "1".repeat(100);
    let invite = peer.invite("100", "cap-call", "z9hG4bK-cap").replacen(
        "<sip:raw@",
        &format!("<sip:{user}@"),
        1,
    );
    peer.send(&invite);
    let answer = peer.recv_final();
    assert!(answer.starts_with("SIP/2.0 400 "), "{answer}");
    assert!(e.activeflows().is_empty());
    // A caller within the cap gets its flow.
    let peer = common::RawPeer::new(e.sip);
    peer.send(&peer.invite("100", "ok-call", "z9hG4bK-ok"));
    e.wait_for("the call's activeflow", Duration::from_secs(10), |all| {
        all.len() == 1
    });
}

/// Caps hit are counted in `activeflow_limit_exceeded_total{limit}` (registered at zero from
/// start-up), on the real binary's Prometheus endpoint.
#[test]
fn caps_hit_are_counted_by_their_key() {
    let (_engine, _sip, api, metrics) = common::spawn_engine(&[]);
    let series = |limit: &str| format!(r#"activeflow_limit_exceeded_total{{limit="{limit}"}}"#);
    let text = common::raw_get(metrics, "/metrics");
    assert_eq!(
        common::metric(&text, &series("max_variable_bytes")),
        Some(0.0),
        "registered"
    );
    assert_eq!(
        common::metric(&text, &series("max_variables_bytes")),
        Some(0.0),
        "registered"
    );
    let (status, a) = http(
        api,
        "POST",
        "/v1/activeflows",
        Some(
            &json!({"actions": [
                {"type": "block"},
                {"id": A, "type": "variable_set", "option": {"key": "x", "value": "${x}${x}1"}},
                {"type": "goto", "option": {"target_id": A, "loop_count": 20}}
            ]})
            .to_string(),
        ),
    );
    assert_eq!(status, 200, "{a}");
    let id = a["id"].as_str().unwrap();
    let (status, _) = http(api, "POST", &format!("/v1/activeflows/{id}/continue"), None);
    assert_eq!(status, 200);
    common::wait_until("the cap to be counted", Duration::from_secs(30), || {
        (common::scrape(metrics, &series("max_variable_bytes")) == 1.0).then_some(())
    });
    // The cap is counted when it is hit; the end shows once storage committed it.
    let path = format!("/v1/activeflows/{id}");
    let a = common::wait_until("the activeflow to end", Duration::from_secs(10), || {
        let (_, a) = http(api, "GET", &path, None);
        (a["status"] == "ended").then_some(a)
    });
    assert_eq!(a["end_reason"], "error", "{}", summary(&a));
}

/// A server whose every `fetch` answer (600 KB) fetches again would nest answers until the
/// stack depth cap, 100 of them (60 MB) in one activeflow. Fetched lists together are capped
/// (4 MiB): the seventh answer ends the activeflow `error` naming the cap.
#[test]
fn nested_fetch_answers_are_capped_in_bytes() {
    let pad = "p".repeat(600_000);
    let (server, seen) = http_server_answering(Duration::ZERO, move |addr| {
        json!([
            {"type": "fetch", "option": {"event_method": "GET", "event_url": format!("http://{addr}/again")}},
            {"type": "sleep", "option": {"duration": 1, "pad": pad}}
        ])
        .to_string()
    });
    let e = engine(&[], &[], &[]);
    let id = start_api(
        &e,
        json!([{"type": "fetch", "option": {"event_method": "GET", "event_url": format!("http://{server}/first")}}]),
    );
    let a = ended(&e, &id);
    assert_eq!(a["end_reason"], "error", "{}", summary(&a));
    let last = a["executed_actions"].as_array().unwrap().last().unwrap();
    let why = last["result"]["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("fetched actions would hold more than 4194304 bytes"),
        "{why}"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        7,
        "six answers held, the seventh refused"
    );
}

// ---- Caller-controlled values in URLs and JSON bodies ----

/// A caller whose From user is `1/admin?x=` (a legal SIP user part, RFC 3261 §25.1
/// `user-unreserved`) reaches the flow as `call.source.target`. Substituted into a `fetch`
/// `event_url` and a `webhook_send` `uri`, it is percent-encoded (RFC 3986 §2.1): one path
/// segment and one query value, never a new path or parameter; the literal parts of the URL
/// reach the server as the flow author wrote them.
#[test]
fn a_callers_number_cannot_change_the_path_or_query_of_a_url() {
    let (server, seen) = http_server(Duration::ZERO);
    let f = flow(
        "lookup",
        json!([
            {"type": "fetch", "option": {"event_method": "GET",
                "event_url": format!("http://{server}/lookup/${{call.source.target}}?from=${{call.source.target}}&v=1")}},
            {"type": "webhook_send", "option": {"method": "GET", "sync": true,
                "uri": format!("http://{server}/hook/${{call.source.target}}")}},
            {"type": "sleep", "option": {"duration": 60000}}
        ]),
    );
    let e = engine(&[f], &[("*", "lookup")], &[]);
    let peer = common::RawPeer::new(e.sip);
    let invite =
        peer.invite("100", "url-call", "z9hG4bK-url")
            .replacen("<sip:raw@", "<sip:1/admin?x=@", 1);
    peer.send(&invite);
    let paths = common::wait_until("both requests", Duration::from_secs(20), || {
        let seen = seen.lock().unwrap();
        (seen.len() == 2).then(|| seen.iter().map(|(_, p, _)| p.clone()).collect::<Vec<_>>())
    });
    assert_eq!(
        paths,
        [
            "/lookup/1%2Fadmin%3Fx%3D?from=1%2Fadmin%3Fx%3D&v=1",
            "/hook/1%2Fadmin%3Fx%3D"
        ]
    );
    let a = &e.activeflows()[0];
    let fetched = &a.executed_actions[0].action.option["event_url"];
    assert_eq!(
        fetched.as_str().unwrap(),
        format!("http://{server}/lookup/1%2Fadmin%3Fx%3D?from=1%2Fadmin%3Fx%3D&v=1"),
        "the record shows the URL as sent"
    );
}

/// A value of dots would be a dot segment (`/a/../b` is `/b`): refused in a URL path, so the
/// activeflow ends `error` naming the variable, and nothing is sent.
#[test]
fn a_dot_segment_value_is_refused_in_a_url_path() {
    let (server, seen) = http_server(Duration::ZERO);
    let e = engine(&[], &[], &[]);
    let (status, a) = http(
        e.api,
        "POST",
        "/v1/activeflows",
        Some(
            &json!({"variables": {"who": ".."}, "actions": [
                {"type": "webhook_send", "option": {"sync": true,
                    "uri": format!("http://{server}/users/${{who}}/profile")}}
            ]})
            .to_string(),
        ),
    );
    assert_eq!(status, 200, "{a}");
    let a = ended(&e, a["id"].as_str().unwrap());
    assert_eq!(a["end_reason"], "error", "{}", summary(&a));
    let why = result_of(&a, "webhook_send")["error"].as_str().unwrap();
    assert!(
        why.contains("option.uri: variable who is \"..\", which would be a dot segment"),
        "{why}"
    );
    assert!(seen.lock().unwrap().is_empty());
}

/// Substituted into a JSON `webhook_send` body (RFC 8259), a value with `"` stays one string:
/// it cannot close the author's string and add keys. Outside a string literal a non-number
/// value goes in quoted. A form body (`application/x-www-form-urlencoded`) gets them
/// percent-encoded, so they add no parameter; a `text/plain` one gets them as they are.
#[test]
fn values_in_a_json_webhook_body_cannot_add_keys() {
    let (server, seen) = http_server(Duration::ZERO);
    let e = engine(&[], &[], &[]);
    let hostile = r#"x", "admin": true, "y": ""#;
    let (status, a) = http(
        e.api,
        "POST",
        "/v1/activeflows",
        Some(
            &json!({"variables": {"name": hostile, "n": "7", "flag": "1&admin=true"}, "actions": [
                {"type": "webhook_send", "option": {"sync": true, "uri": format!("http://{server}/json"),
                    "data": r#"{"name": "${name}", "count": ${n}, "raw": ${name}}"#}},
                {"type": "webhook_send", "option": {"sync": true, "uri": format!("http://{server}/text"),
                    "data_type": "text/plain", "data": "name=${name}"}},
                {"type": "webhook_send", "option": {"sync": true, "uri": format!("http://{server}/form"),
                    "data_type": "application/x-www-form-urlencoded; charset=utf-8",
                    "data": "n=${n}&flag=${flag}"}}
            ]})
            .to_string(),
        ),
    );
    assert_eq!(status, 200, "{a}");
    let a = ended(&e, a["id"].as_str().unwrap());
    assert_eq!(a["end_reason"], "completed", "{}", summary(&a));
    let seen = seen.lock().unwrap();
    let body: Value = serde_json::from_str(&seen[0].2).unwrap();
    assert_eq!(
        body,
        json!({"name": hostile, "count": 7, "raw": hostile}),
        "{}",
        seen[0].2
    );
    assert_eq!(seen[1].2, format!("name={hostile}"));
    // A form body gets values percent-encoded: `&admin=true` stays inside `flag`.
    assert_eq!(seen[2].2, "n=7&flag=1%26admin%3Dtrue");
}

/// A value substituted into the user part of a `sip` destination (RFC 3261 §19.1.2 escaped)
/// cannot move the request: `x@127.0.0.1:<port>;` would otherwise end the user part and name
/// another host and port. The MESSAGE reaches the host the flow author wrote, on a real UDP
/// socket; the other socket hears nothing.
#[test]
fn a_value_in_a_sip_destination_cannot_change_its_host() {
    let good = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let evil = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    good.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    evil.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let e = engine(&[], &[], &[]);
    let hostile = format!("x@{};", evil.local_addr().unwrap());
    let target = format!("sip:${{who}}@{}", good.local_addr().unwrap());
    // The scheme-less form: the leading placeholder is only the user part. Unescaped,
    // `sip:127.0.0.1:<evil>;x@<good>` was once routed to the part before the `;`.
    let leading = format!("127.0.0.1:{};x", evil.local_addr().unwrap().port());
    let bare = format!("${{lead}}@{}", good.local_addr().unwrap());
    let (status, a) = http(
        e.api,
        "POST",
        "/v1/activeflows",
        Some(
            &json!({"variables": {"who": hostile, "lead": leading}, "actions": [
                {"type": "message_send", "option": {"text": "hi",
                    "destinations": [{"type": "sip", "target": target}]}},
                {"type": "message_send", "option": {"text": "hi",
                    "destinations": [{"type": "sip", "target": bare}]}}
            ]})
            .to_string(),
        ),
    );
    assert_eq!(status, 200, "{a}");
    let mut buf = [0u8; 65536];
    // Two MESSAGEs (unanswered, so UDP retransmits them: keep the distinct request lines).
    let mut lines = std::collections::BTreeSet::new();
    while lines.len() < 2 {
        let (n, _) = good
            .recv_from(&mut buf)
            .expect("both MESSAGEs at the author's host");
        let message = String::from_utf8_lossy(&buf[..n]);
        lines.insert(message.lines().next().unwrap().to_string());
    }
    let lines: Vec<String> = lines.into_iter().collect();
    assert!(
        lines[0].starts_with("MESSAGE sip:127.0.0.1%3A") && lines[0].contains("%3Bx@"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("MESSAGE sip:x%40127.0.0.1%3A") && lines[1].contains("%3B@"),
        "{lines:?}"
    );
    assert!(
        evil.recv_from(&mut buf).is_err(),
        "nothing at the injected host"
    );
}

// ---- executed_actions in memory ----

/// With `engine.max_executed_actions` 5, a loop of 24 actions keeps the newest 5 in memory
/// and says how many left (`executed_actions_dropped`); storage has all 24 in order, with the
/// result merged into a row after the older ones were dropped. An option over 8 KiB is kept as
/// a truncated marker, in memory and in storage.
#[test]
fn executed_actions_in_memory_are_capped_and_storage_keeps_them_all() {
    let (server, _seen) = http_server(Duration::from_millis(200));
    let e = engine(
        &[],
        &[],
        &[
            ("ACTIVEFLOW_ENGINE_MAX_EXECUTED_ACTIONS", "5"),
            LEAVE_MEMORY,
        ],
    );
    let (status, a) = http(
        e.api,
        "POST",
        "/v1/activeflows",
        Some(
            &json!({"variables": {"big": "b".repeat(50_000)}, "actions": [
                {"id": A, "type": "variable_set", "option": {"key": "i", "value": "${i}1"}},
                {"type": "goto", "option": {"target_id": A, "loop_count": 10}},
                {"type": "webhook_send", "option": {"sync": true, "uri": format!("http://{server}/hook")}},
                {"type": "variable_set", "option": {"key": "copy", "value": "${big}"}},
                {"id": B, "type": "block", "option": {"note": "${big}"}}
            ]})
            .to_string(),
        ),
    );
    assert_eq!(status, 200, "{a}");
    let id = a["id"].as_str().unwrap().to_owned();
    let running = common::wait_until("the block", Duration::from_secs(20), || {
        let (_, a) = http(e.api, "GET", &format!("/v1/activeflows/{id}"), None);
        (a["current_action"]["id"] == B).then_some(a)
    });
    let executed = running["executed_actions"].as_array().unwrap();
    assert_eq!(executed.len(), 5, "{}", summary(&running));
    assert_eq!(running["executed_actions_dropped"], 20);
    let kinds: Vec<&str> = executed
        .iter()
        .map(|x| x["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "variable_set",
            "goto",
            "webhook_send",
            "variable_set",
            "block"
        ]
    );
    let copy = &executed[3]["option"];
    assert_eq!(copy["truncated"], true, "{}", copy.to_string().len());
    assert!(copy["bytes"].as_u64().unwrap() > 50_000);
    // The current action is capped as its entry is: the API and every progress write carry it.
    let current = &running["current_action"]["option"];
    assert_eq!(current["truncated"], true, "{}", current.to_string().len());
    assert_eq!(executed[4]["option"], *current);

    let (status, _) = http(e.api, "POST", &format!("/v1/activeflows/{id}/stop"), None);
    assert_eq!(status, 200);
    let a = stored(&e, &id);
    let all = a["executed_actions"].as_array().unwrap();
    assert_eq!(all.len(), 25, "{}", summary(&a));
    assert!(
        a.get("executed_actions_dropped").is_none(),
        "storage has them all"
    );
    assert_eq!(all[0]["option"]["value"], "1");
    assert_eq!(all[20]["option"]["value"], "11111111111");
    assert_eq!(all[22]["result"]["status"], 200, "{}", all[22]);
    assert_eq!(all[23]["option"]["truncated"], true);
    assert_eq!(all[24]["type"], "block");
    assert_eq!(a["current_action"]["option"]["truncated"], true);
}

/// A short summary of a record for assertion messages (a failing record can be megabytes).
fn summary(a: &Value) -> String {
    let executed = a["executed_actions"].as_array().map_or(0, Vec::len);
    let last = a["executed_actions"]
        .as_array()
        .and_then(|x| x.last())
        .map(|l| l["result"].to_string())
        .unwrap_or_default();
    let last: String = last.chars().take(300).collect();
    format!(
        "status {} end_reason {} executed {executed} last result {last}",
        a["status"], a["end_reason"]
    )
}

const A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const B: &str = "aaaaaaaa-0000-4000-8000-000000000002";
