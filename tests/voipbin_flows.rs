//! The VoIPBIN flow corpus (`tests/voipbin/`, issue 18): flows written the way a VoIPBIN
//! customer writes them after VoIPBIN's docs (bin-api-manager/docsdev/source/flow_*.rst; each
//! `*.expect.json` names its doc), POSTed to `/v1/flows`, called by SIPp (pressing keys over RFC
//! 4733 where the flow reads digits), and checked through `GET /v1/activeflows`: the executed
//! action types, key results (digits, the branch taken), the end reason, final variables and the
//! `on_complete_flow_id` successor. One engine serves the whole corpus and every call runs at
//! once (the first test to ask runs the batch); each flow is still its own test.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use common::uas::SippUas;
use common::{free_port, http, read_http_request, reserve_ports, sipp, start_with, TestEngine};
use serde_json::Value;

const NIL: &str = "00000000-0000-0000-0000-000000000000";

/// What one routed flow of the corpus did.
struct Outcome {
    /// `POST /v1/flows` of the flow itself: status and body.
    post: (u16, Value),
    /// SIPp: (ok, a summary for the failure message).
    caller: (bool, String),
}

struct Batch {
    engine: TestEngine,
    /// Every flow file (routed and helper) by file stem, placeholders filled in.
    flows: BTreeMap<String, Value>,
    /// `POST /v1/flows` of the helper flows (no expect file).
    helper_posts: BTreeMap<String, (u16, Value)>,
    outcomes: BTreeMap<String, Outcome>,
    /// Each callee (`tel`, `sip`; an expect file's `callee`): whether it took exactly one call
    /// that succeeded (SIPp `-m 1` exited 0). A never-dialled callee is killed at the limit.
    callees: BTreeMap<String, bool>,
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/voipbin")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (flow files by stem, expectations by stem): `<stem>.json` and `<stem>.expect.json`.
fn corpus() -> (BTreeMap<String, String>, BTreeMap<String, Value>) {
    let mut flows = BTreeMap::new();
    let mut expects = BTreeMap::new();
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if let Some(stem) = name.strip_suffix(".expect.json") {
            expects.insert(stem.to_owned(), read_json(&path));
        } else if let Some(stem) = name.strip_suffix(".json") {
            flows.insert(stem.to_owned(), std::fs::read_to_string(&path).unwrap());
        }
    }
    (flows, expects)
}

/// A 16-bit 8 kHz mono WAV of a 440 Hz tone, `ms` long (the voicemail greeting).
fn greeting_wav(ms: u32) -> Vec<u8> {
    let samples: Vec<i16> = (0..8 * ms)
        .map(|i| {
            (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / 8000.0).sin()) as i16
        })
        .collect();
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    for (v, n) in [
        (16u32, 4),
        (1, 2),
        (1, 2),
        (8000, 4),
        (16000, 4),
        (2, 2),
        (16, 2),
    ] {
        wav.extend_from_slice(&v.to_le_bytes()[..n]);
    }
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    wav
}

/// Serves the greeting WAV to any GET, as a customer's web server serves `stream_urls`.
fn media_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let wav = greeting_wav(500);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = read_http_request(&stream);
            let mut stream = stream;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                wav.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&wav);
        }
    });
    format!("http://{addr}")
}

fn batch() -> &'static Batch {
    static BATCH: OnceLock<Batch> = OnceLock::new();
    BATCH.get_or_init(run_batch)
}

