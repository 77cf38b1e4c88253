//! Conferences end to end: callers over real SIP/RTP sockets (the raw `MediaCaller` and SIPp
//! replaying tone pcaps) in rooms made by `conference_join` / `confbridge_join` and
//! `/v1/conferences`. What a participant hears is checked by spectrum (Goertzel power at each
//! caller's tone), not by packet counts: the mixer topology of RFC 7667 §3.6 / RFC 3550 §7.3 (each receives
//! the mix of the others, never its own contribution), G.711 of RFC 3551 §4.5.14 in each
//! leg's own codec, RFC 4733 digits reaching only the pressing caller's flow.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::conference::{
    decode, tone_power, tone_scenario, write_tone_pcap, EventTap, ToneSender,
};
use common::http_server::http_server_answering;
use common::rtp::{MediaCaller, Packet};
use common::{flow, http, result_of, sipp, start, wait_until, TestEngine};
use serde_json::{json, Value};

/// A tone of this amplitude has Goertzel power about A²/4 = 2.25e6.
const AMPLITUDE: f64 = 3000.0;

/// Participants of room `id` (None while it does not exist).
fn participants(engine: &TestEngine, id: &str) -> Option<Vec<Value>> {
    let (status, body) = http(engine.api, "GET", &format!("/v1/conferences/{id}"), None);
    (status == 200).then(|| body["participants"].as_array().cloned().unwrap_or_default())
}

fn wait_participants(engine: &TestEngine, id: &str, n: usize) -> Vec<Value> {
    wait_until(
        &format!("{n} participants in {id}"),
        Duration::from_secs(10),
        || participants(engine, id).filter(|p| p.len() == n),
    )
}

/// Powers of each frequency in `samples`.
fn powers(samples: &[i16], freqs: &[f64]) -> Vec<f64> {
    freqs.iter().map(|f| tone_power(samples, *f)).collect()
}

/// The last `seconds` of what a caller received in payload type `pt`.
fn tail(packets: &[Packet], pt: u8, seconds: f64) -> Vec<i16> {
    let pcm = decode(packets, pt);
    let n = (seconds * 8000.0) as usize;
    assert!(pcm.len() >= n, "only {} samples received", pcm.len());
    pcm[pcm.len() - n..].to_vec()
}

/// Asserts `samples` hold every tone of `heard` (above a ninth of a lone tone's power: present
/// in at least a third of the frames, so a loaded machine's lost frames do not fail it) and
/// `own` at least 20 dB below the weakest of them.
fn assert_hears(who: &str, samples: &[i16], heard: &[f64], own: f64) {
    let p_heard = powers(samples, heard);
    let p_own = tone_power(samples, own);
    let lone = AMPLITUDE * AMPLITUDE / 4.0;
    let weakest = p_heard.iter().copied().fold(f64::MAX, f64::min);
    assert!(
        weakest > lone / 9.0,
        "{who} must hear {heard:?}: powers {p_heard:?} (a lone tone is {lone})"
    );
    assert!(
        p_own * 100.0 < weakest,
        "{who} must not hear its own {own} Hz: {p_own} vs weakest other {weakest} ({p_heard:?})"
    );
}

/// Received 20 ms packets among the last `seconds` in which one of the tones of `heard` is
/// missing or weak (below a third of a lone tone's power in that packet alone): a frame lost,
/// cut short or zero-padded on its way through the room (each mixed frame is one packet).
fn gaps(packets: &[Packet], pt: u8, seconds: f64, heard: &[f64]) -> usize {
    let ours: Vec<&Packet> = packets.iter().filter(|p| p.payload_type == pt).collect();
    let n = (seconds * 50.0) as usize;
    assert!(ours.len() >= n, "only {} packets received", ours.len());
    let lone = AMPLITUDE * AMPLITUDE / 4.0;
    ours[ours.len() - n..]
        .iter()
        .filter(|p| {
            let pcm = decode(std::slice::from_ref(*p), pt);
            pcm.len() != 160 || powers(&pcm, heard).iter().any(|w| *w < lone / 3.0)
        })
        .count()
}

/// Packets of the last 1.5 s (75) a leg may miss a tone in: a loaded machine's late ticks (the
/// whole suite beside this test on 2 cores once cost 3); a leg whose 10 or 30 ms packets were
/// not re-framed misses one in two or three, far above this.
const MAX_GAPS: usize = 5;

