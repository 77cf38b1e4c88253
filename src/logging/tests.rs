//! The shapes operators grep: a JSON line per event with the call's and the activeflow's ids
//! under `span`, and the same ids in text lines; spans made by the real constructors.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use super::subscriber;
use crate::call::CallId;
use crate::config::LogFormat;
use crate::engine::ActiveflowId;

/// Everything written, shared with the test.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8")
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Logs, under `format` at `filter`, one line in a call's span (activeflow recorded after the
/// span was made, as the supervisor does), one in an activeflow's span and one outside both.
fn log_lines(format: LogFormat, filter: &str) -> (String, CallId, ActiveflowId) {
    let capture = Capture::default();
    let call = CallId::new();
    let activeflow = ActiveflowId::new();
    let sub = subscriber(format, EnvFilter::new(filter), false, capture.clone());
    tracing::subscriber::with_default(sub, || {
        let span = crate::call::span::new(call, "abc@198.51.100.7");
        crate::call::span::record_activeflow(&span, activeflow);
        span.in_scope(|| tracing::warn!(code = 488, "call line"));
        crate::engine::span::new(activeflow, Some((call, "abc@198.51.100.7")))
            .in_scope(|| tracing::warn!(action_type = "talk", "activeflow line"));
        tracing::warn!("engine line");
    });
    (capture.text(), call, activeflow)
}

#[test]
fn json_lines_carry_the_ids_under_span() {
    let (out, call, activeflow) = log_lines(LogFormat::Json, "info");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (line, message, name) in [
        (&lines[0], "call line", "call"),
        (&lines[1], "activeflow line", "activeflow"),
    ] {
        assert_eq!(line["message"], message, "{line}");
        assert_eq!(line["level"], "WARN", "{line}");
        assert_eq!(line["span"]["name"], name, "{line}");
        assert_eq!(line["span"]["call_id"], call.to_string(), "{line}");
        assert_eq!(line["span"]["sip_call_id"], "abc@198.51.100.7", "{line}");
        assert_eq!(
            line["span"]["activeflow_id"],
            activeflow.to_string(),
            "{line}"
        );
        assert!(line.get("spans").is_none(), "no span list: {line}");
    }
    // The event's own fields sit at the top level, beside the message.
    assert_eq!(lines[0]["code"], 488, "{}", lines[0]);
    assert_eq!(lines[1]["action_type"], "talk", "{}", lines[1]);
    assert!(lines[2].get("span").is_none(), "{}", lines[2]);
}

#[test]
fn text_lines_carry_the_ids() {
    let (out, call, activeflow) = log_lines(LogFormat::Text, "info");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for line in &lines[..2] {
        assert!(line.contains(&format!("call_id={call}")), "{line}");
        assert!(line.contains("sip_call_id=abc@198.51.100.7"), "{line}");
        assert!(
            line.contains(&format!("activeflow_id={activeflow}")),
            "{line}"
        );
    }
    assert!(lines[0].contains("call{"), "{}", lines[0]);
    assert!(lines[1].contains("activeflow{"), "{}", lines[1]);
    assert!(!lines[2].contains("call_id="), "{}", lines[2]);
}

#[test]
fn spans_stay_enabled_when_only_warnings_are_kept() {
    let (out, _, activeflow) = log_lines(LogFormat::Json, "warn");
    let first: Value = serde_json::from_str(out.lines().next().expect("a line")).expect("json");
    assert_eq!(first["span"]["activeflow_id"], activeflow.to_string());
}

#[test]
fn nothing_below_the_filter_is_written() {
    let capture = Capture::default();
    let sub = subscriber(
        LogFormat::Json,
        EnvFilter::new("error"),
        false,
        capture.clone(),
    );
    tracing::subscriber::with_default(sub, || tracing::warn!("dropped"));
    assert_eq!(capture.text(), "");
}

fn config_with(format: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
    let env = [("ACTIVEFLOW_LOG_FORMAT".to_string(), format.to_string())];
    crate::config::Config::from_toml_with_env(crate::config::DEFAULT_TOML, env)
}

#[test]
fn log_format_is_read_from_the_config() {
    let default = config_with("text").expect("text");
    assert_eq!(default.log.format, LogFormat::Text);
    assert_eq!(
        config_with("json").expect("json").log.format,
        LogFormat::Json
    );
}

#[test]
fn a_bad_log_format_names_the_key() {
    let e = config_with("xml")
        .expect_err("xml is no format")
        .to_string();
    assert!(e.contains("log.format"), "{e}");
    assert!(e.contains("xml"), "{e}");
}
