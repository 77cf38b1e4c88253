//! Callers cannot exhaust the engine (issue 16), over real UDP and TCP sockets with raw peers:
//! the per-source rate limit for requests outside a dialog (503 + Retry-After for INVITE,
//! RFC 3261 §21.5.4; others dropped; exempt sources; `activeflow_sip_rate_limited_total`), the
//! per-dialog cap on server transactions, RTP ports held only by answered calls and freed at Timer
//! H (RFC 3261 §17.2.1), and the message size and header count caps on both transports.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use common::{flow, header, rtp::sdp_address, scrape, spawn_engine_with, start, RawPeer};
use serde_json::json;

/// A raw peer on a loopback address of its own (the whole of 127.0.0.0/8 is local on Linux),
/// so each is a different source to the engine's per-IP limit.
fn peer_from(ip: &str, engine: SocketAddr) -> RawPeer {
    let socket = UdpSocket::bind(format!("{ip}:0")).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    RawPeer { socket, engine }
}

/// An out-of-dialog request from `peer` (Via names its real address).
fn out_of_dialog(peer: &RawPeer, method: &str, n: usize, extra: &str) -> String {
    let me = peer.socket.local_addr().unwrap();
    format!(
        "{method} sip:100@{engine} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{method}-{n}\r\n\
         From: <sip:raw@{me}>;tag=f{n}\r\nTo: <sip:100@{engine}>\r\nCall-ID: {method}-{n}@{me}\r\n\
         CSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n",
        engine = peer.engine,
    )
}

/// Every message that arrives until the peer's socket has been quiet for its read timeout.
fn drain(peer: &RawPeer) -> Vec<String> {
    std::iter::from_fn(|| peer.recv()).collect()
}

fn status_lines(msgs: &[String], prefix: &str) -> Vec<String> {
    msgs.iter()
        .filter(|m| m.starts_with(prefix))
        .cloned()
        .collect()
}

/// RFC 3261 §21.5.4: a source over `sip.max_new_calls_per_source_per_second` gets 503 with
/// Retry-After for new INVITEs, its other requests are dropped, and both are counted; other
/// sources, and sources in `sip.rate_limit_exempt`, are untouched.
#[test]
fn a_flooding_source_is_limited_alone_and_counted() {
    let e = spawn_engine_with(
        &[],
        &[
            ("ACTIVEFLOW_SIP_MAX_NEW_CALLS_PER_SOURCE_PER_SECOND", "5"),
            ("ACTIVEFLOW_SIP_RATE_LIMIT_EXEMPT", "127.0.0.1/32"),
        ],
    );
    // 30 OPTIONS at once from one source: its burst (5, one second's worth) is answered.
    let flooder = peer_from("127.0.0.2", e.sip);
    for n in 0..30 {
        flooder.send(&out_of_dialog(
            &flooder,
            "OPTIONS",
            n,
            "Max-Forwards: 70\r\n",
        ));
    }
    let answered = status_lines(&drain(&flooder), "SIP/2.0 200").len();
    // (A loaded machine may stretch the burst's arrival over a few refills.)
    assert!((5..=10).contains(&answered), "{answered} OPTIONS answered");
    let dropped = scrape(
        e.metrics,
        "activeflow_sip_rate_limited_total{method=\"OPTIONS\"}",
    );
    assert_eq!(dropped as usize, 30 - answered);

    // New INVITEs over the rate get 503 + Retry-After; those within it go on to admission
    // (Max-Forwards 0 makes that a cheap 483, RFC 3261 §16.3).
    let caller = peer_from("127.0.0.3", e.sip);
    for n in 0..20 {
        caller.send(&out_of_dialog(&caller, "INVITE", n, "Max-Forwards: 0\r\n"));
    }
    let msgs = drain(&caller);
    let admitted = status_lines(&msgs, "SIP/2.0 483").len();
    let refused = status_lines(&msgs, "SIP/2.0 503");
    assert!((5..=10).contains(&admitted), "{msgs:#?}");
    assert_eq!(refused.len(), 20 - admitted, "{msgs:#?}");
    for r in &refused {
        assert_eq!(header(r, "Retry-After"), Some("1"), "{r}");
    }
    let limited = scrape(
        e.metrics,
        "activeflow_sip_rate_limited_total{method=\"INVITE\"}",
    );
    assert_eq!(limited as usize, 20 - admitted);
    let answered_503 = scrape(
        e.metrics,
        "activeflow_sip_unavailable_total{reason=\"rate_limited\"}",
    );
    assert_eq!(answered_503 as usize, refused.len());

    // Requests the transport answers itself (an extension method's 501, RFC 3261 §8.2.1; a
    // malformed request's 400) pass the same limit: a flood of them is not reflected.
    let stranger = peer_from("127.0.0.5", e.sip);
    for n in 0..20 {
        stranger.send(&out_of_dialog(&stranger, "FOO", n, "Max-Forwards: 70\r\n"));
    }
    let not_implemented = status_lines(&drain(&stranger), "SIP/2.0 501").len();
    assert!(
        (5..=10).contains(&not_implemented),
        "{not_implemented} answered"
    );
    let limited = scrape(
        e.metrics,
        "activeflow_sip_rate_limited_total{method=\"OTHER\"}",
    );
    assert_eq!(limited as usize, 20 - not_implemented);

    // Another source is not charged for the flood; an exempt one (a trunk's proxy) never is.
    let other = peer_from("127.0.0.4", e.sip);
    other.send(&out_of_dialog(&other, "OPTIONS", 0, "Max-Forwards: 70\r\n"));
    assert!(other.recv_until("SIP/2.0").starts_with("SIP/2.0 200"));
    let trunk = peer_from("127.0.0.1", e.sip);
    for n in 0..50 {
        trunk.send(&out_of_dialog(&trunk, "OPTIONS", n, "Max-Forwards: 70\r\n"));
    }
    assert_eq!(status_lines(&drain(&trunk), "SIP/2.0 200").len(), 50);
    e.reaper.assert_no_panic();
}

