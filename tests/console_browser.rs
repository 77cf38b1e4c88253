//! The console in a real browser: headless Chromium driven over WebDriver (chromedriver),
//! against an engine configured with an API token and a real SIPp caller. The page asks for
//! the token; with it loaded, a call started afterwards shows up within 5 s of the engine
//! having its activeflow, without reload; Stop (confirm accepted) ends it, SIPp gets the BYE,
//! and the row turns ended in place; Continue resumes an activeflow waiting in `block`; the
//! detail shows the timeline and the call's SIP summary; a variable is set from the page; the
//! rest (flow editor errors at their action on create and on edit, the model never moving
//! backwards, a recording played in the page, hangup from the calls view, 1,000 activeflows,
//! stale running rows read again, forgetting the token, a token without the `read` scope) is in
//! `console_browser/views.rs`. No Content-Security-Policy violation may happen on the way.
//! Screenshots go to `target/test-artifacts/console/` (`failure.png` when the test fails; and
//! `docs/images/console.png` with `AF_UPDATE_SCREENSHOTS=1`).

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;
#[path = "console_browser/views.rs"]
mod views;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use activeflow::config::ApiTokenConfig;
use activeflow::engine::{EndReason, ReferenceType, Status};
use common::webdriver::{self, Browser};
use common::{answer_hold_hangup, flow, http_with, sipp, start_with, wait_until, SippRun};
use serde_json::{json, Value};

const TOKEN: &str = "browser-test-token";
/// A token with the `control` scope only: no `read`, so no event stream.
const CONTROL_TOKEN: &str = "browser-test-control-only";
/// Generous for a loaded CI machine; the 5 s of the live-update check is its own deadline.
const UI: Duration = Duration::from_secs(20);
/// The live-update promise: a call's activeflow on screen this soon after the engine has it.
const LIVE: Duration = Duration::from_secs(5);
/// Ended activeflows the page finds when it opens.
const HISTORY: usize = 5;

/// SIPp's `-timeout` for a call that waits for the engine's BYE while the test goes through
/// `steps` steps of at most `UI` each (and the `LIVE` check): their sum, plus one `UI` to spare.
fn sipp_timeout(steps: u32) -> String {
    let budget = UI * (steps + 1) + LIVE;
    format!("{}s", budget.as_secs())
}

/// A SIPp caller (`uac_waits_for_bye.xml` to number 100) on its own thread, waiting for the
/// engine's BYE through `steps` steps (see [`sipp_timeout`]).
fn caller_until_bye(engine: &common::TestEngine, steps: u32) -> std::thread::JoinHandle<SippRun> {
    let sip = engine.sip;
    let timeout = sipp_timeout(steps);
    std::thread::spawn(move || {
        sipp(
            sip,
            "uac_waits_for_bye.xml",
            "100",
            &["-m", "1", "-timeout", &timeout],
        )
    })
}

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/console")
}

fn api(e: &common::TestEngine, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let bearer = format!("Bearer {TOKEN}");
    let body = body.map(Value::to_string);
    http_with(
        e.api,
        method,
        path,
        body.as_deref(),
        &[("Authorization", &bearer)],
    )
}

/// Starts an activeflow over the API; its id.
fn start_activeflow(e: &common::TestEngine, flow_name: &str) -> String {
    let (status, body) = api(
        e,
        "POST",
        "/v1/activeflows",
        Some(&json!({ "flow_id": flow_name })),
    );
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().unwrap().to_string()
}

