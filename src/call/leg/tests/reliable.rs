//! 100rel on paused time (RFC 3262): our reliable 183 retransmitted at T1 doubling until
//! PRACK (§3), the 200 held until then, 5xx without PRACK in 64·T1 (§3); the UAC's PRACK
//! with its RAck, once per RSeq, retransmissions and out-of-order RSeqs dropped (§4, §7.2).

use std::time::Duration;

use tokio::time::Instant;

use super::super::reliable::{PrackSequence, RAck, Received, ReliableProvisional, ReliableTick};
use super::outgoing::{callee_response, outgoing};
use super::*;

fn header(name: &str, value: &str) -> rsip::Header {
    rsip::Header::Other(name.into(), value.into())
}

fn media() -> LocalMedia {
    LocalMedia {
        port: 20000,
        session_id: 1,
        offer: false,
    }
}

/// An offered call whose INVITE (CSeq 1) says `Supported: 100rel`.
fn offered_100rel() -> Leg {
    let mut invite = caller_request("INVITE", "rel", 1, None, true);
    invite.headers.push(header("Supported", "100rel"));
    let mut leg = offered_with(invite, &env());
    leg.take_outputs();
    leg
}

fn prack(rack: &str, branch: &str) -> rsip::Request {
    let mut req = caller_request("PRACK", branch, 2, Some("us"), false);
    req.headers.push(header("RAck", rack));
    req
}

/// §3: retransmitted at T1, 2·T1, 4·T1...; gives up at 64·T1.
#[tokio::test(start_paused = true)]
async fn reliable_provisional_backs_off_and_times_out() {
    let t1 = Timers::default().t1;
    let start = Instant::now();
    let mut r = ReliableProvisional::new(1, 1, "183".into(), Timers::default(), start);
    let mut sends = Vec::new();
    let mut timed_out = None;
    while let Some(at) = r.next_deadline() {
        match r.on_tick(at) {
            ReliableTick::Retransmit(_) => sends.push(at - start),
            ReliableTick::TimedOut => timed_out = Some(at - start),
            ReliableTick::Nothing => {}
        }
    }
    assert_eq!(&sends[..4], &[t1, t1 * 3, t1 * 7, t1 * 15]);
    assert_eq!(timed_out, Some(t1 * 64));
    let rack = |s: &str| {
        let mut h = rsip::Headers::default();
        h.push(header("RAck", s));
        RAck::of(&h)
    };
    let mut r = ReliableProvisional::new(7, 3, "183".into(), Timers::default(), start);
    assert!(!r.on_prack(&rack("7 2 INVITE").unwrap()), "wrong CSeq");
    assert!(!r.on_prack(&rack("6 3 INVITE").unwrap()), "wrong RSeq");
    assert!(rack("7 3").is_none() && rack("x 3 INVITE").is_none());
    assert!(r.on_prack(&rack("7 3 invite").unwrap()));
    assert_eq!(r.next_deadline(), None);
}

/// §4: the first reliable provisional of an early dialog and then only RSeq + 1 are PRACKed.
#[test]
fn uac_pracks_each_rseq_once_in_order() {
    let mut seq = PrackSequence::default();
    assert!(
        matches!(seq.on_reliable("a", 5, 1), Received::Prack(r) if r.to_string() == "5 1 INVITE")
    );
    assert_eq!(seq.on_reliable("a", 5, 1), Received::Drop, "retransmission");
    assert_eq!(seq.on_reliable("a", 7, 1), Received::Drop, "out of order");
    assert!(matches!(seq.on_reliable("a", 6, 1), Received::Prack(_)));
    assert!(
        matches!(seq.on_reliable("fork", 1, 1), Received::Prack(_)),
        "another dialog"
    );
}

