//! An INVITE flood at well over what the engine can take: the excess gets 503 with
//! Retry-After, admitted calls complete, nothing is left behind. Alone in its binary so the
//! flood cannot starve other tests of CPU.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use activeflow::engine::{EndReason, Status};
use common::{flow, start};
use serde_json::json;

fn hold() -> serde_json::Value {
    flow(
        "hold",
        json!([{"type": "answer"}, {"type": "sleep", "option": {"duration": 60000}}]),
    )
}

/// The count SIPp shows for one scenario line (e.g. `503 <----------   N`).
fn sipp_count(stdout: &str, line_start: &str) -> u64 {
    stdout
        .lines()
        .rfind(|l| l.trim_start().starts_with(line_start))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn invite_flood_gets_503_for_the_excess_and_admitted_calls_complete() {
    // A tiny overload threshold makes the flood trip the guard even on a fast machine.
    let e = start(
        &[hold()],
        &[("*", "hold")],
        &[("ACTIVEFLOW_SIP_OVERLOAD_LAG_MS", "1")],
    );
    let run = common::sipp(
        e.sip,
        "uac_flood.xml",
        "1",
        &["-m", "3000", "-r", "1500", "-l", "3000"],
    );
    run.assert_all_ok(3000);
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    let rejected = sipp_count(&stdout, "503 <-");
    let answered = sipp_count(&stdout, "200 <-");
    eprintln!("flood: {answered} answered, {rejected} refused with 503");
    assert!(rejected > 0, "no 503 under a flood:\n{stdout}");
    assert!(answered > 0, "nothing admitted under a flood:\n{stdout}");
    // Every admitted call has exactly one activeflow, ended by the caller's BYE.
    e.wait_for("admitted calls ended", Duration::from_secs(20), |all| {
        all.iter().all(|a| a.status == Status::Ended)
    });
    let all = e.activeflows();
    assert!(
        all.len() as u64 >= answered,
        "{} activeflows, {answered} answered",
        all.len()
    );
    assert!(all.iter().all(|a| a.end_reason == Some(EndReason::Hangup)));
    // Nothing is left holding memory: no live calls.
    assert_eq!(e.calls.active(), 0);
}
