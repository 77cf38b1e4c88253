//! Outbound legs with real peers: a SIPp caller → the engine's `connect` → SIPp callees (UAS
//! scenarios), and `message_send` to a SIPp UAS through a trunk's outbound proxy. The callee's
//! SDP points its media at a socket of this test, so the relayed audio is checked byte for
//! byte against the caller's pcap.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use activeflow::engine::EndReason;
use common::uas::SippUas;
use common::{
    ended_one, flow, free_port, http, pcap_payloads, result_of, scenario, sipp, start_with,
    TestEngine,
};
use serde_json::{json, Value};

const PCAP: &str = "/usr/share/sip-tester/g711a.pcap";

fn engine(flows: &[Value], proxy: Option<u16>) -> TestEngine {
    let routes: Vec<(String, String)> = flows
        .iter()
        .map(|f| {
            let n = f["name"].as_str().unwrap().to_owned();
            (n.clone(), n)
        })
        .collect();
    let routes: Vec<(&str, &str)> = routes
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    // RTP ports come from tests/common's range, outside the benchmarks'.
    start_with(flows, &routes, &[], |config| {
        if let Some(port) = proxy {
            config.trunks[0].outbound_proxy = format!("127.0.0.1:{port}");
        }
    })
}

/// Received RTP: (payload type, sequence, ssrc, payload), until `quiet` passes after the last.
fn capture(socket: &UdpSocket, quiet: Duration, limit: Duration) -> Vec<(u8, u16, u32, Vec<u8>)> {
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
                let seq = u16::from_be_bytes([buf[2], buf[3]]);
                let ssrc = u32::from_be_bytes(buf[8..12].try_into().unwrap());
                got.push((buf[1] & 0x7f, seq, ssrc, buf[12..n].to_vec()));
            }
            _ if !got.is_empty() && last.elapsed() > quiet => break,
            _ => {}
        }
    }
    got
}

