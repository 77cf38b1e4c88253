//! Black-box call tests: SIPp (and a raw UDP peer where exact messages matter) against a real
//! engine on loopback. Each test starts its own engine on port 0 and waits on conditions (the
//! registry, SIPp's exit, the socket), never a fixed sleep.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use activeflow::engine::{EndReason, Status};
use common::{executed_types, flow, start, RawPeer};
use serde_json::json;

/// answer, sleep 300 ms, hangup — the engine sends the BYE.
fn short_flow() -> serde_json::Value {
    common::answer_hold_hangup("short", 300)
}

/// answer, then hold for a minute.
fn hold_flow() -> serde_json::Value {
    common::answer_hold_hangup("hold", 60000)
}

/// Waits 5 s before answering (room to cancel).
fn slow_flow() -> serde_json::Value {
    flow(
        "slow",
        json!([
            {"type": "sleep", "option": {"duration": 5000}},
            {"type": "answer"},
            {"type": "hangup"}
        ]),
    )
}

fn engine() -> common::TestEngine {
    start(
        &[short_flow(), hold_flow(), slow_flow()],
        &[("100", "short"), ("200", "hold"), ("300", "slow")],
        &[],
    )
}

fn assert_all_completed(e: &common::TestEngine, n: usize) {
    e.wait_for("every activeflow ended", Duration::from_secs(10), |all| {
        all.len() == n && all.iter().all(|a| a.status == Status::Ended)
    });
    for a in e.activeflows() {
        assert_eq!(a.end_reason, Some(EndReason::Completed), "{a:?}");
        assert_eq!(executed_types(&a), ["answer", "sleep", "hangup"]);
        assert!(a.tm_end.is_some());
    }
}

#[test]
fn udp_calls_are_answered_and_hung_up_by_the_engine() {
    let e = engine();
    let run = common::sipp(
        e.sip,
        "uac_engine_bye.xml",
        "100",
        &["-m", "200", "-r", "50", "-l", "100"],
    );
    run.assert_all_ok(200);
    assert_all_completed(&e, 200);
    // Every call releases its RTP port and session (lingering ones aside).
    common::wait_until("no active call", Duration::from_secs(5), || {
        (e.calls.active() == 0).then_some(())
    });
}

#[test]
fn tcp_calls_are_answered_and_hung_up_by_the_engine() {
    let e = engine();
    let run = common::sipp(
        e.sip,
        "uac_engine_bye.xml",
        "100",
        &["-t", "t1", "-m", "50", "-r", "25"],
    );
    run.assert_all_ok(50);
    assert_all_completed(&e, 50);
}

#[test]
fn caller_bye_ends_the_flow_with_hangup() {
    let e = engine();
    common::sipp(
        e.sip,
        "uac_caller_bye.xml",
        "200",
        &["-m", "10", "-r", "10"],
    )
    .assert_all_ok(10);
    e.wait_for("10 ended", Duration::from_secs(5), |all| {
        all.len() == 10 && all.iter().all(|a| a.status == Status::Ended)
    });
    for a in e.activeflows() {
        assert_eq!(a.end_reason, Some(EndReason::Hangup));
        assert_eq!(executed_types(&a), ["answer", "sleep"]);
    }
}

#[test]
fn cancel_before_answer_gets_487_and_ends_the_flow() {
    let e = engine();
    common::sipp(e.sip, "uac_cancel.xml", "300", &["-m", "5", "-r", "10"]).assert_all_ok(5);
    e.wait_for("5 ended", Duration::from_secs(5), |all| {
        all.len() == 5 && all.iter().all(|a| a.status == Status::Ended)
    });
    for a in e.activeflows() {
        assert_eq!(a.end_reason, Some(EndReason::Hangup));
        // Cancelled during the first sleep: answer never ran.
        assert_eq!(executed_types(&a), ["sleep"]);
    }
}

#[test]
fn unknown_number_gets_404_and_no_activeflow() {
    let e = engine();
    common::sipp(e.sip, "uac_404.xml", "999", &["-m", "3", "-r", "10"]).assert_all_ok(3);
    assert!(e.activeflows().is_empty());
}

/// Waits 2 s before answering, then holds: room to retransmit while only 100 was sent.
fn late_answer_flow() -> serde_json::Value {
    flow(
        "late",
        json!([
            {"type": "sleep", "option": {"duration": 2000}},
            {"type": "answer"},
            {"type": "sleep", "option": {"duration": 60000}}
        ]),
    )
}

#[test]
fn duplicate_invite_before_the_final_response_makes_one_call_and_one_activeflow() {
    let e = start(&[late_answer_flow()], &[("400", "late")], &[]);
    let peer = RawPeer::new(e.sip);
    let invite = peer.invite("400", "dup-1@test", "z9hG4bK-dup-1");
    peer.send(&invite);
    let trying = peer.recv().expect("a response to the INVITE");
    assert!(trying.starts_with("SIP/2.0 100"), "{trying}");
    // The call and its activeflow exist: the duplicate meets a live server transaction.
    e.wait_for("the activeflow", Duration::from_secs(5), |all| {
        all.len() == 1
    });
    // RFC 3261 §17.2.1: a retransmitted INVITE in the Proceeding state is absorbed by its
    // transaction, which resends the most recent provisional response (here the 100).
    peer.send(&invite);
    let again = peer.recv().expect("the provisional response again");
    assert!(
        again.starts_with("SIP/2.0 100"),
        "the latest provisional, before any final response: {again}"
    );
    for name in ["Via", "Call-ID", "CSeq", "To"] {
        assert_eq!(
            common::header(&again, name),
            common::header(&trying, name),
            "{name}"
        );
    }
    // The final response comes once the flow answers, for the one call.
    let ok = peer.recv_final();
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(common::header(&ok, "Call-ID"), Some("dup-1@test"));
    let all = e.activeflows();
    assert_eq!(all.len(), 1, "one activeflow");
    assert_eq!(executed_types(&all[0]), ["sleep", "answer", "sleep"]);
    assert_eq!(e.calls.active(), 1, "one call");
}

#[test]
fn operator_stop_makes_the_caller_receive_bye_within_a_second() {
    let e = engine();
    let mut caller = common::sipp_spawn(e.sip, "uac_engine_bye.xml", "200", &["-m", "1"]);
    e.wait_for("the call answered", Duration::from_secs(10), |all| {
        all.len() == 1 && executed_types(&all[0]).len() == 2
    });
    let id = e.activeflows()[0].id;
    let started = Instant::now();
    let (status, body) = common::http(e.api, "POST", &format!("/v1/activeflows/{id}/stop"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ended");
    assert_eq!(body["end_reason"], "operator_stop");
    // SIPp exits 0 only after it received the BYE and answered it.
    let exit = loop {
        if let Some(s) = caller.try_wait().expect("wait sipp") {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "no BYE within a second"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(exit.success(), "sipp failed: {exit:?}");
    // Idempotent on an ended activeflow; unknown ids are 404.
    let (status, again) = common::http(e.api, "POST", &format!("/v1/activeflows/{id}/stop"), None);
    assert_eq!(
        (status, &again["end_reason"]),
        (200, &json!("operator_stop"))
    );
    let unknown = uuid::Uuid::new_v4();
    let (status, err) = common::http(
        e.api,
        "POST",
        &format!("/v1/activeflows/{unknown}/stop"),
        None,
    );
    assert_eq!(status, 404);
    assert_eq!(err["error"]["code"], "not_found");
    assert_eq!(
        common::http(e.api, "GET", "/v1/activeflows/not-a-uuid", None).0,
        404
    );
}
