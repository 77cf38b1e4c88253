//! RFC 4028 session timers on paused time: the 2xx says what was agreed, the peer's silence
//! ends the session, the peer's refresh restarts it, we refresh when we are the refresher,
//! and a refresh answered 481 ends the call.

use std::time::Duration;

use tokio::time::{advance, Instant};

use super::*;

fn timers_on() -> Env {
    Env {
        session_expires: Some(1800),
        ..env()
    }
}

fn with(mut req: rsip::Request, headers: &[(&str, &str)]) -> rsip::Request {
    for (name, value) in headers {
        req.headers
            .push(rsip::Header::Other((*name).into(), (*value).into()));
    }
    req
}

/// An answered, ACKed call whose INVITE carried `headers`; returns the leg and our 200.
fn up(headers: &[(&str, &str)]) -> (Leg, String) {
    let env = timers_on();
    let now = Instant::now();
    let mut leg = offered_with(
        with(caller_request("INVITE", "st", 1, None, true), headers),
        &env,
    );
    let media = LocalMedia {
        port: 20000,
        session_id: 1,
        offer: false,
    };
    leg.answer(media, &env, now);
    let ok = sent(&leg.take_outputs())
        .into_iter()
        .find(|(_, m)| m.starts_with("SIP/2.0 200"))
        .unwrap()
        .1;
    let ack = caller_request("ACK", "st-ack", 1, Some("us"), false);
    leg.on_request(ack, udp(PROXY), true, &env, now);
    leg.take_outputs();
    (leg, ok)
}

/// Nothing sent and nothing ended (media starting is fine).
fn quiet(o: &Output) -> bool {
    !matches!(
        o,
        Output::Send { .. } | Output::SendInvite { .. } | Output::Ended { .. }
    )
}

async fn run(leg: &mut Leg, until: Duration) -> Vec<Output> {
    let end = Instant::now() + until;
    let mut out = Vec::new();
    while let Some(at) = leg.next_deadline().filter(|at| *at <= end) {
        advance(at.saturating_duration_since(Instant::now())).await;
        leg.on_tick(&timers_on(), Instant::now());
        out.extend(leg.take_outputs());
    }
    advance(end.saturating_duration_since(Instant::now())).await;
    out
}

/// §9: a UAC that supports timers and asks to refresh gets `Session-Expires: 120;refresher=uac`
/// and `Require: timer`; when no refresh comes, the session ends at 120 − 32 s with BYE (§10).
#[tokio::test(start_paused = true)]
async fn the_session_expires_when_the_peer_does_not_refresh() {
    let (mut leg, ok) = up(&[
        ("Supported", "timer"),
        ("Session-Expires", "120;refresher=uac"),
    ]);
    assert!(
        ok.contains("Session-Expires: 120;refresher=uac\r\n"),
        "{ok}"
    );
    assert!(
        ok.contains("Require: timer\r\n") && ok.contains("Supported: 100rel, timer\r\n"),
        "{ok}"
    );
    assert!(run(&mut leg, Duration::from_secs(87))
        .await
        .iter()
        .all(quiet));
    let out = run(&mut leg, Duration::from_secs(2)).await;
    assert!(first_lines(&out)[0].starts_with("BYE "), "{out:?}");
    assert_eq!(ended_with(&out), Some(CallEndCause::SessionExpired));
}

