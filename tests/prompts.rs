//! Where `play` may read from: a prompt path that leaves `media.prompts_dir` (`..`, an absolute
//! path elsewhere, a symlink pointing out) is refused as *outside the prompts directory* whether
//! or not its target exists, and a plain missing prompt is *not found*: the two errors differ, so
//! a refusal can never pass for a missing file (nor reveal whether a file outside exists).
//! Recording files are addressed by id only: a path in place of the id is an unknown id.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::path::PathBuf;
use std::time::Duration;

use activeflow::engine::{EndReason, Status};
use common::rtp::MediaCaller;
use common::{flow, free_port, start};
use serde_json::{json, Value};

const OUTSIDE: &str = "is outside the prompts directory";
const MISSING: &str = "not found";

#[test]
fn traversal_is_refused_as_outside_and_a_missing_prompt_is_not_found() {
    let dir = std::env::temp_dir().join(format!(
        "activeflow-prompts-{}-{}",
        std::process::id(),
        free_port()
    ));
    let prompts = dir.join("prompts");
    std::fs::create_dir_all(&prompts).unwrap();
    // A real file outside the prompts directory, reachable by `..`, by absolute path and by a
    // symlink inside: refusing it is the point (a not-found here would mean it was looked up).
    let secret = dir.join("secret.wav");
    std::fs::write(&secret, b"RIFF not really").unwrap();
    std::os::unix::fs::symlink(&secret, prompts.join("link.wav")).unwrap();
    let cases: [(&str, &str); 6] = [
        ("nope.wav", MISSING),
        ("sub/nope.wav", MISSING),
        ("../secret.wav", OUTSIDE),
        ("../no-such-file.wav", OUTSIDE),
        (secret.to_str().unwrap(), OUTSIDE),
        ("link.wav", OUTSIDE),
    ];
    let mut actions = vec![json!({"type": "answer"})];
    for (prompt, _) in cases {
        actions.push(json!({"type": "play", "option": {"stream_urls": [prompt]}}));
    }
    actions.push(json!({"type": "hangup"}));
    let f = flow("prompts", Value::Array(actions));
    let p = prompts.to_str().unwrap().to_owned();
    let (r, c) = (
        dir.join("recordings").display().to_string(),
        dir.join("cache").display().to_string(),
    );
    let engine = start(
        &[f],
        &[("prompts", "prompts")],
        &[
            ("ACTIVEFLOW_MEDIA_PROMPTS_DIR", &p),
            ("ACTIVEFLOW_MEDIA_RECORDINGS_DIR", &r),
            ("ACTIVEFLOW_MEDIA_CACHE_DIR", &c),
        ],
    );
    let mut caller = MediaCaller::new(engine.sip);
    caller.call("prompts", 0);
    caller.expect_bye();
    engine.wait_for("the activeflow to end", Duration::from_secs(20), |all| {
        all.len() == 1 && all[0].status == Status::Ended
    });
    let a = engine.activeflows().remove(0);
    // Every failed play is an action error and the flow goes on to its hangup.
    assert_eq!(a.end_reason, Some(EndReason::Completed));
    let errors: Vec<String> = a
        .executed_actions
        .iter()
        .filter(|e| e.action.kind == "play")
        .map(|e| {
            e.result.as_ref().unwrap_or(&Value::Null)["error"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(errors.len(), cases.len(), "{errors:?}");
    for ((prompt, want), got) in cases.iter().zip(&errors) {
        assert!(got.contains(want), "{prompt:?}: want {want:?}, got {got:?}");
        let other = if *want == OUTSIDE { MISSING } else { OUTSIDE };
        assert!(
            !got.contains(other),
            "{prompt:?}: {got:?} also says {other:?}"
        );
    }
    let _ = std::fs::remove_dir_all(PathBuf::from(&dir));
}

/// Recording files are served by id only (`GET /v1/recordings/{id}/file`): a path in place of
/// the id, encoded or not, is an unknown id (404 `not_found`, the JSON error), never a file.
#[test]
fn recording_files_are_served_by_id_never_by_path() {
    let engine = start(&[flow("x", json!([{"type": "stop"}]))], &[("*", "x")], &[]);
    for path in [
        "/v1/recordings/..%2F..%2F..%2Fetc%2Fpasswd/file",
        "/v1/recordings/%2Fetc%2Fpasswd/file",
        "/v1/recordings/..%2Factiveflow.db/file",
        "/v1/recordings/00000000-0000-4000-8000-000000000000/file",
    ] {
        let (status, body) = common::http(engine.api, "GET", path, None);
        assert_eq!(
            (status, &body["error"]["code"]),
            (404, &json!("not_found")),
            "{path}: {body}"
        );
    }
}
