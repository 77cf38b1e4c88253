//! Media over real RTP: SIPp plays its RFC 2833 DTMF pcap and routes a flow, SIPp's A-law pcap is
//! recorded to a WAV served by the API, and a test caller captures the engine's own RTP (prompts,
//! speech, beeps, DTMF, echo) and checks sequence numbers, timestamps, spacing and the audio.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::rtp::{rms, tone_frequency, ulaw_to_linear, ulaw_tone, MediaCaller, Packet};
use common::{flow, http, sipp, start, TestEngine};
use serde_json::{json, Value};

const A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const B: &str = "aaaaaaaa-0000-4000-8000-000000000002";
const C: &str = "aaaaaaaa-0000-4000-8000-000000000003";

/// SIPp's `-mp` port: it binds that one and the next three (RTP, RTCP, and a second stream's).
fn sipp_media_port() -> String {
    common::reserve_ports(4).release().to_string()
}

/// A fresh directory for one test's prompts and recordings.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "activeflow-media-{tag}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a 16-bit PCM WAV (any rate/channels) with a sine of `frequency` Hz for `ms`.
fn write_wav(path: &Path, rate: u32, channels: u16, frequency: f64, ms: u32) {
    let frames = (rate as u64 * ms as u64 / 1000) as usize;
    let mut data = Vec::with_capacity(frames * 2 * channels as usize);
    for i in 0..frames {
        let s = (12000.0 * (2.0 * std::f64::consts::PI * frequency * i as f64 / rate as f64).sin())
            as i16;
        for _ in 0..channels {
            data.extend_from_slice(&s.to_le_bytes());
        }
    }
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&channels.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2 * channels as u32).to_le_bytes());
    wav.extend_from_slice(&(2 * channels).to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    std::fs::write(path, wav).unwrap();
}

fn media_engine(flows: &[Value], dir: &Path) -> TestEngine {
    let prompts = dir.join("prompts");
    std::fs::create_dir_all(&prompts).unwrap();
    let (p, r, c) = (
        prompts.to_str().unwrap().to_owned(),
        dir.join("recordings").to_str().unwrap().to_owned(),
        dir.join("cache").to_str().unwrap().to_owned(),
    );
    let names: Vec<(String, String)> = flows
        .iter()
        .map(|f| {
            let n = f["name"].as_str().unwrap().to_owned();
            (n.clone(), n)
        })
        .collect();
    let routes: Vec<(&str, &str)> = names
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    start(
        flows,
        &routes,
        &[
            ("ACTIVEFLOW_MEDIA_PROMPTS_DIR", &p),
            ("ACTIVEFLOW_MEDIA_RECORDINGS_DIR", &r),
            ("ACTIVEFLOW_MEDIA_CACHE_DIR", &c),
        ],
    )
}