/// A trunk that names its peer's single address is never rate-limited (a carrier's SBC sends
/// thousands of calls a second from one address); a source inside a trunk's network is.
#[test]
fn a_trunks_single_address_is_exempt_its_networks_are_not() {
    let e = common::start_with(
        &[],
        &[],
        &[
            ("ACTIVEFLOW_SIP_MAX_NEW_CALLS_PER_SOURCE_PER_SECOND", "2"),
            ("ACTIVEFLOW_SIP_RATE_LIMIT_EXEMPT", ""),
        ],
        |config| {
            config.trunks.push(activeflow::config::TrunkConfig {
                name: "carrier".into(),
                allow: vec!["127.0.0.6".into()],
                ..Default::default()
            })
        },
    );
    let carrier = peer_from("127.0.0.6", e.sip);
    let phone = peer_from("127.0.0.7", e.sip);
    for n in 0..40 {
        carrier.send(&out_of_dialog(
            &carrier,
            "OPTIONS",
            n,
            "Max-Forwards: 70\r\n",
        ));
        phone.send(&out_of_dialog(&phone, "OPTIONS", n, "Max-Forwards: 70\r\n"));
    }
    assert_eq!(status_lines(&drain(&carrier), "SIP/2.0 200").len(), 40);
    let phone_answered = status_lines(&drain(&phone), "SIP/2.0 200").len();
    assert!((2..=5).contains(&phone_answered), "{phone_answered}");
}

fn hold() -> serde_json::Value {
    flow(
        "hold",
        json!([{"type": "answer"}, {"type": "sleep", "option": {"duration": 60000}}]),
    )
}

/// The ACK for a 2xx (`ok`) from `peer`.
fn ack_for(peer: &RawPeer, ok: &str) -> String {
    in_dialog(peer, ok, "ACK", "ack", 1)
}

/// An in-dialog request of the caller's for the dialog `ok` set up.
fn in_dialog(peer: &RawPeer, ok: &str, method: &str, branch: &str, cseq: u32) -> String {
    let port = peer.port();
    format!(
        "{method} sip:100@{engine} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{branch}\r\n\
         From: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        engine = peer.engine,
        from = header(ok, "From").unwrap(),
        to = header(ok, "To").unwrap(),
        cid = header(ok, "Call-ID").unwrap(),
    )
}

/// A peer flooding its own dialog with INFO gets 503 + Retry-After (RFC 3261 §21.5.4) beyond
/// the dialog's cap of server transactions instead of growing the call's state, keeps its call,
/// and still ends it with BYE (§15.1.2).
#[test]
fn an_in_dialog_request_flood_is_capped_per_dialog() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    let peer = RawPeer::new(e.sip);
    peer.send(&peer.invite("100", "flood@t", "z9hG4bK-flood"));
    let ok = peer.recv_until("200 OK");
    peer.send(&ack_for(&peer, &ok));
    let total = 300;
    let mut answers = Vec::new();
    // In batches, each read back before the next: a socket buffer holds ~160 datagrams.
    for batch in (0..total).collect::<Vec<u32>>().chunks(50) {
        for n in batch {
            peer.send(&in_dialog(&peer, &ok, "INFO", &format!("info-{n}"), n + 2));
        }
        let want = answers.len() + batch.len();
        while answers.len() < want {
            let m = peer.recv().expect("an answer to every INFO");
            if header(&m, "CSeq").is_some_and(|c| c.ends_with("INFO")) {
                answers.push(m);
            }
        }
    }
    let ok_count = status_lines(&answers, "SIP/2.0 200").len();
    let refused = status_lines(&answers, "SIP/2.0 503");
    assert_eq!(ok_count, 128, "the cap (128 per dialog)");
    assert_eq!(refused.len(), total as usize - 128);
    assert!(refused.iter().all(|r| header(r, "Retry-After").is_some()));
    // The call is still up, and the peer can end it.
    assert_eq!(e.calls.active(), 1);
    peer.send(&in_dialog(&peer, &ok, "BYE", "bye", 1000));
    let bye_ok = peer.recv_until("SIP/2.0 200");
    assert!(header(&bye_ok, "CSeq").unwrap().ends_with("BYE"));
}

