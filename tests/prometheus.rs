//! Metrics checked by the real peers: a real Prometheus scrapes the `activeflow` binary while it
//! serves a small SIPp load, every `expr` of every shipped Grafana dashboard must then return at
//! least one sample and no NaN through Prometheus's HTTP query API, and `promtool check metrics`
//! must accept the exposition. Also from the exposition itself: every ARCHITECTURE §13 name exported at
//! zero from start-up, and no label value that is an id, a number or a URI after calls.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::prometheus::{encode, query};
use serde_json::Value;

/// Polls until `done` or panics after `limit` (peers start asynchronously; bounded waiting).
fn eventually(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every query of every dashboard in `grafana/dashboards/`, as (dashboard file, panel title,
/// expr), with the dashboards' variables set to this engine: `$job` the scrape job, `$instance`
/// its metrics address (what Grafana would put there), and `$__rate_interval` one minute (what
/// Grafana gives it at a 15 s scrape: four scrape intervals).
fn dashboard_queries(instance: SocketAddr) -> Vec<(String, String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/grafana/dashboards");
    let mut out = Vec::new();
    fn walk(file: &str, v: &Value, title: &str, out: &mut Vec<(String, String, String)>) {
        match v {
            Value::Object(m) => {
                let title = m.get("title").and_then(Value::as_str).unwrap_or(title);
                if let Some(Value::String(e)) = m.get("expr") {
                    out.push((file.to_owned(), title.to_owned(), e.clone()));
                }
                m.values().for_each(|v| walk(file, v, title, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(file, v, title, out)),
            _ => {}
        }
    }
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards in {dir}");
    for path in files {
        let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        walk(&file, &dash, "", &mut out);
    }
    for (_, _, expr) in &mut out {
        *expr = expr
            .replace("$__rate_interval", "1m")
            .replace("$job", "activeflow")
            .replace("$instance", &instance.to_string());
    }
    out
}

/// What is wrong with an instant query's answer, if anything: not a success, no sample, or a
/// sample that is not a finite number (NaN is what `histogram_quantile` or a ratio shows when
/// a panel has nothing to compute from).
fn without_data(answer: &Value) -> Option<String> {
    if answer["status"] != "success" {
        return Some(format!("status {}", answer["status"]));
    }
    let samples = answer["data"]["result"].as_array()?;
    if samples.is_empty() {
        return Some("no sample".into());
    }
    let bad: Vec<String> = samples
        .iter()
        .filter(|s| {
            !s["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(f64::is_finite)
        })
        .map(|s| format!("{} = {}", s["metric"], s["value"][1]))
        .collect();
    (!bad.is_empty()).then(|| format!("not a finite number: {bad:?}"))
}

/// The value of a one-sample instant query, if it has one.
fn scalar(prom: SocketAddr, q: &str) -> Option<f64> {
    query(prom, q)["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
}

#[test]
fn prometheus_scrapes_the_engine_and_every_dashboard_query_returns_data() {
    common::require("prometheus");
    common::require("promtool");
    let (mut engine, sip, _api, metrics) = common::spawn_engine(&[]);
    let prometheus = common::prometheus::start(metrics);
    let prom = prometheus.addr;
    eventually(
        "prometheus scraping the engine",
        Duration::from_secs(60),
        || {
            // Prometheus may not listen yet (a refused connection) or still be starting (503):
            // both are "not yet".
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
    assert_eq!(scalar(prom, "up{job=\"activeflow\"}"), Some(1.0));
    // The calls run while Prometheus scrapes, so every rate and quantile has an increase to
    // work from (calls made before the first scrape would leave the rates at zero and the
    // quantiles NaN).
    common::sipp(sip, "uac_caller_bye.xml", "100", &["-m", "20", "-r", "20"]).assert_all_ok(20);
    eventually("the calls scraped", Duration::from_secs(30), || {
        scalar(prom, "sum(activeflow_started_total)") == Some(20.0)
            && scalar(prom, "sum(activeflow_ended_total)") == Some(20.0)
    });
    // Two more scrapes after the last change, so `rate` sees it between samples.
    std::thread::sleep(Duration::from_millis(2500));

    let queries = dashboard_queries(metrics);
    assert!(
        queries.len() >= 15,
        "dashboards have only {} queries",
        queries.len()
    );
    // A scrape that times out on a loaded machine marks every series stale for that instant
    // (gauges then have no sample): ask again for a while; a panel that is NaN or empty by
    // construction stays so and fails.
    let failing = |queries: &[(String, String, String)]| -> Vec<String> {
        queries
            .iter()
            .filter_map(|(file, title, expr)| {
                without_data(&query(prom, expr))
                    .map(|why| format!("{file} / {title}: {expr}: {why}"))
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = failing(&queries);
    while !last.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        last = failing(&queries);
    }
    assert!(
        last.is_empty(),
        "dashboard panels without data after 20 calls:\n{}",
        last.join("\n")
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

/// One sample of an exposition: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Every sample line of an exposition.
fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or(f64::NAN);
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').unwrap()),
            None => (series, ""),
        };
        let mut pairs = Vec::new();
        // Label values here never contain `",` inside a value (checked by the caller anyway).
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").unwrap();
            pairs.push((k.to_owned(), v.trim_end_matches('"').to_owned()));
        }
        out.push((name.to_owned(), pairs, value));
    }
    out
}

/// A metric of ARCHITECTURE §13: name, type, and label values the design itself names.
type DesignMetric = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const DESIGN_METRICS: [DesignMetric; 14] = [
    ("activeflow_running", "gauge", &[]),
    (
        "activeflow_started_total",
        "counter",
        &[("reference_type", "call"), ("reference_type", "api")],
    ),
    (
        "activeflow_ended_total",
        "counter",
        &[
            ("reason", "completed"),
            ("reason", "stop_action"),
            ("reason", "operator_stop"),
            ("reason", "hangup"),
            ("reason", "ack_timeout"),
            ("reason", "rtp_timeout"),
            ("reason", "loop_limit"),
            ("reason", "error"),
            ("reason", "shutdown"),
            ("reason", "engine_restart"),
        ],
    ),
    ("activeflow_duration_seconds", "histogram", &[]),
    (
        "activeflow_actions_executed_total",
        "counter",
        &[("type", "answer"), ("type", "hangup"), ("type", "connect")],
    ),
    (
        "activeflow_action_errors_total",
        "counter",
        &[("type", "answer"), ("type", "play")],
    ),
    (
        "activeflow_action_duration_seconds",
        "histogram",
        &[("type", "talk")],
    ),
    (
        "sip_requests_received_total",
        "counter",
        &[
            ("method", "INVITE"),
            ("method", "ACK"),
            ("method", "BYE"),
            ("method", "CANCEL"),
            ("method", "OPTIONS"),
        ],
    ),
    (
        "sip_responses_sent_total",
        "counter",
        &[
            ("code", "100"),
            ("code", "200"),
            ("code", "404"),
            ("code", "481"),
            ("code", "487"),
            ("code", "503"),
        ],
    ),
    ("sip_retransmissions_total", "counter", &[]),
    (
        "sip_malformed_total",
        "counter",
        &[("transport", "udp"), ("transport", "tcp")],
    ),
    ("calls_active", "gauge", &[]),
    ("calls_total", "counter", &[("outcome", "answered")]),
    ("call_setup_seconds", "histogram", &[]),
];

#[test]
fn every_design_metric_is_exported_at_zero_from_start_up() {
    let (_engine, _sip, _api, metrics) = common::spawn_engine(&[]);
    let text = common::raw_get(metrics, "/metrics");
    let all = samples(&text);
    for (name, kind, labels) in DESIGN_METRICS {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} is not exported as a {kind}"
        );
        let series: Vec<_> = all
            .iter()
            .filter(|(n, ..)| {
                n == name
                    || (kind == "histogram"
                        && n.strip_prefix(name)
                            .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s)))
            })
            .collect();
        assert!(!series.is_empty(), "{name}: no sample at start-up");
        // Nothing has happened yet: every sample of it is zero (a histogram's buckets, sum and
        // count included).
        for (n, l, v) in &series {
            assert_eq!(*v, 0.0, "{n}{l:?} at start-up");
        }
        if kind == "histogram" {
            assert!(
                series.iter().any(|(n, l, _)| n.ends_with("_bucket")
                    && l.iter().any(|(k, v)| k == "le" && v == "+Inf")),
                "{name}: no +Inf bucket"
            );
        }
        for (key, value) in labels {
            assert!(
                series
                    .iter()
                    .any(|(_, l, _)| l.iter().any(|(k, v)| k == key && v == value)),
                "{name}{{{key}=\"{value}\"}} missing at start-up"
            );
        }
    }
}

/// True when a label value is low-cardinality by construction: a lower-case word (`answered`,
/// `stop_action`), an upper-case SIP method, or for `code` a status code.
fn allowed_label(key: &str, value: &str) -> bool {
    match key {
        // Bucket bounds and quantiles are the exposition's own numbers.
        "le" | "quantile" => value == "+Inf" || value.parse::<f64>().is_ok(),
        "code" => value.len() == 3 && value.bytes().all(|b| b.is_ascii_digit()),
        // `activeflow_build_info`: the binary's own version, one per process.
        "version" => value == env!("CARGO_PKG_VERSION"),
        "method" => !value.is_empty() && value.bytes().all(|b| b.is_ascii_uppercase()),
        _ => {
            !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
                && !value.bytes().all(|b| b.is_ascii_digit())
                && value.len() <= 32
        }
    }
}

#[test]
fn metric_labels_never_carry_ids_numbers_or_uris_after_calls() {
    let (_engine, sip, api, metrics) = common::spawn_engine(&[]);
    let run = |n: u64| {
        common::sipp(
            sip,
            "uac_caller_bye.xml",
            "100",
            &["-m", &n.to_string(), "-r", "20"],
        )
        .assert_all_ok(n);
        let body = serde_json::json!({"actions": [{"type": "variable_set",
            "option": {"key": "k", "value": "v"}}]});
        let (status, a) = common::http(api, "POST", "/v1/activeflows", Some(&body.to_string()));
        assert_eq!(status, 200, "{a}");
        // A BYE for a dialog the engine never had (481, RFC 3261 §15.1.2): its Call-ID and
        // numbers must not become label values either.
        let peer = common::RawPeer::new(sip);
        let port = peer.port();
        peer.send(&format!(
            "BYE sip:5550123999@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-lp\r\n\
             From: <sip:5550111222@127.0.0.1>;tag=a\r\nTo: <sip:5550123999@{sip}>;tag=b\r\n\
             Call-ID: label-probe-1@t\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ));
        let answer = peer.recv_final();
        assert!(answer.starts_with("SIP/2.0 481"), "{answer}");
    };
    run(10);
    std::thread::sleep(Duration::from_millis(500));
    let first = common::raw_get(metrics, "/metrics");
    run(10);
    std::thread::sleep(Duration::from_millis(500));
    let text = common::raw_get(metrics, "/metrics");

    for (name, labels, _) in samples(&text) {
        for (k, v) in &labels {
            assert!(
                allowed_label(k, v),
                "{name}{{{k}=\"{v}\"}}: a label value must be a fixed word, not an id/number/URI"
            );
        }
    }
    // No id the engine handed out, nor a Call-ID or number it saw, appears anywhere.
    let (_, list) = common::http(api, "GET", "/v1/activeflows?page_size=1000", None);
    let (_, calls) = common::http(api, "GET", "/v1/calls?page_size=1000", None);
    let mut ids: Vec<String> = Vec::new();
    for a in list["result"].as_array().unwrap() {
        ids.push(a["id"].as_str().unwrap().to_owned());
        ids.push(a["flow_id"].as_str().unwrap_or("").to_owned());
    }
    for c in calls["result"].as_array().unwrap() {
        ids.push(c["id"].as_str().unwrap().to_owned());
        ids.push(c["sip_call_id"].as_str().unwrap().to_owned());
    }
    assert!(ids.len() > 40, "{} ids to look for", ids.len());
    ids.extend(["label-probe-1@t", "5550123999", "5550111222"].map(String::from));
    for id in ids.iter().filter(|i| !i.is_empty()) {
        assert!(!text.contains(id.as_str()), "{id} appears in /metrics");
    }
    // The same calls again add no series: label sets do not grow with traffic.
    let series = |t: &str| -> std::collections::BTreeSet<String> {
        samples(t)
            .into_iter()
            .map(|(n, l, _)| format!("{n}{l:?}"))
            .collect()
    };
    let (before, after) = (series(&first), series(&text));
    let grown: Vec<_> = after.difference(&before).collect();
    assert!(
        grown.is_empty(),
        "new series after the same calls: {grown:?}"
    );
}
