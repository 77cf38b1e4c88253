//! Ending an activeflow tears its live call down (ARCHITECTURE §8): a `stop` action or an action error
//! hangs up an answered call with a BYE (RFC 3261 §15.1.1) and refuses an unanswered one with
//! 603 (§21.6.2); and a panic in one activeflow's actor, or in one call session's, ends only
//! that one (its caller gets a BYE) while the others on the same thread run on to their own ends.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use activeflow::call::registry::SessionAddr;
use activeflow::call::session::CallSession;
use activeflow::engine::{Activeflow, ActiveflowRecord, EndReason, Status};
use common::rtp::MediaCaller;
use common::{executed_types, flow, header, start, RawPeer, TestEngine};
use serde_json::json;

/// Waits for the engine's BYE, answers it 200 (RFC 3261 §15.1.2), and returns it.
fn take_bye(caller: &MediaCaller, limit: Duration) -> String {
    caller.sip.socket.set_read_timeout(Some(limit)).unwrap();
    let bye = caller.sip.recv_until("BYE ");
    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        ok.push_str(&format!("{name}: {}\r\n", header(&bye, name).unwrap()));
    }
    ok.push_str("Content-Length: 0\r\n\r\n");
    caller.sip.send(&ok);
    bye
}

/// The BYE belongs to the caller's dialog (RFC 3261 §12.2.1.1): its Call-ID, the caller's tag
/// as the To tag, the engine's tag (the 200's To tag) as the From tag, a BYE CSeq.
fn assert_in_dialog(bye: &str, caller: &MediaCaller, ok: &str) {
    assert_eq!(
        header(bye, "Call-ID"),
        Some(caller.call_id.as_str()),
        "{bye}"
    );
    assert!(
        header(bye, "To").unwrap().contains("tag=caller-tag"),
        "{bye}"
    );
    let engine_tag = header(ok, "To").unwrap().split("tag=").nth(1).unwrap();
    assert!(header(bye, "From").unwrap().contains(engine_tag), "{bye}");
    assert!(header(bye, "CSeq").unwrap().ends_with(" BYE"), "{bye}");
}

fn only(e: &TestEngine) -> ActiveflowRecord {
    e.wait_for("the activeflow to end", Duration::from_secs(10), |all| {
        all.len() == 1 && all[0].status == Status::Ended
    });
    e.activeflows().remove(0)
}

#[test]
fn a_stop_action_hangs_up_the_answered_call_with_bye() {
    let f = flow(
        "stopper",
        json!([{"type": "answer"}, {"type": "sleep", "option": {"duration": 200}},
               {"type": "stop"}, {"type": "sleep", "option": {"duration": 60000}}]),
    );
    let e = start(&[f], &[("*", "stopper")], &[]);
    let mut caller = MediaCaller::new(e.sip);
    let ok = caller.call("1", 0);
    let bye = take_bye(&caller, Duration::from_secs(5));
    assert_in_dialog(&bye, &caller, &ok);
    let a = only(&e);
    assert_eq!(a.end_reason, Some(EndReason::StopAction));
    assert_eq!(executed_types(&a), ["answer", "sleep", "stop"]);
    e.wait_for("the call to end", Duration::from_secs(5), |_| {
        e.calls.active() == 0
    });
}

#[test]
fn an_action_error_hangs_up_the_answered_call_with_bye() {
    // fetch_flow of a flow that does not exist: the action fails, the activeflow ends `error`.
    let f = flow(
        "failing",
        json!([{"type": "answer"},
               {"type": "fetch_flow", "option": {"flow_id": "00000000-0000-4000-8000-00000000dead"}},
               {"type": "sleep", "option": {"duration": 60000}}]),
    );
    let e = start(&[f], &[("*", "failing")], &[]);
    let mut caller = MediaCaller::new(e.sip);
    let ok = caller.call("1", 0);
    let bye = take_bye(&caller, Duration::from_secs(5));
    assert_in_dialog(&bye, &caller, &ok);
    let a = only(&e);
    assert_eq!(a.end_reason, Some(EndReason::Error));
    assert_eq!(executed_types(&a), ["answer", "fetch_flow"]);
    e.wait_for("the call to end", Duration::from_secs(5), |_| {
        e.calls.active() == 0
    });
}