#[test]
fn connect_relays_the_callers_audio_cancels_the_loser_and_goes_on_when_the_callee_hangs_up() {
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let media_port = media.local_addr().unwrap().port();
    // The winner answers at once and hangs up after 8.5 s (the pcap lasts 7.08 s); the loser
    // rings until it is cancelled.
    let winner = SippUas::start_with_rtp("uas_answer_then_bye.xml", media_port, &["-d", "8500"]);
    let loser = SippUas::start_with_rtp("uas_ring_cancel.xml", free_port(), &[]);
    let f = flow(
        "bridge",
        json!([
            {"type": "connect", "option": {
                "source": {"type": "tel", "target": "+15550100"},
                "destinations": [
                    {"type": "sip", "target": loser.uri()},
                    {"type": "sip", "target": winner.uri()}
                ],
                "ring_timeout": 20000}},
            {"type": "variable_set", "option": {"key": "after", "value": "${connect.result}"}},
            {"type": "hangup"}
        ]),
    );
    let engine = engine(&[f], None);
    let mp = free_port().to_string();
    let caller = std::thread::spawn({
        let sip = engine.sip;
        move || {
            sipp(
                sip,
                "uac_g711a_wait_bye.xml",
                "bridge",
                &["-m", "1", "-mp", &mp],
            )
        }
    });
    let packets = capture(&media, Duration::from_millis(1500), Duration::from_secs(20));
    caller.join().unwrap().assert_all_ok(1);
    assert!(
        winner.succeeded(Duration::from_secs(20)),
        "the callee's scenario"
    );
    assert!(
        loser.succeeded(Duration::from_secs(20)),
        "the loser got CANCEL"
    );

    // The caller's audio reached the callee byte for byte: every relayed PCMA payload is one of
    // the pcap's, unchanged, in the pcap's order (payload passthrough, `media::relay`), on one
    // stream of the engine's own (contiguous sequence, one SSRC). The relay may lose frames (a
    // bridge not up yet, or its 64-frame queue full on a loaded machine) but never alter one:
    // at most 20% of the pcap may be missing, none of what arrives may differ.
    let sent = pcap_payloads(PCAP);
    assert!(sent.len() > 200, "{} payloads in the pcap", sent.len());
    let audio: Vec<_> = packets.iter().filter(|p| p.0 == 8).collect();
    let mut next = 0; // where in the pcap the next relayed payload may be found
    for (i, got) in audio.iter().enumerate() {
        let at = sent[next..]
            .iter()
            .position(|want| *want == got.3)
            .unwrap_or_else(|| {
                panic!(
                    "relayed payload {i} of {} (seq {}) is not the pcap's payload from index \
                     {next} on: altered or out of order",
                    audio.len(),
                    got.1
                )
            });
        next += at + 1;
    }
    assert!(
        audio.len() >= sent.len() * 80 / 100,
        "{} of the pcap's {} payloads relayed",
        audio.len(),
        sent.len()
    );
    assert!(
        audio.windows(2).all(|w| w[1].1 == w[0].1.wrapping_add(1)),
        "contiguous sequence"
    );
    assert!(audio.iter().all(|p| p.2 == audio[0].2), "one SSRC");

    let record = ended_one(&engine, Duration::from_secs(20));
    assert_eq!(record.end_reason, Some(EndReason::Completed));
    let result = result_of(&record, "connect");
    assert_eq!(result["result"], "answered", "{result}");
    assert_eq!(result["ended_by"], "callee", "{result}");
    assert_eq!(
        result["answered_destination"],
        winner_uri(&result),
        "{result}"
    );
    assert_eq!(result["destinations"][0]["status"], "cancelled", "{result}");
    assert!(result["duration_ms"].as_u64().unwrap() >= 8000, "{result}");
    assert_eq!(record.variables.get("after"), Some("answered"));
    let kinds: Vec<&str> = record
        .executed_actions
        .iter()
        .map(|e| e.action.kind.as_str())
        .collect();
    assert_eq!(kinds, ["connect", "variable_set", "hangup"]);
    // The engine lists the outgoing legs as calls too.
    let (_, calls) = http(engine.api, "GET", "/v1/calls", None);
    let outgoing = calls["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["direction"] == "outgoing")
        .count();
    assert_eq!(outgoing, 2, "{calls}");
}

fn winner_uri(result: &Value) -> Value {
    result["destinations"][1]["target"].clone()
}

#[test]
fn the_caller_hanging_up_sends_bye_to_the_callee_and_ends_the_activeflow() {
    let callee = SippUas::start_with_rtp("uas_answer_wait_bye.xml", free_port(), &[]);
    let f = flow(
        "bye",
        json!([
            {"type": "answer"},
            {"type": "connect", "option": {
                "destinations": [{"type": "sip", "target": callee.uri()}]}},
            {"type": "talk", "option": {"text": "never reached"}}
        ]),
    );
    let engine = engine(&[f], None);
    // uac_caller_bye hangs up 200 ms after its ACK.
    sipp(engine.sip, "uac_caller_bye.xml", "bye", &["-m", "1"]).assert_all_ok(1);
    assert!(
        callee.succeeded(Duration::from_secs(15)),
        "the callee got BYE"
    );
    let record = ended_one(&engine, Duration::from_secs(10));
    assert_eq!(record.end_reason, Some(EndReason::Hangup));
    let kinds: Vec<&str> = record
        .executed_actions
        .iter()
        .map(|e| e.action.kind.as_str())
        .collect();
    assert_eq!(kinds, ["answer", "connect"]);
}

#[test]
fn busy_and_no_answer_are_recorded_and_branchable() {
    for (scenario_name, outcome, ring_timeout) in [
        ("uas_busy.xml", "busy", 20_000),
        ("uas_ring_cancel.xml", "noanswer", 1_000),
    ] {
        let callee = SippUas::start_with_rtp(scenario_name, free_port(), &[]);
        let (on_busy, on_noanswer) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let f = flow(
            "fail",
            json!([
                {"type": "answer"},
                {"type": "connect", "option": {
                    "destinations": [{"type": "sip", "target": callee.uri()}],
                    "ring_timeout": ring_timeout}},
                {"type": "branch", "option": {"variable": "connect.result",
                    "target_ids": {"busy": on_busy, "noanswer": on_noanswer}}},
                {"type": "hangup"},
                {"id": on_busy, "type": "variable_set", "option": {"key": "took", "value": "busy"}},
                {"type": "hangup"},
                {"id": on_noanswer, "type": "variable_set",
                 "option": {"key": "took", "value": "noanswer"}},
                {"type": "hangup"}
            ]),
        );
        let engine = engine(&[f], None);
        sipp(engine.sip, "uac_engine_bye.xml", "fail", &["-m", "1"]).assert_all_ok(1);
        assert!(callee.succeeded(Duration::from_secs(15)), "{scenario_name}");
        let record = ended_one(&engine, Duration::from_secs(10));
        let result = result_of(&record, "connect");
        assert_eq!(result["result"], outcome, "{result}");
        assert_eq!(
            record.variables.get("took"),
            Some(outcome),
            "{scenario_name}"
        );
        if outcome == "busy" {
            assert_eq!(result["destinations"][0]["code"], 486, "{result}");
        }
    }
}

#[test]
fn message_send_reaches_a_sip_peer_through_the_trunks_outbound_proxy() {
    let peer = SippUas::start_with_rtp("uas_message.xml", free_port(), &[]);
    let engine = engine(&[], Some(peer.port));
    let body = json!({"actions": [
        {"type": "message_send", "option": {
            "source": {"type": "tel", "target": "+15550100"},
            "destinations": [{"type": "tel", "target": "+15550199"}],
            "text": "hello from activeflow"}}
    ]});
    let (status, created) = http(
        engine.api,
        "POST",
        "/v1/activeflows",
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{created}");
    assert!(
        peer.succeeded(Duration::from_secs(15)),
        "the peer got the MESSAGE"
    );
    let record = ended_one(&engine, Duration::from_secs(10));
    assert_eq!(record.end_reason, Some(EndReason::Completed));
    let result = result_of(&record, "message_send");
    assert_eq!(result["delivered"], 1, "{result}");
    assert_eq!(result["destinations"][0]["status"], 200, "{result}");
    assert_eq!(result["destinations"][0]["target"], "+15550199", "{result}");
}

#[test]
fn connect_without_a_route_fails_at_once_and_the_flow_goes_on() {
    // No trunk has an outbound proxy, so a tel destination cannot be placed.
    let f = flow(
        "noroute",
        json!([
            {"type": "answer"},
            {"type": "connect", "option": {"destinations": [{"type": "tel", "target": "+1555"}]}},
            {"type": "hangup"}
        ]),
    );
    let engine = engine(&[f], None);
    sipp(engine.sip, "uac_engine_bye.xml", "noroute", &["-m", "1"]).assert_all_ok(1);
    let record = ended_one(&engine, Duration::from_secs(10));
    let result = result_of(&record, "connect");
    assert_eq!(result["result"], "failed", "{result}");
    assert!(
        result["errors"]["+1555"]
            .as_str()
            .unwrap()
            .contains("outbound_proxy"),
        "{result}"
    );
    assert_eq!(record.end_reason, Some(EndReason::Completed));
}

/// RFC 3261 §18.1.1, §19.1.1: a `sip:` destination with `;transport=tcp` is placed over TCP:
/// SIPp as a TCP callee rings, answers, gets our ACK, hangs up with its own BYE and gets our
/// 200, all on the connection the engine opened; the caller (over UDP) is bridged meanwhile.
#[test]
fn a_leg_is_placed_over_tcp_when_the_uri_says_so() {
    let port = free_port();
    let dir =
        std::env::temp_dir().join(format!("activeflow-uas-tcp-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new("sipp")
        .current_dir(&dir)
        .args(["-sf", scenario("uas_answer_then_bye.xml").to_str().unwrap()])
        .args([
            "-t",
            "t1",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            "1",
        ])
        .args(["-key", "rtp_port", &free_port().to_string(), "-d", "500"])
        .args(["-nostdin", "-timeout", "30s", "-timeout_error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let f = flow(
        "tcp-leg",
        json!([
            {"type": "connect", "option": {"destinations": [
                {"type": "sip", "target": format!("sip:bob@127.0.0.1:{port};transport=tcp")}]}},
            {"type": "hangup"}
        ]),
    );
    let engine = engine(&[f], None);
    sipp(
        engine.sip,
        "uac_g711a_wait_bye.xml",
        "tcp-leg",
        &["-m", "1"],
    )
    .assert_all_ok(1);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "the TCP callee's scenario"
    );
    let record = ended_one(&engine, Duration::from_secs(10));
    let result = result_of(&record, "connect");
    assert_eq!(result["result"], "answered", "{result}");
    assert_eq!(result["ended_by"], "callee", "{result}");
    let (_, calls) = http(engine.api, "GET", "/v1/calls", None);
    let leg = calls["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["direction"] == "outgoing")
        .cloned()
        .unwrap();
    assert!(leg["peer"].as_str().unwrap().ends_with("/tcp"), "{leg}");
    let _ = std::fs::remove_dir_all(&dir);
}
