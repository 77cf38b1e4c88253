//! Streaming actions with SIPp callers: `external_media_start`/`stop` forks a SIPp caller's
//! tone (its pcap, RTP PCMU from its media port) to a test RTP echo server (RFC 3550 §5.1 on
//! what the host gets); `stream_echo` echoes for its `duration`; `mute`/`unmute` between beeps
//! silence what a SIPp caller hears, read from the test socket its SDP names. Every scenario
//! ends on the engine's BYE (RFC 3261 §15.1.1), which SIPp answers 200.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::conference::{decode, tone_power};
use crate::common::cpaas::LIMIT;
use crate::common::cpaas::{caller_listening, caller_playing, ms_between, Scratch};
use crate::common::extmedia::RtpEchoServer;
use crate::common::rtp::{rms, Packet};
use crate::common::{ended_one, executed_types, flow, result_of, start, wait_until, TestEngine};

/// The SIPp caller's tone: frequency and amplitude (Goertzel power of a lone tone: A²/4).
const TONE: f64 = 700.0;
const AMPLITUDE: f64 = 3000.0;

/// An engine routing `flow`'s name to it; loopback is a permitted media destination (the
/// `[http]` policy denies it by default, and the echo server is on 127.0.0.1).
fn engine_for(flow: Value) -> TestEngine {
    let name = flow["name"].as_str().unwrap().to_owned();
    start(
        &[flow],
        &[(name.as_str(), name.as_str())],
        &[("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32")],
    )
}

#[test]
fn external_media_forks_a_sipp_callers_tone_to_the_host_until_stopped() {
    let scratch = Scratch::new("em");
    let server = RtpEchoServer::start();
    let host = server.addr.to_string();
    let engine = engine_for(flow(
        "em",
        json!([{"type": "answer"},
            {"type": "external_media_start", "option": {"external_host": host}},
            {"type": "sleep", "option": {"duration": 2000}},
            {"type": "external_media_stop"},
            {"type": "hangup"}]),
    ));
    // 8 s of tone: SIPp still plays when the stream stops (2 s) and when the BYE comes.
    let pcap = scratch.tone_pcap(TONE, AMPLITUDE, 8);
    let caller = caller_playing(&engine, &scratch, &pcap, "em");
    caller.join().unwrap().assert_all_ok(1);
    let record = ended_one(&engine, LIMIT);
    assert_eq!(
        executed_types(&record),
        [
            "answer",
            "external_media_start",
            "sleep",
            "external_media_stop",
            "hangup"
        ]
    );
    let started = result_of(&record, "external_media_start");
    let stopped = result_of(&record, "external_media_stop");
    println!("started {started}\nstopped {stopped}");
    assert_eq!(started["external_address"], json!(host), "{started}");
    assert_eq!(stopped["external_media_id"], started["external_media_id"]);
    assert_eq!(stopped["ended_by"], "stopped", "{stopped}");
    let count = |key: &str| {
        stopped[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {stopped}"))
    };
    // 2 s of a 20 ms stream is 100 packets; half is plenty on a loaded machine.
    assert!(count("sent_packets") >= 50, "{stopped}");
    // The echo came back from the host's address and was played to the SIPp caller.
    assert!(count("received_packets") > 0, "{stopped}");
    assert!(count("played_packets") > 0, "{stopped}");
    assert_eq!(count("rejected_packets"), 0, "{stopped}");

    // The host got exactly what the engine counted: nothing after the stop, though SIPp went
    // on playing its tone for seconds.
    let sent = count("sent_packets") as usize;
    wait_until(
        "the host to have every packet",
        Duration::from_secs(2),
        || (server.count() >= sent).then_some(()),
    );
    std::thread::sleep(Duration::from_millis(200));
    let at_host: Vec<Packet> = server.packets();
    assert_eq!(
        at_host.len(),
        sent,
        "nothing reaches the host after the stop"
    );
    let local: std::net::SocketAddr = started["local_address"].as_str().unwrap().parse().unwrap();
    assert_eq!(server.sources(), vec![local], "from the reported address");
    // RFC 3550 §5.1 / RFC 3551 §4.5.14: PCMU, one SSRC, consecutive sequence numbers.
    assert!(at_host.iter().all(|p| p.payload_type == 0), "PCMU only");
    assert!(
        at_host.iter().all(|p| p.ssrc == at_host[0].ssrc),
        "one SSRC"
    );
    for w in at_host.windows(2) {
        assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1), "sequence");
    }
    // The spectrum is SIPp's tone: its power near a lone tone's, another frequency's nil.
    let pcm = decode(&at_host, 0);
    let lone = AMPLITUDE * AMPLITUDE / 4.0;
    let (own, other) = (tone_power(&pcm, TONE), tone_power(&pcm, 1500.0));
    println!("at the host: {TONE} Hz {own}, 1500 Hz {other} (a lone tone: {lone})");
    assert!(
        own > lone / 9.0,
        "the host hears {TONE} Hz: {own} (lone {lone})"
    );
    assert!(other < own / 1000.0, "only the tone: {other} vs {own}");
}

