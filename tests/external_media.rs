//! External media over real RTP: a caller (raw SIP + its own RTP socket) sends a tone, the engine
//! forks it as RTP (RFC 3550) to a test echo server, the server echoes it, and the caller gets
//! its own tone back. `external_media_stop` and hangup end the stream; `mute` in/out silence
//! each direction; `stream_echo` returns the caller's audio; bad options are refused by name.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::extmedia::{RtpEchoServer, WsEchoServer};
use common::rtp::{rms, tone_frequency, ulaw_to_linear, ulaw_tone, MediaCaller, Packet};
use common::{flow, http, start, TestEngine};
use serde_json::{json, Value};

/// The caller's SSRC (tests/common/rtp.rs sends every packet with it).
const CALLER_SSRC: u32 = 0x1234_5678;

fn engine(flows: &[Value], extra: &[(&str, &str)]) -> TestEngine {
    let names: Vec<String> = flows
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    let routes: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), n.as_str())).collect();
    // Flows' destinations follow the [http] policy, which denies loopback by default.
    let mut env = vec![("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32")];
    env.extend_from_slice(extra);
    start(flows, &routes, &env)
}

/// The result of the running activeflow's `n`th action of type `kind`, once it has one with
/// `key` (or an error).
fn result_when(engine: &TestEngine, kind: &str, n: usize, key: &str) -> Value {
    common::wait_until(
        &format!("{kind} #{n} to report {key}"),
        Duration::from_secs(10),
        || {
            let all = engine.activeflows();
            let a = all.first()?;
            let r = a
                .executed_actions
                .iter()
                .filter(|e| e.action.kind == kind)
                .nth(n)?
                .result
                .clone()?;
            (r.get(key).is_some() || r.get("error").is_some()).then_some(r)
        },
    )
}

/// Waits until the running activeflow has executed `count` actions of type `kind`.
fn wait_executed(engine: &TestEngine, kind: &str, count: usize) {
    engine.wait_for(&format!("{count} {kind}"), Duration::from_secs(10), |all| {
        all.first().is_some_and(|a| {
            a.executed_actions
                .iter()
                .filter(|e| e.action.kind == kind)
                .count()
                >= count
        })
    });
}

fn continue_flow(engine: &TestEngine) {
    let id = engine.activeflows()[0].id;
    let path = format!("/v1/activeflows/{id}/continue");
    assert_eq!(http(engine.api, "POST", &path, None).0, 200);
}

