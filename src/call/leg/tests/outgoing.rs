//! The outgoing role on paused time: Timer B and the ring timeout, CANCEL crossing 2xx, the
//! ACK along the reversed route set, re-INVITE through an INVITE transaction.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::call::outbound::Route;
use crate::sip::resolve::ProxyAddress;

pub(super) fn outgoing() -> Leg {
    let route = Route {
        request_uri: "sip:bob@10.0.0.7:5080".into(),
        user: "bob".into(),
        next_hop: ProxyAddress::parse("10.0.0.7:5080").unwrap(),
        transport: None,
        tls_ca: None,
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
            headers: Vec::new(),
            credentials: None,
        },
        &env(),
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

pub(super) fn callee_response(leg_out: &[Output], code: u16, with_sdp: bool) -> rsip::Response {
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
}

/// RFC 4028 §7.4: a 422 to our INVITE is ACKed and the INVITE goes again once, with a new
/// CSeq and branch and the `Min-SE` the callee named as our `Session-Expires`.
#[tokio::test(start_paused = true)]
async fn a_422_is_retried_once_with_the_callees_min_se() {
    let timers = Env {
        session_expires: Some(1800),
        ..env()
    };
    let route = Route {
        request_uri: "sip:bob@10.0.0.7:5080".into(),
        user: "bob".into(),
        next_hop: ProxyAddress::parse("10.0.0.7:5080").unwrap(),
        transport: None,
        tls_ca: None,
    };
    let placement = Placement {
        route,
        local_uri: "<sip:alice@10.0.0.9>".into(),
        max_forwards: 70,
        ring_timeout: Duration::from_secs(60),
        headers: Vec::new(),
        credentials: None,
    };
    let now = Instant::now();
    let mut leg = Leg::outgoing(
        CallId::new(),
        "out@test".into(),
        "ours".into(),
        placement,
        &timers,
        now,
    );
    leg.local_media = Some(LocalMedia {
        port: 20002,
        session_id: 2,
        offer: true,
    });
    leg.resolved(udp("10.0.0.7:5080"), &timers, now);
    let first = leg.take_outputs();
    assert!(sent(&first)[0].1.contains("Session-Expires: 1800\r\n"));
    let mut too_small = callee_response(&first, 422, false);
    too_small
        .headers
        .push(rsip::Header::Other("Min-SE".into(), "3600".into()));
    leg.on_response(&too_small, &timers, Instant::now());
    let out = leg.take_outputs();
    let msgs = sent(&out);
    assert!(
        msgs[0].1.starts_with("ACK ") && msgs[0].1.contains("CSeq: 1 ACK"),
        "{}",
        msgs[0].1
    );
    let again = &msgs[1].1;
    assert!(
        again.starts_with("INVITE ") && again.contains("CSeq: 2 INVITE"),
        "{again}"
    );
    assert!(again.contains("Session-Expires: 3600\r\n"), "{again}");
    assert_ne!(header_value(again, "Via"), header_value(&msgs[0].1, "Via"));
    assert_eq!(ended_with(&out), None);
    // A second 422 ends the leg.
    let mut again_small = callee_response(&out, 422, false);
    again_small
        .headers
        .push(rsip::Header::Other("Min-SE".into(), "7200".into()));
    leg.on_response(&again_small, &timers, Instant::now());
    assert_eq!(
        ended_with(&leg.take_outputs()),
        Some(CallEndCause::Rejected(422))
    );
}

fn header_value<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

/// RFC 3261 §8.1.1.8, §18.1.1, §26.2: a leg to a `sips:` URI over TLS sends its INVITE with a
/// `SIP/2.0/TLS` Via naming our TLS port and a `sips:` Contact; a `sip:` URI over TLS gets
/// `;transport=tls`; over UDP nothing changes.
#[test]
fn a_leg_over_tls_names_the_tls_port_and_a_sips_contact_for_a_sips_uri() {
    let env = Env {
        tls_port: Some(5061),
        ..env()
    };
    let tls = Peer {
        addr: "10.0.0.7:5061".parse().unwrap(),
        transport: crate::sip::transport::TransportKind::Tls,
    };
    for (uri, contact) in [
        (
            "sips:bob@example.com",
            "Contact: <sips:activeflow@10.0.0.9:5061>",
        ),
        (
            "sip:bob@example.com;transport=tls",
            "Contact: <sip:activeflow@10.0.0.9:5061;transport=tls>",
        ),
    ] {
        let route = Route {
            request_uri: uri.into(),
            user: "bob".into(),
            next_hop: crate::sip::resolve::ProxyAddress::parse("10.0.0.7:5061").unwrap(),
            transport: Some(crate::sip::resolve::Transport::Tls),
            tls_ca: None,
        };
        let placement = Placement {
            route,
            local_uri: "<sip:alice@10.0.0.9>".into(),
            max_forwards: 70,
            ring_timeout: Duration::from_secs(60),
            headers: Vec::new(),
            credentials: None,
        };
        let now = Instant::now();
        let mut leg = Leg::outgoing(
            CallId::new(),
            "tls@test".into(),
            "t".into(),
            placement,
            &env,
            now,
        );
        leg.resolved(tls, &env, now);
        let sent = sent(&leg.take_outputs());
        let invite = &sent[0].1;
        assert!(
            invite.starts_with(&format!("INVITE {uri} SIP/2.0")),
            "{invite}"
        );
        assert!(
            invite.contains("Via: SIP/2.0/TLS 10.0.0.9:5061;branch="),
            "{invite}"
        );
        assert!(invite.contains(contact), "{invite}");
    }
    assert_eq!(
        env.contact(Some(&udp("10.0.0.7:5060"))),
        "<sip:activeflow@10.0.0.9:5060>"
    );
    assert_eq!(
        env.contact_secure(Some(&udp("10.0.0.7:5060")), true),
        "<sip:activeflow@10.0.0.9:5060>"
    );
}

/// A call placed from a leg we placed starts from that leg's Max-Forwards (69 here), not from
/// 70: calls placed by calls we placed keep counting down (RFC 3261 §16.6 step 3 in spirit).
#[test]
fn an_outgoing_legs_max_forwards_is_the_one_its_invite_carried() {
    let leg = outgoing();
    assert_eq!(leg.max_forwards(), 69);
}
