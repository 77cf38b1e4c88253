//! The `call` action (a SIPp caller's flow places calls and moves on; `chained`; an API
//! activeflow places calls) and `early_execution` (RFC 3261 §9.1 CANCEL for an early hangup).

use super::*;
use common::{result_of, sipp};

#[test]
fn the_call_action_places_a_call_and_the_parent_moves_on() {
    let callee = SippUas::start_with_rtp("uas_answer_wait_bye.xml", free_port(), &[]);
    let parent = flow(
        "parent",
        json!([
            {"type": "answer"},
            {"type": "call", "option": {
                "source": {"type": "tel", "target": "+15550199"},
                "destinations": [{"type": "sip", "target": callee.uri()}],
                "actions": [{"type": "beep", "option": {"duration": 300}},
                            {"type": "variable_set", "option": {"key": "who", "value": "${call.destination.target}"}},
                            {"type": "hangup"}]}},
            {"type": "hangup"}
        ]),
    );
    let engine = engine(&[parent], &[("parent", "parent")]);
    let uri = callee.uri();
    sipp(engine.sip, "uac_engine_bye.xml", "parent", &["-m", "1"]).assert_all_ok(1);
    assert!(callee.succeeded(LIMIT), "the child's flow hung up its call");
    engine.wait_for("both activeflows to end", LIMIT, |all| {
        all.len() == 2 && all.iter().all(|a| a.status == Status::Ended)
    });
    let all = engine.activeflows();
    let p = all
        .iter()
        .find(|a| executed_types(a).contains(&"call".to_owned()))
        .unwrap();
    assert_eq!(
        executed_types(p),
        ["answer", "call", "hangup"],
        "the parent did not wait"
    );
    let placed = &result_of(p, "call")["calls"][0];
    assert_eq!(placed["status"], "dialing", "{placed}");
    let child = all.iter().find(|a| a.id != p.id).unwrap();
    assert_eq!(placed["activeflow_id"], child.id.to_string());
    assert_eq!(placed["call_id"], child.reference_id.as_str());
    assert_eq!(child.reference_type, ReferenceType::Call);
    assert_eq!(executed_types(child), ["beep", "variable_set", "hangup"]);
    // Inline actions are expanded in the new call's activeflow, against its own variables.
    assert_eq!(child.variables.get("who"), Some(uri.as_str()));
    assert_eq!(child.variables.get("call.direction"), Some("outgoing"));
}

#[test]
fn a_chained_call_gets_bye_when_the_parents_caller_hangs_up() {
    let callee = SippUas::start_with_rtp("uas_answer_wait_bye.xml", free_port(), &[]);
    let parent = flow(
        "chain",
        json!([
            {"type": "answer"},
            {"type": "call", "option": {
                "chained": true,
                "destinations": [{"type": "sip", "target": callee.uri()}],
                "actions": [{"type": "sleep", "option": {"duration": 30000}}]}},
            {"type": "sleep", "option": {"duration": 30000}}
        ]),
    );
    let engine = engine(&[parent], &[("chain", "chain")]);
    // The caller hangs up 1.5 s after its answer, long after the child answered.
    sipp(
        engine.sip,
        "uac_caller_bye_after.xml",
        "chain",
        &["-m", "1", "-d", "1500"],
    )
    .assert_all_ok(1);
    assert!(
        callee.succeeded(Duration::from_secs(10)),
        "the chained callee got BYE when the parent's caller hung up"
    );
    engine.wait_for("both activeflows to end", LIMIT, |all| {
        all.len() == 2 && all.iter().all(|a| a.status == Status::Ended)
    });
    let reasons: Vec<_> = engine.activeflows().iter().map(|a| a.end_reason).collect();
    assert!(
        reasons.iter().all(|r| *r == Some(EndReason::Hangup)),
        "{reasons:?}"
    );
}