#[test]
fn stop_or_error_before_answer_declines_the_invite_with_603() {
    let stop = flow("stop-early", json!([{"type": "stop"}]));
    let error = flow(
        "error-early",
        json!([{"type": "fetch_flow", "option": {"flow_id": "00000000-0000-4000-8000-00000000dead"}}]),
    );
    let e = start(
        &[stop, error],
        &[("1", "stop-early"), ("2", "error-early")],
        &[],
    );
    let peer = RawPeer::new(e.sip);
    for (number, reason) in [("1", EndReason::StopAction), ("2", EndReason::Error)] {
        let call_id = format!("early-{number}@t");
        peer.send(&peer.invite(number, &call_id, &format!("z9hG4bK-early-{number}")));
        // ARCHITECTURE §6: an end before answer for any reason but busy/noanswer is 603 Decline.
        let fin = peer.recv_final();
        assert!(fin.starts_with("SIP/2.0 603"), "{number}: {fin}");
        assert_eq!(header(&fin, "Call-ID"), Some(call_id.as_str()));
        e.wait_for("the activeflow to end", Duration::from_secs(5), |all| {
            all.iter().any(|a| {
                a.end_reason == Some(reason)
                    && a.variables.get("call.destination.target") == Some(number)
            })
        });
    }
}

/// A message no real handler knows: handling it panics, as a bug in a handler would. Both
/// actors under test take it.
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

#[test]
fn a_panic_in_one_activeflow_ends_only_that_one() {
    // One worker: every activeflow and call session shares one arbiter thread with the one
    // that panics.
    let f = flow(
        "steady",
        json!([{"type": "answer"}, {"type": "sleep", "option": {"duration": 3000}},
               {"type": "variable_set", "option": {"key": "done", "value": "yes"}},
               {"type": "hangup"}]),
    );
    let mut e = start(
        &[f],
        &[("*", "steady")],
        &[("ACTIVEFLOW_ENGINE_WORKERS", "1")],
    );
    // The one panic this test plants is the point of it.
    e.expect_planted_panics(1);
    let mut victim = MediaCaller::new(e.sip);
    let victim_ok = victim.call("1", 0);
    e.wait_for("the first activeflow", Duration::from_secs(5), |all| {
        all.len() == 1 && all[0].executed_actions.len() == 2
    });
    let victim_id = e.activeflows()[0].id;
    let mut others: Vec<MediaCaller> = (0..3).map(|_| MediaCaller::new(e.sip)).collect();
    for c in &mut others {
        c.call("1", 0);
    }
    e.wait_for("four sleeping", Duration::from_secs(5), |all| {
        all.len() == 4 && all.iter().all(|a| a.executed_actions.len() == 2)
    });

    let panicked_at = Instant::now();
    e.registry.get(&victim_id).unwrap().addr.do_send(Boom);
    // Its call is hung up at once, long before the others' sleep is over.
    let bye = take_bye(&victim, Duration::from_secs(2));
    assert_in_dialog(&bye, &victim, &victim_ok);
    assert!(panicked_at.elapsed() < Duration::from_millis(2000));
    e.wait_for("the victim ended", Duration::from_secs(5), |all| {
        all.iter()
            .any(|a| a.id == victim_id && a.end_reason == Some(EndReason::Error))
    });
    let still: Vec<_> = e
        .activeflows()
        .into_iter()
        .filter(|a| a.id != victim_id)
        .collect();
    assert!(
        still.iter().all(|a| a.status == Status::Running),
        "the others run on: {:?}",
        still
            .iter()
            .map(|a| (a.id, a.end_reason))
            .collect::<Vec<_>>()
    );
    // New calls are still taken on that thread.
    let mut late = MediaCaller::new(e.sip);
    late.call("1", 0);

    // The others reach their own end: the flow's hangup after the sleep, with a BYE each.
    for c in &others {
        take_bye(c, Duration::from_secs(10));
    }
    take_bye(&late, Duration::from_secs(10));
    e.wait_for("every activeflow ended", Duration::from_secs(10), |all| {
        all.len() == 5 && all.iter().all(|a| a.status == Status::Ended)
    });
    for a in e.activeflows().into_iter().filter(|a| a.id != victim_id) {
        assert_eq!(a.end_reason, Some(EndReason::Completed), "{:?}", a.id);
        assert_eq!(
            executed_types(&a),
            ["answer", "sleep", "variable_set", "hangup"]
        );
        assert_eq!(a.variables.get("done"), Some("yes"));
    }
    assert_eq!(e.registry.running(), 0, "every capacity slot freed");
    e.wait_for("no call left", Duration::from_secs(5), |_| {
        e.calls.active() == 0
    });
}