/// The single ended activeflow's executed actions as (type, result).
fn ended_results(engine: &TestEngine) -> Vec<(String, Value)> {
    engine.wait_for("the activeflow to end", Duration::from_secs(20), |all| {
        all.len() == 1 && all[0].status == activeflow::engine::Status::Ended
    });
    engine.activeflows()[0]
        .executed_actions
        .iter()
        .map(|e| {
            (
                e.action.kind.clone(),
                e.result.clone().unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn result_of<'a>(results: &'a [(String, Value)], kind: &str) -> &'a Value {
    &results
        .iter()
        .find(|(k, _)| k == kind)
        .unwrap_or_else(|| panic!("no {kind} in {results:?}"))
        .1
}

/// How far the engine may send behind its 20 ms grid without skipping (`MAX_LATE_TICKS` = 3
/// ticks in src/media/rtp_session), plus one tick of timer granularity.
const ENGINE_LATENESS: Duration = Duration::from_millis(80);
/// How late this test may read a packet after it arrived (a loaded 2-core debug build).
const READ_LATENESS: Duration = Duration::from_millis(250);

/// Checks RTP numbering and pacing of one talk-spurt of audio packets (RFC 3550 §5.1, RFC 3551
/// §4.5: 8 kHz, 160 samples per 20 ms packet). The engine sends on a grid anchored at the
/// session's start and, when its thread stalled more than three ticks, skips ticks rather than
/// bursting (README "Media"; `activeflow_rtp_late_ticks_total`): the sequence number still steps by
/// one, the timestamp steps by a multiple of 160, and the timestamps stay in step with the arrival
/// times (no packet earlier than its grid slot, none later than the engine's and this reader's
/// lateness allow). Returns how many ticks were skipped.
fn assert_paced(audio: &[Packet]) -> u32 {
    let mut skipped = 0;
    for w in audio.windows(2) {
        assert_eq!(
            w[1].sequence,
            w[0].sequence.wrapping_add(1),
            "contiguous sequence"
        );
        let step = w[1].timestamp.wrapping_sub(w[0].timestamp);
        assert!(
            step >= 160 && step % 160 == 0 && step < 160 * 500,
            "timestamps advance by whole 20 ms ticks: {step}"
        );
        skipped += step / 160 - 1;
        assert_eq!(w[1].ssrc, w[0].ssrc);
    }
    assert!(
        audio[0].marker,
        "marker bit on the talk-spurt's first packet"
    );
    // Arrival minus timestamp time: within [grid, grid + lateness] for every packet, so the
    // spread is bounded; the earliest-read packet stands for the grid.
    let offsets: Vec<f64> = audio
        .iter()
        .map(|p| {
            let at = (p.at - audio[0].at).as_secs_f64();
            let stamped = f64::from(p.timestamp.wrapping_sub(audio[0].timestamp)) / 8000.0;
            at - stamped
        })
        .collect();
    let min = offsets.iter().copied().fold(f64::INFINITY, f64::min);
    let max = offsets.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let allowed = (ENGINE_LATENESS + READ_LATENESS).as_secs_f64();
    assert!(
        max - min <= allowed,
        "arrival times out of step with the timestamps by {:.0} ms (allowed {:.0} ms; {skipped} \
         ticks skipped): offsets {offsets:.3?}",
        (max - min) * 1000.0,
        allowed * 1000.0
    );
    skipped
}

/// The pacing check itself: skipped ticks whose arrival gap matches pass; a timestamp that
/// runs ahead of the arrival times, or a step that is not whole ticks, fails.
#[test]
fn pacing_check_tolerates_skipped_ticks_but_not_a_clock_jump() {
    let t0 = std::time::Instant::now();
    let packet = |i: u16, tick: u32, ms: u64| Packet {
        at: t0 + Duration::from_millis(ms),
        payload_type: 0,
        marker: i == 0,
        sequence: 7 + i,
        timestamp: 1000 + 160 * tick,
        ssrc: 1,
        payload: Vec::new(),
    };
    // Ticks 3 to 6 skipped after a stall of 100 ms: sequence contiguous, timestamp +5 ticks.
    let stalled = [
        packet(0, 0, 0),
        packet(1, 1, 20),
        packet(2, 2, 40),
        packet(3, 7, 141),
    ];
    assert_eq!(assert_paced(&stalled), 4);
    let jump = [packet(0, 0, 0), packet(1, 1, 20), packet(2, 100, 40)];
    assert!(std::panic::catch_unwind(|| assert_paced(&jump)).is_err());
    let half = [
        packet(0, 0, 0),
        Packet {
            timestamp: 1080,
            ..packet(1, 1, 20)
        },
    ];
    assert!(std::panic::catch_unwind(|| assert_paced(&half)).is_err());
}

fn decode(audio: &[Packet]) -> Vec<i16> {
    audio
        .iter()
        .flat_map(|p| p.payload.iter().map(|b| ulaw_to_linear(*b)))
        .collect()
}

#[test]
fn dtmf_from_sipp_pcap_routes_the_flow() {
    let dir = temp_dir("dtmf");
    let f = flow(
        "ivr",
        json!([
            {"type": "answer"},
            {"type": "digits_receive", "option": {"duration": 8000, "length": 1}},
            {"type": "branch", "option": {"target_ids": {"1": A}, "default_target_id": B}},
            {"id": A, "type": "variable_set", "next_id": C, "option": {"key": "picked", "value": "one"}},
            {"id": B, "type": "variable_set", "option": {"key": "picked", "value": "other"}},
            {"id": C, "type": "hangup"}
        ]),
    );
    let engine = media_engine(&[f], &dir);
    let mp = sipp_media_port();
    let run = sipp(engine.sip, "uac_dtmf.xml", "ivr", &["-m", "1", "-mp", &mp]);
    run.assert_all_ok(1);
    let results = ended_results(&engine);
    let digits = result_of(&results, "digits_receive");
    assert_eq!(digits["digits"], "1", "{results:?}");
    assert_eq!(digits["finished_by"], "length");
    assert_eq!(result_of(&results, "branch")["target_id"], A);
    let types: Vec<&str> = results.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        types,
        [
            "answer",
            "digits_receive",
            "branch",
            "variable_set",
            "hangup"
        ]
    );
}

#[test]
fn prompt_is_paced_and_audible() {
    let dir = temp_dir("prompt");
    let f = flow(
        "prompt",
        json!([{"type": "answer"}, {"type": "play", "option": {"stream_urls": ["tone.wav"]}}, {"type": "hangup"}]),
    );
    let engine = media_engine(&[f], &dir);
    // 16 kHz stereo: the engine must mix down and resample to 8 kHz mono.
    write_wav(&dir.join("prompts/tone.wav"), 16000, 2, 440.0, 1000);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("prompt", 0);
    let packets = caller.capture(Duration::from_millis(300), Duration::from_secs(10));
    caller.expect_bye();
    let audio: Vec<Packet> = packets
        .into_iter()
        .filter(|p| p.payload_type == 0)
        .collect();
    assert_eq!(audio.len(), 50, "1 s of prompt is 50 packets of 20 ms");
    assert_paced(&audio);
    let pcm = decode(&audio);
    assert!(rms(&pcm) > 3000.0, "audible: rms {}", rms(&pcm));
    let f = tone_frequency(&pcm[400..7600]);
    assert!((f - 440.0).abs() < 15.0, "440 Hz tone came out at {f} Hz");
    let results = ended_results(&engine);
    let play = result_of(&results, "play");
    assert_eq!(play["played_ms"], 1000, "{play}");
    assert_eq!(play["interrupted"], false);
}

#[test]
fn beep_and_rfc4733_digits_are_sent() {
    let dir = temp_dir("beep");
    let f = flow(
        "beep",
        json!([
            {"type": "answer"},
            {"type": "beep", "option": {"duration": 200}},
            {"type": "digits_send", "option": {"digits": "1#", "duration": 100, "interval": 60}},
            {"type": "hangup"}
        ]),
    );
    let engine = media_engine(&[f], &dir);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("beep", 0);
    let packets = caller.capture(Duration::from_millis(400), Duration::from_secs(10));
    caller.expect_bye();
    let beep: Vec<Packet> = packets
        .iter()
        .filter(|p| p.payload_type == 0)
        .cloned()
        .collect();
    assert_eq!(beep.len(), 10, "200 ms beep");
    assert_paced(&beep);
    let f = tone_frequency(&decode(&beep)[200..1400]);
    assert!((f - 1000.0).abs() < 20.0, "1 kHz beep came out at {f} Hz");
    let events: Vec<&Packet> = packets.iter().filter(|p| p.payload_type == 101).collect();
    let mut digits = Vec::new();
    let mut last_ts = None;
    for e in &events {
        let end = e.payload[1] & 0x80 != 0;
        if end && last_ts != Some(e.timestamp) {
            digits.push(e.payload[0]);
            last_ts = Some(e.timestamp);
        }
    }
    assert_eq!(digits, [1, 11], "events for 1 and #");
    // RFC 4733 §2.5.1.3: an event's first packet has the marker bit, later ones do not.
    let markers: Vec<(u32, bool)> = events.iter().map(|e| (e.timestamp, e.marker)).collect();
    for (i, (ts, marker)) in markers.iter().enumerate() {
        let first = i == 0 || markers[i - 1].0 != *ts;
        assert_eq!(*marker, first, "marker of event packet {i}: {markers:?}");
    }
    // Sequence numbers continue across audio and events: one stream.
    for w in packets.windows(2) {
        assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
    }
    let results = ended_results(&engine);
    assert_eq!(result_of(&results, "digits_send")["digits"], "1#");
}

#[test]
fn sip_info_digits_stop_a_prompt_and_fill_digits_receive() {
    let dir = temp_dir("info");
    let f = flow(
        "info",
        json!([
            {"type": "answer"},
            {"type": "play", "option": {"stream_urls": ["long.wav"], "digits_handle": "next"}},
            {"type": "digits_receive", "option": {"duration": 5000, "key": "#"}},
            {"type": "hangup"}
        ]),
    );
    let engine = media_engine(&[f], &dir);
    write_wav(&dir.join("prompts/long.wav"), 8000, 1, 300.0, 20_000);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("info", 0);
    let first = caller.capture(Duration::from_millis(300), Duration::from_millis(400));
    assert!(!first.is_empty(), "the prompt started");
    let status = caller.info("application/dtmf-relay", "Signal=4\r\nDuration=160\r\n");
    assert!(status.starts_with("SIP/2.0 200"), "{status}");
    assert!(caller
        .info("text/plain", "hello")
        .starts_with("SIP/2.0 415"));
    assert!(caller
        .info("application/dtmf-relay", "Signal=x")
        .starts_with("SIP/2.0 400"));
    assert!(caller
        .info("application/dtmf", "2")
        .starts_with("SIP/2.0 200"));
    assert!(caller
        .info("application/dtmf-relay", "Signal=#\r\n")
        .starts_with("SIP/2.0 200"));
    caller.expect_bye();
    let results = ended_results(&engine);
    let play = result_of(&results, "play");
    assert_eq!(play["interrupted"], true, "{play}");
    assert!(play["played_ms"].as_u64().unwrap() < 5000, "{play}");
    let digits = result_of(&results, "digits_receive");
    // VoIPBIN digitsReceived: the 4 during the prompt replaced call.digits, the 2 and the
    // terminating # were appended.
    assert_eq!(digits["digits"], "42#", "{digits}");
    assert_eq!(
        (digits["finished_by"].as_str(), digits["key"].as_str()),
        (Some("key"), Some("#"))
    );
}

#[test]
fn echo_returns_the_callers_audio() {
    let dir = temp_dir("echo");
    let f = flow(
        "echo",
        json!([{"type": "answer"}, {"type": "echo", "option": {"duration": 1500}}, {"type": "hangup"}]),
    );
    let engine = media_engine(&[f], &dir);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("echo", 0);
    // Echo returns what arrives once the media session runs it, a moment after the action is
    // recorded: prime it with silence until a primer comes back, so the tone below meets it.
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
    // 20 ms apart, like a real caller's RTP (pacing, not a wait).
    for i in 0..20u16 {
        let payload = ulaw_tone(600.0, 8000.0, 160, usize::from(i) * 160);
        caller.send_rtp(0, i == 0, 100 + i, 1000 + u32::from(i) * 160, &payload);
        std::thread::sleep(Duration::from_millis(20));
    }
    let back = caller.capture(Duration::from_millis(300), Duration::from_secs(3));
    caller.expect_bye();
    // A primer may still come back late; the tone is what counts.
    let late_primers = back.iter().filter(|p| p.payload == silence).count();
    let echoed: Vec<Packet> = back
        .into_iter()
        .filter(|p| p.payload_type == 0 && p.payload != silence)
        .collect();
    assert_eq!(echoed.len(), 20, "every packet came back");
    assert_eq!(
        echoed[5].payload,
        ulaw_tone(600.0, 8000.0, 160, 5 * 160),
        "same audio"
    );
    assert_ne!(echoed[0].ssrc, 0x1234_5678, "with the engine's own SSRC");
    let results = ended_results(&engine);
    let counted = result_of(&results, "echo")["echoed_packets"]
        .as_u64()
        .unwrap();
    // Every tone packet, plus the primers echoed: at least the one seen, at most all sent.
    let tone_and_primers = 20 + late_primers as u64;
    assert!(
        (tone_and_primers + 1..=20 + u64::from(primers)).contains(&counted),
        "echoed_packets {counted}: 20 tone packets, {primers} primers sent"
    );
}

#[test]
fn a_missing_prompt_is_an_action_error_and_the_flow_goes_on() {
    let dir = temp_dir("missing");
    let f = flow(
        "missing",
        json!([
            {"type": "answer"},
            {"type": "play", "option": {"stream_urls": ["nope.wav"]}},
            {"type": "play", "option": {"stream_urls": ["../../etc/passwd"]}},
            {"type": "hangup"}
        ]),
    );
    let engine = media_engine(&[f], &dir);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("missing", 0);
    caller.expect_bye();
    let results = ended_results(&engine);
    let errors: Vec<&str> = results
        .iter()
        .filter(|(k, _)| k == "play")
        .map(|(_, r)| r["error"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(errors.len(), 2);
    assert!(errors[0].contains("nope.wav"), "{errors:?}");
    assert!(!errors[1].is_empty(), "traversal refused: {errors:?}");
    assert_eq!(
        engine.activeflows()[0].end_reason,
        Some(activeflow::engine::EndReason::Completed)
    );
}

#[test]
fn recording_of_sipp_g711a_pcap_is_a_wav_of_the_right_length() {
    let dir = temp_dir("rec");
    let f = flow(
        "rec",
        json!([
            {"type": "answer"},
            {"type": "recording_start", "option": {"format": "wav", "end_of_key": "#"}},
            {"type": "sleep", "option": {"duration": 60000}}
        ]),
    );
    let engine = media_engine(&[f], &dir);
    let mp = sipp_media_port();
    let run = sipp(engine.sip, "uac_g711a.xml", "rec", &["-m", "1", "-mp", &mp]);
    run.assert_all_ok(1);
    let results = ended_results(&engine);
    let id = result_of(&results, "recording_start")["recording_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let info = common::wait_until("the recording to end", Duration::from_secs(5), || {
        let (status, body) = http(engine.api, "GET", &format!("/v1/recordings/{id}"), None);
        assert_eq!(status, 200, "{body}");
        (body["status"] == "ended").then_some(body)
    });
    assert_eq!(info["end_reason"], "call_ended", "{info}");
    let (status, list) = http(engine.api, "GET", "/v1/recordings", None);
    assert_eq!(
        (status, list["result"][0]["id"].as_str()),
        (200, Some(id.as_str()))
    );
    let wav = common::raw_get_bytes(engine.api, &format!("/v1/recordings/{id}/file"));
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(&wav[8..16], b"WAVEfmt ");
    assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 1, "mono");
    assert_eq!(
        u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]),
        8000
    );
    let data_len = u32::from_le_bytes([wav[40], wav[41], wav[42], wav[43]]) as usize;
    assert_eq!(data_len, wav.len() - 44, "header sizes patched");
    // g711a.pcap holds 236 packets of 30 ms: 56,640 samples.
    let samples = data_len / 2;
    assert!(
        (56_000..=57_000).contains(&samples),
        "{samples} samples recorded"
    );
    let pcm: Vec<i16> = wav[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert!(rms(&pcm) > 300.0, "speech, not silence: rms {}", rms(&pcm));
    let (status, _) = http(
        engine.api,
        "GET",
        "/v1/recordings/00000000-0000-4000-8000-000000000000",
        None,
    );
    assert_eq!(status, 404);
}

