//! Exact SIP behaviour over real UDP sockets with a raw peer: admission (403, 503, 488), stateless
//! answers (OPTIONS, 481, 405, 501), malformed input, compact headers, re-INVITE, ACK timeout,
//! pre-answer hangup codes, loop limit and shutdown. Every wait is on a condition (the socket, the
//! registry, `/readyz`, a metric), never a fixed sleep; "no answer" is proven with an OPTIONS probe
//! whose 200 must come first, and "dropped" with `sip_malformed_total`.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use activeflow::engine::{EndReason, Status};
use common::{flow, header, start, RawPeer};
use serde_json::json;

fn hold() -> serde_json::Value {
    flow(
        "hold",
        json!([{"type": "answer"}, {"type": "sleep", "option": {"duration": 60000}}]),
    )
}

fn ack_for(peer: &RawPeer, ok: &str, number: &str) -> String {
    let port = peer.port();
    format!(
        "ACK sip:{number}@{engine} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-ack-{n}\r\n\
         From: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        engine = peer.engine,
        n = rand_suffix(),
        from = header(ok, "From").unwrap(),
        to = header(ok, "To").unwrap(),
        cid = header(ok, "Call-ID").unwrap(),
    )
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn request(peer: &RawPeer, method: &str, call_id: &str, to_tag: Option<&str>) -> String {
    let port = peer.port();
    let tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{method} sip:x@{engine} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{m}-{n}\r\n\
         From: <sip:raw@127.0.0.1>;tag=f1\r\nTo: <sip:x@127.0.0.1>{tag}\r\nCall-ID: {call_id}\r\n\
         CSeq: 7 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        engine = peer.engine,
        m = method.to_lowercase(),
        n = rand_suffix(),
    )
}

#[test]
fn options_unknown_dialogs_and_unsupported_methods() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    let peer = RawPeer::new(e.sip);
    peer.send(&request(&peer, "OPTIONS", "o1", None));
    let r = peer.recv_until("SIP/2.0");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    assert!(header(&r, "Allow").unwrap().contains("INVITE"));
    peer.send(&request(&peer, "BYE", "nobody", Some("x")));
    assert!(peer.recv_until("SIP/2.0").starts_with("SIP/2.0 481"));
    peer.send(&request(&peer, "SUBSCRIBE", "s1", None));
    assert!(peer.recv_until("SIP/2.0").starts_with("SIP/2.0 405"));
    peer.send(&request(&peer, "FROBNICATE", "f1", None));
    let r = peer.recv_until("SIP/2.0");
    assert!(r.starts_with("SIP/2.0 501"), "{r}");
    assert_eq!(header(&r, "CSeq"), Some("7 FROBNICATE"));
}

/// An OPTIONS with a fresh Call-ID, and a wait for its 200: every datagram sent before it from
/// this socket has been read by then (one receive path, in order), so anything the engine
/// answered to them arrives first (RFC 3261 §11: OPTIONS gets 200 like an INVITE would).
fn probe(peer: &RawPeer, tag: &str) -> String {
    let call_id = format!("probe-{tag}-{}", rand_suffix());
    peer.send(&request(peer, "OPTIONS", &call_id, None));
    let r = peer.recv().expect("the probe's response");
    assert_eq!(header(&r, "Call-ID"), Some(call_id.as_str()), "{r}");
    r
}

