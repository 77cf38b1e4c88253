//! The incoming role on paused time: CANCEL crossing 200, ACK lost, 491 glare, BYE while a
//! re-INVITE is pending, BYE crossing re-INVITE, the ACL and tags, 180 every minute.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::call::events::Refusal;

/// RFC 3261 §12.1.1: 18x and 2xx copy the INVITE's Record-Route; §9.2: the 200 to CANCEL
/// carries the same To tag as the INVITE's responses.
#[tokio::test(start_paused = true)]
async fn record_route_in_18x_and_2xx_and_tag_on_200_to_cancel() {
    let (_, out) = answered();
    let msgs = sent(&out);
    let ringing = &msgs
        .iter()
        .find(|(_, m)| m.starts_with("SIP/2.0 180"))
        .unwrap()
        .1;
    let ok = &msgs
        .iter()
        .find(|(_, m)| m.starts_with("SIP/2.0 200"))
        .unwrap()
        .1;
    for m in [ringing, ok] {
        assert!(
            m.contains(&format!("Record-Route: <sip:{PROXY};lr>")),
            "{m}"
        );
        assert!(m.contains("To: <sip:100@10.0.0.9>;tag=us"), "{m}");
    }
    let mut leg = offered("c1");
    leg.take_outputs();
    from_caller(&mut leg, caller_request("CANCEL", "c1", 1, None, false));
    let out = leg.take_outputs();
    let msgs = sent(&out);
    let to_cancel = msgs
        .iter()
        .find(|(_, m)| m.contains("CSeq: 1 CANCEL"))
        .unwrap();
    let to_invite = msgs
        .iter()
        .find(|(_, m)| m.starts_with("SIP/2.0 487"))
        .unwrap();
    assert!(to_cancel.1.starts_with("SIP/2.0 200 OK"));
    assert!(
        to_cancel.1.contains("To: <sip:100@10.0.0.9>;tag=us"),
        "{}",
        to_cancel.1
    );
    assert!(to_invite.1.contains("To: <sip:100@10.0.0.9>;tag=us"));
    assert_eq!(ended_with(&out), Some(CallEndCause::Cancelled));
}

/// A refusal that comes after the CANCEL sends nothing: the caller has its 487, and the 503
/// it never got is not counted (the leg counts a 503 as it sends it).
#[tokio::test(start_paused = true)]
async fn refusal_after_cancel_sends_nothing() {
    let mut leg = offered("c1");
    from_caller(&mut leg, caller_request("CANCEL", "c1", 1, None, false));
    let out = leg.take_outputs();
    assert!(first_lines(&out).contains(&"SIP/2.0 487 Request Terminated".to_owned()));
    let refusal = Refusal::Unavailable(crate::metrics::Unavailable::MaxActiveflows);
    leg.reject(refusal, CallEndCause::Local, &env(), Instant::now());
    assert!(leg.take_outputs().is_empty());
    assert_eq!(leg.refused_with(), Some(487));
}

/// A refusal before any final response sends it: a 503 with Retry-After (§21.5.4).
#[tokio::test(start_paused = true)]
async fn unavailable_refusal_sends_503_with_retry_after() {
    let mut leg = offered("r1");
    leg.take_outputs();
    let refusal = Refusal::Unavailable(crate::metrics::Unavailable::ShuttingDown);
    leg.reject(refusal, CallEndCause::Local, &env(), Instant::now());
    let out = leg.take_outputs();
    let msgs = sent(&out);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(msgs[0].1.starts_with("SIP/2.0 503 "), "{}", msgs[0].1);
    assert!(msgs[0].1.contains("Retry-After: "), "{}", msgs[0].1);
    assert_eq!(ended_with(&out), Some(CallEndCause::Local));
}

/// §9.2: a CANCEL that crosses our 200 gets 200 and changes nothing; the ACK confirms.
#[tokio::test(start_paused = true)]
async fn cancel_crossing_200_leaves_the_call_up() {
    let (mut leg, _) = answered();
    from_caller(&mut leg, caller_request("CANCEL", "inv", 1, None, false));
    let out = leg.take_outputs();
    assert_eq!(first_lines(&out), ["SIP/2.0 200 OK"]);
    assert_eq!(ended_with(&out), None);
    from_caller(
        &mut leg,
        caller_request("ACK", "ack1", 1, Some("us"), false),
    );
    assert_eq!(leg.phase, Phase::Confirmed);
}

