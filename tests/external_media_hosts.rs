//! External media against hosts that misbehave, over real sockets: a WebSocket host that never
//! reads cannot keep a stream (or its socket) alive past hangup, and is ended as `stalled`; a
//! host that closes is reported to the flow's next `external_media_stop`; an RTP host's flood is
//! paced to the caller (one 20 ms frame per tick, RFC 3551 §4.5) with the excess and bad sizes
//! counted; denied destinations are refused for WebSocket and mapped spellings too. Also
//! `digits_send` while muted out, and AMD while muted in.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::extmedia_hosts::{fd_open, tcp_socket, FloodingRtpHost, WsBehaviour, WsHost};
use common::rtp::{ulaw_tone, MediaCaller};
use common::{flow, http, start, TestEngine};
use serde_json::{json, Value};

fn engine(flows: &[Value], allow_loopback: bool) -> TestEngine {
    let names: Vec<String> = flows
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    let routes: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), n.as_str())).collect();
    let env: &[(&str, &str)] = if allow_loopback {
        &[("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32")]
    } else {
        &[]
    };
    start(flows, &routes, env)
}

/// The result of the first activeflow's `n`th action of type `kind`, once it has one.
fn result_of(engine: &TestEngine, kind: &str, n: usize) -> Value {
    common::wait_until(
        &format!("{kind} #{n} result"),
        Duration::from_secs(15),
        || {
            let all = engine.activeflows();
            all.first()?
                .executed_actions
                .iter()
                .filter(|e| e.action.kind == kind)
                .nth(n)?
                .result
                .clone()
        },
    )
}

fn continue_flow(engine: &TestEngine) {
    let id = engine.activeflows()[0].id;
    let path = format!("/v1/activeflows/{id}/continue");
    assert_eq!(http(engine.api, "POST", &path, None).0, 200);
}

