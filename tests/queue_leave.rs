//! Leaving a queue and what follows, with real peers: after `queue_join` times out or its
//! queue is deleted, the agent still ringing gets CANCEL (RFC 3261 §9.1) and answers 487 (§9.2)
//! while the flow already runs a waiting action; that late final response must not disturb
//! it, nor may the old queue's wait timer. An agent bridged for one queue's caller (§13.2.2.4
//! 2xx) is not rung by another queue listing it. An activeflow that dies in a panic still
//! leaves its queue and cancels the agent it rang.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use activeflow::engine::{Activeflow, EndReason, Status};
use common::queue::{create_queue, engine, set_flow, sip};
use common::uas::SippUas;
use common::{free_port, http, result_of, sipp};
use serde_json::{json, Value};

const FLOW_ID: &str = "7f3c1f7e-3f55-4a0e-9a53-5b4f0c2d9e02";

/// `queue_join`, then a `beep` (a media wait, as `talk` and `play`) that outlasts the
/// agent's late 487, then a marker.
fn join_then_wait(queue: &str, beep_ms: u64) -> Value {
    json!([
        {"type": "queue_join", "option": {"queue_id": queue}},
        {"type": "variable_set", "option": {"key": "left", "value": "${queue.result}"}},
        {"type": "beep", "option": {"duration": beep_ms}},
        {"type": "variable_set", "option": {"key": "after", "value": "done"}},
        {"type": "hangup"}
    ])
}

/// Timeout → CANCEL to the ringing agent → its 487 arrives during the `beep`: the beep still
/// completes and the flow reaches its end (the caller gets our BYE).
#[test]
fn a_waiting_action_after_a_queue_timeout_completes() {
    let agent = SippUas::start_with_rtp("uas_ring_cancel.xml", free_port(), &[]);
    let engine = engine(FLOW_ID);
    let queue = create_queue(
        engine.api,
        json!({"name": "slow", "wait_timeout": 1500, "agents": [sip(&agent.uri())]}),
    );
    set_flow(engine.api, FLOW_ID, join_then_wait(&queue, 1500));
    let caller = std::thread::spawn({
        let sip = engine.sip;
        move || sipp(sip, "uac_queue_caller.xml", "queue", &["-m", "1"])
    });
    assert!(
        agent.succeeded(Duration::from_secs(10)),
        "the agent got CANCEL"
    );
    let record = common::ended_one(&engine, Duration::from_secs(15));
    assert_eq!(record.end_reason, Some(EndReason::Completed));
    assert_eq!(record.variables.get("left"), Some("timeout"));
    assert_eq!(
        record.variables.get("after"),
        Some("done"),
        "the beep completed"
    );
    caller.join().unwrap().assert_all_ok(1);
}

/// DELETE while the caller waits: `closed`, the agent cancelled; the deleted queue's
/// `wait_timeout` (1.5 s) passes during the following 3 s beep and must not end it.
#[test]
fn deleting_a_queue_while_a_caller_waits_gives_closed_and_its_timer_stays_quiet() {
    let agent = SippUas::start_with_rtp("uas_ring_cancel.xml", free_port(), &[]);
    let engine = engine(FLOW_ID);
    let queue = create_queue(
        engine.api,
        json!({"name": "gone", "wait_timeout": 1500, "agents": [sip(&agent.uri())]}),
    );
    set_flow(engine.api, FLOW_ID, join_then_wait(&queue, 3000));
    let caller = std::thread::spawn({
        let sip = engine.sip;
        move || sipp(sip, "uac_queue_caller.xml", "queue", &["-m", "1"])
    });
    let path = format!("/v1/queues/{queue}");
    common::wait_until("the agent to ring", Duration::from_secs(10), || {
        let (_, q) = http(engine.api, "GET", &path, None);
        (q["agents"][0]["status"] == "ringing").then_some(())
    });
    let (status, deleted) = http(engine.api, "DELETE", &path, None);
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(http(engine.api, "GET", &path, None).0, 404);
    assert!(
        agent.succeeded(Duration::from_secs(10)),
        "the agent got CANCEL"
    );
    let record = common::ended_one(&engine, Duration::from_secs(15));
    assert_eq!(record.end_reason, Some(EndReason::Completed));
    assert_eq!(result_of(&record, "queue_join")["result"], "closed");
    assert_eq!(record.variables.get("left"), Some("closed"));
    assert_eq!(
        record.variables.get("after"),
        Some("done"),
        "the beep completed"
    );
    caller.join().unwrap().assert_all_ok(1);
}