/// §13.3.1.4: a lost ACK means the 2xx goes again at T1, 2·T1, ... capped at T2; a late ACK
/// stops it; none within 64·T1 ends the call with BYE (`ack_timeout`).
#[tokio::test(start_paused = true)]
async fn ack_lost_then_late_ack_or_timeout() {
    let (mut leg, _) = answered();
    let out = run_for(&mut leg, Duration::from_millis(1_600)).await;
    let resent: Vec<_> = first_lines(&out)
        .into_iter()
        .filter(|l| l.starts_with("SIP/2.0 200"))
        .collect();
    assert_eq!(resent.len(), 2, "{out:?}");
    from_caller(
        &mut leg,
        caller_request("ACK", "ack1", 1, Some("us"), false),
    );
    assert_eq!(leg.phase, Phase::Confirmed);
    let out = run_for(&mut leg, Duration::from_secs(40)).await;
    assert!(
        first_lines(&out)
            .iter()
            .all(|l| !l.starts_with("SIP/2.0 200")),
        "{out:?}"
    );

    let (mut leg, _) = answered();
    let out = run_for(&mut leg, Duration::from_secs(33)).await;
    assert_eq!(ended_with(&out), Some(CallEndCause::AckTimeout));
    let bye = sent(&out)
        .into_iter()
        .find(|(_, m)| m.starts_with("BYE "))
        .unwrap();
    // §12.2.1.1: to the remote target, through the route set, sent to the first route.
    assert!(
        bye.1
            .starts_with(&format!("BYE sip:alice@{CALLER} SIP/2.0")),
        "{}",
        bye.1
    );
    assert!(bye.1.contains(&format!("Route: <sip:{PROXY};lr>")));
    assert_eq!(bye.0, PROXY);
}

/// §14.2: a re-INVITE while the previous one's offer/answer is incomplete (its 2xx not ACKed)
/// gets 491; once ACKed, the next one is answered and refreshes the target (§12.2.2).
#[tokio::test(start_paused = true)]
async fn reinvite_glare_gets_491() {
    let mut leg = confirmed();
    from_caller(
        &mut leg,
        caller_request("INVITE", "re1", 2, Some("us"), true),
    );
    assert_eq!(first_lines(&leg.take_outputs()), ["SIP/2.0 200 OK"]);
    from_caller(
        &mut leg,
        caller_request("INVITE", "re2", 3, Some("us"), true),
    );
    assert_eq!(
        first_lines(&leg.take_outputs()),
        ["SIP/2.0 491 Request Pending"]
    );
    from_caller(
        &mut leg,
        caller_request("ACK", "re1a", 2, Some("us"), false),
    );
    let mut re3 = caller_request("INVITE", "re3", 4, Some("us"), true);
    re3.headers
        .retain(|h| !matches!(h, rsip::Header::Contact(_)));
    re3.headers
        .push(rsip::Header::Contact("<sip:alice@10.0.0.2:5064>".into()));
    leg.on_request(re3, udp(PROXY), true, &env(), Instant::now());
    assert_eq!(first_lines(&leg.take_outputs()), ["SIP/2.0 200 OK"]);
    assert_eq!(
        leg.dialog.as_ref().unwrap().remote_target,
        "sip:alice@10.0.0.2:5064"
    );
    // An out-of-order CSeq (§12.2.2) is refused.
    from_caller(
        &mut leg,
        caller_request("ACK", "re3a", 4, Some("us"), false),
    );
    from_caller(
        &mut leg,
        caller_request("INVITE", "old", 3, Some("us"), true),
    );
    assert_eq!(
        first_lines(&leg.take_outputs()),
        ["SIP/2.0 500 Server Internal Error"]
    );
}

/// §15.1.2: the peer's BYE while its re-INVITE awaits our 2xx's ACK ends the call, and the
/// 2xx is not retransmitted any more.
#[tokio::test(start_paused = true)]
async fn bye_while_reinvite_pending() {
    let mut leg = confirmed();
    from_caller(
        &mut leg,
        caller_request("INVITE", "re1", 2, Some("us"), true),
    );
    leg.take_outputs();
    from_caller(
        &mut leg,
        caller_request("BYE", "bye1", 3, Some("us"), false),
    );
    let out = leg.take_outputs();
    assert_eq!(first_lines(&out), ["SIP/2.0 200 OK"]);
    assert_eq!(ended_with(&out), Some(CallEndCause::RemoteBye));
    let out = run_for(&mut leg, Duration::from_secs(40)).await;
    assert!(sent(&out).is_empty(), "{out:?}");
    assert!(leg.is_done());
}

/// Our BYE crossing the peer's re-INVITE: the re-INVITE finds no dialog (481), our BYE
/// completes on its 200.
#[tokio::test(start_paused = true)]
async fn bye_crossing_reinvite() {
    let mut leg = confirmed();
    leg.hangup(HangupCause::Normal, &env(), Instant::now());
    let out = leg.take_outputs();
    assert_eq!(ended_with(&out), Some(CallEndCause::Local));
    let bye = sent(&out)
        .into_iter()
        .find(|(_, m)| m.starts_with("BYE "))
        .unwrap()
        .1;
    from_caller(
        &mut leg,
        caller_request("INVITE", "re1", 2, Some("us"), true),
    );
    assert_eq!(
        first_lines(&leg.take_outputs()),
        ["SIP/2.0 481 Call/Transaction Does Not Exist"]
    );
    assert!(!leg.is_done());
    let via = bye
        .lines()
        .find(|l| l.starts_with("Via: "))
        .unwrap()
        .trim_start_matches("Via: ");
    let ok = response(&format!(
        "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: <sip:100@10.0.0.9>;tag=us\r\n\
         To: <sip:alice@example.com>;tag=caller\r\nCall-ID: race@test\r\nCSeq: 1 BYE\r\n\
         Content-Length: 0\r\n\r\n"
    ));
    leg.on_response(&ok, &env(), Instant::now());
    // The 481 to the re-INVITE still waits for its ACK (§17.2.1), then the leg may go.
    assert!(!leg.is_done());
    from_caller(&mut leg, caller_request("ACK", "re1", 2, Some("us"), false));
    assert!(leg.is_done());
}

