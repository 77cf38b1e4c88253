//! A conference of SIPp legs in both directions: `POST /v1/calls` dials two SIPp callees
//! (RFC 3261 §13.2) whose flow is `conference_join`; each callee replays its own tone, and a
//! SIPp caller joins the same room and listens through a test socket its SDP names. The caller
//! hears both callees' tones (the N−1 mix of RFC 7667 §3.6, by spectrum); `GET
//! /v1/conferences/{id}` lists the three; `DELETE` moves every flow on to its next action,
//! which hangs up: every SIPp leg gets BYE (RFC 3261 §15.1.1).

use std::collections::BTreeSet;

use activeflow::engine::EndReason;
use serde_json::{json, Value};

use crate::common::conference::{decode, tone_power};
use crate::common::cpaas::{activeflow, callee_playing, caller_listening, ended};
use crate::common::cpaas::{placed_activeflows, post_calls, Scratch, LIMIT};
use crate::common::extmedia::RtpEchoServer;
use crate::common::{executed_types, flow, http, result_of, start, wait_until, TestEngine};

const CALLEE_TONES: [f64; 2] = [500.0, 900.0];
const AMPLITUDE: f64 = 3000.0;

/// A room's participants (None while it does not exist).
fn participants(engine: &TestEngine, id: &str) -> Option<Vec<Value>> {
    let (status, body) = http(engine.api, "GET", &format!("/v1/conferences/{id}"), None);
    (status == 200).then(|| body["participants"].as_array().cloned().unwrap_or_default())
}

/// What joins the room, then shows it moved on (`variable_set`) before it hangs up.
fn room_actions(room: &str) -> Value {
    json!([
        {"type": "conference_join", "option": {"conference_id": room}},
        {"type": "variable_set", "option": {"key": "after_room", "value": "moved on"}},
        {"type": "hangup"}
    ])
}

#[test]
fn two_outbound_callees_and_a_sipp_caller_share_a_room_until_it_is_deleted() {
    let scratch = Scratch::new("conf");
    // The SIPp caller dials the room's id; its flow joins the room it dialled.
    let f = flow("dialled-room", room_actions("${call.destination.target}"));
    let engine = start(&[f], &[("*", "dialled-room")], &[]);
    let (status, room) = http(
        engine.api,
        "POST",
        "/v1/conferences",
        Some(r#"{"name": "cpaas"}"#),
    );
    assert_eq!(status, 201, "{room}");
    let id = room["id"].as_str().unwrap().to_owned();

    let callees: Vec<_> = CALLEE_TONES
        .iter()
        .map(|tone| callee_playing(&scratch, &scratch.tone_pcap(*tone, AMPLITUDE, 20)))
        .collect();
    let destinations: Vec<Value> = callees
        .iter()
        .map(|c| json!({"type": "sip", "target": c.uri()}))
        .collect();
    let (status, body) = post_calls(
        &engine,
        &json!({
            "source": {"type": "tel", "target": "+15550100"},
            "destinations": destinations,
            "actions": room_actions(&id)
        }),
    );
    assert_eq!(status, 200, "{body}");
    let outbound = placed_activeflows(&body);
    assert_eq!(outbound.len(), 2, "{body}");

    let sink = RtpEchoServer::sink();
    let caller = caller_listening(&engine, &sink, &id);
    let listed = wait_until("three participants", LIMIT, || {
        participants(&engine, &id).filter(|p| p.len() == 3)
    });
    let in_room: BTreeSet<String> = listed
        .iter()
        .map(|p| p["activeflow_id"].as_str().unwrap().to_owned())
        .collect();
    for af in &outbound {
        assert!(in_room.contains(af), "{af} (outbound) not in {listed:?}");
    }
    let listener = in_room
        .iter()
        .find(|af| !outbound.contains(af))
        .expect("the SIPp caller's activeflow")
        .clone();
    for p in &listed {
        assert_eq!(p["muted"], false, "{p}");
        assert!(
            p["call_id"].is_string() && p["joined_at"].is_string(),
            "{p}"
        );
    }

    // What the SIPp caller hears: both callees' tones, mixed (1.5 s after all three joined).
    let since = sink.packets().len();
    wait_until("1.5 s of the mix at the caller", LIMIT, || {
        (sink.packets().len() >= since + 75).then_some(())
    });
    let heard = sink.packets().split_off(since);
    assert!(heard.iter().all(|p| p.payload_type == 0), "PCMU only");
    let pcm = decode(&heard, 0);
    let lone = AMPLITUDE * AMPLITUDE / 4.0;
    let absent = tone_power(&pcm, 1300.0);
    println!(
        "the caller hears {:?} Hz at {:?}, 1300 Hz at {absent} (a lone tone: {lone})",
        CALLEE_TONES,
        CALLEE_TONES.map(|t| tone_power(&pcm, t))
    );
    for tone in CALLEE_TONES {
        let power = tone_power(&pcm, tone);
        assert!(power > lone / 9.0, "the caller hears {tone} Hz: {power}");
    }
    assert!(absent < lone / 1000.0, "nothing else: {absent}");

    // Deleting the room lets every participant go: each flow moves on and hangs up.
    let (status, _) = http(engine.api, "DELETE", &format!("/v1/conferences/{id}"), None);
    assert_eq!(status, 204);
    for callee in callees {
        assert!(callee.succeeded(LIMIT), "a callee got no BYE");
    }
    caller.join().unwrap().assert_all_ok(1);
    for af in outbound.iter().chain([&listener]) {
        let record = ended(&engine, af);
        assert_eq!(
            executed_types(&record),
            ["conference_join", "variable_set", "hangup"],
            "{af}"
        );
        let joined = result_of(&record, "conference_join");
        assert_eq!(joined["ended_by"], "deleted", "{joined}");
        assert_eq!(joined["conference_id"], json!(id), "{joined}");
        assert!(joined["frames_to_room"].as_u64().is_some(), "{joined}");
        assert_eq!(record.variables.get("after_room"), Some("moved on"));
        assert_eq!(record.end_reason, Some(EndReason::Completed));
    }
    let direction = |af: &str| {
        activeflow(&engine, af)
            .and_then(|a| a.variables.get("call.direction").map(str::to_owned))
            .unwrap_or_default()
    };
    assert_eq!(direction(&outbound[0]), "outgoing");
    assert_eq!(direction(&listener), "incoming");
    assert_eq!(participants(&engine, &id), None, "the room is gone");
}