/// Starts the engine and the peers, POSTs every flow, places every call at once.
fn run_batch() -> Batch {
    let (files, expects) = corpus();
    // The callees: one behind the trunk's outbound proxy (`tel` destinations), one dialled by
    // its SIP address. Each answers, stays 1 s, and hangs up.
    let tel_callee =
        SippUas::start_with_rtp("uas_answer_then_bye.xml", free_port(), &["-d", "1000"]);
    let sip_callee =
        SippUas::start_with_rtp("uas_answer_then_bye.xml", free_port(), &["-d", "1000"]);
    let media = media_server();
    let callee_address = format!("bob@127.0.0.1:{}", sip_callee.port);
    let flows: BTreeMap<String, Value> = files
        .iter()
        .map(|(stem, text)| {
            let text = text
                .replace("{{media}}", &media)
                .replace("{{callee}}", &callee_address);
            (stem.clone(), serde_json::from_str(&text).unwrap())
        })
        .collect();
    let routes: Vec<(String, String)> = expects
        .iter()
        .map(|(stem, e)| {
            let number = e["number"].as_str().unwrap().to_owned();
            let flow = flows[stem]["name"].as_str().unwrap().to_owned();
            (number, flow)
        })
        .collect();
    let routes: Vec<(&str, &str)> = routes
        .iter()
        .map(|(n, f)| (n.as_str(), f.as_str()))
        .collect();
    let tel_port = tel_callee.port;
    let engine = start_with(&[], &routes, &[], |config| {
        config.trunks[0].outbound_proxy = format!("127.0.0.1:{tel_port}");
    });
    // Helper flows first (the ones fetch_flow and on_complete_flow_id name), then the routed.
    let mut helper_posts = BTreeMap::new();
    for (stem, flow) in flows.iter().filter(|(s, _)| !expects.contains_key(*s)) {
        helper_posts.insert(stem.clone(), post_flow(&engine, flow));
    }
    let posts: BTreeMap<String, (u16, Value)> = expects
        .keys()
        .map(|stem| (stem.clone(), post_flow(&engine, &flows[stem])))
        .collect();
    let callers: Vec<(String, std::thread::JoinHandle<(bool, String)>)> = expects
        .iter()
        .map(|(stem, e)| {
            let (sip, scenario) = (engine.sip, e["caller"].as_str().unwrap().to_owned());
            let number = e["number"].as_str().unwrap().to_owned();
            let handle = std::thread::spawn(move || {
                let mp = reserve_ports(4).release().to_string();
                let run = sipp(sip, &scenario, &number, &["-m", "1", "-mp", &mp]);
                let ok = run.output.status.success() && run.successful == 1 && run.failed == 0;
                let summary = format!(
                    "sipp {scenario}: status {:?}, {} successful, {} failed\n{}",
                    run.output.status.code(),
                    run.successful,
                    run.failed,
                    run.errors
                        .lines()
                        .rev()
                        .take(20)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                (ok, summary)
            });
            (stem.clone(), handle)
        })
        .collect();
    let mut outcomes = BTreeMap::new();
    for (stem, handle) in callers {
        let caller = handle.join().unwrap();
        let post = posts[&stem].clone();
        outcomes.insert(stem, Outcome { post, caller });
    }
    // Every call is over: each callee must have had its one call (a leg never dialled would
    // otherwise pass), and is gone after (the batch outlives the tests in a static).
    let limit = Duration::from_secs(20);
    let callees = BTreeMap::from([
        ("tel".to_owned(), tel_callee.succeeded(limit)),
        ("sip".to_owned(), sip_callee.succeeded(limit)),
    ]);
    Batch {
        engine,
        flows,
        helper_posts,
        outcomes,
        callees,
    }
}

fn post_flow(engine: &TestEngine, flow: &Value) -> (u16, Value) {
    http(engine.api, "POST", "/v1/flows", Some(&flow.to_string()))
}

/// Every activeflow through the API, newest first.
fn activeflows(engine: &TestEngine) -> Vec<Value> {
    let (status, body) = http(engine.api, "GET", "/v1/activeflows?page_size=1000", None);
    assert_eq!(status, 200, "{body}");
    body["result"].as_array().cloned().unwrap_or_default()
}

/// Waits (bounded) for an ended activeflow matching `pick`; panics with what there is.
fn ended_where(engine: &TestEngine, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
    let mut last = Vec::new();
    for _ in 0..500 {
        last = activeflows(engine);
        if let Some(a) = last.iter().find(|a| pick(a) && a["status"] == "ended") {
            return a.clone();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen: Vec<String> = last
        .iter()
        .map(|a| {
            format!(
                "{} {} {} {}",
                a["flow_id"],
                a["status"],
                a["end_reason"],
                types(a).join(",")
            )
        })
        .collect();
    panic!(
        "no ended activeflow for {what}; activeflows:\n{}",
        seen.join("\n")
    )
}

fn types(activeflow: &Value) -> Vec<String> {
    activeflow["executed_actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["type"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Absent ids may be `null` (this engine's native form) or the nil uuid (VoIPBIN's).
fn same_id(value: &Value, id: &str) -> bool {
    value.as_str() == Some(id) || (id == NIL && value.is_null())
}

/// Fails unless every key of `want` is in `got` with the same value.
fn assert_subset(got: &Value, want: &Value, context: &str) {
    for (key, value) in want.as_object().unwrap() {
        assert_eq!(&got[key], value, "{context}: `{key}` of {got}");
    }
}

fn assert_variables(engine: &TestEngine, id: &str, want: &Value, context: &str) {
    let (status, body) = http(
        engine.api,
        "GET",
        &format!("/v1/activeflows/{id}/variables"),
        None,
    );
    assert_eq!(status, 200, "{context}: {body}");
    assert_subset(&body["variables"], want, &format!("{context} variables"));
}

/// Runs the checks of `<stem>.expect.json` against the batch.
fn check(stem: &str) {
    let batch = batch();
    let (_, expects) = corpus();
    let expect = &expects[stem];
    let doc = expect["doc"].as_str().unwrap_or("");
    let needs = expect["needs"]
        .as_str()
        .unwrap_or("nothing beyond the base engine");
    let context = format!("{stem} (after {doc}; needs {needs})");
    let outcome = &batch.outcomes[stem];
    let engine = &batch.engine;
    assert!(
        outcome.post.0 == 200 || outcome.post.0 == 201,
        "{context}: POST /v1/flows → {} {}",
        outcome.post.0,
        outcome.post.1
    );
    let flow = &batch.flows[stem];
    let flow_id = flow["id"].as_str().unwrap().to_owned();
    // A missing activeflow names the caller's outcome too (a refused or unsent INVITE).
    let record = ended_where(engine, &format!("{context}; {}", outcome.caller.1), |a| {
        a["flow_id"] == flow_id.as_str()
    });
    assert!(
        outcome.caller.0,
        "{context}: the caller failed: {}\nactiveflow: {record}",
        outcome.caller.1
    );
    let want_types: Vec<String> = serde_json::from_value(expect["executed"].clone()).unwrap();
    assert_eq!(
        types(&record),
        want_types,
        "{context}: executed actions of {record}"
    );
    assert_eq!(
        record["end_reason"], expect["end_reason"],
        "{context}: {record}"
    );
    assert_eq!(record["reference_type"], "call", "{context}");
    if let Some(callee) = expect.get("callee").and_then(Value::as_str) {
        assert_eq!(
            batch.callees.get(callee),
            Some(&true),
            "{context}: the {callee} callee did not have exactly one successful call"
        );
    }
    for r in expect["results"].as_array().into_iter().flatten() {
        let index = r["index"].as_u64().unwrap() as usize;
        let got = &record["executed_actions"][index]["result"];
        assert_subset(
            got,
            &r["result"],
            &format!("{context}: result of action {index}"),
        );
    }
    let id = record["id"].as_str().unwrap().to_owned();
    if let Some(want) = expect.get("variables") {
        assert_variables(engine, &id, want, &context);
    }
    if let Some(chained) = expect.get("chained") {
        let helper = chained["flow"].as_str().unwrap();
        let post = &batch.helper_posts[helper];
        assert!(
            post.0 == 200 || post.0 == 201,
            "{context}: POST {helper} → {post:?}"
        );
        let next_flow = batch.flows[helper]["id"].as_str().unwrap().to_owned();
        let next = ended_where(
            engine,
            &format!("{context}: on_complete_flow_id {helper}"),
            |a| a["flow_id"] == next_flow.as_str() && same_id(&a["reference_activeflow_id"], &id),
        );
        let want: Vec<String> = serde_json::from_value(chained["executed"].clone()).unwrap();
        assert_eq!(types(&next), want, "{context}: the successor {next}");
        assert_eq!(
            next["end_reason"], chained["end_reason"],
            "{context}: {next}"
        );
        if let Some(want) = chained.get("variables") {
            let next_id = next["id"].as_str().unwrap();
            assert_variables(engine, next_id, want, &format!("{context}: the successor"));
        }
    }
    let panics = engine.panics();
    assert!(
        panics.is_empty(),
        "the engine panicked:\n{}",
        panics.join("\n")
    );
}

#[test]
fn every_corpus_file_is_a_voipbin_flow_with_uuids_and_nil_next_ids() {
    let (files, expects) = corpus();
    assert!((10..=20).contains(&files.len()), "{} flows", files.len());
    for stem in expects.keys() {
        assert!(
            files.contains_key(stem),
            "{stem}.expect.json without {stem}.json"
        );
        assert!(
            expects[stem]["doc"]
                .as_str()
                .is_some_and(|d| d.contains(".rst")),
            "{stem}: doc"
        );
    }
    for (stem, text) in &files {
        let flow: Value = serde_json::from_str(text).unwrap();
        assert!(
            flow["id"].as_str().unwrap().parse::<uuid::Uuid>().is_ok(),
            "{stem}: id"
        );
        for (i, action) in flow["actions"].as_array().unwrap().iter().enumerate() {
            for key in ["id", "next_id"] {
                let v = action[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("{stem}[{i}].{key}"));
                assert!(v.parse::<uuid::Uuid>().is_ok(), "{stem}[{i}].{key} = {v}");
            }
        }
        assert!(
            flow["on_complete_flow_id"].as_str().is_some(),
            "{stem}: on_complete_flow_id"
        );
    }
}

#[test]
fn ivr_menu_routes_key_2_to_support() {
    check("ivr_menu");
}

#[test]
fn ivr_without_answer_is_answered_by_its_first_talk() {
    check("ivr_no_answer");
}

#[test]
fn ivr_retry_loop_repeats_the_menu_once_then_says_goodbye() {
    check("ivr_retry_loop");
}

#[test]
fn condition_variable_on_call_digits_confirms_key_1() {
    check("digits_condition");
}

#[test]
fn deprecated_condition_call_digits_matches_key_1() {
    check("call_digits_deprecated");
}

#[test]
fn business_hours_with_wildcards_are_open() {
    check("business_hours");
}

#[test]
fn echo_without_duration_lasts_until_the_caller_hangs_up() {
    check("echo_test");
}

#[test]
fn voicemail_plays_beeps_and_records() {
    check("voicemail");
}

#[test]
fn caller_check_reads_seeded_and_set_variables() {
    check("caller_check");
}

/// `answer` then `condition_call_status` "progressing": the status is already `progressing`
/// when the next action runs (it once still read `ringing` until the 200 OK's event arrived).
#[test]
fn condition_call_status_after_answer_reads_progressing() {
    check("answer_status");
}

#[test]
fn fetch_flow_runs_the_shared_sub_flow_and_returns() {
    check("fetch_flow_main");
}

#[test]
fn on_complete_flow_runs_after_the_call_flow_completes() {
    check("on_complete");
}

#[test]
fn stop_ends_the_flow_and_the_on_complete_flow_still_runs() {
    check("stop");
}

#[test]
fn hangup_busy_before_answer_sends_486() {
    check("reject_busy");
}

#[test]
fn connect_to_a_tel_number_goes_through_the_trunk() {
    check("connect_tel");
}

#[test]
fn connect_to_a_sip_address_without_scheme() {
    check("connect_sip");
}

#[test]
fn every_expectation_has_its_test() {
    // A new `*.expect.json` needs a test above, or it would never run.
    let this = include_str!("voipbin_flows.rs");
    for stem in corpus().1.keys() {
        assert!(
            this.contains(&format!("check(\"{stem}\")")),
            "no test checks {stem}"
        );
    }
}
