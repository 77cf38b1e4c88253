//! Metrics checked by the real peers: the `activeflow` binary serves a small SIPp load, a real
//! Prometheus scrapes it, every `expr` of the shipped Grafana dashboard must return data through
//! Prometheus's HTTP query API, and `promtool check metrics` must accept the exposition.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn start_prometheus(metrics: SocketAddr) -> (common::Reaper, SocketAddr) {
    let dir = std::env::temp_dir().join(format!(
        "activeflow-prom-{}-{}",
        std::process::id(),
        common::free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: activeflow\n    \
         metrics_path: /metrics\n    static_configs:\n      - targets: ['{metrics}']\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let listen: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    (common::Reaper(child), listen)
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query(prom: SocketAddr, q: &str) -> Value {
    let (status, body) = common::http(
        prom,
        "GET",
        &format!("/api/v1/query?query={}", encode(q)),
        None,
    );
    assert_eq!(status, 200, "{q}: {body}");
    body
}

/// Polls until `done` or panics after `limit` (peers start asynchronously; bounded waiting).
fn eventually(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn dashboard_exprs() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/grafana/dashboards/activeflow.json"
    );
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(e)) = m.get("expr") {
                    out.push(e.clone());
                }
                m.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(&dash, &mut exprs);
    exprs
}

#[test]
fn prometheus_scrapes_the_engine_and_every_dashboard_query_returns_data() {
    common::require("prometheus");
    common::require("promtool");
    let (mut engine, sip, _api, metrics) = common::spawn_engine(&[]);
    common::sipp(sip, "uac_caller_bye.xml", "100", &["-m", "20", "-r", "20"]).assert_all_ok(20);
    let (_prom, prom) = start_prometheus(metrics);
    eventually(
        "prometheus scraping the engine",
        Duration::from_secs(60),
        || {
            // Prometheus may not listen yet: a refused connection is "not yet".
            if std::net::TcpStream::connect(prom).is_err() {
                return false;
            }
            let q = encode("count_over_time(up{job=\"activeflow\"}[1m])");
            let (status, body) =
                common::http(prom, "GET", &format!("/api/v1/query?query={q}"), None);
            status == 200
                && body["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(|n| n >= 3.0)
        },
    );
    assert_eq!(
        query(prom, "up{job=\"activeflow\"}")["data"]["result"][0]["value"][1],
        "1"
    );
    let calls = query(prom, "sum(activeflow_started_total)");
    assert_eq!(calls["data"]["result"][0]["value"][1], "20", "{calls}");

    let exprs = dashboard_exprs();
    assert!(
        exprs.len() >= 15,
        "dashboard has only {} queries",
        exprs.len()
    );
    let empty: Vec<&String> = exprs
        .iter()
        .filter(|e| {
            let r = query(prom, e);
            r["status"] != "success" || r["data"]["result"].as_array().is_none_or(|a| a.is_empty())
        })
        .collect();
    assert!(
        empty.is_empty(),
        "dashboard queries without data: {empty:#?}"
    );

    // The exposition itself passes promtool's checks.
    let (status, _) = common::http(metrics, "GET", "/metrics", None);
    assert_eq!(status, 200);
    let text = common::raw_get(metrics, "/metrics");
    for name in [
        "activeflow_running",
        "sip_malformed_total{transport=\"tcp\"}",
        "call_setup_seconds_bucket",
        "process_resident_memory_bytes",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // SIGTERM drains and exits 0.
    let pid = engine.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = engine.0.wait().unwrap();
    assert!(status.success(), "engine exit: {status:?}");
}