/// Sends `count` 20 ms packets of a 600 Hz tone, paced like a real caller.
fn send_tone(caller: &MediaCaller, first_seq: u16, count: u16) {
    for i in 0..count {
        let payload = ulaw_tone(600.0, 8000.0, 160, usize::from(i) * 160);
        let ts = 1000 + u32::from(first_seq + i) * 160;
        caller.send_rtp(0, i == 0, first_seq + i, ts, &payload);
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn decode(packets: &[Packet]) -> Vec<i16> {
    packets
        .iter()
        .flat_map(|p| p.payload.iter().map(|b| ulaw_to_linear(*b)))
        .collect()
}

fn assert_tone(packets: &[Packet], what: &str) {
    let pcm = decode(packets);
    let f = tone_frequency(&pcm);
    assert!(rms(&pcm) > 2000.0, "{what}: audible (rms {})", rms(&pcm));
    assert!((580.0..620.0).contains(&f), "{what}: 600 Hz, got {f}");
}

fn assert_silent(packets: &[Packet], what: &str) {
    assert!(!packets.is_empty(), "{what}: packets still flow");
    let pcm = decode(packets);
    assert!(rms(&pcm) < 50.0, "{what}: silence, rms {}", rms(&pcm));
}

/// RFC 3550 §5.1 on the stream the host gets: PCMU, the engine's own SSRC, sequence numbers
/// stepping by one, timestamps by 160 (20 ms at 8 kHz, RFC 3551 §4.5), the caller's audio.
#[test]
fn rtp_stream_carries_the_callers_tone_both_ways_until_stopped() {
    let server = RtpEchoServer::start();
    let host = server.addr.to_string();
    let f = flow(
        "em",
        json!([{"type": "answer"},
            {"type": "external_media_start", "option": {"external_host": host}},
            {"type": "block"}, {"type": "external_media_stop"}, {"type": "block"},
            {"type": "hangup"}]),
    );
    let engine = engine(&[f], &[]);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("em", 0);
    let started = result_when(&engine, "external_media_start", 0, "local_address");
    assert_eq!(started["external_address"], json!(host), "{started}");
    let local: std::net::SocketAddr = started["local_address"].as_str().unwrap().parse().unwrap();
    assert_ne!(
        Some(local),
        caller.engine_rtp,
        "its own port, not the call's"
    );

    send_tone(&caller, 0, 50);
    let back = caller.capture(Duration::from_millis(300), Duration::from_secs(3));
    let sent = server.packets();
    assert_eq!(
        server.sources(),
        vec![local],
        "from the reported local address"
    );
    assert!(
        sent.len() >= 48,
        "the host got the tone: {} packets",
        sent.len()
    );
    assert!(sent
        .iter()
        .all(|p| p.payload_type == 0 && p.payload.len() == 160));
    assert!(sent
        .iter()
        .all(|p| p.ssrc == sent[0].ssrc && p.ssrc != CALLER_SSRC));
    for w in sent.windows(2) {
        assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1), "sequence");
        assert_eq!(
            w[1].timestamp.wrapping_sub(w[0].timestamp),
            160,
            "timestamp"
        );
    }
    assert_eq!(sent[5].payload, ulaw_tone(600.0, 8000.0, 160, 5 * 160));
    assert_tone(&sent, "at the host");

    let echoed: Vec<Packet> = back.into_iter().filter(|p| p.payload_type == 0).collect();
    assert!(
        echoed.len() >= 48,
        "the caller got it back: {}",
        echoed.len()
    );
    assert!(echoed
        .iter()
        .all(|p| p.ssrc != sent[0].ssrc && p.ssrc != CALLER_SSRC));
    assert_tone(&echoed, "back at the caller");
    assert_eq!(echoed[5].payload, sent[5].payload, "unchanged");

    continue_flow(&engine);
    let stopped = result_when(&engine, "external_media_stop", 0, "sent_packets");
    assert_eq!(stopped["external_media_id"], started["external_media_id"]);
    assert_eq!(stopped["ended_by"], "stopped");
    assert!(
        stopped["received_packets"].as_u64().unwrap() >= 48,
        "{stopped}"
    );
    let at_stop = server.count();
    send_tone(&caller, 50, 25);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        server.count(),
        at_stop,
        "nothing reaches the host after the stop"
    );
    assert_eq!(stopped["sent_packets"].as_u64().unwrap(), at_stop as u64);

    continue_flow(&engine);
    caller.expect_bye();
    let done = common::ended_one(&engine, Duration::from_secs(10));
    assert_eq!(common::result_of(&done, "external_media_start"), started);
    let variables = &done.variables;
    assert_eq!(
        variables.get("external_media.id"),
        started["external_media_id"].as_str(),
        "{variables:?}"
    );
    assert_eq!(
        variables.get("external_media.local_address"),
        Some(local.to_string().as_str())
    );
}

