//! `condition_variable` as VoIPBIN's own flows write it (`"variable": "${voipbin.call.digits}"`,
//! bin-api-manager docsdev flow_struct_action.rst), through the real engine: activeflows
//! started over `POST /v1/activeflows` with inline actions and variables, no call. The named
//! variable is read (set, empty or unset), the branch taken shows in `executed_actions`, and
//! the activeflow ends `completed`, never `error`. Also the deprecated `condition_call_digits`
//! and `condition_call_status`, which an activeflow without a call skips.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::http_server::executed_results;
use common::{flow, http, start};
use serde_json::{json, Value};

const ON_FALSE: &str = "f0000000-0000-4000-8000-000000000001";
const DONE: &str = "d0000000-0000-4000-8000-000000000002";

/// A test under `kind` with `option` (plus `false_target_id`), then one `variable_set` per
/// branch writing `taken`, both ending at a last `variable_set`. Only non-call actions.
fn two_way(kind: &str, option: Value) -> Value {
    let mut option = option;
    option["false_target_id"] = json!(ON_FALSE);
    json!([
        {"type": kind, "option": option},
        {"type": "variable_set", "next_id": DONE, "option": {"key": "taken", "value": "true"}},
        {"id": ON_FALSE, "type": "variable_set", "option": {"key": "taken", "value": "false"}},
        {"id": DONE, "type": "variable_set", "option": {"key": "done", "value": "yes"}}
    ])
}

/// Starts an activeflow over the API and returns it once ended, with its variables.
fn run(e: &common::TestEngine, actions: &Value, variables: Value) -> (Value, Value) {
    let body = json!({"actions": actions, "variables": variables}).to_string();
    let (status, a) = http(e.api, "POST", "/v1/activeflows", Some(&body));
    assert_eq!(status, 200, "{a}");
    let id = a["id"].as_str().unwrap().to_owned();
    for _ in 0..500 {
        let (status, a) = http(e.api, "GET", &format!("/v1/activeflows/{id}"), None);
        assert_eq!(status, 200, "{a}");
        if a["status"] == "ended" {
            let (status, vars) = http(
                e.api,
                "GET",
                &format!("/v1/activeflows/{id}/variables"),
                None,
            );
            assert_eq!(status, 200, "{vars}");
            return (a, vars["variables"].clone());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("activeflow {id} did not end");
}

/// Which branch ran, checking the activeflow completed and ran the test first and the last
/// action last.
fn branch_taken(a: &Value, vars: &Value, kind: &str) -> String {
    assert_eq!(a["end_reason"], "completed", "{a}");
    let log = executed_results(a);
    assert_eq!(log.len(), 3, "{a}");
    assert_eq!(log[0].0, kind);
    assert_eq!(vars["done"], "yes", "{vars}");
    vars["taken"].as_str().unwrap().to_owned()
}

fn start_engine() -> common::TestEngine {
    let hold = flow(
        "hold",
        json!([{"type": "sleep", "option": {"duration": 60000}}]),
    );
    start(&[hold], &[("*", "hold")], &[])
}

#[test]
fn condition_variable_reads_the_named_variable_set_empty_or_unset() {
    let e = start_engine();
    let voipbin = two_way(
        "condition_variable",
        json!({"condition": "==", "variable": "${voipbin.call.digits}", "value_string": "1"}),
    );

    let (a, vars) = run(&e, &voipbin, json!({"call.digits": "1"}));
    assert_eq!(branch_taken(&a, &vars, "condition_variable"), "true");
    assert_eq!(
        executed_results(&a)[0].1,
        json!({"value": "1", "result": true})
    );

    let (a, vars) = run(&e, &voipbin, json!({"call.digits": "2"}));
    assert_eq!(branch_taken(&a, &vars, "condition_variable"), "false");
    assert_eq!(
        executed_results(&a)[0].1,
        json!({"value": "2", "result": false})
    );

    for unset_or_empty in [json!({}), json!({"call.digits": ""})] {
        let (a, vars) = run(&e, &voipbin, unset_or_empty);
        assert_eq!(branch_taken(&a, &vars, "condition_variable"), "false");
        assert_eq!(
            executed_results(&a)[0].1,
            json!({"value": "", "result": false})
        );
    }

    // Testing for empty: unset is "" and takes the true branch, still `completed`.
    let empty = two_way(
        "condition_variable",
        json!({"condition": "==", "variable": "${voipbin.call.digits}", "value_string": ""}),
    );
    let (a, vars) = run(&e, &empty, json!({}));
    assert_eq!(branch_taken(&a, &vars, "condition_variable"), "true");

    // The bare name and a length test read the same variable.
    let bare = two_way(
        "condition_variable",
        json!({"condition": ">=", "variable": "call.digits", "value_type": "length",
               "value_length": 3}),
    );
    let (a, vars) = run(&e, &bare, json!({"call.digits": "123"}));
    assert_eq!(branch_taken(&a, &vars, "condition_variable"), "true");
    let (a, vars) = run(&e, &bare, json!({}));
    assert_eq!(branch_taken(&a, &vars, "condition_variable"), "false");
}

/// A template (`${a}${b}`) still works as one, and a value holding `${...}` is data.
#[test]
fn condition_variable_templates_and_values_set_by_the_flow() {
    let e = start_engine();
    let actions = two_way(
        "condition_variable",
        json!({"condition": "==", "variable": "${a}-${b}", "value_string": "x-${y}"}),
    );
    // `value_string` is substituted ("x-2"); the template's `${b}` inserts "${y}" as data.
    let (a, vars) = run(&e, &actions, json!({"a": "x", "b": "${y}", "y": "2"}));
    assert_eq!(branch_taken(&a, &vars, "condition_variable"), "false");
    assert_eq!(
        executed_results(&a)[0].1,
        json!({"value": "x-${y}", "result": false})
    );
    let (a, vars) = run(&e, &actions, json!({"a": "x", "b": "2", "y": "2"}));
    assert_eq!(branch_taken(&a, &vars, "condition_variable"), "true");
    assert_eq!(
        executed_results(&a)[0].1,
        json!({"value": "x-2", "result": true})
    );
}

/// bin-flow-manager action.go maps `condition_call_digits` and `condition_call_status` to
/// MediaTypeRealTimeCommunication, so an activeflow without a call skips them
/// (`verifyActionType`): recorded `{"skipped": "no call"}`, the cursor moves on (the true
/// branch) whatever the variables say. With a call they read `call.digits` and `call.status`
/// (unit tests in engine::execute; over SIPp, tests/voipbin_flows.rs runs the corpus flows
/// `call_digits_deprecated` for `condition_call_digits` and `answer_status` for
/// `condition_call_status` after `answer`). A bad `status` is still
/// refused by validation.
#[test]
fn deprecated_call_conditions_are_skipped_without_a_call() {
    let e = start_engine();
    for (kind, option) in [
        ("condition_call_digits", json!({"length": 3, "key": "#"})),
        ("condition_call_status", json!({"status": "progressing"})),
    ] {
        let actions = two_way(kind, option);
        let (a, vars) = run(&e, &actions, json!({"call.digits": "12"}));
        assert_eq!(branch_taken(&a, &vars, kind), "true");
        assert_eq!(
            executed_results(&a)[0].1,
            json!({"skipped": "no call"}),
            "{a}"
        );
    }

    let bad = json!([{"type": "condition_call_status", "option": {"status": "answered"}}]);
    let body = json!({ "actions": bad }).to_string();
    let (code, err) = http(e.api, "POST", "/v1/activeflows", Some(&body));
    assert_eq!(code, 400, "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("actions[0].option.status"), "{message}");
}