fn row(id: &str) -> String {
    format!(r#"[data-testid="activeflow-row"][data-id="{id}"]"#)
}

/// Waits (bounded) until the element's text satisfies `ok`; returns the text.
fn wait_text(b: &Browser, selector: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    loop {
        // One script, so a cell the page redraws meanwhile is never a stale reference.
        let text = b.execute(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
            &[json!(selector)],
        );
        let text = text.as_str().unwrap_or_default();
        if ok(text) {
            return text.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{selector:?} text {text:?} not as expected within {limit:?}; page:\n{}",
            b.page_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The marker set once after the page loaded: still there means the page never reloaded.
fn assert_not_reloaded(b: &Browser) {
    let marker = b.execute("return window.consoleTestMarker || null;", &[]);
    assert_eq!(marker, "loaded-once", "the page reloaded");
}

#[test]
fn the_console_shows_and_controls_live_activeflows_in_a_real_browser() {
    webdriver::require_chromium();
    common::require_on_path("sipp");
    let engine = engine();
    // History the page finds when it opens.
    let ended: Vec<String> = (0..HISTORY)
        .map(|_| start_activeflow(&engine, "quick"))
        .collect();
    engine.wait_for("the quick activeflows to end", UI, |all| {
        all.iter().filter(|a| a.status == Status::Ended).count() == HISTORY
    });
    let mut b = Browser::start(1280, 720);
    b.screenshot_on_failure(artifacts().join("failure.png"));
    b.navigate(&format!("http://{}/console/", engine.api));
    signs_in_with_the_token(&b, &ended);

    let live = a_call_shows_up_live(&engine, &b);
    continue_resumes_a_waiting_one(&b, &live.waiting);
    stop_ends_the_call(&engine, &b, live);
    views::the_flow_editor_pins_the_servers_error_to_its_action(&engine, &b);
    views::the_model_never_moves_backwards(&b);
    views::a_recording_plays_in_the_page(&engine, &b);
    views::a_call_is_hung_up_from_the_calls_view(&engine, &b);
    views::many_activeflows_keep_the_list_responsive_and_filters_work(&engine, &b);
    views::stale_running_rows_are_read_again(&b, &ended);
    views::forget_token_clears_the_page(&b);
    assert_no_csp_violation(&b);
    views::a_token_without_read_scope_sees_the_servers_403(&engine, &b);
}

/// Records the page's Content-Security-Policy violations from now on (a listener cannot be
/// registered before the page loads: navigation starts a new document).
fn watch_csp_violations(b: &Browser) {
    b.execute(
        "window.cspViolations = []; \
         document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push( \
           `${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`)); \
         return true;",
        &[],
    );
}

fn assert_no_csp_violation(b: &Browser) {
    let seen = b.execute("return window.cspViolations || null;", &[]);
    assert_eq!(seen, json!([]), "Content-Security-Policy violations");
}

/// An engine with a token, a flow that answers and holds, one waiting in `block`, a quick one,
/// and one that records.
fn engine() -> common::TestEngine {
    let approval = flow(
        "approval",
        json!([
            {"type": "variable_set", "option": {"key": "ticket", "value": "T-42"}},
            {"type": "block"},
            {"type": "sleep", "option": {"duration": 300000}}
        ]),
    );
    let quick = flow(
        "quick",
        json!([
            {"type": "variable_set", "option": {"key": "done", "value": "yes"}},
            {"type": "sleep", "option": {"duration": 10}}
        ]),
    );
    let recorder = flow(
        "rec",
        json!([
            {"type": "answer"},
            {"type": "recording_start", "option": {"format": "wav"}},
            {"type": "sleep", "option": {"duration": 60000}}
        ]),
    );
    start_with(
        &[
            answer_hold_hangup("hold", 300_000),
            approval,
            quick,
            recorder,
        ],
        &[("rec", "rec"), ("*", "hold")],
        &[("ACTIVEFLOW_API_TOKEN", TOKEN)],
        |c| {
            c.api.tokens.push(ApiTokenConfig {
                name: "console-control".into(),
                token: CONTROL_TOKEN.into(),
                token_sha256: String::new(),
                scopes: vec!["control".into()],
            })
        },
    )
}

/// The API needs a token: the page asks for it, keeps it for this tab, then lists `ended`.
fn signs_in_with_the_token(b: &Browser, ended: &[String]) {
    let input = b.wait_for(r#"[data-testid="token-input"]"#, UI);
    b.send_keys(&input, TOKEN);
    b.click(&b.find(r#"[data-testid="token-submit"]"#));
    wait_text(b, r#"[data-testid="stream-state"]"#, UI, |t| t == "live");
    assert!(!b.displayed(&b.find(r#"[data-testid="token-panel"]"#)));
    let stored = b.execute(
        "return sessionStorage.getItem('activeflow.console.token');",
        &[],
    );
    assert_eq!(stored, TOKEN);
    for id in ended {
        b.wait_for(&format!(r#"{}[data-status="ended"]"#, row(id)), UI);
    }
    b.execute(
        "window.consoleTestMarker = 'loaded-once'; return true;",
        &[],
    );
    watch_csp_violations(b);
}

/// What [`a_call_shows_up_live`] started.
struct Live {
    /// The API activeflow waiting in `block`.
    waiting: String,
    /// The SIPp call's activeflow, and SIPp.
    call_activeflow: String,
    caller: std::thread::JoinHandle<common::SippRun>,
}

/// Started after the page loaded, an activeflow waiting in `block` and a SIPp call's show up
/// without reload, the call's within 5 s of the engine having it (on a loaded machine SIPp
/// and the engine may take a while to get there: that has its own, generous, deadline).
fn a_call_shows_up_live(engine: &common::TestEngine, b: &Browser) -> Live {
    let waiting = start_activeflow(engine, "approval");
    // Until the BYE: the engine having it, LIVE, 3 checks here, Continue, Stop's dialog.
    let caller = caller_until_bye(engine, 6);
    let call_activeflow = wait_until("the engine to have the call's activeflow", UI, || {
        engine
            .activeflows()
            .into_iter()
            .find(|a| a.reference_type == ReferenceType::Call)
            .map(|a| a.id.to_string())
    });
    let known = Instant::now();
    let running = format!(r#"{}[data-status="running"]"#, row(&call_activeflow));
    while b.find_all(&running).is_empty() {
        assert!(
            known.elapsed() < LIVE,
            "the call's activeflow not shown within {LIVE:?} of the engine having it; page:\n{}",
            b.page_text()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    eprintln!(
        "the call's activeflow was shown {:?} after the engine had it",
        known.elapsed()
    );
    assert_not_reloaded(b);
    // Its caller (SIPp's From user) and current action, from the event stream.
    wait_text(b, &format!(r#"{running} [data-cell="caller"]"#), UI, |t| {
        t == "caller"
    });
    wait_text(
        b,
        &format!(r#"{running} [data-testid="current-action"]"#),
        UI,
        |t| t == "sleep",
    );
    b.wait_for(
        &format!(r#"{} [data-testid="continue"]"#, row(&waiting)),
        UI,
    );
    b.screenshot(&artifacts().join("activeflows.png"));
    if std::env::var("AF_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/images/console.png");
        std::fs::create_dir_all(docs.parent().unwrap()).unwrap();
        std::fs::copy(artifacts().join("activeflows.png"), docs).unwrap();
    }
    Live {
        waiting,
        call_activeflow,
        caller,
    }
}

/// Continue: the waiting one moves on to its next action, in place.
fn continue_resumes_a_waiting_one(b: &Browser, waiting: &str) {
    b.click(&b.find(&format!(r#"{} [data-testid="continue"]"#, row(waiting))));
    wait_text(
        b,
        &format!(r#"{} [data-testid="current-action"]"#, row(waiting)),
        UI,
        |t| t == "sleep",
    );
    assert!(b
        .find_all(&format!(r#"{} [data-testid="continue"]"#, row(waiting)))
        .is_empty());
}

/// Stop with confirm: the engine ends it, SIPp gets the BYE, the row turns ended; then its
/// detail and the running one's variables.
fn stop_ends_the_call(engine: &common::TestEngine, b: &Browser, live: Live) {
    let running = format!(r#"{}[data-status="running"]"#, row(&live.call_activeflow));
    b.click(&b.find(&format!(r#"{running} [data-testid="stop"]"#)));
    let question = b.accept_alert(UI);
    assert!(question.starts_with("Stop activeflow"), "{question}");
    let ended_row = format!(r#"{}[data-status="ended"]"#, row(&live.call_activeflow));
    b.wait_for(&ended_row, UI);
    wait_text(
        b,
        &format!(r#"{ended_row} [data-testid="end-reason"]"#),
        UI,
        |t| t.trim() == "operator_stop",
    );
    assert!(b
        .find_all(&format!(r#"{ended_row} [data-testid="stop"]"#))
        .is_empty());
    // The scenario ends only on the engine's BYE, answered 200.
    live.caller.join().unwrap().assert_all_ok(1);
    let record = engine
        .activeflows()
        .into_iter()
        .find(|a| a.id.to_string() == live.call_activeflow)
        .unwrap();
    assert_eq!(record.end_reason, Some(EndReason::OperatorStop));
    assert_not_reloaded(b);
    b.click(&b.find(&format!(r#"{ended_row} [data-testid="activeflow-link"]"#)));
    the_detail_shows_the_timeline_and_the_call(engine, b);
    variables_of_a_running_one_are_editable(engine, b, &live.waiting);
}

/// The detail: timeline with start and duration, the call's SIP summary.
fn the_detail_shows_the_timeline_and_the_call(engine: &common::TestEngine, b: &Browser) {
    wait_text(b, r#"[data-testid="detail-status"]"#, UI, |t| t == "ended");
    let steps = wait_until("the timeline", UI, || {
        let rows = b.find_all(r#"[data-testid="timeline-row"]"#);
        (rows.len() >= 2).then_some(rows)
    });
    let (first, second) = (b.text(&steps[0]), b.text(&steps[1]));
    assert!(
        first.contains("answer") && second.contains("sleep"),
        "{first} / {second}"
    );
    let answer_took =
        b.text(&b.find(r#"[data-testid="timeline-row"] [data-testid="timeline-duration"]"#));
    assert!(answer_took.ends_with('s'), "a duration: {answer_took:?}");
    let sip_call_id = wait_text(b, r#"[data-testid="call-sip-call-id"]"#, UI, |t| {
        !t.is_empty()
    });
    let calls = engine.calls.list_calls(None, 10, None).0;
    assert!(
        calls.iter().any(|c| c.sip_call_id == sip_call_id),
        "{sip_call_id}"
    );
    assert_eq!(b.text(&b.find(r#"[data-testid="call-from"]"#)), "caller");
    assert_eq!(b.text(&b.find(r#"[data-testid="call-to"]"#)), "100");
    assert_eq!(b.text(&b.find(r#"[data-testid="call-codec"]"#)), "PCMU");
    wait_text(b, r#"[data-testid="call-end-cause"]"#, UI, |t| {
        !t.is_empty()
    });
    assert!(
        b.find_all(r#"[data-testid="variable-form"]"#)
            .iter()
            .all(|f| !b.displayed(f)),
        "an ended activeflow's variables are read-only"
    );
    b.screenshot(&artifacts().join("detail.png"));
}

/// A running one's variables are editable from its detail.
fn variables_of_a_running_one_are_editable(engine: &common::TestEngine, b: &Browser, id: &str) {
    b.execute(
        &format!("location.hash = '#/activeflows/{id}'; return true;"),
        &[],
    );
    wait_text(b, r#"[data-testid="detail-status"]"#, UI, |t| {
        t == "running"
    });
    b.wait_for(r#"[data-testid="variable"][data-name="ticket"]"#, UI);
    let key = b.wait_for(r#"[data-testid="variable-key"]"#, UI);
    b.send_keys(&key, "note");
    b.send_keys(
        &b.find(r#"[data-testid="variable-value"]"#),
        "from the console",
    );
    b.click(&b.find(r#"[data-testid="variable-set"]"#));
    b.wait_for(r#"[data-testid="variable"][data-name="note"]"#, UI);
    let path = format!("/v1/activeflows/{id}/variables");
    let (_, vars) = api(engine, "GET", &path, None);
    assert_eq!(vars["variables"]["note"], "from the console");
}