#[test]
fn five_callers_each_hear_the_other_four_and_never_themselves() {
    const FREQS: [f64; 5] = [440.0, 620.0, 860.0, 1180.0, 1560.0];
    let f = flow(
        "room",
        json!([{"type": "conference_join", "option": {"conference_id": "tones"}}, {"type": "hangup"}]),
    );
    let engine = start(&[f], &[("room", "room")], &[]);
    let barrier = Arc::new(Barrier::new(FREQS.len()));
    let threads: Vec<_> = (0..FREQS.len())
        .map(|i| {
            let (sip, barrier) = (engine.sip, barrier.clone());
            std::thread::spawn(move || {
                // µ-law and A-law legs in one room: each gets the mix in its own codec.
                let pt = if i % 2 == 0 { 0 } else { 8 };
                let mut caller = MediaCaller::new(sip);
                caller.call("room", pt);
                barrier.wait();
                // One leg packetises at 10 ms, one at 30 ms: the engine re-frames to 20 ms.
                let ms = match i {
                    1 => 10,
                    2 => 30,
                    _ => 20,
                };
                let mut tone = ToneSender::start_every(&caller, pt, FREQS[i], AMPLITUDE, ms);
                let packets = caller.capture(Duration::from_secs(60), Duration::from_secs(3));
                tone.stop();
                (caller, pt, packets)
            })
        })
        .collect();
    let during = wait_participants(&engine, "tones", 5);
    for p in &during {
        assert_eq!(p["muted"], false, "{p}");
        assert!(
            p["activeflow_id"].is_string() && p["joined_at"].is_string(),
            "{p}"
        );
    }
    let mut callers = Vec::new();
    for (i, t) in threads.into_iter().enumerate() {
        let (caller, pt, packets) = t.join().expect("caller thread");
        assert!(
            packets.iter().all(|p| p.payload_type == pt),
            "caller {i} got another codec than its own ({pt})"
        );
        let samples = tail(&packets, pt, 1.5);
        let others: Vec<f64> = (0..FREQS.len())
            .filter(|j| *j != i)
            .map(|j| FREQS[j])
            .collect();
        assert_hears(&format!("caller {i}"), &samples, &others, FREQS[i]);
        // Continuity: every other tone in (nearly) every frame, the 10 and 30 ms legs' too.
        let missing = gaps(&packets, pt, 1.5, &others);
        assert!(
            missing <= MAX_GAPS,
            "caller {i} missed a tone in {missing} of the last 75 packets"
        );
        callers.push(caller);
    }
    for mut c in callers {
        c.bye();
    }
    // Leaving is clean: every participant gone, then the room made by the first join too.
    wait_until("the room to go", Duration::from_secs(10), || {
        participants(&engine, "tones").is_none().then_some(())
    });
    engine.wait_for(
        "every activeflow ended by hang-up",
        Duration::from_secs(10),
        |all| {
            all.len() == 5
                && all
                    .iter()
                    .all(|a| a.end_reason == Some(activeflow::engine::EndReason::Hangup))
        },
    );
}

