//! VoIPBIN flow semantics through the running engine (issue 18): media actions answer a ringing
//! call first (SIPp sees 200, ACK, BYE), call actions are skipped in an activeflow without a
//! call, `fetch` sends VoIPBIN's body, an operator stop starts the `on_complete_flow_id`, the
//! VoIPBIN variables are seeded, and keys outside `digits_receive` replace `call.digits`.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use activeflow::engine::Status;
use common::http_server::{http_server_answering, Seen};
use common::rtp::MediaCaller;
use common::{ended_one, executed_types, flow, http, result_of, sipp, start, TestEngine};
use serde_json::{json, Value};

const NIL: &str = "00000000-0000-0000-0000-000000000000";

/// An HTTP server answering every request with one `variable_set` action (a fetch answer).
fn fetch_server() -> (SocketAddr, Seen) {
    let answer =
        json!([{"type": "variable_set", "option": {"key": "fetched", "value": "yes"}}]).to_string();
    http_server_answering(Duration::ZERO, move |_| answer.clone())
}

fn temp_dir(tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "activeflow-vb-{tag}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.to_str().unwrap().to_owned()
}

fn post(e: &TestEngine, path: &str, body: &Value) -> (u16, Value) {
    http(e.api, "POST", path, Some(&body.to_string()))
}

fn get(e: &TestEngine, path: &str) -> Value {
    let (status, v) = http(e.api, "GET", path, None);
    assert_eq!(status, 200, "{path}: {v}");
    v
}

/// Polls an activeflow over the API until it has ended.
fn ended_over_api(e: &TestEngine, id: &str) -> Value {
    common::wait_until("the activeflow to end", Duration::from_secs(10), || {
        let a = get(e, &format!("/v1/activeflows/{id}"));
        (a["status"] == "ended").then_some(a)
    })
}

/// VoIPBIN answers a ringing call for `talk` (Asterisk's playback does): a flow of `fetch`,
/// `talk` and `hangup` alone gives SIPp 200 OK, its ACK and the engine's BYE; the variables
/// read over the API carry VoIPBIN's names and the call's status as the flow saw it.
#[test]
fn talk_answers_a_ringing_call_and_voipbin_variables_are_seeded() {
    let (server, seen) = fetch_server();
    let cache = temp_dir("cache");
    let f = flow(
        "talker",
        json!([
            {"type": "variable_set", "option": {"key": "status.before", "value": "${voipbin.call.status}"}},
            {"type": "fetch", "option": {"event_url": format!("http://{server}/actions")}},
            {"type": "talk", "option": {"text": "hello", "language": "en"}},
            {"type": "variable_set", "option": {"key": "status.after", "value": "${call.status}"}},
            {"type": "hangup"}
        ]),
    );
    let e = start(
        &[f],
        &[("7001", "talker")],
        &[
            ("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32"),
            ("ACTIVEFLOW_MEDIA_CACHE_DIR", &cache),
        ],
    );
    // uac_engine_bye: INVITE, 200 OK, ACK, then the engine's BYE answered 200.
    let run = sipp(e.sip, "uac_engine_bye.xml", "7001", &["-m", "1"]);
    run.assert_all_ok(1);
    let a = ended_one(&e, Duration::from_secs(10));
    assert_eq!(
        executed_types(&a),
        [
            "variable_set",
            "fetch",
            "variable_set",
            "talk",
            "variable_set",
            "hangup"
        ],
        "{:?}",
        a.executed_actions
    );
    let talk = result_of(&a, "talk");
    assert!(talk.get("error").is_none(), "the talk ran: {talk}");
    assert_eq!(a.end_reason, Some(activeflow::engine::EndReason::Completed));

    let id = a.id.to_string();
    let vars = get(&e, &format!("/v1/activeflows/{id}/variables"));
    let v = &vars["variables"];
    let call_id = v["call.id"].as_str().unwrap().to_owned();
    for (key, want) in [
        // SIPp's From is `sipp <sip:caller@...>`: a SIP user with a display name.
        ("call.source.type", "sip"),
        ("call.source.name", "sipp"),
        ("call.source.target", "caller"),
        // The Request-URI user is a number; the To has no display name.
        ("call.destination.type", "tel"),
        ("call.destination.name", ""),
        ("call.destination.target", "7001"),
        ("activeflow.reference_activeflow_id", NIL),
        ("activeflow.complete_count", "0"),
        ("activeflow.reference_id", call_id.as_str()),
        ("status.before", "ringing"),
        ("status.after", "progressing"),
        // The flow's hangup: the engine hangs up (VoIPBIN `terminating`).
        ("call.status", "terminating"),
    ] {
        assert_eq!(v[key], want, "{key}: {vars}");
    }

    // VoIPBIN ActionFetchGet: the action's method (POST by default) with the activeflow's id
    // and reference; we add its variables (POST only).
    let (method, path, body) = seen.lock().unwrap()[0].clone();
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/actions"));
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["activeflow_id"], id.as_str(), "{body}");
    assert_eq!(body["reference_id"], call_id.as_str(), "{body}");
    assert_eq!(body["variables"]["call.source.target"], "caller", "{body}");
    assert_eq!(body["variables"]["status.before"], "ringing", "{body}");
}

