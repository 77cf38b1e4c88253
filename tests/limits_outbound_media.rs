//! Media limits of issue 16 against real peers: `DELETE /v1/recordings/{id}` and the
//! retention purge on a SIPp call's recording and on files of an earlier run, and `talk` from
//! concurrent SIPp calls through real espeak-ng (one process per text, at most
//! `media.max_tts_processes` at once). The HTTP and SIP limits are in `limits_outbound.rs`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::http;
use common::tts_log::{logged_espeak, processes};
use serde_json::{json, Value};

/// A fresh directory for one test.
fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "activeflow-limits-{tag}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `DELETE /v1/recordings/{id}` on a real recording of a SIPp call (its A-law pcap): 409 while
/// it is being written, then 204 with the file and record gone, then 404; unknown and
/// malformed ids are 404.
#[test]
fn delete_recording_over_the_api() {
    let dir = temp_dir("rec-delete");
    let recordings = dir.join("recordings");
    let f = common::flow(
        "rec",
        json!([
            {"type": "answer"},
            {"type": "recording_start", "option": {"format": "wav"}},
            {"type": "sleep", "option": {"duration": 60000}}
        ]),
    );
    let engine = common::start(
        &[f],
        &[("rec", "rec")],
        &[(
            "ACTIVEFLOW_MEDIA_RECORDINGS_DIR",
            recordings.to_str().unwrap(),
        )],
    );
    let media_port = common::reserve_ports(4).release().to_string();
    let mut caller = common::sipp_spawn(
        engine.sip,
        "uac_g711a.xml",
        "rec",
        &["-m", "1", "-mp", &media_port],
    );
    let id = common::wait_until("a recording in progress", Duration::from_secs(20), || {
        let (_, list) = http(engine.api, "GET", "/v1/recordings", None);
        let first = list["result"].get(0)?;
        (first["status"] == "recording").then(|| first["id"].as_str().unwrap().to_owned())
    });
    let path = format!("/v1/recordings/{id}");
    let (status, body) = http(engine.api, "DELETE", &path, None);
    assert_eq!(status, 409, "still recording: {body}");
    assert_eq!(body["error"]["code"], "conflict");
    assert!(caller.wait().unwrap().success(), "the SIPp call completed");
    common::wait_until("the recording to end", Duration::from_secs(10), || {
        let (_, r) = http(engine.api, "GET", &path, None);
        (r["status"] == "ended").then_some(())
    });
    let file = recordings.join(format!("{id}.wav"));
    assert!(file.exists());
    let (status, _) = http(engine.api, "DELETE", &path, None);
    assert_eq!(status, 204);
    assert!(!file.exists(), "the file is gone");
    assert_eq!(http(engine.api, "GET", &path, None).0, 404);
    assert_eq!(http(engine.api, "DELETE", &path, None).0, 404);
    for unknown in [
        "/v1/recordings/00000000-0000-4000-8000-000000000000",
        "/v1/recordings/..%2F..%2Fetc%2Fpasswd",
        "/v1/recordings/not-an-id",
    ] {
        assert_eq!(
            http(engine.api, "DELETE", unknown, None).0,
            404,
            "{unknown}"
        );
    }
    drop(engine);
    let _ = std::fs::remove_dir_all(dir);
}

/// `media.recordings_retention_days`: at start the engine purges recordings whose file is
/// older (here one of 40 days against 30), keeps newer ones and files that are not
/// recordings, and counts the purge.
#[test]
fn recordings_past_retention_are_purged_at_start() {
    let dir = temp_dir("rec-retention");
    let old = dir.join(format!("{}.wav", uuid::Uuid::new_v4()));
    let new = dir.join(format!("{}.wav", uuid::Uuid::new_v4()));
    let other = dir.join("notes.wav");
    for f in [&old, &new, &other] {
        std::fs::write(f, b"RIFF").unwrap();
    }
    let forty_days = Duration::from_secs(40 * 86_400);
    for f in [&old, &other] {
        std::fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - forty_days)
            .unwrap();
    }
    let engine = common::spawn_engine_with(
        &[],
        &[
            ("ACTIVEFLOW_MEDIA_RECORDINGS_DIR", dir.to_str().unwrap()),
            ("ACTIVEFLOW_MEDIA_RECORDINGS_RETENTION_DAYS", "30"),
        ],
    );
    common::wait_until("the old recording purged", Duration::from_secs(10), || {
        (!old.exists()).then_some(())
    });
    assert!(new.exists() && other.exists());
    // The file goes before the counter moves: wait for the count rather than read it once.
    common::wait_until("the purge counted", Duration::from_secs(10), || {
        let n = common::scrape(
            engine.metrics,
            "activeflow_media_files_purged_total{kind=\"recording\"}",
        );
        (n == 1.0).then_some(())
    });
    drop(engine);
    let _ = std::fs::remove_dir_all(dir);
}

/// `talk` through real espeak-ng from concurrent SIPp calls: five calls speaking the same text
/// at once start one TTS process (the others wait for its result); four calls speaking
/// distinct texts (the dialled number is in the text) never run more than
/// `media.max_tts_processes` (2) at once, and every one of them is spoken.
#[test]
fn concurrent_calls_share_one_tts_process_and_distinct_texts_stay_under_the_cap() {
    common::require("espeak-ng");
    let dir = temp_dir("tts");
    let (command, log) = logged_espeak(&dir, "0.5");
    let f = common::flow(
        "talk",
        json!([
            {"type": "answer"},
            {"type": "talk", "option": {"text": "Number ${call.destination.target}.", "language": "en"}},
            {"type": "hangup"}
        ]),
    );
    let engine = common::start(
        &[f],
        &[("*", "talk")],
        &[
            ("ACTIVEFLOW_MEDIA_TTS_COMMAND", command.as_str()),
            (
                "ACTIVEFLOW_MEDIA_CACHE_DIR",
                dir.join("cache").to_str().unwrap(),
            ),
            ("ACTIVEFLOW_MEDIA_MAX_TTS_PROCESSES", "2"),
        ],
    );
    let media_port = common::reserve_ports(4).release().to_string();
    common::sipp(
        engine.sip,
        "uac_engine_bye.xml",
        "100",
        &["-m", "5", "-r", "50", "-l", "5", "-mp", &media_port],
    )
    .assert_all_ok(5);
    assert_eq!(processes(&log), (1, 1), "five calls, one espeak-ng");

    let callers: Vec<std::process::Child> = (201..205)
        .map(|number| {
            let media_port = common::reserve_ports(4).release().to_string();
            common::sipp_spawn(
                engine.sip,
                "uac_engine_bye.xml",
                &number.to_string(),
                &["-m", "1", "-mp", &media_port],
            )
        })
        .collect();
    for mut caller in callers {
        assert!(caller.wait().unwrap().success(), "a SIPp call failed");
    }
    let (started, most) = processes(&log);
    assert_eq!(started, 1 + 4, "each distinct text spoken once");
    assert!(most <= 2, "{most} espeak-ng processes at once, cap 2");
    engine.wait_for("every activeflow to end", Duration::from_secs(20), |all| {
        all.len() == 9 && all.iter().all(|a| a.end_reason.is_some())
    });
    for a in engine.activeflows() {
        let talk = a
            .executed_actions
            .iter()
            .find(|e| e.action.kind == "talk")
            .expect("talk ran");
        let result = talk.result.clone().unwrap_or(Value::Null);
        assert!(result.get("error").is_none(), "{result}");
    }
    drop(engine);
    let _ = std::fs::remove_dir_all(dir);
}
