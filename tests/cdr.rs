//! The CDR export over HTTP (issue 21): real SIPp calls — answered ones of different lengths
//! ended by the engine, one the caller hangs up, one refused by its flow (486), one to an
//! unrouted number (404), one from a hostile caller —
//! then `GET /v1/calls?format=csv` fetched with curl and parsed with Python's `csv` module (an
//! independent RFC 4180 reader): header, rows, durations, SIP codes, end causes, the
//! formula guard, `from`/`to` filtering and the 400s. Storage is the engine's SQLite; the
//! PostgreSQL backend runs the same query in the storage conformance tests, and a two-node
//! cluster (`AF_TEST_PG_URL`, `AF_TEST_NATS_URL`) exports both nodes' calls from either.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use common::{flow, run_python, sipp, start, wait_until};
use serde_json::{json, Value};

/// The header row, as documented in the README.
const COLUMNS: &str = "call_id,activeflow_id,direction,from,to,sip_call_id,peer,node_id,\
created,answered,ended,ring_seconds,duration_seconds,end_cause,sip_code,hangup_side,codec";

/// A response as curl got it: status, headers (lower-case names), body.
struct Fetched {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

/// GET `path` with curl (a real client; it undoes the chunked transfer encoding).
fn get(api: SocketAddr, path: &str) -> Fetched {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "60"])
        .arg(format!("http://{api}{path}"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl ({e}); scripts/test.sh installs it"));
    assert!(out.status.success(), "curl: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Fetched {
        status: status.parse().unwrap(),
        headers,
        body: body.to_owned(),
    }
}

/// `csv` parsed by Python's `csv` module: one list of fields per record.
fn parse_csv(csv: &str) -> Vec<Vec<String>> {
    let program = "import csv, json, sys; \
         print(json.dumps(list(csv.reader(sys.stdin.buffer.read().decode('utf-8').splitlines(True)))))";
    serde_json::from_slice(&run_python(program, csv.as_bytes())).unwrap()
}

/// The export's records (header checked and dropped), keyed by the `to` column (the number
/// dialled), each as column name → value.
fn export(api: SocketAddr, query: &str) -> Vec<HashMap<String, String>> {
    let r = get(api, &format!("/v1/calls?format=csv{query}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = parse_csv(&r.body);
    assert_eq!(rows[0].join(","), COLUMNS);
    let names: Vec<&str> = COLUMNS.split(',').collect();
    rows[1..]
        .iter()
        .map(|fields| {
            assert_eq!(fields.len(), names.len(), "{fields:?}");
            names
                .iter()
                .map(|n| n.to_string())
                .zip(fields.iter().cloned())
                .collect()
        })
        .collect()
}

/// The export once it holds `n` records (storage commits right after each call ends).
fn export_of(api: SocketAddr, query: &str, n: usize) -> Vec<HashMap<String, String>> {
    wait_until(
        &format!("{n} calls in the export{query}"),
        Duration::from_secs(30),
        || Some(export(api, query)).filter(|rows| rows.len() >= n),
    )
}

fn by_number(rows: &[HashMap<String, String>], to: &str) -> HashMap<String, String> {
    rows.iter()
        .find(|r| r["to"] == to)
        .unwrap_or_else(|| panic!("no call to {to} in {rows:#?}"))
        .clone()
}

fn seconds(row: &HashMap<String, String>, column: &str) -> f64 {
    row[column]
        .parse()
        .unwrap_or_else(|_| panic!("{column} in {row:?}"))
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[test]
fn cdr_export_of_real_calls() {
    let e = start(
        &[
            common::answer_hold_hangup("short", 1000),
            common::answer_hold_hangup("long", 3000),
            common::answer_hold_hangup("hold", 60_000),
            flow(
                "busy",
                json!([{"type": "hangup", "option": {"reason": "busy"}}]),
            ),
        ],
        &[
            ("100", "short"),
            ("200", "long"),
            ("300", "busy"),
            ("400", "short"),
            ("500", "hold"),
        ],
        &[],
    );
    let started = now();
    sipp(e.sip, "uac_engine_bye.xml", "100", &["-m", "1"]).assert_all_ok(1);
    export_of(e.api, "", 1);
    // Every call after this instant ends after it.
    let between = now();
    std::thread::scope(|s| {
        for (scenario, number) in [
            ("uac_engine_bye.xml", "200"),
            ("uac_voipbin_busy.xml", "300"),
            ("uac_404.xml", "999"),
            ("uac_cdr_hostile.xml", "400"),
            ("uac_caller_bye.xml", "500"),
        ] {
            s.spawn(move || sipp(e.sip, scenario, number, &["-m", "1"]).assert_all_ok(1));
        }
    });
    let rows = export_of(e.api, "", 6);
    assert_eq!(rows.len(), 6, "{rows:#?}");
    // In end order.
    let ends: Vec<&str> = rows.iter().map(|r| r["ended"].as_str()).collect();
    let mut sorted = ends.clone();
    sorted.sort();
    assert_eq!(ends, sorted);

    let short = by_number(&rows, "100");
    let long = by_number(&rows, "200");
    for (row, held) in [(&short, 1.0), (&long, 3.0)] {
        let duration = seconds(row, "duration_seconds");
        // The flow's sleep is a floor; the ceiling is generous for a loaded machine.
        assert!(
            duration >= held - 0.05 && duration < held + 5.0,
            "{duration} for {held}: {row:?}"
        );
        assert!(seconds(row, "ring_seconds") < 5.0, "{row:?}");
        assert_eq!(
            (
                row["sip_code"].as_str(),
                row["end_cause"].as_str(),
                row["hangup_side"].as_str(),
                row["codec"].as_str(),
                row["direction"].as_str(),
                row["from"].as_str(),
            ),
            ("200", "local", "engine", "PCMU", "incoming", "caller"),
            "{row:?}"
        );
        assert!(!row["answered"].is_empty() && !row["activeflow_id"].is_empty());
        assert!(!row["sip_call_id"].is_empty() && row["peer"].ends_with("/udp"));
        assert!(row["created"] <= row["answered"] && row["answered"] <= row["ended"]);
    }
    assert!(seconds(&long, "duration_seconds") - seconds(&short, "duration_seconds") > 1.5);

    // The flow refused it with 486: no answer, no duration; an E.164 caller is left as is.
    let busy = by_number(&rows, "300");
    assert_eq!(
        (
            busy["sip_code"].as_str(),
            busy["end_cause"].as_str(),
            busy["hangup_side"].as_str(),
            busy["answered"].as_str(),
            busy["duration_seconds"].as_str(),
            busy["codec"].as_str(),
            busy["from"].as_str(),
        ),
        ("486", "local", "engine", "", "0.000", "", "+15559876543"),
        "{busy:?}"
    );
    assert!(!busy["activeflow_id"].is_empty());
    // Unrouted: refused before any activeflow.
    let unrouted = by_number(&rows, "999");
    assert_eq!(
        (
            unrouted["sip_code"].as_str(),
            unrouted["activeflow_id"].as_str()
        ),
        ("404", "")
    );

    // The caller hung up after 200 ms.
    let hung_up = by_number(&rows, "500");
    assert_eq!(
        (
            hung_up["end_cause"].as_str(),
            hung_up["hangup_side"].as_str(),
            hung_up["sip_code"].as_str()
        ),
        ("remote_bye", "remote", "200")
    );
    assert!(seconds(&hung_up, "duration_seconds") < 30.0, "{hung_up:?}");

    // The hostile caller: quoted (it holds a comma) and defused (a leading `'`).
    let hostile = by_number(&rows, "400");
    assert_eq!(hostile["from"], "'=SUM(1,2)");
    let raw = get(e.api, "/v1/calls?format=csv");
    eprintln!("the export:\n{}", raw.body);
    assert!(raw.body.contains(",\"'=SUM(1,2)\",400,"), "{}", raw.body);
    assert!(raw.body.ends_with("\r\n") && raw.body.lines().count() == 7);
    assert_eq!(raw.headers["content-type"], "text/csv; charset=utf-8");
    let disposition = &raw.headers["content-disposition"];
    assert!(
        disposition.starts_with("attachment; filename=\"calls-") && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    assert_eq!(raw.headers["transfer-encoding"], "chunked", "streamed");

    // [from, to): the first call ended before `between`, the others after it.
    let before: Vec<String> = export(e.api, &format!("&to={between}"))
        .iter()
        .map(|r| r["to"].clone())
        .collect();
    assert_eq!(before, ["100"]);
    let after = export(e.api, &format!("&from={between}"));
    assert_eq!(after.len(), 5);
    assert!(after.iter().all(|r| r["to"] != "100"));
    let all = export(e.api, &format!("&from={started}&to={}", now()));
    assert_eq!(all.len(), 6);
    // Offsets work when `+` is escaped; the VoIPBIN prefix answers the same.
    let later = export(e.api, "&from=2999-01-01T00:00:00%2B02:00");
    assert!(later.is_empty());
    let r = get(e.api, "/v1.0/calls?format=csv&status=ended");
    assert_eq!((r.status, parse_csv(&r.body).len()), (200, 7));

    // Bad parameters: 400 naming them.
    for (query, named) in [
        ("format=csv&from=yesterday", "from:"),
        ("format=csv&to=2026-02-30T00:00:00Z", "to:"),
        (
            "format=csv&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "to:",
        ),
        (
            "format=csv&from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "to:",
        ),
        ("format=csv&from=2026-01-01T00:00:00+02:00", "%2B"),
        // Year 10000 in UTC: its stored form would sort before 2026.
        ("format=csv&to=9999-12-31T23:30:00-01:00", "to:"),
        ("format=xml", "format:"),
        ("from=2026-01-01T00:00:00Z", "from:"),
        ("format=csv&status=ringing", "status:"),
        ("format=csv&page_token=5", "page_token:"),
    ] {
        let r = get(e.api, &format!("/v1/calls?{query}"));
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        let body: Value = serde_json::from_str(&r.body).unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{query}: {message}");
    }
    // The spec documents the export's parameters on the listing.
    let spec: Value = serde_json::from_str(&get(e.api, "/v1/openapi.json").body).unwrap();
    let params: Vec<&str> = spec["paths"]["/v1/calls"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in ["format", "from", "to"] {
        assert!(params.contains(&name), "{name} in {params:?}");
    }
    // Without format=csv the listing is the JSON one, unchanged.
    let r = get(e.api, "/v1/calls?page_size=2");
    assert_eq!(r.status, 200);
    let page: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(page["result"].as_array().unwrap().len(), 2);
    assert!(page["next_page_token"].is_string());
}

/// Without storage there is nothing to export: 503 saying so, not an empty file.
#[test]
fn without_storage_the_export_is_unavailable() {
    let e = start(&[], &[], &[("ACTIVEFLOW_STORAGE_PATH", "")]);
    let r = get(e.api, "/v1/calls?format=csv");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("storage"), "{}", r.body);
    assert_eq!(get(e.api, "/v1/calls").status, 200);
}

/// In a cluster any node exports every node's calls, each with its node id.
#[test]
fn a_cluster_node_exports_every_nodes_calls() {
    use common::cluster::{TestCluster, Timers};
    let cluster = TestCluster::on_nats(common::cluster::nats_url(), Timers::NEVER_LOST);
    let (a_id, b_id) = (TestCluster::node_id("cdr-a"), TestCluster::node_id("cdr-b"));
    let a = cluster.start_node_with(&a_id, &[], &[], &[]);
    let b = cluster.start_node_with(&b_id, &[], &[], &[]);
    sipp(a.sip, "uac_404.xml", "7001", &["-m", "1"]).assert_all_ok(1);
    sipp(b.sip, "uac_404.xml", "7002", &["-m", "1"]).assert_all_ok(1);
    for node in [&a, &b] {
        let rows = export_of(node.api, "", 2);
        let mut seen: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r["to"].as_str(),
                    r["node_id"].as_str(),
                    r["sip_code"].as_str(),
                )
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("7001", a_id.as_str(), "404"),
                ("7002", b_id.as_str(), "404")
            ]
        );
    }
}