#[test]
fn stream_echo_with_a_sipp_caller_echoes_for_its_duration() {
    let scratch = Scratch::new("se");
    let engine = engine_for(flow(
        "se",
        json!([{"type": "answer"},
            {"type": "stream_echo", "option": {"duration": 2000}},
            {"type": "hangup"}]),
    ));
    let pcap = scratch.tone_pcap(TONE, AMPLITUDE, 8);
    let caller = caller_playing(&engine, &scratch, &pcap, "se");
    caller.join().unwrap().assert_all_ok(1);
    let record = ended_one(&engine, LIMIT);
    assert_eq!(executed_types(&record), ["answer", "stream_echo", "hangup"]);
    let echo = result_of(&record, "stream_echo");
    println!("stream_echo: {echo}");
    // SIPp sends every 20 ms for the whole echo: about 100 packets in 2 s, never more than
    // the duration holds.
    let echoed = echo["echoed_packets"].as_u64().unwrap();
    assert!((50..=110).contains(&echoed), "{echo}");
    let lasted = ms_between(&record, 1, 2);
    assert!(
        (1950..6000).contains(&lasted),
        "stream_echo lasted {lasted} ms"
    );
}

/// 1 kHz power per 20 ms packet above this is the beep (−10 dBFS: about 2.7e7).
const BEEP_POWER: f64 = 1e6;

#[test]
fn mute_and_unmute_between_prompts_silence_what_a_sipp_caller_hears() {
    let sink = RtpEchoServer::sink();
    let engine = engine_for(flow(
        "mute",
        json!([{"type": "answer"},
            {"type": "beep", "option": {"duration": 400}},
            {"type": "mute"},
            {"type": "beep", "option": {"duration": 400}},
            {"type": "unmute"},
            {"type": "beep", "option": {"duration": 400}},
            {"type": "hangup"}]),
    ));
    let caller = caller_listening(&engine, &sink, "mute");
    caller.join().unwrap().assert_all_ok(1);
    let record = ended_one(&engine, LIMIT);
    assert_eq!(
        executed_types(&record),
        ["answer", "beep", "mute", "beep", "unmute", "beep", "hangup"]
    );
    // `direction` defaults to both.
    let state = |kind: &str| result_of(&record, kind);
    assert_eq!(state("mute"), json!({"mute_in": true, "mute_out": true}));
    assert_eq!(
        state("unmute"),
        json!({"mute_in": false, "mute_out": false})
    );

    // What the caller heard: the first and last beeps, and silence in place of the muted one.
    let heard: Vec<Packet> = sink
        .packets()
        .into_iter()
        .filter(|p| p.payload_type == 0)
        .collect();
    let loud: Vec<bool> = heard
        .iter()
        .map(|p| tone_power(&decode(std::slice::from_ref(p), 0), 1000.0) > BEEP_POWER)
        .collect();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, l) in loud.iter().enumerate() {
        match runs.last_mut() {
            Some((_, end)) if *l && *end + 1 == i => *end = i,
            _ if *l => runs.push((i, i)),
            _ => {}
        }
    }
    println!(
        "beep runs (packet indexes) {runs:?} of {} packets",
        heard.len()
    );
    assert_eq!(runs.len(), 2, "two beeps heard, not three: runs {runs:?}");
    for (start, end) in &runs {
        let n = end - start + 1;
        assert!(
            (12..=22).contains(&n),
            "a 400 ms beep is 20 packets: {runs:?}"
        );
    }
    let gap = &heard[runs[0].1 + 1..runs[1].0];
    let quiet_ms = heard[runs[1].0].at.duration_since(heard[runs[0].1].at);
    assert!(
        quiet_ms >= Duration::from_millis(300),
        "the muted beep's time passed in silence: {quiet_ms:?}"
    );
    // Muted, the caller gets silence in place of the beep: packets still flow.
    assert!(gap.len() >= 10, "{} packets while muted", gap.len());
    assert!(rms(&decode(gap, 0)) < 50.0, "silence while muted");
}
