//! Early media, in-band ringback and 100rel with real peers: a SIPp caller → the engine's
//! `connect` → a SIPp callee. The caller's SDP points its media at a socket of this test, so
//! what the caller hears before its call (or the callee) is answered is counted packet by
//! packet against the engine's own answer time.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant, SystemTime};

use activeflow::engine::Status;
use common::uas::SippUas;
use common::{flow, http, pcap_payloads, sipp, start, TestEngine};
use serde_json::{json, Value};

/// A SIPp callee on its own SIP port and a block of media ports (SIPp binds its media port
/// and the three above it: RTCP, video).
fn callee(name: &str) -> SippUas {
    let media = common::reserve_ports(4).release().to_string();
    SippUas::start(name, &["-mp", &media])
}

/// One call at a time: SIPp callees' media port blocks and the tests' single ports come
/// from one range, and the timing checks want a quiet machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// RTP packets received: (arrival, payload type, payload), until `quiet` after the last.
fn capture(socket: &UdpSocket, quiet: Duration, limit: Duration) -> Vec<(SystemTime, u8, Vec<u8>)> {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut last = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        match socket.recv_from(&mut buf) {
            Ok((n, _)) if n > 12 => {
                last = Instant::now();
                got.push((SystemTime::now(), buf[1] & 0x7f, buf[12..n].to_vec()));
            }
            _ if !got.is_empty() && last.elapsed() > quiet => break,
            _ => {}
        }
    }
    got
}