/// The WebSocket variant (RFC 6455): a first text frame of JSON metadata, then binary frames of
/// 20 ms µ-law (160 bytes) both ways; the host's frames are played to the caller on the 20 ms
/// clock. `external_media_stop` closes the connection.
#[test]
fn websocket_stream_carries_the_callers_tone_both_ways_until_stopped() {
    let server = WsEchoServer::start();
    let f = flow(
        "emw",
        json!([{"type": "answer"},
            {"type": "external_media_start", "option": {"external_host": server.url,
                "encapsulation": "websocket", "data": "${call.id}"}},
            {"type": "block"}, {"type": "external_media_stop"}, {"type": "block"},
            {"type": "hangup"}]),
    );
    let engine = engine(&[f], &[]);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("emw", 0);
    let started = result_when(&engine, "external_media_start", 0, "local_address");
    assert_eq!(started["encapsulation"], "websocket", "{started}");
    let texts = server.texts();
    assert_eq!(texts.len(), 1, "{texts:?}");
    let meta: Value = serde_json::from_str(&texts[0]).unwrap();
    let activeflow_id = engine.activeflows()[0].id.to_string();
    assert_eq!(meta["event"], "start");
    assert_eq!(meta["format"], "ulaw");
    assert_eq!(meta["external_media_id"], started["external_media_id"]);
    assert_eq!(meta["activeflow_id"], json!(activeflow_id));
    let call_id = meta["call_id"].as_str().unwrap();
    assert!(!call_id.is_empty());
    assert_eq!(meta["data"], json!(call_id), "data, substituted");

    send_tone(&caller, 0, 50);
    let back = caller.capture(Duration::from_millis(300), Duration::from_secs(3));
    let frames = server.frames();
    assert!(
        frames.len() >= 48,
        "the host got the tone: {} frames",
        frames.len()
    );
    assert!(frames.iter().all(|f| f.len() == 160), "20 ms of µ-law each");
    assert_eq!(frames[5], ulaw_tone(600.0, 8000.0, 160, 5 * 160));
    let as_packets: Vec<Packet> = back
        .iter()
        .filter(|p| p.payload_type == 0)
        .cloned()
        .collect();
    assert!(
        as_packets.len() >= 48,
        "the caller got it back: {}",
        as_packets.len()
    );
    assert_tone(&as_packets, "back at the caller");
    for w in as_packets.windows(2) {
        assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1), "sequence");
        assert_eq!(
            w[1].timestamp.wrapping_sub(w[0].timestamp),
            160,
            "timestamp"
        );
    }

    continue_flow(&engine);
    let stopped = result_when(&engine, "external_media_stop", 0, "sent_packets");
    assert_eq!(stopped["ended_by"], "stopped");
    common::wait_until("the connection to close", Duration::from_secs(5), || {
        server.closed().then_some(())
    });
    let at_stop = server.count();
    send_tone(&caller, 50, 10);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        server.count(),
        at_stop,
        "nothing reaches the host after the stop"
    );
    continue_flow(&engine);
    caller.expect_bye();
}

/// The caller hanging up closes the WebSocket connection.
#[test]
fn hangup_closes_the_websocket() {
    let server = WsEchoServer::start();
    let f = flow(
        "emwh",
        json!([{"type": "answer"},
            {"type": "external_media_start", "option": {"external_host": server.url,
                "transport": "websocket"}},
            {"type": "block"}]),
    );
    let engine = engine(&[f], &[]);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("emwh", 0);
    let started = result_when(&engine, "external_media_start", 0, "local_address");
    assert_eq!(started["encapsulation"], "websocket", "{started}");
    send_tone(&caller, 0, 10);
    common::wait_until("frames at the host", Duration::from_secs(5), || {
        (server.count() >= 8).then_some(())
    });
    assert!(!server.closed());
    caller.bye();
    common::wait_until("the connection to close", Duration::from_secs(5), || {
        server.closed().then_some(())
    });
    let done = common::ended_one(&engine, Duration::from_secs(10));
    assert_eq!(done.end_reason, Some(activeflow::engine::EndReason::Hangup));
}