#[test]
fn malformed_input_gets_400_or_is_dropped_and_counted_and_the_engine_keeps_serving() {
    // The binary, for its metrics: sip_malformed_total counts both a 400 and a drop.
    let engine = common::spawn_engine_with(&[], &[]);
    let peer = RawPeer::new(engine.sip);
    let malformed = || common::scrape(engine.metrics, r#"sip_malformed_total{transport="udp"}"#);
    let bad_requests = || common::scrape(engine.metrics, r#"sip_responses_sent_total{code="400"}"#);
    let wait_counted = |before: f64| {
        common::wait_until(
            "sip_malformed_total to count it",
            Duration::from_secs(5),
            || {
                let now = malformed();
                (now > before).then_some(now)
            },
        )
    };
    // Addressable but wrong: the CSeq method is not the request's (RFC 3261 §8.1.1.5), and a
    // response can be addressed (Via, From, To, Call-ID, CSeq): 400 (§21.4.1), counted.
    let (count, answered) = (malformed(), bad_requests());
    peer.send(&request(&peer, "OPTIONS", "m1", None).replace("CSeq: 7 OPTIONS", "CSeq: 7 INVITE"));
    let r = peer.recv().expect("an answer");
    assert!(r.starts_with("SIP/2.0 400"), "{r}");
    assert_eq!(header(&r, "Call-ID"), Some("m1"));
    assert_eq!(wait_counted(count), count + 1.0);
    assert_eq!(bad_requests(), answered + 1.0);
    // Not addressable (no Via to answer to) or not SIP at all: dropped. Each one is counted,
    // sends no 400, and nothing comes back before the next probe's answer.
    for junk in [
        "\u{0}\u{1}\u{2}",
        "INVITE",
        "SIP/2.0 200\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
    ] {
        let (count, answered) = (malformed(), bad_requests());
        peer.send(junk);
        assert_eq!(wait_counted(count), count + 1.0, "{junk:?} counted once");
        let next = probe(&peer, "junk");
        assert!(next.starts_with("SIP/2.0 200"), "{junk:?}: {next}");
        assert_eq!(bad_requests(), answered, "{junk:?} got no 400");
    }
    // Still serving: a real call is answered.
    peer.send(&peer.invite("1", "after-junk@t", "z9hG4bK-after-junk"));
    let ok = peer.recv_final();
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    engine.reaper.assert_no_panic();
}

#[test]
fn compact_headers_and_comma_joined_via_are_accepted() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    let peer = RawPeer::new(e.sip);
    let port = peer.port();
    let msg = format!(
        "INVITE sip:5@{engine} SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-compact, SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bK-upstream\r\n\
         f: <sip:c@127.0.0.1>;tag=c1\r\nt: <sip:5@127.0.0.1>\r\ni: compact-1@t\r\nCSeq: 1 INVITE\r\n\
         m: <sip:c@127.0.0.1:{port}>\r\nc: application/sdp\r\nl: 0\r\n\r\n",
        engine = e.sip
    );
    peer.send(&msg);
    let ok = peer.recv_until("200 OK");
    // Both Via values come back, in order.
    let vias: Vec<&str> = ok
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("via"))
        .collect();
    assert_eq!(vias.len(), 2, "{ok}");
    assert!(vias[1].contains("10.9.9.9"));
    // No SDP offer: the engine offers in the 2xx.
    assert!(ok.contains("m=audio "), "{ok}");
}

#[test]
fn acl_capacity_and_codec_checks() {
    let e = start(
        &[hold()],
        &[("*", "hold")],
        &[("ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS", "1")],
    );
    let peer = RawPeer::new(e.sip);
    peer.send(&peer.invite("1", "cap-1@t", "z9hG4bK-cap-1"));
    peer.recv_until("200 OK");
    peer.send(&peer.invite("1", "cap-2@t", "z9hG4bK-cap-2"));
    let busy = peer.recv_final();
    assert!(busy.starts_with("SIP/2.0 503"), "{busy}");
    assert!(header(&busy, "Retry-After").is_some());
    assert_eq!(e.activeflows().len(), 1);
    drop(e);

    let e = start(&[hold()], &[("*", "hold")], &[]);
    let peer = RawPeer::new(e.sip);
    let g729 = peer
        .invite("1", "codec@t", "z9hG4bK-codec")
        .replace("RTP/AVP 0 101", "RTP/AVP 18 101");
    peer.send(&g729);
    assert!(peer.recv_final().starts_with("SIP/2.0 488"));
}

#[test]
fn source_outside_every_trunk_acl_gets_403() {
    let e = start_with_acl("192.0.2.0/24");
    let peer = RawPeer::new(e.sip);
    peer.send(&peer.invite("1", "acl@t", "z9hG4bK-acl"));
    // Only 192.0.2.0/24 may call; we come from 127.0.0.1.
    assert!(peer.recv_final().starts_with("SIP/2.0 403"));
    assert!(e.activeflows().is_empty());
}