/// §3: a caller that supports 100rel gets our early-media 183 reliably; the flow's answer
/// waits for the PRACK (whose RAck must match, else 481), then the 200 carries the same SDP.
#[tokio::test(start_paused = true)]
async fn reliable_183_holds_the_200_until_prack() {
    let mut leg = offered_100rel();
    leg.early_media(media(), &env(), Instant::now());
    let out = leg.take_outputs();
    let (_, p) = sent(&out).into_iter().next().unwrap();
    assert!(p.starts_with("SIP/2.0 183 "), "{p}");
    assert!(
        p.contains("Require: 100rel") && p.contains("RSeq: 1"),
        "{p}"
    );
    assert!(p.contains("m=audio 20000"), "{p}");
    let started = out.iter().find_map(|o| match o {
        Output::StartMedia(n) => Some(n.clone()),
        _ => None,
    });
    assert!(
        started.flatten().and_then(|n| n.remote_rtp).is_some(),
        "early media sends to the caller before any ACK"
    );
    leg.answer(media(), &env(), Instant::now());
    let held = run_for(&mut leg, Duration::from_millis(600)).await;
    assert_eq!(
        first_lines(&held),
        ["SIP/2.0 183 Session Progress"],
        "T1 retransmit, no 200"
    );
    from_caller(&mut leg, prack("1 9 INVITE", "pr0"));
    assert_eq!(
        first_lines(&leg.take_outputs()),
        ["SIP/2.0 481 Call/Transaction Does Not Exist"]
    );
    let mut bare = caller_request("PRACK", "pr9", 2, Some("us"), false);
    bare.headers.push(header("RAck", "one 1 INVITE"));
    from_caller(&mut leg, bare);
    assert_eq!(
        first_lines(&leg.take_outputs()),
        ["SIP/2.0 400 Bad Request"]
    );
    from_caller(&mut leg, prack("1 1 INVITE", "pr1"));
    let out = sent(&leg.take_outputs());
    assert!(out[0].1.starts_with("SIP/2.0 200 OK") && out[0].1.contains("CSeq: 2 PRACK"));
    let ok = &out[1].1;
    assert!(
        ok.starts_with("SIP/2.0 200 OK") && ok.contains("CSeq: 1 INVITE"),
        "{ok}"
    );
    let sdp = |m: &str| m.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    assert_eq!(sdp(ok), sdp(&p), "the 200's SDP is the 183's");
    assert!(ok.contains("Supported: 100rel"));
    assert_eq!(leg.phase, Phase::Answered);
}

/// §3: no PRACK within 64·T1: the INVITE is refused with a 5xx and the call ends.
#[tokio::test(start_paused = true)]
async fn no_prack_refuses_the_call() {
    let mut leg = offered_100rel();
    leg.early_media(media(), &env(), Instant::now());
    leg.take_outputs();
    let out = run_for(&mut leg, Timers::default().t1 * 64).await;
    let lines = first_lines(&out);
    assert!(
        lines.iter().filter(|l| l.contains(" 183 ")).count() >= 5,
        "{lines:?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("SIP/2.0 504 Server Time-out")
    );
    assert_eq!(ended_with(&out), Some(CallEndCause::Failed));
}

/// A caller without 100rel gets a plain 183 and its 200 at once.
#[tokio::test(start_paused = true)]
async fn unreliable_183_without_100rel() {
    let mut leg = offered("plain");
    leg.take_outputs();
    leg.early_media(media(), &env(), Instant::now());
    let p = &sent(&leg.take_outputs())[0].1;
    assert!(p.starts_with("SIP/2.0 183 ") && !p.contains("RSeq"), "{p}");
    leg.answer(media(), &env(), Instant::now());
    assert_eq!(first_lines(&leg.take_outputs()), ["SIP/2.0 200 OK"]);
}