/// Four SIPp callers replaying tone pcaps, heard by a raw-socket listener that never hears its
/// own tone. What the SIPp callers themselves receive is not checked: SIPp plays RTP but
/// neither records nor analyses what it gets (its N−1 property is checked for every leg of
/// `five_callers_each_hear_the_other_four_and_never_themselves`, on raw sockets).
#[test]
fn sipp_tone_callers_are_mixed_for_a_listener_that_never_hears_itself() {
    const SIPP_FREQS: [f64; 4] = [500.0, 760.0, 1020.0, 1400.0];
    const OWN: f64 = 620.0;
    let dir = std::env::temp_dir().join(format!("activeflow-conf-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = flow(
        "bridge",
        json!([{"type": "confbridge_join", "option": {"confbridge_id": "pcaps"}}, {"type": "hangup"}]),
    );
    let engine = start(&[f], &[("bridge", "bridge")], &[]);
    // The listener joins first (A-law) and talks too: it must hear the four pcaps, not itself.
    let mut listener = MediaCaller::new(engine.sip);
    listener.call("bridge", 8);
    let _tone = ToneSender::start(&listener, 8, OWN, AMPLITUDE);
    wait_participants(&engine, "pcaps", 1);
    let runs: Vec<_> = SIPP_FREQS
        .iter()
        .map(|freq| {
            let pcap = dir.join(format!("tone-{freq}.pcap"));
            write_tone_pcap(&pcap, *freq, AMPLITUDE, 6);
            let scenario = tone_scenario(&dir, &pcap, 5000);
            let mp = common::reserve_ports(4).release().to_string();
            let sip = engine.sip;
            std::thread::spawn(move || sipp(sip, &scenario, "bridge", &["-m", "1", "-mp", &mp]))
        })
        .collect();
    wait_participants(&engine, "pcaps", 5);
    let packets = listener.capture(Duration::from_secs(60), Duration::from_millis(2500));
    for run in runs {
        run.join().expect("sipp thread").assert_all_ok(1);
    }
    let samples = tail(&packets, 8, 1.5);
    assert_hears("the listener", &samples, &SIPP_FREQS, OWN);
    // The SIPp callers hung up: only the listener is left.
    wait_participants(&engine, "pcaps", 1);
    listener.bye();
    let _ = std::fs::remove_dir_all(&dir);
}

const FLOW_A: &str = "cccccccc-0000-4000-8000-00000000000a";
const FLOW_B: &str = "cccccccc-0000-4000-8000-00000000000b";

fn member_flow(id: &str, name: &str) -> Value {
    json!({"id": id, "name": name, "actions": [
        {"type": "conference_join", "option": {"conference_id": "ctl"}},
        {"type": "beep", "option": {"duration": 300}},
        {"type": "hangup"}
    ]})
}

/// The running activeflow of flow `flow_id`: (activeflow id, call id).
fn activeflow_of(engine: &TestEngine, flow_id: &str) -> (String, String) {
    let a = engine
        .activeflows()
        .into_iter()
        .find(|a| a.flow_id.to_string() == flow_id)
        .expect("its activeflow");
    (a.id.to_string(), a.reference_id.clone())
}

fn digits(engine: &TestEngine, activeflow: &str) -> String {
    let (status, vars) = http(
        engine.api,
        "GET",
        &format!("/v1/activeflows/{activeflow}/variables"),
        None,
    );
    assert_eq!(status, 200, "{vars}");
    vars["variables"]["call.digits"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn digits_stay_with_their_flow_mute_silences_and_kick_moves_the_flow_on() {
    // A's flow has a webhook (and there is no global one): it gets A's join and leave.
    let (hook, seen) = http_server_answering(Duration::ZERO, |_| "{}".into());
    let mut flow_a = member_flow(FLOW_A, "a");
    flow_a["webhook_uri"] = json!(format!("http://{hook}/flow"));
    let flows = [flow_a, member_flow(FLOW_B, "b")];
    let engine = start(
        &flows,
        &[("a", "a"), ("b", "b")],
        &[("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32")],
    );
    let mut a = MediaCaller::new(engine.sip);
    a.call("a", 0);
    let mut b = MediaCaller::new(engine.sip);
    b.call("b", 0);
    wait_participants(&engine, "ctl", 2);
    let (flow_a, call_a) = activeflow_of(&engine, FLOW_A);
    let (flow_b, _) = activeflow_of(&engine, FLOW_B);

    // RFC 4733 digit from A: A's flow has it, B's does not (digits are never mixed).
    let mut seq = 1000;
    a.press(5, &mut seq, 160_000);
    wait_until("A's digit", Duration::from_secs(5), || {
        (digits(&engine, &flow_a) == "5").then_some(())
    });
    assert_eq!(
        digits(&engine, &flow_b),
        "",
        "B's flow must not see A's key"
    );

    // A talks; B hears it. Muted, A is heard by no one; unmuted, again.
    let mut tone = ToneSender::start(&a, 0, 800.0, AMPLITUDE);
    let lone = AMPLITUDE * AMPLITUDE / 4.0;
    let heard = |b: &MediaCaller| {
        let packets = b.capture(Duration::from_secs(60), Duration::from_millis(800));
        tone_power(&tail(&packets, 0, 0.4), 800.0)
    };
    assert!(heard(&b) > lone / 4.0, "B hears A");
    let mute = format!("/v1/conferences/ctl/participants/{call_a}/mute");
    let (status, p) = http(engine.api, "POST", &mute, None);
    assert_eq!((status, &p["muted"]), (200, &json!(true)), "{p}");
    let muted = heard(&b);
    assert!(muted < lone / 1000.0, "muted A is still heard: {muted}");
    let unmute = format!("/v1/conferences/ctl/participants/{call_a}/unmute");
    assert_eq!(http(engine.api, "POST", &unmute, None).0, 200);
    assert!(heard(&b) > lone / 4.0, "B hears A again");
    tone.stop();

    // Kicked, A's flow moves on to its hangup; B stays.
    let kick = format!("/v1/conferences/ctl/participants/{call_a}/kick");
    let (status, p) = http(engine.api, "POST", &kick, None);
    assert_eq!(status, 200, "{p}");
    // Its media session is back to normal: the next action's beep (1 kHz) plays, then BYE.
    let after = a.capture(Duration::from_millis(400), Duration::from_secs(5));
    let beep = tail(&after, 0, 0.2);
    assert!(
        tone_power(&beep, 1000.0) > AMPLITUDE * AMPLITUDE / 4.0,
        "the beep after the kick"
    );
    a.expect_bye();
    wait_participants(&engine, "ctl", 1);
    engine.wait_for("A's flow to complete", Duration::from_secs(10), |all| {
        all.iter().any(|r| {
            r.flow_id.to_string() == FLOW_A
                && r.end_reason == Some(activeflow::engine::EndReason::Completed)
        })
    });
    let record = engine
        .activeflows()
        .into_iter()
        .find(|r| r.flow_id.to_string() == FLOW_A)
        .unwrap();
    let result = result_of(&record, "conference_join");
    assert_eq!(result["ended_by"], "kicked", "{result}");
    assert_eq!(result["conference_id"], "ctl", "{result}");
    assert!(
        result["joined_at"].is_string() && result["left_at"].is_string(),
        "{result}"
    );
    assert_eq!(http(engine.api, "POST", &kick, None).0, 404, "already gone");
    // A's flow webhook got its conference events, on A's activeflow, kicked.
    let conference_events = |seen: &common::http_server::Seen| -> Vec<Value> {
        seen.lock()
            .unwrap()
            .iter()
            .filter_map(|(_, path, body)| {
                let e: Value = serde_json::from_str(body).ok()?;
                let kind = e["type"].as_str()?;
                (path == "/flow" && kind.starts_with("conference_")).then_some(e)
            })
            .collect()
    };
    wait_until("A's webhook events", Duration::from_secs(10), || {
        (conference_events(&seen).len() >= 2).then_some(())
    });
    // Any further (wrong) one would arrive now.
    std::thread::sleep(Duration::from_millis(300));
    let events = conference_events(&seen);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        kinds,
        ["conference_joined", "conference_left"],
        "{events:#?}"
    );
    for e in &events {
        assert_eq!(e["id"], json!(flow_a), "{e}");
        assert_eq!(e["call_id"], json!(call_a), "{e}");
        assert_eq!(e["conference_id"], "ctl", "{e}");
    }
    assert_eq!(events[1]["ended_by"], "kicked", "{events:#?}");
    b.bye();
    wait_until("the room to go", Duration::from_secs(10), || {
        participants(&engine, "ctl").is_none().then_some(())
    });
}

#[test]
fn stop_leaves_cleanly_and_delete_moves_every_flow_on() {
    let f = flow(
        "dyn",
        json!([
            {"type": "conference_join", "option": {"conference_id": "${call.destination.target}"}},
            {"type": "hangup"}
        ]),
    );
    let engine = start(&[f], &[("*", "dyn")], &[]);
    let mut tap = EventTap::connect(engine.api, "conference_joined,conference_left");
    let (status, room) = http(
        engine.api,
        "POST",
        "/v1/conferences",
        Some(r#"{"name": "board"}"#),
    );
    assert_eq!(status, 201, "{room}");
    assert_eq!(room["name"], "board");
    let id = room["id"].as_str().unwrap().to_owned();
    let mut a = MediaCaller::new(engine.sip);
    a.call(&id, 0);
    let mut b = MediaCaller::new(engine.sip);
    b.call(&id, 8);
    let list = wait_participants(&engine, &id, 2);
    let (status, all) = http(engine.api, "GET", "/v1/conferences", None);
    assert_eq!(status, 200);
    assert_eq!(all["result"].as_array().unwrap().len(), 1, "{all}");

    // An operator stops A's activeflow: its call is torn down and it leaves the room.
    let flow_a = list
        .iter()
        .map(|p| p["activeflow_id"].as_str().unwrap().to_owned())
        .next()
        .unwrap();
    let (status, _) = http(
        engine.api,
        "POST",
        &format!("/v1/activeflows/{flow_a}/stop"),
        None,
    );
    assert_eq!(status, 200);
    let left = wait_participants(&engine, &id, 1);
    assert_ne!(left[0]["activeflow_id"], json!(flow_a));

    // Deleting the room lets the rest go: their flows move on (hangup here).
    let (status, _) = http(engine.api, "DELETE", &format!("/v1/conferences/{id}"), None);
    assert_eq!(status, 204);
    engine.wait_for("both activeflows ended", Duration::from_secs(10), |all| {
        all.len() == 2 && all.iter().all(|r| r.end_reason.is_some())
    });
    let ended = engine.activeflows();
    let deleted = ended
        .iter()
        .find(|r| r.id.to_string() != flow_a)
        .expect("the other activeflow");
    assert_eq!(
        deleted.end_reason,
        Some(activeflow::engine::EndReason::Completed)
    );
    assert_eq!(result_of(deleted, "conference_join")["ended_by"], "deleted");
    let stopped = ended.iter().find(|r| r.id.to_string() == flow_a).unwrap();
    assert_eq!(
        stopped.end_reason,
        Some(activeflow::engine::EndReason::OperatorStop)
    );
    a.expect_bye();
    b.expect_bye();

    // Each activeflow's stream says when its call joined and left, and why it left.
    let of = |events: &[Value], kind: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["type"] == kind)
            .cloned()
            .collect()
    };
    let events = tap.until(Duration::from_secs(10), |all| {
        of(all, "conference_joined").len() == 2 && of(all, "conference_left").len() == 2
    });
    for e in of(&events, "conference_joined") {
        assert_eq!(e["conference_id"], json!(id), "{e}");
    }
    let left = of(&events, "conference_left");
    let by_stop = left
        .iter()
        .find(|e| e["id"] == json!(flow_a))
        .expect("stopped one left");
    assert_eq!(by_stop["ended_by"], "call_ended", "{by_stop}");
    let by_delete = left
        .iter()
        .find(|e| e["id"] != json!(flow_a))
        .expect("other left");
    assert_eq!(by_delete["ended_by"], "deleted", "{by_delete}");
    assert_eq!(by_delete["id"], json!(deleted.id.to_string()));

    // Unknown rooms and participants are 404; a bad body is 400.
    assert_eq!(
        http(engine.api, "GET", &format!("/v1/conferences/{id}"), None).0,
        404
    );
    assert_eq!(
        http(engine.api, "DELETE", &format!("/v1/conferences/{id}"), None).0,
        404
    );
    let kick = format!("/v1/conferences/{id}/participants/x/kick");
    assert_eq!(http(engine.api, "POST", &kick, None).0, 404);
    let (_, other) = http(engine.api, "POST", "/v1/conferences", None);
    let other = other["id"].as_str().unwrap().to_owned();
    for verb in ["kick", "mute", "unmute"] {
        let path = format!("/v1/conferences/{other}/participants/nobody/{verb}");
        let (status, err) = http(engine.api, "POST", &path, None);
        assert_eq!(status, 404, "{verb}: {err}");
    }
    let (status, err) = http(engine.api, "POST", "/v1/conferences", Some(r#"{"nam": 1}"#));
    assert_eq!(status, 400, "{err}");
}

/// The room bound (`MAX_ROOMS`, 1,000): `POST /v1/conferences` past it is 503 with
/// Retry-After, and a deleted room's slot is free again.
#[test]
fn rooms_past_the_bound_are_refused_with_503() {
    let engine = start(&[], &[], &[]);
    let mut last = String::new();
    for i in 0..1000 {
        let (status, room) = http(engine.api, "POST", "/v1/conferences", None);
        assert_eq!(status, 201, "room {i}: {room}");
        last = room["id"].as_str().unwrap().to_owned();
    }
    let (status, err) = http(engine.api, "POST", "/v1/conferences", None);
    assert_eq!(status, 503, "{err}");
    assert!(err.to_string().contains("too many conferences"), "{err}");
    let path = format!("/v1/conferences/{last}");
    assert_eq!(http(engine.api, "DELETE", &path, None).0, 204);
    assert_eq!(http(engine.api, "POST", "/v1/conferences", None).0, 201);
    assert_eq!(http(engine.api, "POST", "/v1/conferences", None).0, 503);
}