/// One agent in queues A and B: while it is bridged with A's caller, B's caller does not ring
/// it (B shows it `busy`) and leaves at its `wait_timeout` with no attempt.
#[test]
fn an_agent_bridged_for_one_queue_is_not_rung_by_another() {
    let agent = SippUas::start_with_rtp("uas_answer_then_bye.xml", free_port(), &["-d", "5000"]);
    let engine = engine(FLOW_ID);
    let agents = json!([sip(&agent.uri())]);
    let a = create_queue(engine.api, json!({"name": "a", "agents": agents}));
    let b = create_queue(
        engine.api,
        json!({"name": "b", "wait_timeout": 2000, "agents": agents}),
    );
    // The routed flow joins A for the first caller, then (replaced) B for the second.
    set_flow(
        engine.api,
        FLOW_ID,
        json!([
            {"type": "queue_join", "option": {"queue_id": a}},
            {"type": "hangup"}
        ]),
    );
    let first = std::thread::spawn({
        let sip = engine.sip;
        move || sipp(sip, "uac_queue_caller.xml", "queue", &["-m", "1"])
    });
    common::wait_until("the agent to be bridged", Duration::from_secs(10), || {
        let (_, q) = http(engine.api, "GET", &format!("/v1/queues/{a}"), None);
        (q["agents"][0]["status"] == "busy").then_some(())
    });
    let (_, qb) = http(engine.api, "GET", &format!("/v1/queues/{b}"), None);
    assert_eq!(qb["agents"][0]["status"], "busy", "engaged elsewhere: {qb}");
    set_flow(
        engine.api,
        FLOW_ID,
        json!([
            {"type": "queue_join", "option": {"queue_id": b}},
            {"type": "hangup"}
        ]),
    );
    let second = std::thread::spawn({
        let sip = engine.sip;
        move || sipp(sip, "uac_queue_caller.xml", "queue", &["-m", "1"])
    });
    let path_b = format!("/v1/queues/{b}");
    common::wait_until("B's caller to wait", Duration::from_secs(10), || {
        let (_, q) = http(engine.api, "GET", &path_b, None);
        (!q["waiting_callers"].as_array()?.is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let (_, qb) = http(engine.api, "GET", &path_b, None);
    assert_eq!(
        qb["waiting_callers"][0]["status"], "waiting",
        "nobody rung: {qb}"
    );
    assert_eq!(qb["agents"][0]["status"], "busy", "{qb}");
    second.join().unwrap().assert_all_ok(1);
    first.join().unwrap().assert_all_ok(1);
    assert!(
        agent.succeeded(Duration::from_secs(10)),
        "one call, answered"
    );
    engine.wait_for("both callers to end", Duration::from_secs(15), |all| {
        all.len() == 2 && all.iter().all(|r| r.status == Status::Ended)
    });
    let all = engine.activeflows();
    let results: Vec<Value> = all.iter().map(|r| result_of(r, "queue_join")).collect();
    let in_b = results
        .iter()
        .find(|r| r["queue_id"] == b.as_str())
        .unwrap();
    assert_eq!(in_b["result"], "timeout", "{in_b}");
    assert_eq!(
        in_b["attempts"],
        json!([]),
        "B never rang the agent: {in_b}"
    );
    let in_a = results
        .iter()
        .find(|r| r["queue_id"] == a.as_str())
        .unwrap();
    assert_eq!(in_a["result"], "answered", "{in_a}");
}

/// A message no real handler knows: handling it panics, as a bug in a handler would.
struct Boom;

impl actix::Message for Boom {
    type Result = ();
}

impl actix::Handler<Boom> for Activeflow {
    type Result = ();
    fn handle(&mut self, _: Boom, _: &mut Self::Context) {
        panic!("test: a bug in an activeflow handler");
    }
}

/// The activeflow panics while its caller waits and an agent rings: its drop path leaves the
/// queue (the place freed, the agent available) and cancels the agent's leg.
#[test]
fn a_panicking_activeflow_leaves_its_queue_and_cancels_the_agent() {
    let agent = SippUas::start_with_rtp("uas_ring_cancel.xml", free_port(), &[]);
    let mut engine = engine(FLOW_ID);
    engine.expect_planted_panics(1);
    let queue = create_queue(
        engine.api,
        json!({"name": "p", "agents": [sip(&agent.uri())]}),
    );
    set_flow(
        engine.api,
        FLOW_ID,
        json!([{"type": "queue_join", "option": {"queue_id": queue}}, {"type": "hangup"}]),
    );
    let caller = std::thread::spawn({
        let sip = engine.sip;
        move || sipp(sip, "uac_queue_caller.xml", "queue", &["-m", "1"])
    });
    let path = format!("/v1/queues/{queue}");
    // The manager shows the agent ringing when it orders the ring; the leg exists once the
    // activeflow handled that order (a panic before it would leave nothing to cancel).
    common::wait_until("the agent's leg", Duration::from_secs(10), || {
        let (_, calls) = http(engine.api, "GET", "/v1/calls", None);
        calls["result"]
            .as_array()?
            .iter()
            .any(|c| c["direction"] == "outgoing")
            .then_some(())
    });
    let id = engine.activeflows()[0].id;
    engine.registry.get(&id).unwrap().addr.do_send(Boom);
    assert!(
        agent.succeeded(Duration::from_secs(10)),
        "the agent got CANCEL"
    );
    let q = common::wait_until("the queue to be empty", Duration::from_secs(5), || {
        let (_, q) = http(engine.api, "GET", &path, None);
        (q["waiting_callers"] == json!([])).then_some(q)
    });
    assert_eq!(q["agents"][0]["status"], "available", "{q}");
    let record = common::ended_one(&engine, Duration::from_secs(10));
    assert_eq!(record.end_reason, Some(EndReason::Error));
    caller.join().unwrap().assert_all_ok(1);
}