/// §4, §7.2: a reliable 183 with SDP gets one PRACK (RAck `rseq cseq INVITE`, CSeq above the
/// INVITE's, in the early dialog); its retransmission gets none; media starts on its SDP; the
/// 200 without SDP keeps it; the BYE's CSeq is above the PRACK's.
#[tokio::test(start_paused = true)]
async fn uac_pracks_a_reliable_183_and_keeps_its_media() {
    let mut leg = outgoing();
    let out = leg.take_outputs();
    assert!(sent(&out)[0].1.contains("Supported: 100rel"));
    let mut p183 = callee_response(&out, 183, true);
    p183.headers.push(header("Require", "100rel"));
    p183.headers.push(header("RSeq", "1"));
    leg.on_response(&p183, &env(), Instant::now());
    let first = leg.take_outputs();
    let pracks: Vec<_> = sent(&first)
        .into_iter()
        .filter(|(_, m)| m.starts_with("PRACK "))
        .collect();
    assert_eq!(pracks.len(), 1);
    let prack = &pracks[0].1;
    assert!(
        prack.contains("RAck: 1 1 INVITE") && prack.contains("CSeq: 2 PRACK"),
        "{prack}"
    );
    assert!(prack.contains(";tag=callee") && prack.contains("Route: <sip:10.0.0.6;lr>"));
    assert!(first
        .iter()
        .any(|o| matches!(o, Output::Event(CallEvent::EarlyMedia { .. }))));
    assert!(first
        .iter()
        .any(|o| matches!(o, Output::StartMedia(Some(n)) if n.remote_rtp.is_some())));
    leg.on_response(&p183, &env(), Instant::now());
    assert!(
        first_lines(&leg.take_outputs()).is_empty(),
        "a retransmission is not PRACKed"
    );
    leg.on_response(&callee_response(&out, 200, false), &env(), Instant::now());
    let answered = leg.take_outputs();
    assert!(answered.iter().any(|o| matches!(o, Output::Answered)));
    assert!(!answered
        .iter()
        .any(|o| matches!(o, Output::StartMedia(_) | Output::Ended { .. })));
    assert_eq!(leg.phase, Phase::Confirmed);
    leg.hangup(
        crate::call::events::HangupCause::Normal,
        &env(),
        Instant::now(),
    );
    let bye = sent(&leg.take_outputs())
        .into_iter()
        .find(|(_, m)| m.starts_with("BYE "))
        .unwrap()
        .1;
    assert!(bye.contains("CSeq: 3 BYE"), "{bye}");
}

/// RFC 3261 §13.2.1: without 100rel the 18x's SDP is a preview; a different SDP in the 200
/// is the answer and the running media follows it.
#[tokio::test(start_paused = true)]
async fn uac_follows_a_changed_sdp_in_the_200() {
    let mut leg = outgoing();
    let out = leg.take_outputs();
    leg.on_response(&callee_response(&out, 183, true), &env(), Instant::now());
    assert!(leg
        .take_outputs()
        .iter()
        .any(|o| matches!(o, Output::StartMedia(_))));
    let mut ok = callee_response(&out, 200, false);
    let moved = SDP.replace("4000", "4002");
    ok.headers.push(header("Content-Type", "application/sdp"));
    ok.body = moved.into_bytes();
    leg.on_response(&ok, &env(), Instant::now());
    let after = leg.take_outputs();
    assert!(after.iter().any(
        |o| matches!(o, Output::MediaUpdate(n) if n.remote_rtp.map(|a| a.port()) == Some(4002))
    ));
}

/// §3: a caller that requires 100rel gets every provisional reliably, one at a time: the 183
/// with SDP waits for the PRACK of the 180 and then goes with the next RSeq.
#[tokio::test(start_paused = true)]
async fn required_100rel_sends_one_reliable_provisional_at_a_time() {
    let mut invite = caller_request("INVITE", "req", 1, None, true);
    invite.headers.push(header("Require", "100rel"));
    let mut leg = offered_with(invite, &env());
    leg.take_outputs();
    leg.ring(&env());
    let ring = &sent(&leg.take_outputs())[0].1;
    assert!(
        ring.starts_with("SIP/2.0 180 ") && ring.contains("RSeq: 1"),
        "{ring}"
    );
    leg.early_media(media(), &env(), Instant::now());
    assert!(first_lines(&leg.take_outputs()).is_empty(), "the 183 waits");
    from_caller(&mut leg, prack("1 1 INVITE", "pr1"));
    let out = sent(&leg.take_outputs());
    assert!(out[0].1.starts_with("SIP/2.0 200 OK") && out[0].1.contains("PRACK"));
    let p183 = &out[1].1;
    assert!(
        p183.starts_with("SIP/2.0 183 ") && p183.contains("RSeq: 2"),
        "{p183}"
    );
}