/// When the engine answered the call of `direction` (its record's `tm_answer`).
fn answered_at(engine: &TestEngine, direction: &str) -> SystemTime {
    let (_, calls) = http(engine.api, "GET", "/v1/calls", None);
    let call = calls["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["direction"] == direction)
        .cloned()
        .unwrap_or_else(|| panic!("no {direction} call in {calls}"));
    let at = call["tm_answer"]
        .as_str()
        .unwrap_or_else(|| panic!("{call}"));
    SystemTime::from(chrono::DateTime::parse_from_rfc3339(at).unwrap())
}

/// Runs `caller` (a SIPp UAC scenario with media at a test socket) into flow `name`; gives
/// the RTP the caller's socket received.
fn call(
    engine: &TestEngine,
    caller: &str,
    name: &str,
    hold_ms: &str,
) -> Vec<(SystemTime, u8, Vec<u8>)> {
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = media.local_addr().unwrap().port().to_string();
    let run = std::thread::spawn({
        let (sip, caller, name, hold) = (
            engine.sip,
            caller.to_owned(),
            name.to_owned(),
            hold_ms.to_owned(),
        );
        move || {
            sipp(
                sip,
                &caller,
                &name,
                &["-m", "1", "-key", "rtp_port", &port, "-d", &hold],
            )
        }
    });
    let packets = capture(&media, Duration::from_millis(800), Duration::from_secs(15));
    run.join().unwrap().assert_all_ok(1);
    packets
}

fn connect_flow(name: &str, callee: &SippUas, early_media: bool, answer_first: bool) -> Value {
    let mut actions = vec![json!({"type": "connect", "option": {
        "destinations": [{"type": "sip", "target": callee.uri()}],
        "ring_timeout": 10000,
        "early_media": early_media}})];
    if answer_first {
        actions.insert(0, json!({"type": "answer"}));
    }
    flow(name, Value::Array(actions))
}

fn ended(engine: &TestEngine) {
    engine.wait_for("the activeflow to end", Duration::from_secs(10), |all| {
        !all.is_empty() && all.iter().all(|a| a.status == Status::Ended)
    });
}

/// RFC 3960 §3 (gateway model), RFC 3261 §13.2.1, §13.3.1.1: the callee's 183 with SDP is
/// relayed as our 183 with SDP to the unanswered caller, and its audio (the pcap, PCMA)
/// reaches the caller before anyone answers; the answer keeps the same session.
#[test]
fn early_media_reaches_the_caller_before_the_answer() {
    let _serial = serial();
    let callee = callee("uas_183_early_media.xml");
    let engine = start(
        &[connect_flow("early", &callee, true, false)],
        &[("early", "early")],
        &[],
    );
    let packets = call(&engine, "uac_early_media.xml", "early", "1000");
    assert!(
        callee.succeeded(Duration::from_secs(10)),
        "the callee's scenario"
    );
    let answer = answered_at(&engine, "incoming");
    let before: Vec<_> = packets.iter().filter(|p| p.0 < answer).collect();
    // The callee plays 1.5 s before its 200: ~75 packets of 20 ms; allow for start-up.
    assert!(
        before.len() >= 25,
        "{} of {} packets before the answer",
        before.len(),
        packets.len()
    );
    assert!(
        before.iter().all(|p| p.1 == 8),
        "the callee's PCMA, relayed"
    );
    ended(&engine);
}

/// An answered caller whose callee has early media hears that media, relayed, not our
/// ringback (RFC 3960 §3: the early session is the callee's): every packet before the callee
/// answers is one of the callee's pcap payloads.
#[test]
fn an_answered_caller_hears_the_callees_early_media_not_ringback() {
    let _serial = serial();
    let callee = callee("uas_183_early_media.xml");
    let engine = start(
        &[connect_flow("relay", &callee, true, true)],
        &[("relay", "relay")],
        &[],
    );
    let packets = call(&engine, "uac_rtp_wait.xml", "relay", "2500");
    assert!(
        callee.succeeded(Duration::from_secs(10)),
        "the callee's scenario"
    );
    let callee_answered = answered_at(&engine, "outgoing");
    let pcap = pcap_payloads("/usr/share/sip-tester/g711a.pcap");
    let before: Vec<_> = packets.iter().filter(|p| p.0 < callee_answered).collect();
    assert!(
        before.len() >= 25,
        "{} packets before the callee answered",
        before.len()
    );
    let foreign = before
        .iter()
        .filter(|p| p.1 != 8 || !pcap.contains(&p.2))
        .count();
    assert_eq!(foreign, 0, "only the callee's audio, no ringback");
    ended(&engine);
}

/// RFC 3960 §3 with a forked `connect` (RFC 3261 §13.2.1: one early dialog per callee): the
/// first callee's early media wins until an answer; the second's (RFC 2833 events, PT 101, from
/// 300 ms on) never reaches the caller, and it is cancelled when the first answers.
#[test]
fn the_first_early_media_wins_over_a_second_callee() {
    let _serial = serial();
    let first = callee("uas_183_early_media.xml");
    let second = callee("uas_183_late_cancel.xml");
    let f = flow(
        "fork",
        json!([{"type": "connect", "option": {
            "destinations": [{"type": "sip", "target": first.uri()},
                             {"type": "sip", "target": second.uri()}],
            "ring_timeout": 10000,
            "early_media": true}}]),
    );
    let engine = start(&[f], &[("fork", "fork")], &[]);
    let packets = call(&engine, "uac_early_media.xml", "fork", "1000");
    assert!(
        first.succeeded(Duration::from_secs(10)),
        "the first callee answered"
    );
    assert!(
        second.succeeded(Duration::from_secs(10)),
        "the second was cancelled"
    );
    let answer = answered_at(&engine, "incoming");
    let before = packets.iter().filter(|p| p.0 < answer && p.1 == 8).count();
    assert!(before >= 25, "{before} PCMA packets before the answer");
    let events = packets.iter().filter(|p| p.1 == 101).count();
    assert_eq!(events, 0, "the second callee's early media was relayed");
    ended(&engine);
}

/// RFC 3262 §3, §4, §7.2, both ways: the callee's 183 requires 100rel, so the engine PRACKs it
/// (`RAck: 1 1 INVITE`, checked by the callee's scenario); the caller supports 100rel, so our
/// 183 comes reliably (Require + RSeq, checked by the caller's scenario), it PRACKs it, and
/// only then the 200 comes. The early audio reaches the caller before its answer.
#[test]
fn reliable_early_media_both_ways() {
    let _serial = serial();
    let callee = callee("uas_183_100rel.xml");
    let engine = start(
        &[connect_flow("rel", &callee, true, false)],
        &[("rel", "rel")],
        &[],
    );
    let packets = call(&engine, "uac_100rel.xml", "rel", "1000");
    assert!(
        callee.succeeded(Duration::from_secs(10)),
        "the callee got its PRACK"
    );
    let answer = answered_at(&engine, "incoming");
    let before = packets.iter().filter(|p| p.0 < answer).count();
    assert!(
        before >= 25,
        "{before} of {} packets before the answer",
        packets.len()
    );
    ended(&engine);
}

/// RFC 3264 §5 (delayed offer) with RFC 3960 §3: a caller whose INVITE has no SDP cannot
/// get early media (its relay never starts), yet once the callee answers the caller hears it:
/// the answer starts a fresh relay (the callee's pcap plays on ~5 s past its 200).
#[test]
fn a_late_offer_caller_hears_the_early_callee_once_answered() {
    let _serial = serial();
    let callee = callee("uas_183_early_media.xml");
    let engine = start(
        &[connect_flow("late", &callee, true, false)],
        &[("late", "late")],
        &[],
    );
    let packets = call(&engine, "uac_late_offer_early.xml", "late", "2000");
    assert!(
        callee.succeeded(Duration::from_secs(10)),
        "the callee's scenario"
    );
    let answer = answered_at(&engine, "incoming");
    let after = packets.iter().filter(|p| p.0 > answer).count();
    assert!(
        after >= 25,
        "{after} of {} packets after the answer",
        packets.len()
    );
    ended(&engine);
}

/// In-band ringback (ITU-T E.180 US cadence): the flow answered the caller, so a 180 from the
/// callee cannot reach it as SIP; it hears a tone (non-silent PCMA) until the callee answers.
#[test]
fn an_answered_caller_hears_ringback_until_the_callee_answers() {
    let _serial = serial();
    let callee = callee("uas_180_then_answer.xml");
    let engine = start(
        &[connect_flow("ring", &callee, true, true)],
        &[("ring", "ring")],
        &[],
    );
    let packets = call(&engine, "uac_rtp_wait.xml", "ring", "3000");
    assert!(
        callee.succeeded(Duration::from_secs(10)),
        "the callee's scenario"
    );
    let callee_answered = answered_at(&engine, "outgoing");
    // A-law silence is 0xD5/0x55; a tone's payload takes many values.
    let tone = |p: &(SystemTime, u8, Vec<u8>)| {
        let mut values: Vec<u8> = p.2.clone();
        values.sort_unstable();
        values.dedup();
        values.len() > 8
    };
    let before: Vec<_> = packets.iter().filter(|p| p.0 < callee_answered).collect();
    let tones = before.iter().filter(|p| tone(p)).count();
    // The callee rings 2 s: the cadence's first 2 s are tone (~100 packets).
    assert!(
        tones >= 40,
        "{tones} tone packets of {} before the callee answered",
        before.len()
    );
    let after = packets
        .iter()
        .filter(|p| p.0 > callee_answered + Duration::from_millis(300))
        .filter(|p| tone(p))
        .count();
    assert_eq!(
        after, 0,
        "ringback stops when the callee answers (it sends no audio)"
    );
    ended(&engine);
}
