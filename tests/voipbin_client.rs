//! A VoIPBIN client against this engine (issue 18): the `curl` command lines of VoIPBIN's
//! activeflow tutorial (bin-api-manager/docsdev/source/activeflow_tutorial.rst), run by the real
//! `curl` through `sh` with only the host (`https://api.voipbin.net` → the engine's API), the
//! token and the example activeflow ids replaced. The responses must have VoIPBIN's record shape
//! (activeflow_struct_activeflow.rst): nil uuid strings for absent ids, `tm_*` fields, the
//! tutorial's status codes. curl's own options stay untouched: the status code comes from a
//! `.curlrc` (`write-out`) in a private `CURL_HOME`.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{require, start_with, TestEngine};
use serde_json::{json, Value};

const TOKEN: &str = "vb-tutorial-token";
const NIL: &str = "00000000-0000-0000-0000-000000000000";
/// The tutorial's `flow_id`.
const FLOW_ID: &str = "93993ae1-0408-4639-ad5f-1288aa8d4325";
/// The example activeflow ids the tutorial's commands carry.
const TUTORIAL_IDS: [&str; 2] = [
    "6f18ae1c-ddf8-413b-9572-ad30574604ef",
    "1cb0566c-6aa5-45fd-beb7-e71a968075ea",
];

/// activeflow_tutorial.rst, "Create activeflow".
const CREATE: &str = r#"curl --location --request POST 'https://api.voipbin.net/v1.0/activeflows?token=<YOUR_AUTH_TOKEN>' \
    --header 'Content-Type: application/json' \
    --data-raw '{
        "flow_id": "93993ae1-0408-4639-ad5f-1288aa8d4325",
        "variables": {
            "campaign_id": "summer-2026",
            "customer_name": "Jane Doe"
        },
        "webhook_uri": "https://example.com/webhooks/activeflow",
        "webhook_method": "POST"
    }'"#;
/// "Get activeflow list".
const LIST: &str =
    "curl -k --location --request GET 'https://api.voipbin.net/v1.0/activeflows?token=<YOUR_AUTH_TOKEN>'";
/// "Get activeflow details".
const GET: &str = "curl -k --location --request GET 'https://api.voipbin.net/v1.0/activeflows/6f18ae1c-ddf8-413b-9572-ad30574604ef?token=<YOUR_AUTH_TOKEN>'";
/// "Stop activeflow".
const STOP: &str = "curl --location --request POST 'https://api.voipbin.net/v1.0/activeflows/1cb0566c-6aa5-45fd-beb7-e71a968075ea/stop?token=<YOUR_AUTH_TOKEN>'";
/// "Delete activeflow".
const DELETE: &str = "curl --location --request DELETE 'https://api.voipbin.net/v1.0/activeflows/1cb0566c-6aa5-45fd-beb7-e71a968075ea?token=<YOUR_AUTH_TOKEN>'";

/// The tutorial's flow as a customer would have registered it: greets by the seeded
/// `customer_name`, then waits (`block`) so the activeflow is still running when listed.
fn tutorial_flow() -> Value {
    json!({
        "id": FLOW_ID,
        "name": "tutorial greeting",
        "actions": [
            {"id": "93ebcadb-ecae-4291-8d49-ca81a926b8b3", "next_id": NIL, "type": "talk",
             "option": {"text": "Hello, ${customer_name}.", "language": "en-US"}},
            {"id": "f9720d64-a8a8-11ed-8853-3f29a447aac1", "next_id": NIL, "type": "block"}
        ],
        "on_complete_flow_id": NIL
    })
}

fn engine() -> TestEngine {
    require("curl");
    start_with(
        &[tutorial_flow()],
        &[],
        &[("ACTIVEFLOW_API_TOKEN", TOKEN)],
        |_| {},
    )
}

/// A `CURL_HOME` whose `.curlrc` makes curl quiet and print the status code last.
fn curl_home() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "activeflow-curl-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(".curlrc"),
        "silent\nshow-error\nwrite-out = \"\\n%{http_code}\"\n",
    )
    .unwrap();
    dir
}

/// Runs one tutorial command line through `sh` with the host, token and example id replaced;
/// returns the status code and the JSON body (Null when empty).
fn run(engine: &TestEngine, command: &str, token: &str, id: &str) -> (u16, Value) {
    let mut line = command
        .replace("https://api.voipbin.net", &format!("http://{}", engine.api))
        .replace("<YOUR_AUTH_TOKEN>", token);
    for example in TUTORIAL_IDS {
        line = line.replace(example, id);
    }
    let out = Command::new("sh")
        .args(["-c", &line])
        .env("CURL_HOME", curl_home())
        .output()
        .expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{line}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let status = code.trim().parse().unwrap_or_else(|_| panic!("{stdout}"));
    let json = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, json)
}