#[test]
fn talk_speaks_through_espeak_ng() {
    common::require("espeak-ng");
    let dir = temp_dir("talk");
    let f = flow(
        "talk",
        json!([
            {"type": "answer"},
            {"type": "talk", "option": {"text": "Welcome. Press one.", "language": "en-US"}},
            {"type": "hangup"}
        ]),
    );
    let engine = media_engine(&[f], &dir);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("talk", 0);
    let packets = caller.capture(Duration::from_millis(500), Duration::from_secs(20));
    caller.expect_bye();
    let audio: Vec<Packet> = packets
        .into_iter()
        .filter(|p| p.payload_type == 0)
        .collect();
    let results = ended_results(&engine);
    let talk = result_of(&results, "talk");
    assert!(talk.get("error").is_none(), "{talk}");
    let length = talk["length_ms"].as_u64().unwrap();
    assert!(length > 500, "{talk}");
    assert_eq!(audio.len() as u64, length.div_ceil(20), "{talk}");
    assert_paced(&audio);
    assert!(rms(&decode(&audio)) > 500.0, "speech is audible");
}

#[test]
fn the_shipped_demo_ivr_routes_key_1_to_the_beep() {
    // The binary with its own config/flows, as a new user runs it; SIPp presses 1.
    let (_engine, sip, api, _metrics) = common::spawn_engine(&[]);
    let mp = sipp_media_port();
    let run = sipp(sip, "uac_dtmf.xml", "100", &["-m", "1", "-mp", &mp]);
    run.assert_all_ok(1);
    // SIPp is done once it answered the BYE; the end shows once storage committed it.
    let af = common::wait_until("the activeflow to end", Duration::from_secs(10), || {
        let (status, list) = http(api, "GET", "/v1/activeflows", None);
        assert_eq!(status, 200);
        let af = list["result"][0].clone();
        (af["status"] == "ended").then_some(af)
    });
    assert_eq!(af["end_reason"], "completed", "{af}");
    let executed: Vec<&str> = af["executed_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        executed,
        [
            "answer",
            "talk",
            "digits_receive",
            "branch",
            "beep",
            "talk",
            "hangup"
        ],
        "{af}"
    );
    let branch = &af["executed_actions"][3]["result"];
    assert_eq!(branch["value"], "1", "{branch}");
}

/// VoIPBIN digitsReceived: outside `digits_receive` each key replaces `call.digits`, so only
/// the last key pressed before it is typed ahead.
#[test]
fn the_last_key_pressed_before_digits_receive_is_typed_ahead() {
    let dir = temp_dir("typeahead");
    let f = flow(
        "ahead",
        json!([
            {"type": "answer"},
            {"type": "sleep", "option": {"duration": 600}},
            {"type": "digits_receive", "option": {"duration": 3000, "length": 1}},
            {"type": "hangup"}
        ]),
    );
    let engine = media_engine(&[f], &dir);
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("ahead", 0);
    // Keys 7 then 3 as RFC 4733 events (start, update, three end packets each), at once.
    let mut seq = 1u16;
    for (n, event) in [7u8, 3].into_iter().enumerate() {
        caller.press(event, &mut seq, 8000 + n as u32 * 1600);
    }
    caller.expect_bye();
    let results = ended_results(&engine);
    let digits = result_of(&results, "digits_receive");
    assert_eq!(digits["digits"], "3", "{digits}");
    assert_eq!(digits["finished_by"], "length");
}