/// VoIPBIN `verifyActionType`: an activeflow without a call (started over the API) moves past
/// call actions — `hangup` included — recording them as skipped; a `fetch` with GET still
/// sends its body, with the nil UUID as the reference.
#[test]
fn an_api_activeflow_skips_call_actions_and_fetches_with_voipbins_body() {
    let (server, seen) = fetch_server();
    let e = start(
        &[flow(
            "hold",
            json!([{"type": "sleep", "option": {"duration": 1}}]),
        )],
        &[("*", "hold")],
        &[("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32")],
    );
    let actions = json!([
        {"type": "answer"},
        {"type": "talk", "option": {"text": "nobody hears this"}},
        {"type": "digits_receive", "option": {"duration": 5000, "length": 1}},
        {"type": "connect", "option": {"destinations": [{"type": "tel", "target": "+15550100"}]}},
        {"type": "hangup"},
        {"type": "fetch", "option": {"event_url": format!("http://{server}/get"), "event_method": "GET"}},
        {"type": "variable_set", "option": {"key": "went_on", "value": "${fetched}"}}
    ]);
    let (status, a) = post(
        &e,
        "/v1/activeflows",
        &json!({"actions": actions, "variables": {"who": "api"}}),
    );
    assert_eq!(status, 200, "{a}");
    let id = a["id"].as_str().unwrap().to_owned();
    let a = ended_over_api(&e, &id);
    assert_eq!(a["end_reason"], "completed", "{a}");
    let executed = a["executed_actions"].as_array().unwrap();
    let types: Vec<&str> = executed
        .iter()
        .map(|x| x["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "answer",
            "talk",
            "digits_receive",
            "connect",
            "hangup",
            "fetch",
            "variable_set",
            "variable_set"
        ]
    );
    for x in &executed[..5] {
        assert_eq!(x["result"], json!({"skipped": "no call"}), "{x}");
    }
    let vars = get(&e, &format!("/v1/activeflows/{id}/variables"));
    assert_eq!(vars["variables"]["went_on"], "yes", "{vars}");
    let (method, path, body) = seen.lock().unwrap()[0].clone();
    assert_eq!((method.as_str(), path.as_str()), ("GET", "/get"));
    // ActionFetchGet: a GET carries only the two ids, never the variables.
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"activeflow_id": id.as_str(), "reference_id": NIL}),
        "{body}"
    );
}

