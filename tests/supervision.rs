//! Supervision seen from outside (README "Supervision"): the `activeflow` binary reports every
//! watched part in `/readyz` and exports `activeflow_component_up` /
//! `activeflow_component_restarts_total` for each from start-up. How each part dies and comes back
//! is tested in the library, where a part can be made to die (`health`, `sip::transport::udp`,
//! `storage::writer`, `media::recording`).

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use serde_json::Value;

const PARTS: [&str; 3] = ["sip_udp", "storage_writer", "recording_writer"];

/// A running engine is ready, names each watched part up, and exports each one's gauge at 1
/// and its restart counter at 0.
#[test]
fn readyz_and_metrics_report_every_watched_part() {
    let (_engine, _sip, api, metrics) = common::spawn_engine(&[]);
    let ready: Value = serde_json::from_str(&common::raw_get(api, "/readyz")).unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["down"], serde_json::json!([]), "{ready}");
    let text = common::raw_get(metrics, "/metrics");
    for part in PARTS {
        assert_eq!(ready["components"][part], "up", "{part}: {ready}");
        let up = format!("activeflow_component_up{{component=\"{part}\"}}");
        assert_eq!(common::metric(&text, &up), Some(1.0), "{up}");
        let restarts = format!("activeflow_component_restarts_total{{component=\"{part}\"}}");
        assert_eq!(common::metric(&text, &restarts), Some(0.0), "{restarts}");
    }
}

/// Without storage there is no writer to watch: `off`, and the engine is still ready.
#[test]
fn a_part_that_is_not_started_is_off_and_does_not_block_readiness() {
    let (_engine, _sip, api, metrics) = common::spawn_engine(&[("ACTIVEFLOW_STORAGE_PATH", "")]);
    let ready: Value = serde_json::from_str(&common::raw_get(api, "/readyz")).unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["components"]["storage_writer"], "off", "{ready}");
    let text = common::raw_get(metrics, "/metrics");
    let up = "activeflow_component_up{component=\"storage_writer\"}";
    assert_eq!(common::metric(&text, up), Some(0.0), "{up}");
}