/// Every request passes the trunk ACL: a BYE from a stranger gets 403 and the call stays up;
/// one for another dialog's tag gets 481.
#[tokio::test(start_paused = true)]
async fn strangers_and_other_dialogs_never_touch_the_call() {
    let mut leg = confirmed();
    let bye = caller_request("BYE", "evil", 2, Some("us"), false);
    leg.on_request(bye, udp("192.0.2.66:5060"), false, &env(), Instant::now());
    let out = leg.take_outputs();
    assert_eq!(first_lines(&out), ["SIP/2.0 403 Forbidden"]);
    assert_eq!(sent(&out)[0].0, "192.0.2.66:5060");
    assert_eq!(leg.phase, Phase::Confirmed);
    from_caller(
        &mut leg,
        caller_request("BYE", "other", 2, Some("them"), false),
    );
    assert_eq!(
        first_lines(&leg.take_outputs()),
        ["SIP/2.0 481 Call/Transaction Does Not Exist"]
    );
    assert_eq!(leg.phase, Phase::Confirmed);
    // §8.2.2.3: an unknown Require gets 420 naming it.
    let mut info = caller_request("INFO", "req", 2, Some("us"), false);
    info.headers
        .push(rsip::Header::Other("Require".into(), "100rel, foo".into()));
    leg.on_request(info, udp(PROXY), true, &env(), Instant::now());
    let msgs = sent(&leg.take_outputs());
    assert!(msgs[0].1.starts_with("SIP/2.0 420 Bad Extension"));
    assert!(msgs[0].1.contains("Unsupported: foo\r\n"), "100rel is ours");
}

/// §18.2.2 / RFC 3581: an in-dialog request is answered where it came from, not to the
/// INVITE's source.
#[tokio::test(start_paused = true)]
async fn responses_go_where_the_request_came_from() {
    let mut leg = confirmed();
    let options = caller_request("OPTIONS", "opt", 2, Some("us"), false);
    leg.on_request(options, udp("10.0.0.5:5999"), true, &env(), Instant::now());
    let msgs = sent(&leg.take_outputs());
    assert_eq!(msgs[0].0, "10.0.0.5:5999");
    assert!(msgs[0].1.starts_with("SIP/2.0 200 OK"));
}

/// §13.3.1.1: while the call waits unanswered, the 180 goes again every minute.
#[tokio::test(start_paused = true)]
async fn ringing_repeated_every_minute() {
    let mut leg = offered("r1");
    leg.ring(&env());
    leg.take_outputs();
    let out = run_for(&mut leg, Duration::from_secs(150)).await;
    assert_eq!(
        first_lines(&out),
        ["SIP/2.0 180 Ringing", "SIP/2.0 180 Ringing"]
    );
    leg.answer(
        LocalMedia {
            port: 20000,
            session_id: 1,
            offer: false,
        },
        &env(),
        Instant::now(),
    );
    let out = run_for(&mut leg, Duration::from_secs(0)).await;
    assert!(first_lines(&out).iter().all(|l| !l.contains("180")));
}

/// `engine.max_call_seconds`: a call answered and confirmed gets BYE when its time is up (from
/// the INVITE), and one still unanswered gets its final response; both end `max_duration`.
#[tokio::test(start_paused = true)]
async fn the_call_time_cap_ends_answered_and_ringing_calls() {
    let capped = Env {
        max_call: Some(Duration::from_secs(5)),
        ..env()
    };
    for answer in [true, false] {
        let now = Instant::now();
        let mut leg = offered_with(caller_request("INVITE", "cap", 1, None, true), &capped);
        if answer {
            let media = LocalMedia {
                port: 20000,
                session_id: 1,
                offer: false,
            };
            leg.answer(media, &capped, now);
            leg.on_request(
                caller_request("ACK", "cap-ack", 1, Some("us"), false),
                udp(PROXY),
                true,
                &capped,
                now,
            );
        }
        leg.take_outputs();
        let end = now + Duration::from_secs(6);
        let mut out = Vec::new();
        while let Some(at) = leg.next_deadline().filter(|at| *at <= end) {
            advance(at.saturating_duration_since(Instant::now())).await;
            leg.on_tick(&capped, Instant::now());
            out.extend(leg.take_outputs());
        }
        let expected = if answer { "BYE " } else { "SIP/2.0 603" };
        assert!(
            first_lines(&out).iter().any(|l| l.starts_with(expected)),
            "{answer}: {out:?}"
        );
        assert_eq!(ended_with(&out), Some(CallEndCause::MaxDuration));
    }
}