/// The caller hanging up ends the stream and gives its port back: with only two RTP ports, a
/// second call with external media works only if the first's were both returned.
#[test]
fn hangup_ends_the_stream_and_returns_its_port() {
    let server = RtpEchoServer::start();
    let f = flow(
        "emh",
        json!([{"type": "answer"},
            {"type": "external_media_start", "option": {"external_host": server.addr.to_string()}},
            {"type": "block"}]),
    );
    let slice = common::rtp_port_range();
    let first: u16 = slice.split('-').next().unwrap().parse().unwrap();
    let first = first + first % 2;
    let two_ports = format!("{first}-{}", first + 3);
    let engine = engine(&[f], &[("ACTIVEFLOW_MEDIA_RTP_PORTS", &two_ports)]);
    for round in 0..2 {
        let mut caller = MediaCaller::new(engine.sip);
        caller.call("emh", 0);
        engine.wait_for("the call's activeflow", Duration::from_secs(5), |all| {
            all.iter()
                .filter(|a| a.status == activeflow::engine::Status::Running)
                .count()
                == 1
        });
        let running = || {
            engine
                .activeflows()
                .into_iter()
                .find(|a| a.status == activeflow::engine::Status::Running)
        };
        let started = common::wait_until("the stream", Duration::from_secs(10), || {
            running()?
                .executed_actions
                .iter()
                .find(|e| e.action.kind == "external_media_start")?
                .result
                .clone()
        });
        assert!(
            started.get("local_address").is_some(),
            "round {round}: {started}"
        );
        let before = server.count();
        send_tone(&caller, 0, 10);
        std::thread::sleep(Duration::from_millis(100));
        assert!(server.count() >= before + 8, "round {round}: streaming");
        caller.bye();
        engine.wait_for("the hangup", Duration::from_secs(10), |all| {
            all.iter()
                .all(|a| a.status == activeflow::engine::Status::Ended)
        });
        let at_hangup = server.count();
        send_tone(&caller, 10, 10);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(server.count(), at_hangup, "round {round}: the stream ended");
    }
}

/// `mute` in: the host hears silence (a stream without voice); `mute` out: the caller hears
/// silence in place of what the host sends back.
#[test]
fn mute_in_silences_the_host_and_mute_out_silences_the_caller() {
    let server = RtpEchoServer::start();
    let f = flow(
        "emm",
        json!([{"type": "answer"},
            {"type": "external_media_start", "option": {"external_host": server.addr.to_string()}},
            {"type": "mute", "option": {"direction": "in"}}, {"type": "block"},
            {"type": "unmute", "option": {"direction": "in"}},
            {"type": "mute", "option": {"direction": "out"}}, {"type": "block"},
            {"type": "hangup"}]),
    );
    let engine = engine(&[f], &[]);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("emm", 0);
    result_when(&engine, "external_media_start", 0, "local_address");
    let muted = result_when(&engine, "mute", 0, "mute_in");
    assert_eq!(muted, json!({"mute_in": true, "mute_out": false}));
    wait_executed(&engine, "block", 1);
    send_tone(&caller, 0, 25);
    std::thread::sleep(Duration::from_millis(200));
    let heard = server.packets();
    assert!(heard.len() >= 20, "{} packets", heard.len());
    assert_silent(&heard, "mute in, at the host");
    caller.capture(Duration::from_millis(100), Duration::from_millis(500));

    continue_flow(&engine);
    wait_executed(&engine, "block", 2);
    let unmuted = result_when(&engine, "unmute", 0, "mute_in");
    assert_eq!(unmuted, json!({"mute_in": false, "mute_out": false}));
    let mute_out = result_when(&engine, "mute", 1, "mute_out");
    assert_eq!(mute_out, json!({"mute_in": false, "mute_out": true}));
    let before = server.count();
    send_tone(&caller, 25, 25);
    let back = caller.capture(Duration::from_millis(300), Duration::from_secs(2));
    let heard = server.packets().split_off(before);
    assert_tone(&heard, "unmuted in, at the host");
    let back: Vec<Packet> = back.into_iter().filter(|p| p.payload_type == 0).collect();
    assert!(back.len() >= 20, "{} packets back", back.len());
    assert_silent(&back, "mute out, at the caller");

    continue_flow(&engine);
    caller.expect_bye();
}