/// `early_execution`: the flow runs from placement; what needs an answered call (`beep`) waits
/// for the answer, the rest (`variable_set`) runs while the callee rings. Without it nothing
/// runs before the answer.
#[test]
fn early_execution_runs_before_the_answer_and_media_waits_for_it() {
    let engine = engine(&[], &[]);
    let mut runs = Vec::new();
    for early in [true, false] {
        // Rings 2 s (180) before it answers.
        let callee = SippUas::start_with_rtp("uas_180_then_answer.xml", free_port(), &[]);
        let (status, body) = post_calls(
            &engine,
            json!({
                "destinations": [{"type": "sip", "target": callee.uri()}],
                "early_execution": early,
                "actions": [
                    {"type": "variable_set", "option": {"key": "status", "value": "${call.status}"}},
                    {"type": "beep", "option": {"duration": 200}},
                    {"type": "hangup"}
                ]
            }),
        );
        assert_eq!(status, 200, "{body}");
        let af = body["calls"][0]["activeflow_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let call_id = body["calls"][0]["id"].as_str().unwrap().to_owned();
        assert!(callee.succeeded(LIMIT));
        runs.push((early, ended(&engine, &af), call_json(&engine, &call_id)));
    }
    for (early, a, call) in runs {
        assert_eq!(
            executed_types(&a),
            ["variable_set", "beep", "hangup"],
            "early {early}"
        );
        let answered = call["tm_answer"].as_str().unwrap();
        let set_at = a.executed_actions[0].tm_execute.as_str();
        let beep_at = a.executed_actions[1].tm_execute.as_str();
        // RFC 3339 UTC with microseconds: text order is time order.
        assert!(
            beep_at >= answered,
            "early {early}: beep at {beep_at}, answer {answered}"
        );
        if early {
            assert!(
                set_at < answered,
                "variable_set at {set_at}, answer {answered}"
            );
            let status = a.variables.get("status").unwrap();
            assert!(["dialing", "ringing"].contains(&status), "{status}");
        } else {
            assert!(
                set_at >= answered,
                "variable_set at {set_at}, answer {answered}"
            );
            assert_eq!(a.variables.get("status"), Some("progressing"));
        }
    }
}

/// The `call` action needs no call of its own: an API activeflow places calls with it. An
/// unknown `flow_id` is recorded in the action's `result` and the flow goes on.
#[test]
fn an_api_activeflow_places_calls_and_an_unknown_flow_is_a_result() {
    let callee = SippUas::start_with_rtp("uas_answer_wait_bye.xml", free_port(), &[]);
    let engine = engine(&[], &[]);
    let missing = "33333333-3333-4333-8333-333333333333";
    let body = json!({"actions": [
        {"type": "call", "option": {"flow_id": missing,
            "destinations": [{"type": "sip", "target": callee.uri()}]}},
        {"type": "call", "option": {"chained": true,
            "destinations": [{"type": "sip", "target": callee.uri()}],
            "actions": [{"type": "sleep", "option": {"duration": 300}}, {"type": "hangup"}]}}
    ]});
    let (status, started) = http(
        engine.api,
        "POST",
        "/v1/activeflows",
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{started}");
    let parent = ended(&engine, started["id"].as_str().unwrap());
    assert_eq!(parent.end_reason, Some(EndReason::Completed));
    let results: Vec<Value> = parent
        .executed_actions
        .iter()
        .map(|e| e.result.clone().unwrap())
        .collect();
    assert_eq!(results[0]["calls"], json!([]), "{}", results[0]);
    assert!(results[0]["error"].as_str().unwrap().contains(missing));
    let placed = &results[1]["calls"][0];
    assert_eq!(placed["status"], "dialing", "{placed}");
    // `chained` needs a placing call: the parent ended at once, the child still ran.
    assert!(callee.succeeded(LIMIT), "the child's own hangup");
    let child = ended(&engine, placed["activeflow_id"].as_str().unwrap());
    assert_eq!(executed_types(&child), ["sleep", "hangup"]);
    assert_eq!(child.end_reason, Some(EndReason::Completed));
}

/// `early_execution` with a `hangup` first: it runs while the callee rings and cancels the call
/// (RFC 3261 §9.1: CANCEL, the callee answers 487).
#[test]
fn an_early_hangup_cancels_the_ringing_call() {
    let callee = SippUas::start("uas_ring_cancel.xml", &[]);
    let engine = engine(&[], &[]);
    let (status, body) = post_calls(
        &engine,
        json!({"destinations": [{"type": "sip", "target": callee.uri()}],
               "early_execution": true,
               "actions": [{"type": "sleep", "option": {"duration": 500}},
                           {"type": "hangup", "option": {"reason": "normal"}},
                           {"type": "talk", "option": {"text": "never"}}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(callee.succeeded(LIMIT), "the callee got CANCEL");
    let a = ended(&engine, body["calls"][0]["activeflow_id"].as_str().unwrap());
    assert_eq!(executed_types(&a), ["sleep", "hangup"]);
    let call = call_json(&engine, body["calls"][0]["id"].as_str().unwrap());
    assert!(call["tm_answer"].is_null(), "{call}");
}