/// §3 with a caller requiring 100rel: our reliable 180 awaits its PRACK, early media queues
/// its 183 and the flow answers meanwhile (the callee sent 183 then 200 before the caller's
/// PRACK came). The PRACK releases the held 200 (with the SDP the 183 would have carried),
/// not the queued 183: a reliable 183 then would hold the 200 for good.
#[tokio::test(start_paused = true)]
async fn a_held_answer_goes_before_a_queued_183() {
    let mut invite = caller_request("INVITE", "req", 1, None, true);
    invite.headers.push(header("Require", "100rel"));
    let mut leg = offered_with(invite, &env());
    leg.take_outputs();
    leg.ring(&env());
    assert!(sent(&leg.take_outputs())[0].1.contains("RSeq: 1"));
    leg.early_media(media(), &env(), Instant::now());
    leg.answer(media(), &env(), Instant::now());
    assert!(first_lines(&leg.take_outputs()).is_empty(), "both wait");
    from_caller(&mut leg, prack("1 1 INVITE", "pr1"));
    let out = sent(&leg.take_outputs());
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out[0].1.starts_with("SIP/2.0 200 OK") && out[0].1.contains("CSeq: 2 PRACK"));
    let ok = &out[1].1;
    assert!(
        ok.starts_with("SIP/2.0 200 OK") && ok.contains("CSeq: 1 INVITE"),
        "{ok}"
    );
    assert!(ok.contains("m=audio 20000"), "{ok}");
    assert_eq!(leg.phase, Phase::Answered);
}

/// §5: an offer in a PRACK is refused with 488 (RFC 3264 §6: the session stays as it was);
/// the PRACK still acknowledges our 183 (no more retransmissions, the held 200 goes out).
#[tokio::test(start_paused = true)]
async fn an_offer_in_a_prack_gets_488() {
    let mut leg = offered_100rel();
    leg.early_media(media(), &env(), Instant::now());
    leg.take_outputs();
    leg.answer(media(), &env(), Instant::now());
    let mut offer = caller_request("PRACK", "pr1", 2, Some("us"), true);
    offer.headers.push(header("RAck", "1 1 INVITE"));
    from_caller(&mut leg, offer);
    let out = sent(&leg.take_outputs());
    assert!(
        out[0].1.starts_with("SIP/2.0 488 ") && out[0].1.contains("CSeq: 2 PRACK"),
        "{}",
        out[0].1
    );
    assert!(out[1].1.starts_with("SIP/2.0 200 OK") && out[1].1.contains("CSeq: 1 INVITE"));
    assert_eq!(leg.phase, Phase::Answered);
    let later = run_for(&mut leg, Duration::from_secs(2)).await;
    assert!(
        !first_lines(&later).iter().any(|l| l.contains(" 183 ")),
        "the 183 is acknowledged"
    );
}

/// §4 against a hostile callee: reliable 183s with RSeq + 1 each, none of our PRACKs
/// answered: no more than `MAX_PRACKS_IN_FLIGHT` PRACK transactions; once one is answered,
/// the next retransmitted 183 is PRACKed.
#[tokio::test(start_paused = true)]
async fn pracks_in_flight_are_capped() {
    use super::super::early::MAX_PRACKS_IN_FLIGHT;
    let mut leg = outgoing();
    let out = leg.take_outputs();
    let reliable = |rseq: u32| {
        let mut p = callee_response(&out, 183, false);
        p.headers.push(header("Require", "100rel"));
        p.headers.push(header("RSeq", &rseq.to_string()));
        p
    };
    let mut pracks = Vec::new();
    for rseq in 1..=40 {
        leg.on_response(&reliable(rseq), &env(), Instant::now());
        pracks.extend(
            sent(&leg.take_outputs())
                .into_iter()
                .filter(|(_, m)| m.starts_with("PRACK ")),
        );
    }
    assert_eq!(pracks.len(), MAX_PRACKS_IN_FLIGHT);
    // The callee answers the first PRACK: room for the next RSeq (17), retransmitted.
    let first = &pracks[0].1;
    let line = |name: &str| {
        first
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_string()
    };
    let ok = response(&format!(
        "SIP/2.0 200 OK\r\n{}\r\n{}\r\nTo: <sip:bob@10.0.0.7:5080>;tag=callee\r\n\
         Call-ID: out@test\r\n{}\r\nContent-Length: 0\r\n\r\n",
        line("Via: "),
        line("From: "),
        line("CSeq: ")
    ));
    leg.on_response(&ok, &env(), Instant::now());
    leg.on_response(&reliable(17), &env(), Instant::now());
    let next: Vec<_> = sent(&leg.take_outputs())
        .into_iter()
        .filter(|(_, m)| m.starts_with("PRACK "))
        .collect();
    assert_eq!(next.len(), 1);
    assert!(next[0].1.contains("RAck: 17 1 INVITE"), "{}", next[0].1);
}
