//! Bounds on the `call` action, with real SIPp callees (RFC 3261 §13.2 UAC; §9.1 CANCEL of a
//! ringing call): a flow that calls itself stops after `MAX_CALL_HOPS` generations (the last
//! one's `call` fails `too_many_hops`), and a `call` made while shutdown drains the engine
//! places nothing (`draining`), as `POST /v1/calls` answers 503 then.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use activeflow::engine::call_tree::MAX_CALL_HOPS;
use activeflow::engine::{ActiveflowRecord, ReferenceType, Status};
use common::uas::SippUas;
use common::{flow, http, result_of, start};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(30);

fn start_activeflow(api: std::net::SocketAddr, flow: &str) -> String {
    let body = json!({ "flow_id": flow }).to_string();
    let (status, a) = http(api, "POST", "/v1/activeflows", Some(&body));
    assert!(status == 200 || status == 201, "{status} {a}");
    a["id"].as_str().unwrap().to_owned()
}

fn calls_of(record: &ActiveflowRecord) -> Vec<Value> {
    result_of(record, "call")["calls"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A flow whose `call` runs the same flow on the callee, under `early_execution` (so each
/// generation calls on as soon as it is placed), then hangs up (CANCEL): the API activeflow and
/// three generations of placed calls run it; the third generation's `call` is refused.
#[test]
fn a_self_calling_flow_stops_at_the_hop_limit() {
    let hops = usize::from(MAX_CALL_HOPS);
    let callee = SippUas::start("uas_ring_cancel.xml", &["-m", &hops.to_string()]);
    let id = "3d0c6a52-8f0e-4c1b-9e1a-6c2f4b7d9a01";
    let f = json!({"id": id, "name": "again", "actions": [
        {"type": "call", "option": {
            "destinations": [{"type": "sip", "target": callee.uri()}],
            "flow_id": id, "early_execution": true}},
        {"type": "hangup"}]});
    let engine = start(&[f], &[], &[]);
    let root = start_activeflow(engine.api, "again");
    engine.wait_for("every generation to end", LIMIT, |all| {
        all.len() == hops + 1 && all.iter().all(|a| a.status == Status::Ended)
    });
    assert!(
        callee.succeeded(LIMIT),
        "{hops} calls, each INVITE, 180, CANCEL"
    );
    // Give a runaway chain time to show itself.
    std::thread::sleep(Duration::from_millis(500));
    let all = engine.activeflows();
    assert_eq!(all.len(), hops + 1, "exactly {hops} calls were placed");
    let placed: Vec<_> = all
        .iter()
        .filter(|a| a.reference_type == ReferenceType::Call)
        .collect();
    assert_eq!(placed.len(), hops);
    let refused: Vec<_> = all
        .iter()
        .filter(|a| calls_of(a).first().is_some_and(|c| c["status"] == "failed"))
        .collect();
    assert_eq!(refused.len(), 1, "only the last generation is refused");
    let call = &calls_of(refused[0])[0];
    assert_eq!(call["reason"], "too_many_hops", "{call}");
    assert_ne!(refused[0].id.to_string(), root);
}

/// Shutdown drains: an activeflow whose `call` runs after the drain began places nothing
/// (`reason` `draining`) and ends on its own within the grace period.
#[test]
fn a_call_action_while_draining_places_nothing() {
    let callee = SippUas::start("uas_ring_cancel.xml", &[]);
    let f = flow(
        "late",
        json!([{"type": "sleep", "option": {"duration": 1000}},
               {"type": "call", "option": {
                    "destinations": [{"type": "sip", "target": callee.uri()}],
                    "actions": [{"type": "hangup"}]}},
               {"type": "variable_set", "option": {"key": "after", "value": "yes"}}]),
    );
    let engine = start(&[f], &[], &[]);
    let id = start_activeflow(engine.api, "late");
    let registry = engine.registry.clone();
    engine.shutdown(Duration::from_secs(5));
    let all = registry.list(None, usize::MAX, None).items;
    let record = all.iter().find(|a| a.id.to_string() == id).unwrap();
    assert_eq!(
        record.variables.get("after"),
        Some("yes"),
        "it ran to its end"
    );
    let call = &calls_of(record)[0];
    assert_eq!(call["status"], "failed", "{call}");
    assert_eq!(call["reason"], "draining", "{call}");
    assert_eq!(all.len(), 1, "no activeflow was placed");
    assert!(
        !callee.succeeded(Duration::from_millis(500)),
        "the callee got no INVITE"
    );
}