#[test]
fn stream_echo_returns_the_callers_audio() {
    let f = flow(
        "se",
        json!([{"type": "answer"}, {"type": "stream_echo", "option": {"duration": 1500}},
            {"type": "hangup"}]),
    );
    let engine = engine(&[f], &[]);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("se", 0);
    // Echo starts a moment after the action is recorded: prime it until a primer comes back.
    let silence = [0xffu8; 160];
    let mut primers = 0u16;
    common::wait_until("the echo to start", Duration::from_secs(5), || {
        caller.send_rtp(
            0,
            primers == 0,
            10 + primers,
            u32::from(primers) * 160,
            &silence,
        );
        primers += 1;
        let back = caller.capture(Duration::from_millis(20), Duration::from_millis(60));
        back.iter().any(|p| p.payload == silence).then_some(())
    });
    send_tone(&caller, 100, 20);
    let back = caller.capture(Duration::from_millis(300), Duration::from_secs(3));
    caller.expect_bye();
    let echoed: Vec<Packet> = back
        .into_iter()
        .filter(|p| p.payload_type == 0 && p.payload != silence)
        .collect();
    assert_eq!(echoed.len(), 20, "every packet came back");
    assert_tone(&echoed, "echoed");
    let done = common::ended_one(&engine, Duration::from_secs(10));
    let r = common::result_of(&done, "stream_echo");
    assert!(r["echoed_packets"].as_u64().unwrap() >= 20, "{r}");
}

/// A bad option is a 400 naming the action index and field; a destination the policy denies
/// (loopback, by default) fails the action by itself, and nothing is sent there.
#[test]
fn bad_options_and_denied_destinations_are_refused() {
    let server = RtpEchoServer::start();
    let host = server.addr.to_string();
    let f = flow(
        "emd",
        json!([{"type": "answer"},
            {"type": "external_media_start", "option": {"external_host": host}},
            {"type": "mute", "option": {"direction": "out"}},
            {"type": "hangup"}]),
    );
    let routes = [("emd", "emd")];
    let engine = start(&[f], &routes, &[]);
    for (option, field) in [
        (json!({}), "actions[0].option.external_host"),
        (
            json!({"external_host": "nohost"}),
            "actions[0].option.external_host",
        ),
        (
            json!({"external_host": "h:1", "format": "slin16"}),
            "actions[0].option.format",
        ),
        (
            json!({"external_host": "h:1", "transport": "tcp"}),
            "actions[0].option.transport",
        ),
        (
            json!({"external_host": "h:1", "direction_listen": "both"}),
            "actions[0].option.direction_listen",
        ),
        (
            json!({"external_host": "h:1", "encapsulation": "audiosocket"}),
            "actions[0].option.encapsulation",
        ),
    ] {
        let bad = flow(
            "bad",
            json!([{"type": "external_media_start", "option": option}]),
        );
        let (status, err) = http(engine.api, "POST", "/v1/flows", Some(&bad.to_string()));
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{err}");
        assert!(message.contains(field), "{field}: {message}");
    }
    let bad = flow(
        "bad",
        json!([{"type": "mute", "option": {"direction": "up"}}]),
    );
    let (status, err) = http(engine.api, "POST", "/v1/flows", Some(&bad.to_string()));
    assert_eq!(status, 400);
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("actions[0].option.direction"));

    let mut caller = MediaCaller::new(engine.sip);
    caller.call("emd", 0);
    caller.send_rtp(0, true, 1, 160, &ulaw_tone(600.0, 8000.0, 160, 0));
    caller.expect_bye();
    let done = common::ended_one(&engine, Duration::from_secs(10));
    let r = common::result_of(&done, "external_media_start");
    let error = r["error"].as_str().unwrap_or_default();
    assert!(error.contains("not a permitted media destination"), "{r}");
    assert_eq!(
        common::result_of(&done, "mute"),
        json!({"mute_in": false, "mute_out": true}),
        "the flow went on"
    );
    assert_eq!(server.count(), 0);
}