/// `count` packets of tone, 1 ms apart: far faster than real time, to fill the buffers
/// towards a host that does not read.
fn burst(caller: &MediaCaller, count: u16) {
    for i in 0..count {
        let payload = ulaw_tone(600.0, 8000.0, 160, usize::from(i) * 160);
        caller.send_rtp(0, i == 0, i, u32::from(i) * 160, &payload);
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn ws_flow(name: &str, url: &str) -> Value {
    flow(
        name,
        json!([{"type": "answer"},
            {"type": "external_media_start", "option": {"external_host": url,
                "transport": "websocket"}},
            {"type": "block"},
            {"type": "external_media_stop"},
            {"type": "block"}]),
    )
}

/// The engine's socket of the stream: its inode, once the engine holds it.
fn stream_socket(started: &Value) -> (SocketAddr, u64) {
    let local: SocketAddr = started["local_address"].as_str().unwrap().parse().unwrap();
    let (inode, _) = tcp_socket(local).expect("the engine's connection");
    assert_ne!(inode, 0);
    assert!(fd_open(inode), "the engine holds the connection");
    (local, inode)
}

/// Review finding 1: a host that completes the handshake and then never reads fills the
/// connection's buffers; the stream's task must still see the hangup and close its socket
/// within seconds (it used to wait on a flush forever, and leak the socket and the task).
#[test]
fn a_host_that_never_reads_cannot_hold_the_stream_past_hangup() {
    let host = WsHost::start(WsBehaviour::Deaf);
    let engine = engine(&[ws_flow("deaf", &host.url)], true);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("deaf", 0);
    let started = result_of(&engine, "external_media_start", 0);
    assert_eq!(started["encapsulation"], "websocket", "{started}");
    let (local, inode) = stream_socket(&started);
    burst(&caller, 1500);
    let (_, unsent) = tcp_socket(local).expect("still connected");
    eprintln!("unsent bytes in the engine's socket after the burst: {unsent}");
    assert!(
        unsent > 0,
        "the host is not reading: the engine's writes back up"
    );
    caller.bye();
    let done = common::ended_one(&engine, Duration::from_secs(10));
    assert_eq!(done.end_reason, Some(activeflow::engine::EndReason::Hangup));
    let freed = Instant::now();
    common::wait_until("the socket to be closed", Duration::from_secs(5), || {
        (!fd_open(inode)).then_some(())
    });
    eprintln!(
        "socket closed {:?} after the hangup ended the activeflow",
        freed.elapsed()
    );
    assert_eq!(host.accepted(), 1);
}

/// A host that takes nothing for the stall timeout (10 s) ends the stream by itself while the
/// call goes on; the flow's next `external_media_stop` reports `ended_by: stalled` with the
/// frames dropped meanwhile.
#[test]
fn a_stalled_host_ends_the_stream_and_the_next_stop_says_so() {
    let host = WsHost::start(WsBehaviour::Deaf);
    let engine = engine(&[ws_flow("stall", &host.url)], true);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("stall", 0);
    let started = result_of(&engine, "external_media_start", 0);
    let (_, inode) = stream_socket(&started);
    let sent = 1500;
    burst(&caller, sent);
    common::wait_until(
        "the stall to end the stream",
        Duration::from_secs(25),
        || (!fd_open(inode)).then_some(()),
    );
    assert_eq!(
        engine.activeflows()[0].status,
        activeflow::engine::Status::Running,
        "the call goes on"
    );
    continue_flow(&engine);
    let stopped = result_of(&engine, "external_media_stop", 0);
    assert_eq!(stopped["ended_by"], "stalled", "{stopped}");
    assert!(stopped["dropped_frames"].as_u64().unwrap() > 0, "{stopped}");
    assert!(
        stopped["sent_packets"].as_u64().unwrap() < u64::from(sent),
        "{stopped}"
    );
    caller.bye();
}

/// Review finding 9: a host closing the WebSocket (RFC 6455 §5.5.1) is not lost: the flow's
/// next `external_media_stop` returns the ended stream's counts with `ended_by: host_closed`.
#[test]
fn a_host_closing_the_stream_is_reported_to_the_next_stop() {
    let host = WsHost::start(WsBehaviour::CloseAfterFirstFrame);
    let engine = engine(&[ws_flow("closer", &host.url)], true);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("closer", 0);
    let started = result_of(&engine, "external_media_start", 0);
    assert_eq!(started["encapsulation"], "websocket", "{started}");
    burst(&caller, 20);
    std::thread::sleep(Duration::from_millis(500));
    continue_flow(&engine);
    let stopped = result_of(&engine, "external_media_stop", 0);
    assert_eq!(stopped["ended_by"], "host_closed", "{stopped}");
    assert!(stopped["sent_packets"].as_u64().unwrap() >= 1, "{stopped}");
    assert_eq!(stopped["external_media_id"], started["external_media_id"]);
    caller.bye();
}

/// Review findings 5 and 3: an RTP host that sends 100 frames at once reaches the caller paced,
/// one 20 ms frame per tick and at most the 200 ms playout bound; the rest is dropped and
/// counted, and payloads of the wrong size are rejected.
#[test]
fn an_rtp_host_flood_is_paced_to_the_caller_and_counted() {
    // Fewer than a loopback socket's receive queue holds (~256 datagrams here), so none is
    // lost before the engine reads it.
    let host = FloodingRtpHost::start(100, 10);
    let f = flow(
        "flood",
        json!([{"type": "answer"},
            {"type": "external_media_start", "option": {"external_host": host.addr.to_string()}},
            {"type": "block"},
            {"type": "external_media_stop"},
            {"type": "block"}]),
    );
    let engine = engine(&[f], true);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("flood", 0);
    let started = result_of(&engine, "external_media_start", 0);
    assert_eq!(started["external_address"], host.addr.to_string());
    // The caller's first packet makes the engine send one to the host, which floods back.
    for i in 0..3u16 {
        caller.send_rtp(0, i == 0, i, u32::from(i) * 160, &[0xFF; 160]);
        std::thread::sleep(Duration::from_millis(20));
    }
    let packets = caller.capture(Duration::from_millis(300), Duration::from_secs(3));
    common::wait_until("the flood sent", Duration::from_secs(5), || {
        *host.sent.lock().unwrap()
    });
    let host_audio: Vec<_> = packets.iter().filter(|p| p.payload[0] == 0x55).collect();
    assert!(
        (5..=12).contains(&host_audio.len()),
        "paced and bounded: {} frames of 100 reached the caller",
        host_audio.len()
    );
    // The first few frames wait in the caller's socket while it is still sending (they get one
    // receive time); from the 4th on, each is timed as it comes.
    let timed = &host_audio[3..];
    let first = timed.first().unwrap().at;
    let span = timed.last().unwrap().at.duration_since(first);
    let expected = Duration::from_millis(20 * (timed.len() as u64 - 1));
    assert!(
        span + Duration::from_millis(30) >= expected,
        "one frame per 20 ms: {} frames in {span:?}",
        host_audio.len()
    );
    continue_flow(&engine);
    let stopped = result_of(&engine, "external_media_stop", 0);
    assert_eq!(stopped["received_packets"], 100, "{stopped}");
    assert_eq!(stopped["rejected_packets"], 10, "{stopped}");
    let dropped = stopped["dropped_frames"].as_u64().unwrap();
    let played = stopped["played_packets"].as_u64().unwrap();
    assert!(dropped >= 85 && played <= 12, "{stopped}");
    assert_eq!(stopped["send_failed_packets"], 0, "{stopped}");
    caller.bye();
}

/// Review finding 10: the destination policy holds for WebSocket URLs and for the IPv4-mapped
/// IPv6 spelling of a denied address (RTP and WebSocket); nothing connects.
#[test]
fn denied_destinations_are_refused_in_every_spelling() {
    let host = WsHost::start(WsBehaviour::Deaf);
    let mapped_ws = format!("ws://[::ffff:127.0.0.1]:{}/media", host.port);
    let mapped_rtp = format!("[::ffff:127.0.0.1]:{}", host.port);
    let f = flow(
        "denied",
        json!([{"type": "answer"},
            {"type": "external_media_start", "option": {"external_host": host.url,
                "transport": "websocket"}},
            {"type": "external_media_start", "option": {"external_host": mapped_ws,
                "transport": "websocket"}},
            {"type": "external_media_start", "option": {"external_host": mapped_rtp}},
            {"type": "hangup"}]),
    );
    let engine = engine(&[f], false);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("denied", 0);
    caller.expect_bye();
    let done = common::ended_one(&engine, Duration::from_secs(10));
    let results: Vec<Value> = done
        .executed_actions
        .iter()
        .filter(|e| e.action.kind == "external_media_start")
        .map(|e| e.result.clone().unwrap())
        .collect();
    assert_eq!(results.len(), 3);
    for r in &results {
        let error = r["error"].as_str().unwrap_or_default();
        assert!(error.contains("not a permitted media destination"), "{r}");
    }
    assert_eq!(host.accepted(), 0, "nothing connected");
}

/// Review finding 8: `digits_send` while muted out sends nothing (RFC 4733 events are
/// silenced), so its result is an error saying so, not the digits.
#[test]
fn digits_send_while_muted_out_is_not_reported_sent() {
    let f = flow(
        "muteddigits",
        json!([{"type": "answer"},
            {"type": "mute", "option": {"direction": "out"}},
            {"type": "digits_send", "option": {"digits": "123"}},
            {"type": "unmute", "option": {"direction": "out"}},
            {"type": "digits_send", "option": {"digits": "4"}},
            {"type": "hangup"}]),
    );
    let engine = engine(&[f], false);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("muteddigits", 0);
    caller.send_rtp(0, true, 1, 160, &ulaw_tone(600.0, 8000.0, 160, 0));
    caller.expect_bye();
    let done = common::ended_one(&engine, Duration::from_secs(10));
    let sends: Vec<Value> = done
        .executed_actions
        .iter()
        .filter(|e| e.action.kind == "digits_send")
        .map(|e| e.result.clone().unwrap())
        .collect();
    let error = sends[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("muted"), "{}", sends[0]);
    assert_eq!(sends[1]["digits"], "4", "unmuted, digits go out");
}

/// Review finding 7: `mute` in is about what others hear; AMD still analyses the caller's real
/// audio (a short greeting, then silence: a person), not the silence others get.
#[test]
fn amd_hears_the_caller_while_muted_in() {
    let f = flow(
        "mutedamd",
        json!([{"type": "answer"},
            {"type": "mute", "option": {"direction": "in"}},
            {"type": "amd"},
            {"type": "hangup"}]),
    );
    let engine = engine(&[f], false);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("mutedamd", 0);
    // 600 ms of "hello" then silence, paced as a real caller.
    for i in 0..150u16 {
        let payload = if i < 30 {
            ulaw_tone(440.0, 8000.0, 160, usize::from(i) * 160)
        } else {
            vec![0xFF; 160]
        };
        caller.send_rtp(0, i == 0, i, u32::from(i) * 160, &payload);
        std::thread::sleep(Duration::from_millis(20));
        if engine.activeflows()[0].status == activeflow::engine::Status::Ended {
            break;
        }
    }
    let done = common::ended_one(&engine, Duration::from_secs(10));
    let verdict = common::result_of(&done, "amd");
    assert_eq!(verdict["result"], "human", "{verdict}");
    assert_eq!(verdict["reason"], "humanspeech", "{verdict}");
}