fn start_with_acl(cidr: &str) -> common::TestEngine {
    common::start_with(&[hold()], &[("*", "hold")], &[], |c| {
        c.trunks[0].allow = vec![cidr.to_string()];
    })
}

#[test]
fn reinvite_gets_200_with_the_current_sdp() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    let peer = RawPeer::new(e.sip);
    peer.send(&peer.invite("1", "re@t", "z9hG4bK-re-1"));
    let ok = peer.recv_until("200 OK");
    peer.send(&ack_for(&peer, &ok, "1"));
    let to = header(&ok, "To").unwrap();
    let reinvite = peer
        .invite("1", "re@t", "z9hG4bK-re-2")
        .replace("CSeq: 1 INVITE", "CSeq: 2 INVITE")
        .replace(&format!("To: <sip:1@{}>", e.sip), &format!("To: {to}"));
    peer.send(&reinvite);
    let ok2 = peer.recv_until("SIP/2.0");
    assert!(ok2.starts_with("SIP/2.0 200"), "{ok2}");
    let sdp = |m: &str| m.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    assert_eq!(sdp(&ok), sdp(&ok2));
}

#[test]
fn missing_ack_ends_with_ack_timeout_and_bye() {
    // T1 = 10 ms: 64·T1 = 640 ms without ACK.
    let e = start(
        &[hold()],
        &[("*", "hold")],
        &[("ACTIVEFLOW_SIP_T1_MS", "10")],
    );
    let peer = RawPeer::new(e.sip);
    peer.send(&peer.invite("1", "noack@t", "z9hG4bK-noack"));
    peer.recv_until("200 OK");
    // The 2xx is retransmitted, then the engine gives up and sends BYE.
    peer.recv_until("200 OK");
    let bye = peer.recv_until("BYE ");
    assert!(header(&bye, "CSeq").unwrap().ends_with("BYE"));
    e.wait_for("ack_timeout", Duration::from_secs(5), |all| {
        all.len() == 1 && all[0].end_reason == Some(EndReason::AckTimeout)
    });
}

#[test]
fn hangup_before_answer_maps_reason_to_final_response() {
    let busy = flow(
        "busy",
        json!([{"type": "hangup", "option": {"reason": "busy"}}]),
    );
    let noanswer = flow(
        "noanswer",
        json!([{"type": "hangup", "option": {"reason": "noanswer"}}]),
    );
    let other = flow("other", json!([{"type": "hangup"}]));
    let e = start(
        &[busy, noanswer, other],
        &[("486", "busy"), ("480", "noanswer"), ("603", "other")],
        &[],
    );
    let peer = RawPeer::new(e.sip);
    for code in ["486", "480", "603"] {
        peer.send(&peer.invite(code, &format!("h{code}@t"), &format!("z9hG4bK-h{code}")));
        let r = peer.recv_final();
        assert!(r.starts_with(&format!("SIP/2.0 {code}")), "{code}: {r}");
    }
}

#[test]
fn endless_loops_end_with_loop_limit() {
    let looping = json!({"name": "loop", "actions": [
        {"id": "00000000-0000-4000-8000-000000000001", "type": "variable_set", "option": {"key": "x", "value": "1"}},
        {"type": "goto", "option": {"target_id": "00000000-0000-4000-8000-000000000001", "loop_count": 100000}}
    ]});
    let e = start(
        &[looping],
        &[("*", "loop")],
        &[("ACTIVEFLOW_ENGINE_MAX_EXECUTE_COUNT", "50")],
    );
    let peer = RawPeer::new(e.sip);
    peer.send(&peer.invite("1", "loop@t", "z9hG4bK-loop"));
    // Not answered, so the engine ends the call with 603.
    assert!(peer.recv_final().starts_with("SIP/2.0 603"));
    e.wait_for("loop_limit", Duration::from_secs(5), |all| {
        all.len() == 1 && all[0].end_reason == Some(EndReason::LoopLimit)
    });
    assert_eq!(e.activeflows()[0].executed_actions.len(), 50);
}

