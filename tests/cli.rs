//! The binary's command line: `validate` on good and bad flow files, and `serve` refusing a bad
//! config (naming the key) before it binds any socket.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::process::Command;

mod common;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_activeflow"))
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("activeflow-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn validate_accepts_the_shipped_flows_and_names_the_bad_field() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/config/flows/demo.json");
    let out = bin().args(["validate", demo]).output().expect("run");
    assert!(out.status.success(), "{out:?}");
    let bad = temp_file(
        "bad.json",
        r#"{"name": "bad", "actions": [{"type": "answer"}, {"type": "sleep", "option": {"duration": "long"}}]}"#,
    );
    let out = bin().arg("validate").arg(&bad).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("actions[1].option.duration"), "{err}");
    let unsupported = temp_file(
        "conference.json",
        r#"{"name": "t", "actions": [{"type": "ai_talk"}]}"#,
    );
    let out = bin()
        .arg("validate")
        .arg(&unsupported)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"action type "ai_talk" is not supported"#),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_bad_config_naming_the_key_before_binding() {
    // The SIP port is taken by us: if serve got as far as binding it would say so instead.
    let holder = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let taken = holder.local_addr().expect("addr").to_string();
    let cases = [
        (
            "ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS",
            "lots",
            "ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS",
        ),
        ("ACTIVEFLOW_MEDIA_RTP_PORTS", "9-1", "media.rtp_ports"),
        ("ACTIVEFLOW_API_LISTEN", "0.0.0.0:0", "api.token"),
    ];
    for (var, value, key) in cases {
        let out = bin()
            .arg("serve")
            .env("ACTIVEFLOW_SIP_LISTEN", &taken)
            .env(var, value)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{var}={value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{var}={value}: {err}");
        assert!(!err.contains("binding"), "{err}");
    }
}

#[test]
fn a_route_to_a_flow_not_yet_created_is_a_warning_not_an_error() {
    let config = temp_file(
        "later.toml",
        &format!(
            "{}\n[[routes]]\nnumber = \"100\"\nflow = \"made-later\"\n",
            activeflow::config::DEFAULT_TOML
        ),
    );
    let engine = common::spawn_engine_with(&["--config", config.to_str().expect("path")], &[]);
    assert!(
        engine
            .startup_log
            .iter()
            .any(|l| l.contains("routes[1].flow")),
        "no warning naming routes[1].flow: {:#?}",
        engine.startup_log
    );
    let (status, _) = common::http(engine.api, "GET", "/readyz", None);
    assert_eq!(status, 200);
}
