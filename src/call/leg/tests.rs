//! The leg machine on paused time: the races black-box tests cannot hit reliably (CANCEL
//! crossing 200, BYE crossing re-INVITE, ACK lost, BYE while a re-INVITE is pending, 491
//! glare) and the RFC 3261 rules each role must keep.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::{advance, Instant};

use super::*;
use crate::call::events::HangupCause;
use crate::call::outbound::{NextHop, Route};
use crate::sip::message::parse_datagram;
use crate::sip::transport::TransportKind;

const CALLER: &str = "10.0.0.1:5062";
const PROXY: &str = "10.0.0.5:5060";

fn env() -> Env {
    Env {
        timers: Timers::default(),
        public_ip: "10.0.0.9".parse().unwrap(),
        port: 5060,
    }
}

fn udp(addr: &str) -> Peer {
    Peer {
        addr: addr.parse().unwrap(),
        transport: TransportKind::Udp,
    }
}

fn request(text: &str) -> rsip::Request {
    match parse_datagram(text.as_bytes(), 8192).unwrap() {
        rsip::SipMessage::Request(r) => r,
        rsip::SipMessage::Response(_) => panic!("not a request"),
    }
}

fn response(text: &str) -> rsip::Response {
    match parse_datagram(text.as_bytes(), 8192).unwrap() {
        rsip::SipMessage::Response(r) => r,
        rsip::SipMessage::Request(_) => panic!("not a response"),
    }
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
    m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

/// A request of the caller's: `method`, `branch`, `cseq`, with our tag in To when `to_tag`.
fn caller_request(
    method: &str,
    branch: &str,
    cseq: u32,
    to_tag: Option<&str>,
    sdp: bool,
) -> rsip::Request {
    let to = match to_tag {
        Some(t) => format!("<sip:100@10.0.0.9>;tag={t}"),
        None => "<sip:100@10.0.0.9>".to_string(),
    };
    let body = if sdp { SDP } else { "" };
    let content_type = if sdp {
        "Content-Type: application/sdp\r\n"
    } else {
        ""
    };
    request(&format!(
        "{method} sip:100@10.0.0.9 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {PROXY};branch=z9hG4bKp{branch}\r\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK{branch}\r\n\
         Record-Route: <sip:{PROXY};lr>\r\n\
         Max-Forwards: 69\r\n\
         From: <sip:alice@example.com>;tag=caller\r\n\
         To: {to}\r\n\
         Call-ID: race@test\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:alice@{CALLER}>\r\n\
         {content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

/// An answered incoming leg (200 sent, no ACK yet) and the bytes it sent.
fn answered() -> (Leg, Vec<Output>) {
    let invite = caller_request("INVITE", "inv", 1, None, true);
    let key = TransactionKey::from_request(&invite).unwrap();
    let mut leg = Leg::new_incoming(
        CallId::new(),
        invite,
        key,
        udp(PROXY),
        "us".into(),
        &env(),
        Instant::now(),
    );
    leg.ring(&env());
    let media = LocalMedia {
        port: 20000,
        session_id: 1,
        offer: false,
    };
    leg.answer(media, &env(), Instant::now());
    let out = leg.take_outputs();
    (leg, out)
}

fn confirmed() -> Leg {
    let (mut leg, _) = answered();
    let ack = caller_request("ACK", "ack1", 1, Some("us"), false);
    leg.on_request(ack, udp(PROXY), true, &env(), Instant::now());
    assert_eq!(leg.phase, Phase::Confirmed);
    leg.take_outputs();
    leg
}

/// What was sent, as text, with its destination.
fn sent(out: &[Output]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, bytes, .. } => Some((
                to.addr.to_string(),
                String::from_utf8_lossy(bytes).into_owned(),
            )),
            _ => None,
        })
        .collect()
}

fn first_lines(out: &[Output]) -> Vec<String> {
    sent(out)
        .into_iter()
        .map(|(_, m)| m.lines().next().unwrap_or_default().to_string())
        .collect()
}

fn ended_with(out: &[Output]) -> Option<CallEndCause> {
    out.iter().find_map(|o| match o {
        Output::Ended { cause, .. } => Some(*cause),
        _ => None,
    })
}

/// Ticks the leg at each deadline up to `until` after now, collecting its outputs.
async fn run_for(leg: &mut Leg, until: Duration) -> Vec<Output> {
    let end = Instant::now() + until;
    let mut out = Vec::new();
    while let Some(at) = leg.next_deadline().filter(|at| *at <= end) {
        advance(at.saturating_duration_since(Instant::now())).await;
        leg.on_tick(&env(), Instant::now());
        out.extend(leg.take_outputs());
    }
    out
}

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
    let invite = caller_request("INVITE", "c1", 1, None, true);
    let key = TransactionKey::from_request(&invite).unwrap();
    let mut leg = Leg::new_incoming(
        CallId::new(),
        invite,
        key,
        udp(PROXY),
        "us".into(),
        &env(),
        Instant::now(),
    );
    leg.take_outputs();
    leg.on_request(
        caller_request("CANCEL", "c1", 1, None, false),
        udp(PROXY),
        true,
        &env(),
        Instant::now(),
    );
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

/// §9.2: a CANCEL that crosses our 200 gets 200 and changes nothing; the ACK confirms.
#[tokio::test(start_paused = true)]
async fn cancel_crossing_200_leaves_the_call_up() {
    let (mut leg, _) = answered();
    leg.on_request(
        caller_request("CANCEL", "inv", 1, None, false),
        udp(PROXY),
        true,
        &env(),
        Instant::now(),
    );
    let out = leg.take_outputs();
    assert_eq!(first_lines(&out), ["SIP/2.0 200 OK"]);
    assert_eq!(ended_with(&out), None);
    leg.on_request(
        caller_request("ACK", "ack1", 1, Some("us"), false),
        udp(PROXY),
        true,
        &env(),
        Instant::now(),
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
    leg.on_request(
        caller_request("ACK", "ack1", 1, Some("us"), false),
        udp(PROXY),
        true,
        &env(),
        Instant::now(),
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
    leg.on_request(
        caller_request("INVITE", "re1", 2, Some("us"), true),
        udp(PROXY),
        true,
        &env(),
        Instant::now(),
    );
    assert_eq!(first_lines(&leg.take_outputs()), ["SIP/2.0 200 OK"]);
    leg.on_request(
        caller_request("INVITE", "re2", 3, Some("us"), true),
        udp(PROXY),
        true,
        &env(),
        Instant::now(),
    );
    assert_eq!(
        first_lines(&leg.take_outputs()),
        ["SIP/2.0 491 Request Pending"]
    );
    leg.on_request(
        caller_request("ACK", "re1a", 2, Some("us"), false),
        udp(PROXY),
        true,
        &env(),
        Instant::now(),
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
    leg.on_request(
        caller_request("ACK", "re3a", 4, Some("us"), false),
        udp(PROXY),
        true,
        &env(),
        Instant::now(),
    );
    leg.on_request(
        caller_request("INVITE", "old", 3, Some("us"), true),
        udp(PROXY),
        true,
        &env(),
        Instant::now(),
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
    leg.on_request(
        caller_request("INVITE", "re1", 2, Some("us"), true),
        udp(PROXY),
        true,
        &env(),
        Instant::now(),
    );
    leg.take_outputs();
    leg.on_request(
        caller_request("BYE", "bye1", 3, Some("us"), false),
        udp(PROXY),
        true,
        &env(),
        Instant::now(),
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
    leg.on_request(
        caller_request("INVITE", "re1", 2, Some("us"), true),
        udp(PROXY),
        true,
        &env(),
        Instant::now(),
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
    leg.on_request(
        caller_request("ACK", "re1", 2, Some("us"), false),
        udp(PROXY),
        true,
        &env(),
        Instant::now(),
    );
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
    leg.on_request(
        caller_request("BYE", "other", 2, Some("them"), false),
        udp(PROXY),
        true,
        &env(),
        Instant::now(),
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
    assert!(msgs[0].1.contains("Unsupported: 100rel, foo"));
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
    let invite = caller_request("INVITE", "r1", 1, None, true);
    let key = TransactionKey::from_request(&invite).unwrap();
    let start = Instant::now();
    let mut leg = Leg::new_incoming(
        CallId::new(),
        invite,
        key,
        udp(PROXY),
        "us".into(),
        &env(),
        start,
    );
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

fn outgoing() -> Leg {
    let route = Route {
        request_uri: "sip:bob@10.0.0.7:5080".into(),
        user: "bob".into(),
        next_hop: NextHop::Addr("10.0.0.7:5080".parse().unwrap()),
    };
    let mut leg = Leg::outgoing(
        CallId::new(),
        "out@test".into(),
        "ours".into(),
        Placement {
            route,
            local_uri: "<sip:alice@10.0.0.9>".into(),
            max_forwards: 69,
            ring_timeout: Duration::from_secs(60),
        },
        Instant::now(),
    );
    leg.local_media = Some(LocalMedia {
        port: 20002,
        session_id: 2,
        offer: true,
    });
    leg.resolved(udp("10.0.0.7:5080"), &env(), Instant::now());
    leg
}

fn callee_response(leg_out: &[Output], code: u16, with_sdp: bool) -> rsip::Response {
    let invite = &sent(leg_out)
        .into_iter()
        .find(|(_, m)| m.starts_with("INVITE "))
        .unwrap()
        .1;
    let via = invite
        .lines()
        .find(|l| l.starts_with("Via: "))
        .unwrap()
        .trim_start_matches("Via: ");
    let body = if with_sdp { SDP } else { "" };
    response(&format!(
        "SIP/2.0 {code} {}\r\nVia: {via}\r\nRecord-Route: <sip:10.0.0.6;lr>\r\n\
         From: <sip:alice@10.0.0.9>;tag=ours\r\nTo: <sip:bob@10.0.0.7:5080>;tag=callee\r\n\
         Call-ID: out@test\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@10.0.0.7:5080>\r\n\
         Content-Length: {}\r\n\r\n{body}",
        crate::sip::message::reason_phrase(code),
        body.len()
    ))
}

/// §17.1.1.2: Timer B stops at the first provisional: a callee that rings 45 s and then
/// answers is answered (ACKed, along the reversed route set to the remote target).
#[tokio::test(start_paused = true)]
async fn outgoing_rings_past_timer_b_then_answers() {
    let mut leg = outgoing();
    let out = leg.take_outputs();
    assert!(sent(&out)[0].1.contains("Max-Forwards: 69"));
    leg.on_response(&callee_response(&out, 180, false), &env(), Instant::now());
    assert!(run_for(&mut leg, Duration::from_secs(45))
        .await
        .iter()
        .all(|o| !matches!(o, Output::Ended { .. })));
    leg.on_response(&callee_response(&out, 200, true), &env(), Instant::now());
    let after = leg.take_outputs();
    assert!(after.iter().any(|o| matches!(o, Output::Answered)));
    let (to, ack) = sent(&after)
        .into_iter()
        .find(|(_, m)| m.starts_with("ACK "))
        .unwrap();
    assert!(
        ack.starts_with("ACK sip:bob@10.0.0.7:5080 SIP/2.0"),
        "{ack}"
    );
    assert!(ack.contains("Route: <sip:10.0.0.6;lr>"));
    assert_eq!(to, "10.0.0.6:5060");
    assert_eq!(leg.phase, Phase::Confirmed);
}

/// The ring timeout (not Timer B) ends ringing, with CANCEL; a 2xx crossing the CANCEL is
/// ACKed and then ended with BYE.
#[tokio::test(start_paused = true)]
async fn ring_timeout_cancels_and_a_crossing_2xx_gets_ack_and_bye() {
    let mut leg = outgoing();
    let out = leg.take_outputs();
    leg.on_response(&callee_response(&out, 180, false), &env(), Instant::now());
    let timeout = run_for(&mut leg, Duration::from_secs(61)).await;
    assert_eq!(ended_with(&timeout), Some(CallEndCause::NoAnswer));
    assert!(first_lines(&timeout)
        .iter()
        .any(|l| l.starts_with("CANCEL ")));
    leg.on_response(&callee_response(&out, 200, true), &env(), Instant::now());
    let lines = first_lines(&leg.take_outputs());
    assert!(
        lines[0].starts_with("ACK ") && lines[1].starts_with("BYE "),
        "{lines:?}"
    );
}

/// The outgoing role answers a re-INVITE through a server INVITE transaction (its 2xx is
/// retransmitted until the ACK), as the incoming role does.
#[tokio::test(start_paused = true)]
async fn outgoing_reinvite_uses_an_invite_transaction() {
    let mut leg = outgoing();
    let out = leg.take_outputs();
    leg.on_response(&callee_response(&out, 200, true), &env(), Instant::now());
    leg.take_outputs();
    let reinvite = request(&format!(
        "INVITE sip:alice@10.0.0.9 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.7:5080;branch=z9hG4bKre\r\n\
         From: <sip:bob@10.0.0.7:5080>;tag=callee\r\nTo: <sip:alice@10.0.0.9>;tag=ours\r\n\
         Call-ID: out@test\r\nCSeq: 2 INVITE\r\nContact: <sip:bob@10.0.0.7:5080>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    ));
    leg.on_request(
        reinvite,
        udp("10.0.0.7:5080"),
        false,
        &env(),
        Instant::now(),
    );
    let first = leg.take_outputs();
    assert_eq!(first_lines(&first), ["SIP/2.0 200 OK"]);
    let again = run_for(&mut leg, Duration::from_millis(600)).await;
    assert_eq!(first_lines(&again), ["SIP/2.0 200 OK"]);
    let _ = Bytes::new();
}