/// The same fault in a call session's handler.
impl actix::Handler<Boom> for CallSession {
    type Result = ();
    fn handle(&mut self, _: Boom, _: &mut Self::Context) {
        panic!("test: a bug in a call session handler");
    }
}

#[test]
fn a_panic_in_one_call_session_ends_only_that_call_and_its_activeflow() {
    let f = flow(
        "steady",
        json!([{"type": "answer"}, {"type": "sleep", "option": {"duration": 3000}},
               {"type": "hangup"}]),
    );
    let mut e = start(
        &[f],
        &[("*", "steady")],
        &[("ACTIVEFLOW_ENGINE_WORKERS", "1")],
    );
    // The one panic this test plants is the point of it.
    e.expect_planted_panics(1);
    let mut victim = MediaCaller::new(e.sip);
    let victim_ok = victim.call("1", 0);
    let mut other = MediaCaller::new(e.sip);
    other.call("1", 0);
    e.wait_for("two sleeping", Duration::from_secs(5), |all| {
        all.len() == 2 && all.iter().all(|a| a.executed_actions.len() == 2)
    });
    let engine_tag = header(&victim_ok, "To")
        .unwrap()
        .split("tag=")
        .nth(1)
        .unwrap()
        .to_owned();
    let Some(SessionAddr::Call(session)) =
        e.calls
            .route_request(&victim.call_id, Some(&engine_tag), None)
    else {
        panic!("the victim's call session is not registered");
    };
    session.do_send(Boom);
    // The dead session's call is still ended toward the caller (RFC 3261 §15.1.1) at once.
    let bye = take_bye(&victim, Duration::from_secs(2));
    assert_in_dialog(&bye, &victim, &victim_ok);
    e.wait_for(
        "the victim's activeflow ended",
        Duration::from_secs(5),
        |all| all.iter().filter(|a| a.status == Status::Ended).count() == 1,
    );
    let all = e.activeflows();
    let running: Vec<_> = all.iter().filter(|a| a.status == Status::Running).collect();
    assert_eq!(running.len(), 1, "the other call's activeflow runs on");
    // The other call reaches its own end.
    take_bye(&other, Duration::from_secs(10));
    e.wait_for("both ended", Duration::from_secs(10), |all| {
        all.iter().all(|a| a.status == Status::Ended)
    });
    let reasons: Vec<_> = e.activeflows().iter().map(|a| a.end_reason).collect();
    eprintln!("end reasons (newest first): {reasons:?}");
    assert_eq!(reasons[0], Some(EndReason::Completed), "the other one");
    assert_ne!(
        reasons[1],
        Some(EndReason::Completed),
        "the victim did not complete"
    );
    assert_eq!(e.registry.running(), 0);
    e.wait_for("no call left", Duration::from_secs(5), |_| {
        e.calls.active() == 0
    });
}