/// VoIPBIN's activeflow record (activeflow_struct_activeflow.rst, the tutorial's responses).
fn assert_voipbin_shape(a: &Value, context: &str) {
    for key in [
        "id",
        "flow_id",
        "status",
        "reference_type",
        "reference_id",
        "reference_activeflow_id",
        "on_complete_flow_id",
        "current_action",
        "forward_action_id",
        "executed_actions",
        "tm_create",
        "tm_update",
        "tm_delete",
    ] {
        assert!(a.get(key).is_some(), "{context}: no `{key}` in {a}");
    }
    for key in [
        "id",
        "flow_id",
        "reference_id",
        "reference_activeflow_id",
        "on_complete_flow_id",
        "forward_action_id",
    ] {
        let v = a[key]
            .as_str()
            .unwrap_or_else(|| panic!("{context}: `{key}` is not a string: {a}"));
        assert!(v.parse::<uuid::Uuid>().is_ok(), "{context}: `{key}` = {v}");
    }
    assert!(a["executed_actions"].is_array(), "{context}: {a}");
    for key in ["tm_create", "tm_update"] {
        assert!(a[key].is_string(), "{context}: `{key}` in {a}");
    }
    // VoIPBIN's current_action is always an action object: before the first action runs it is
    // the start marker (id ...0001, type "").
    let action = &a["current_action"];
    for key in ["id", "next_id", "type"] {
        assert!(
            action[key].is_string(),
            "{context}: current_action.{key} in {a}"
        );
    }
}

#[test]
fn the_activeflow_tutorials_curl_commands_pass_unchanged() {
    let engine = engine();

    // Create: 200 with the record (VoIPBIN answers 200, not 201), running, started by the API.
    let (status, created) = run(&engine, CREATE, TOKEN, "");
    assert_eq!(status, 200, "create: {created}");
    assert_voipbin_shape(&created, "create");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["flow_id"], FLOW_ID);
    assert_eq!(created["status"], "running", "{created}");
    assert_eq!(created["reference_type"], "api");
    for key in [
        "reference_id",
        "reference_activeflow_id",
        "on_complete_flow_id",
        "forward_action_id",
    ] {
        assert_eq!(created[key], NIL, "create: {key} of {created}");
    }
    assert_eq!(
        created["webhook_uri"],
        "https://example.com/webhooks/activeflow"
    );
    assert_eq!(created["webhook_method"], "POST");
    assert_eq!(created["tm_delete"], Value::Null);

    // List: `{result, next_page_token}` holding it.
    let (status, list) = run(&engine, LIST, TOKEN, &id);
    assert_eq!(status, 200, "list: {list}");
    assert!(list.get("next_page_token").is_some(), "list: {list}");
    let listed = list["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str())
        .unwrap_or_else(|| panic!("list: {id} not in {list}"))
        .clone();
    assert_voipbin_shape(&listed, "list");

    // Get: the same record, still running (it waits in `block`).
    let (status, got) = run(&engine, GET, TOKEN, &id);
    assert_eq!(status, 200, "get: {got}");
    assert_voipbin_shape(&got, "get");
    assert_eq!(got["id"], id.as_str());
    assert_eq!(got["status"], "running", "{got}");

    // Stop: the record with status "ended".
    let (status, stopped) = run(&engine, STOP, TOKEN, &id);
    assert_eq!(status, 200, "stop: {stopped}");
    assert_voipbin_shape(&stopped, "stop");
    assert_eq!(stopped["id"], id.as_str());
    assert_eq!(stopped["status"], "ended", "{stopped}");

    // The seeded variables reached the activeflow (VoIPBIN's `variables` on create).
    let (status, vars) = common::http_with(
        engine.api,
        "GET",
        &format!("/v1/activeflows/{id}/variables"),
        None,
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    );
    assert_eq!(status, 200, "{vars}");
    assert_eq!(vars["variables"]["customer_name"], "Jane Doe", "{vars}");
    assert_eq!(vars["variables"]["campaign_id"], "summer-2026", "{vars}");

    // Delete: 200 with the soft-deleted record (VoIPBIN's handler answers with it; the
    // tutorial's "204" note is not what it does); then it is gone from the list.
    let (status, deleted) = run(&engine, DELETE, TOKEN, &id);
    assert_eq!(status, 200, "delete: {deleted}");
    assert_voipbin_shape(&deleted, "delete");
    assert!(deleted["tm_delete"].is_string(), "{deleted}");
    let (_, list) = run(&engine, LIST, TOKEN, &id);
    assert!(
        !list["result"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == id.as_str()),
        "deleted {id} still listed: {list}"
    );
}

#[test]
fn the_tutorials_commands_with_a_wrong_token_are_refused() {
    let engine = engine();
    let (status, body) = run(&engine, LIST, "not-the-token", "");
    assert_eq!(status, 401, "{body}");
    let (status, body) = run(&engine, CREATE, "not-the-token", "");
    assert_eq!(status, 401, "{body}");
    assert!(
        engine.activeflows().is_empty(),
        "refused create started one"
    );
}