/// §9: the peer's refreshing re-INVITE restarts the interval; our 2xx repeats what holds.
#[tokio::test(start_paused = true)]
async fn a_refresh_from_the_peer_restarts_the_interval() {
    let (mut leg, _) = up(&[
        ("Supported", "timer"),
        ("Session-Expires", "120;refresher=uac"),
    ]);
    assert!(run(&mut leg, Duration::from_secs(60))
        .await
        .iter()
        .all(quiet));
    let refresh = with(
        caller_request("INVITE", "st-re", 2, Some("us"), true),
        &[
            ("Supported", "timer"),
            ("Session-Expires", "120;refresher=uac"),
        ],
    );
    leg.on_request(refresh, udp(PROXY), true, &timers_on(), Instant::now());
    let ok = &sent(&leg.take_outputs())[0].1;
    assert!(
        ok.starts_with("SIP/2.0 200") && ok.contains("Session-Expires: 120;refresher=uac"),
        "{ok}"
    );
    let ack = caller_request("ACK", "st-re-ack", 2, Some("us"), false);
    leg.on_request(ack, udp(PROXY), true, &timers_on(), Instant::now());
    // 60 s in: the first expiry (88 s) has passed without effect; the new one is at 148 s.
    assert!(run(&mut leg, Duration::from_secs(87))
        .await
        .iter()
        .all(|o| !matches!(o, Output::Ended { .. })));
    let out = run(&mut leg, Duration::from_secs(2)).await;
    assert_eq!(ended_with(&out), Some(CallEndCause::SessionExpired));
}

/// The reply to a re-INVITE from our refresh, copying its Via, From, To, Call-ID and CSeq.
fn reply_to(request: &str, status: &str) -> rsip::Response {
    let copied: String = request
        .lines()
        .filter(|l| {
            ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                .iter()
                .any(|h| l.starts_with(h))
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    let body = if status.starts_with("200") { SDP } else { "" };
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    response(&format!(
        "SIP/2.0 {status}\r\n{copied}Contact: <sip:alice@{CALLER}>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

/// §7.4 / §9: with a UAC that knows nothing of timers we are the refresher
/// (`refresher=uas`, no `Require`); at half the interval we send a refreshing re-INVITE with
/// our SDP along the route set, ACK its 2xx, and the session goes on.
#[tokio::test(start_paused = true)]
async fn we_refresh_at_half_the_interval() {
    let (mut leg, ok) = up(&[]);
    assert!(
        ok.contains("Session-Expires: 1800;refresher=uas\r\n"),
        "{ok}"
    );
    assert!(!ok.contains("Require: timer"), "{ok}");
    assert!(run(&mut leg, Duration::from_secs(899))
        .await
        .iter()
        .all(quiet));
    let out = run(&mut leg, Duration::from_secs(2)).await;
    let reinvite = sent(&out)
        .into_iter()
        .find(|(_, m)| m.starts_with("INVITE "))
        .expect("a refresh");
    assert_eq!(reinvite.0, PROXY);
    assert!(
        reinvite.1.contains("Session-Expires: 1800;refresher=uac"),
        "{}",
        reinvite.1
    );
    assert!(
        reinvite.1.contains("CSeq: 1 INVITE") && reinvite.1.contains("m=audio 20000"),
        "{}",
        reinvite.1
    );
    leg.on_response(
        &reply_to(&reinvite.1, "200 OK"),
        &timers_on(),
        Instant::now(),
    );
    let acked = first_lines(&leg.take_outputs());
    assert!(acked[0].starts_with("ACK "), "{acked:?}");
    let later = run(&mut leg, Duration::from_secs(890)).await;
    assert!(
        later.iter().all(|o| !matches!(o, Output::Ended { .. })),
        "{later:?}"
    );
    assert_eq!(leg.phase, Phase::Confirmed);
}

/// §10: a refresh answered 481 (the peer lost the dialog) is ACKed and the call ends with BYE.
#[tokio::test(start_paused = true)]
async fn a_refresh_answered_481_ends_the_call() {
    let (mut leg, _) = up(&[]);
    let out = run(&mut leg, Duration::from_secs(901)).await;
    let reinvite = sent(&out)
        .into_iter()
        .find(|(_, m)| m.starts_with("INVITE "))
        .unwrap();
    let gone = reply_to(&reinvite.1, "481 Call/Transaction Does Not Exist");
    leg.on_response(&gone, &timers_on(), Instant::now());
    let out = leg.take_outputs();
    let lines = first_lines(&out);
    assert!(
        lines[0].starts_with("ACK ") && lines[1].starts_with("BYE "),
        "{lines:?}"
    );
    assert_eq!(ended_with(&out), Some(CallEndCause::SessionExpired));
}
