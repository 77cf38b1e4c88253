//! The per-dialog cap on server transactions: a peer flooding its own dialog with requests gets
//! 503 + Retry-After (RFC 3261 §21.5.4) beyond [`MAX_SERVER_TRANSACTIONS`], keeps its call,
//! and can still end it with BYE.

use std::time::Duration;

use tokio::time::{advance, Instant};

use super::*;

fn info(branch: &str, cseq: u32) -> rsip::Request {
    caller_request("INFO", branch, cseq, Some("us"), false)
}

#[tokio::test(start_paused = true)]
async fn in_dialog_requests_beyond_the_cap_get_503_and_keep_nothing() {
    let mut leg = confirmed();
    let cap = MAX_SERVER_TRANSACTIONS as u32;
    for n in 0..cap {
        from_caller(&mut leg, info(&format!("i{n}"), n + 2));
        assert_eq!(
            first_lines(&leg.take_outputs()),
            ["SIP/2.0 200 OK"],
            "INFO {n}"
        );
    }
    from_caller(&mut leg, info("over", cap + 2));
    let msgs = sent(&leg.take_outputs());
    assert_eq!(msgs.len(), 1);
    assert!(
        msgs[0].1.starts_with("SIP/2.0 503 Service Unavailable"),
        "{}",
        msgs[0].1
    );
    assert!(msgs[0].1.contains("Retry-After: "), "{}", msgs[0].1);
    assert_eq!(leg.server_txs.len(), MAX_SERVER_TRANSACTIONS);
    assert_eq!(leg.phase, Phase::Confirmed);
    // A retransmission of an answered request is still absorbed by its transaction (§17.2.2).
    from_caller(&mut leg, info("i7", 9));
    assert_eq!(first_lines(&leg.take_outputs()), ["SIP/2.0 200 OK"]);
    assert_eq!(leg.server_txs.len(), MAX_SERVER_TRANSACTIONS);
    // Once Timer J (64·T1 on UDP) has ended them, the dialog takes requests again.
    advance(Timers::default().t1 * 64 + Duration::from_millis(1)).await;
    leg.on_tick(&env(), Instant::now());
    assert!(leg.server_txs.is_empty());
    from_caller(&mut leg, info("after", cap + 3));
    assert_eq!(first_lines(&leg.take_outputs()), ["SIP/2.0 200 OK"]);
}

#[tokio::test(start_paused = true)]
async fn a_full_dialog_still_takes_the_peers_bye() {
    let mut leg = confirmed();
    let cap = MAX_SERVER_TRANSACTIONS as u32;
    for n in 0..cap {
        from_caller(&mut leg, info(&format!("i{n}"), n + 2));
    }
    leg.take_outputs();
    from_caller(
        &mut leg,
        caller_request("BYE", "bye", 500, Some("us"), false),
    );
    let out = leg.take_outputs();
    assert_eq!(first_lines(&out), ["SIP/2.0 200 OK"]);
    assert_eq!(ended_with(&out), Some(CallEndCause::RemoteBye));
    // Distinct BYEs after the end are bounded too: 481 each up to twice the cap, then 503.
    let mut answers = Vec::new();
    for n in 0..cap * 2 {
        from_caller(
            &mut leg,
            caller_request("BYE", &format!("b{n}"), 501 + n, Some("us"), false),
        );
        answers.extend(first_lines(&leg.take_outputs()));
    }
    let kept = MAX_SERVER_TRANSACTIONS * 2 - (MAX_SERVER_TRANSACTIONS + 1);
    assert_eq!(answers.len(), MAX_SERVER_TRANSACTIONS * 2);
    assert!(
        answers[..kept].iter().all(|l| l.starts_with("SIP/2.0 481")),
        "{answers:?}"
    );
    assert!(
        answers[kept..].iter().all(|l| l.starts_with("SIP/2.0 503")),
        "{answers:?}"
    );
    assert_eq!(leg.server_txs.len(), MAX_SERVER_TRANSACTIONS * 2);
}

/// Stray CANCELs (matching no transaction, §9.2) get 481 and keep nothing: a flood of them
/// cannot use up the headroom the peer's BYE has.
#[tokio::test(start_paused = true)]
async fn a_cancel_flood_does_not_keep_the_peers_bye_out() {
    let mut leg = confirmed();
    let cap = MAX_SERVER_TRANSACTIONS as u32;
    for n in 0..cap {
        from_caller(&mut leg, info(&format!("i{n}"), n + 2));
    }
    leg.take_outputs();
    for n in 0..cap * 2 {
        from_caller(
            &mut leg,
            caller_request("CANCEL", &format!("c{n}"), 1000 + n, Some("us"), false),
        );
        assert_eq!(
            first_lines(&leg.take_outputs()),
            ["SIP/2.0 481 Call/Transaction Does Not Exist"],
            "CANCEL {n}"
        );
    }
    assert_eq!(leg.server_txs.len(), MAX_SERVER_TRANSACTIONS);
    from_caller(
        &mut leg,
        caller_request("BYE", "bye", 5000, Some("us"), false),
    );
    let out = leg.take_outputs();
    assert_eq!(first_lines(&out), ["SIP/2.0 200 OK"]);
    assert_eq!(ended_with(&out), Some(CallEndCause::RemoteBye));
}