#[test]
fn shutdown_refuses_new_calls_and_ends_running_ones_with_bye() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    let peer = RawPeer::new(e.sip);
    peer.send(&peer.invite("1", "sd@t", "z9hG4bK-sd"));
    let ok = peer.recv_until("200 OK");
    peer.send(&ack_for(&peer, &ok, "1"));
    let registry = e.registry.clone();
    let sip = e.sip;
    let api = e.api;
    let waiter = std::thread::spawn(move || e.shutdown(Duration::from_millis(300)));
    // The drain has begun once /readyz says so (it stops accepting at the same moment).
    common::wait_until("/readyz to answer 503", Duration::from_secs(5), || {
        (common::http(api, "GET", "/readyz", None).0 == 503).then_some(())
    });
    // During the grace period new INVITEs get 503 (RFC 3261 §21.5.4, with Retry-After).
    let late = RawPeer::new(sip);
    late.send(&late.invite("1", "late@t", "z9hG4bK-late"));
    assert!(late.recv_final().starts_with("SIP/2.0 503"));
    let bye = peer.recv_until("BYE ");
    let ok_bye = format!(
        "SIP/2.0 200 OK\r\n{}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        bye.lines().find(|l| l.starts_with("Via")).unwrap(),
        header(&bye, "From").unwrap(),
        header(&bye, "To").unwrap(),
        header(&bye, "Call-ID").unwrap(),
        header(&bye, "CSeq").unwrap(),
    );
    peer.send(&ok_bye);
    assert_eq!(waiter.join().unwrap(), 1);
    let all = registry.list(None, 10, None).items;
    assert_eq!(all[0].status, Status::Ended);
    assert_eq!(all[0].end_reason, Some(EndReason::Shutdown));
}

/// An in-dialog BYE from the raw peer for the call its 200 `ok` answered.
fn bye_for(peer: &RawPeer, ok: &str, number: &str) -> String {
    ack_for(peer, ok, number)
        .replacen("ACK ", "BYE ", 1)
        .replace("z9hG4bK-ack-", "z9hG4bK-bye-")
        .replace("CSeq: 1 ACK", "CSeq: 2 BYE")
}

#[test]
fn late_invite_retransmissions_start_no_call() {
    // One call at a time: the second INVITE is refused statelessly while the first is up.
    let e = start(
        &[hold()],
        &[("*", "hold")],
        &[("ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS", "1")],
    );
    let peer = RawPeer::new(e.sip);
    let first = peer.invite("1", "late-1@t", "z9hG4bK-late-1");
    peer.send(&first);
    let ok = peer.recv_until("200 OK");
    peer.send(&ack_for(&peer, &ok, "1"));
    let refused = peer.invite("1", "late-2@t", "z9hG4bK-late-2");
    peer.send(&refused);
    assert!(peer.recv_final().starts_with("SIP/2.0 503"));
    peer.send(&bye_for(&peer, &ok, "1"));
    peer.recv_until("200 OK");
    e.wait_for("the first call's end", Duration::from_secs(5), |all| {
        all.len() == 1 && all[0].status == Status::Ended
    });
    // The first call is gone: there is room for a call again.
    common::wait_until("the first call released", Duration::from_secs(5), || {
        (e.calls.active() == 0).then_some(())
    });
    // Both INVITEs again, as if they had waited in a queue until now: the answered one is
    // absorbed by what is left of its transaction (RFC 6026 §7.1, RFC 3261 §17.2.1), the
    // refused one refused again; neither starts a call.
    peer.send(&first);
    peer.send(&refused);
    let again = peer.recv().expect("an answer to the refused INVITE");
    assert!(again.starts_with("SIP/2.0 503"), "{again}");
    assert_eq!(header(&again, "Call-ID"), Some("late-2@t"));
    // Nothing at all (no 100 of a new call) for the absorbed INVITE before the probe's answer.
    let next = probe(&peer, "late");
    assert!(next.starts_with("SIP/2.0 200"), "{next}");
    assert_eq!(e.activeflows().len(), 1);
    // A new call still gets in.
    peer.send(&peer.invite("1", "late-3@t", "z9hG4bK-late-3"));
    peer.recv_until("200 OK");
}