/// VoIPBIN activeflowhandler `Stop` starts the on-complete flow whatever ended the
/// activeflow: an operator's stop too. The successor keeps the reference and names its
/// parent in `activeflow.reference_activeflow_id`, one hop in `activeflow.complete_count`.
#[test]
fn an_operator_stop_starts_the_on_complete_flow() {
    let after_id = "bbbbbbbb-0000-4000-8000-000000000001";
    let main = json!({"name": "main", "on_complete_flow_id": after_id, "actions": [
        {"type": "sleep", "option": {"duration": 60000}}
    ]});
    let after = json!({"id": after_id, "name": "after", "actions": [
        {"type": "variable_set", "option": {"key": "ran", "value": "after ${activeflow.complete_count}"}},
        {"type": "sleep", "option": {"duration": 60000}}
    ]});
    let e = start(&[main, after], &[("*", "main")], &[]);
    let (status, first) = post(&e, "/v1/activeflows", &json!({"flow_id": "main"}));
    assert_eq!(status, 200, "{first}");
    let first_id = first["id"].as_str().unwrap().to_owned();
    let (status, stopped) = post(&e, &format!("/v1/activeflows/{first_id}/stop"), &json!({}));
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["end_reason"], "operator_stop", "{stopped}");
    e.wait_for(
        "the on-complete activeflow",
        Duration::from_secs(5),
        |all| {
            all.iter().any(|a| {
                a.status == Status::Running
                    && a.reference_activeflow_id.map(|p| p.to_string()) == Some(first_id.clone())
                    && a.executed_actions.len() == 2
            })
        },
    );
    let child = e
        .activeflows()
        .into_iter()
        .find(|a| a.reference_activeflow_id.is_some())
        .unwrap();
    assert_eq!(child.flow_id.to_string(), after_id);
    let vars = get(&e, &format!("/v1/activeflows/{}/variables", child.id));
    let v = &vars["variables"];
    assert_eq!(v["activeflow.reference_activeflow_id"], first_id.as_str());
    assert_eq!(v["activeflow.complete_count"], "1");
    assert_eq!(
        v["voipbin.activeflow.complete_count"],
        json!(null),
        "stored once, unprefixed"
    );
    assert_eq!(v["activeflow.reference_type"], "api");
    assert_eq!(v["ran"], "after 1");
}

/// VoIPBIN call-manager `digitsReceived`: a key outside `digits_receive` replaces
/// `call.digits`; during it keys are appended, the terminating key kept.
#[test]
fn keys_outside_digits_receive_replace_call_digits_and_the_terminator_is_kept() {
    let f = flow(
        "keys",
        json!([
            {"type": "answer"},
            {"type": "sleep", "option": {"duration": 800}},
            {"type": "variable_set", "option": {"key": "typed", "value": "${call.digits}"}},
            {"type": "digits_receive", "option": {"duration": 5000, "key": "#"}},
            {"type": "hangup"}
        ]),
    );
    let e = start(&[f], &[("keys", "keys")], &[]);
    let mut caller = MediaCaller::new(e.sip);
    caller.call("keys", 0);
    let mut seq = 1u16;
    // 1 then 2 during the sleep: only the 2 stays.
    caller.press(1, &mut seq, 8000);
    caller.press(2, &mut seq, 9600);
    e.wait_for("digits_receive waiting", Duration::from_secs(5), |all| {
        all.len() == 1 && all[0].executed_actions.len() == 4
    });
    // 3 then # (event 11) during digits_receive: appended, the # too.
    caller.press(3, &mut seq, 11200);
    caller.press(11, &mut seq, 12800);
    caller.expect_bye();
    let a = ended_one(&e, Duration::from_secs(10));
    let typed = a.executed_actions[2].action.option["value"].clone();
    assert_eq!(typed, "2", "{:?}", a.executed_actions);
    let digits = result_of(&a, "digits_receive");
    assert_eq!(
        (&digits["digits"], &digits["finished_by"], &digits["key"]),
        (&json!("23#"), &json!("key"), &json!("#")),
        "{digits}"
    );
}