/// RTP ports are leased at answer: calls whose flow has not answered hold none, so a flood of
/// them cannot starve an answering call; a 2xx never ACKed gives its port back at Timer H
/// (64·T1, RFC 3261 §17.2.1, §13.3.1.4) with the call.
#[test]
fn ringing_calls_hold_no_rtp_port_and_timer_h_frees_an_unacked_call() {
    // Two even ports: two answered calls at most.
    let first: u16 = common::rtp_port_range()
        .split('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let first = first + first % 2;
    let range = format!("{first}-{}", first + 3);
    let waits = flow(
        "waits",
        json!([{"type": "sleep", "option": {"duration": 60000}}, {"type": "answer"}]),
    );
    let e = start(
        &[waits, hold()],
        &[("100", "waits"), ("200", "hold")],
        &[
            ("ACTIVEFLOW_MEDIA_RTP_PORTS", &range),
            // 64·T1 = 6.4 s: long enough that a busy machine still sees the pool full first.
            ("ACTIVEFLOW_SIP_T1_MS", "100"),
        ],
    );
    let in_range = |msg: &str| {
        let port = sdp_address(msg).expect("SDP").port();
        assert!(
            (first..=first + 3).contains(&port),
            "{port} outside {range}"
        );
        port
    };
    // Ten callers the flow never answers: each gets 100 Trying and waits.
    let ringing: Vec<RawPeer> = (0..10)
        .map(|n| {
            let p = RawPeer::new(e.sip);
            p.send(&p.invite("100", &format!("ring{n}@t"), &format!("z9hG4bK-ring{n}")));
            assert!(p.recv_until("SIP/2.0").starts_with("SIP/2.0 100"));
            p
        })
        .collect();
    common::wait_until("ten calls up", Duration::from_secs(5), || {
        (e.calls.active() == 10).then_some(())
    });
    // Both ports still go to calls that answer: one ACKed, one whose ACK never comes.
    let acked = RawPeer::new(e.sip);
    acked.send(&acked.invite("200", "acked@t", "z9hG4bK-acked"));
    let ok = acked.recv_until("200 OK");
    in_range(&ok);
    acked.send(&ack_for(&acked, &ok));
    let lost = RawPeer::new(e.sip);
    lost.send(&lost.invite("200", "noack@t", "z9hG4bK-noack"));
    let lost_port = in_range(&lost.recv_until("200 OK"));
    // No port left: a third answering call is refused before it starts.
    let third = RawPeer::new(e.sip);
    third.send(&third.invite("200", "third@t", "z9hG4bK-third"));
    assert!(third.recv_final().starts_with("SIP/2.0 503"));
    // Timer H: the unACKed call ends with a BYE and its port is free again.
    let bye = lost.recv_until("BYE ");
    assert!(header(&bye, "CSeq").unwrap().ends_with("BYE"));
    let fourth = RawPeer::new(e.sip);
    let mut attempt = 0;
    let ok = common::wait_until("a port after Timer H", Duration::from_secs(5), || {
        // A new transaction each time: a refused INVITE's retransmission is refused again.
        attempt += 1;
        fourth.send(&fourth.invite(
            "200",
            &format!("fourth{attempt}@t"),
            &format!("z9hG4bK-fourth{attempt}"),
        ));
        let m = fourth.recv_final();
        m.starts_with("SIP/2.0 200").then_some(m)
    });
    assert_eq!(in_range(&ok), lost_port);
    // The waiting callers never had a final response.
    for p in &ringing {
        p.socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let finals: Vec<String> = std::iter::from_fn(|| p.recv())
            .filter(|m| m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 1"))
            .collect();
        assert!(finals.is_empty(), "{finals:#?}");
    }
}

/// An OPTIONS from a TCP/UDP peer at `me` padded with `fields` extra header fields of `len`
/// bytes each.
fn padded_options(me: SocketAddr, transport: &str, fields: usize, len: usize) -> String {
    let pad: String = (0..fields)
        .map(|n| format!("X-Pad-{n}: {}\r\n", "a".repeat(len)))
        .collect();
    format!(
        "OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} {me};branch=z9hG4bK-pad-{fields}-{len}\r\n\
         From: <sip:raw@{me}>;tag=p\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: pad-{fields}-{len}@t\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n{pad}Content-Length: 0\r\n\r\n"
    )
}

/// `sip.max_message_size` and the header count cap (256 fields), on UDP and on TCP: a
/// message over either is dropped and counted in `sip_malformed_total` (nothing is parsed to
/// answer it), one just within is answered.
#[test]
fn size_and_header_count_caps_hold_on_udp_and_tcp() {
    let e = spawn_engine_with(&[], &[("ACTIVEFLOW_SIP_MAX_MESSAGE_SIZE", "8192")]);
    let malformed = |t: &str| {
        scrape(
            e.metrics,
            &format!("sip_malformed_total{{transport=\"{t}\"}}"),
        )
    };

    // UDP.
    let peer = peer_from("127.0.0.1", e.sip);
    let me = peer.socket.local_addr().unwrap();
    let within = padded_options(me, "UDP", 240, 1);
    let too_many = padded_options(me, "UDP", 257, 1);
    let too_big = padded_options(me, "UDP", 10, 900);
    assert!(within.len() < 8192 && too_many.len() < 8192 && too_big.len() > 8192);
    peer.send(&too_many);
    peer.send(&too_big);
    peer.send(&within);
    let answers = drain(&peer);
    assert_eq!(answers.len(), 1, "{answers:#?}");
    assert!(header(&answers[0], "Call-ID")
        .unwrap()
        .starts_with("pad-240-"));
    assert_eq!(malformed("udp"), 2.0);

    // TCP: the header flood is dropped and the connection goes on; a message over the size
    // cap breaks the stream's framing and the connection is closed.
    let mut tcp = TcpStream::connect(e.sip).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = tcp.local_addr().unwrap();
    tcp.write_all(padded_options(me, "TCP", 257, 1).as_bytes())
        .unwrap();
    tcp.write_all(padded_options(me, "TCP", 240, 1).as_bytes())
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let n = tcp.read(&mut buf).unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
    assert!(header(&reply, "Call-ID").unwrap().starts_with("pad-240-"));
    assert_eq!(malformed("tcp"), 1.0);
    tcp.write_all(padded_options(me, "TCP", 10, 900).as_bytes())
        .unwrap();
    let closed = tcp.read(&mut buf);
    assert!(
        matches!(closed, Ok(0)) || closed.is_err(),
        "connection left open: {closed:?}"
    );
    assert_eq!(malformed("tcp"), 2.0);
    e.reaper.assert_no_panic();
}

/// A retransmission of an INVITE whose call has ended is absorbed by the linger table (RFC 3261
/// §17.2.1), not charged to its source's rate: over the rate it used to get 503 Retry-After 1.
#[test]
fn a_retransmitted_invite_of_an_ended_call_is_not_rate_limited() {
    let e = start(
        &[flow("bye", json!([{"type": "hangup"}]))],
        &[("100", "bye")],
        &[
            ("ACTIVEFLOW_SIP_MAX_NEW_CALLS_PER_SOURCE_PER_SECOND", "1"),
            ("ACTIVEFLOW_SIP_RATE_LIMIT_EXEMPT", ""),
            ("ACTIVEFLOW_SIP_T4_MS", "100"),
        ],
    );
    let p = RawPeer::new(e.sip);
    let invite = p.invite("100", "ended@t", "z9hG4bK-ended");
    p.send(&invite);
    let refused = p.recv_final();
    assert!(!refused.starts_with("SIP/2.0 2"), "{refused}");
    p.send(&non_2xx_ack(&p, &refused, "z9hG4bK-ended"));
    common::wait_until("the call to end", Duration::from_secs(20), || {
        e.calls.is_empty().then_some(())
    });
    // The INVITE's token has refilled a second later; it goes to an OPTIONS, and the
    // retransmission comes after it (the linger lasts 64·T1 = 32 s).
    std::thread::sleep(Duration::from_millis(1100));
    p.send(&out_of_dialog(&p, "OPTIONS", 0, "Max-Forwards: 70\r\n"));
    assert!(p.recv_until("SIP/2.0").starts_with("SIP/2.0 200"));
    p.send(&invite);
    let msgs = drain(&p);
    assert!(msgs.is_empty(), "{msgs:#?}");
}

/// The ACK of a non-2xx final response (RFC 3261 §17.1.1.3: the INVITE's branch, its To tag).
fn non_2xx_ack(peer: &RawPeer, response: &str, branch: &str) -> String {
    let port = peer.port();
    format!(
        "ACK sip:100@{engine} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch={branch}\r\n\
         From: <sip:raw@127.0.0.1:{port}>;tag=raw-ended@t\r\nTo: {to}\r\nCall-ID: ended@t\r\n\
         CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        engine = peer.engine,
        to = header(response, "To").unwrap(),
    )
}
