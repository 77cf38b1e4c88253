//! `connect`'s `"anonymous": "auto"` against real peers: a SIPp caller asks for privacy
//! (RFC 3323 `Privacy: id`, or an anonymous From per RFC 3323 §4.1.1.3) and the SIPp callee's
//! INVITE is read back from its message trace: hidden (From anonymous, P-Asserted-Identity,
//! `Privacy: id`, RFC 3325 §9.1) when the caller asked, the caller shown when it did not.
//! The same for `POST /v1/calls` with `anonymous` `yes` / `no`.
//! VoIPBIN: bin-flow-manager models/action/option.go (OptionConnect.Anonymous, "auto" =
//! inherit from the incoming Privacy header).
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::uas::SippUas;
use common::{ended_one, flow, free_port, http, result_of, sipp, start_with, TestEngine};
use serde_json::{json, Value};

/// A callee that answers and hangs up, its received messages traced to a file.
struct Callee {
    uas: Option<SippUas>,
    uri: String,
    messages: PathBuf,
}

impl Callee {
    fn start() -> Callee {
        let dir = std::env::temp_dir().join(format!(
            "activeflow-privacy-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let messages = dir.join("messages.log");
        let rtp = free_port().to_string();
        let uas = SippUas::start(
            "uas_answer_then_bye.xml",
            &[
                "-key",
                "rtp_port",
                &rtp,
                "-d",
                "300",
                "-trace_msg",
                "-message_file",
                messages.to_str().unwrap(),
            ],
        );
        Callee {
            uri: uas.uri(),
            uas: Some(uas),
            messages,
        }
    }

    /// Waits for the callee's one call to end (its trace is then complete); true when SIPp
    /// saw it succeed.
    fn done(&mut self) -> bool {
        self.uas
            .take()
            .is_some_and(|u| u.succeeded(Duration::from_secs(15)))
    }

    /// Header `name` of the first INVITE the callee received (None when it had none).
    fn invite_header(&self, name: &str) -> Option<String> {
        let log = std::fs::read_to_string(&self.messages).unwrap_or_default();
        let invite = log
            .split("UDP message received")
            .skip(1)
            .find_map(|m| {
                let text = m.split("-----------").next()?;
                let start = text.find("\nINVITE ")?;
                Some(text[start + 1..].to_string())
            })
            .unwrap_or_else(|| panic!("no INVITE in {log}"));
        invite.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

impl Drop for Callee {
    fn drop(&mut self) {
        if let Some(dir) = self.messages.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn engine(f: &Value) -> TestEngine {
    let name = f["name"].as_str().unwrap();
    start_with(std::slice::from_ref(f), &[(name, name)], &[], |_| {})
}

/// Calls through a flow whose `connect` says `anonymous`, the caller sending From
/// `from_name <sip:from_user@...>` and `Privacy: privacy`; returns the callee (done) and the
/// ended activeflow's `call.source.privacy`.
fn call(anonymous: &str, from_name: &str, from_user: &str, privacy: &str) -> (Callee, String) {
    let callee = Callee::start();
    let f = flow(
        "priv",
        json!([
            {"type": "answer"},
            {"type": "connect", "option": {
                "destinations": [{"type": "sip", "target": callee.uri.clone()}],
                "anonymous": anonymous}},
            {"type": "hangup"}
        ]),
    );
    let engine = engine(&f);
    sipp(
        engine.sip,
        "uac_privacy_engine_bye.xml",
        "priv",
        &[
            "-m",
            "1",
            "-key",
            "from_name",
            from_name,
            "-key",
            "from_user",
            from_user,
            "-key",
            "privacy",
            privacy,
        ],
    )
    .assert_all_ok(1);
    let record = ended_one(&engine, Duration::from_secs(10));
    assert_eq!(result_of(&record, "connect")["result"], "answered");
    let seeded = record
        .variables
        .get("call.source.privacy")
        .unwrap_or_default()
        .to_string();
    (callee, seeded)
}

/// The callee's INVITE hides the caller: From anonymous (RFC 3323 §4.1.1.3), the caller's
/// number in P-Asserted-Identity and `Privacy: id` (RFC 3325 §9.1).
fn assert_hidden(callee: &Callee, user: &str) {
    let from = callee.invite_header("From").unwrap();
    assert!(
        from.starts_with("\"Anonymous\" <sip:anonymous@anonymous.invalid>"),
        "{from}"
    );
    let pai = callee.invite_header("P-Asserted-Identity").unwrap();
    assert!(pai.starts_with(&format!("<sip:{user}@")), "{pai}");
    assert_eq!(callee.invite_header("Privacy").as_deref(), Some("id"));
}

/// The callee's INVITE shows the caller's number in From, with no privacy asked.
fn assert_shown(callee: &Callee, user: &str) {
    let from = callee.invite_header("From").unwrap();
    assert!(from.starts_with(&format!("<sip:{user}@")), "{from}");
    assert_eq!(callee.invite_header("P-Asserted-Identity"), None);
    assert_eq!(callee.invite_header("Privacy"), None);
}

#[test]
fn auto_hides_a_caller_that_sent_privacy_id() {
    let (mut callee, seeded) = call("auto", "Alice", "+15550100", "id");
    assert!(callee.done());
    assert_eq!(seeded, "yes");
    assert_hidden(&callee, "+15550100");
}

#[test]
fn auto_shows_a_caller_that_asked_for_no_privacy() {
    let (mut callee, seeded) = call("auto", "Alice", "+15550100", "none");
    assert!(callee.done());
    assert_eq!(seeded, "no");
    assert_shown(&callee, "+15550100");
}

/// RFC 3323 §4.1.1.3: an anonymous From is a privacy request even without a Privacy header
/// value that says so.
#[test]
fn auto_hides_a_caller_with_an_anonymous_from() {
    let (mut callee, seeded) = call("auto", "\"Anonymous\"", "anonymous", "none");
    assert!(callee.done());
    assert_eq!(seeded, "yes");
    let from = callee.invite_header("From").unwrap();
    assert!(
        from.starts_with("\"Anonymous\" <sip:anonymous@anonymous.invalid>"),
        "{from}"
    );
    assert_eq!(callee.invite_header("Privacy").as_deref(), Some("id"));
}

/// `"no"` ignores the caller's request (VoIPBIN's "never anonymous"), `"yes"` hides a caller
/// that asked for nothing.
#[test]
fn yes_and_no_ignore_the_callers_request() {
    let (mut callee, _) = call("no", "Alice", "+15550100", "id");
    assert!(callee.done());
    assert_shown(&callee, "+15550100");
    let (mut callee, _) = call("yes", "Alice", "+15550100", "none");
    assert!(callee.done());
    assert_hidden(&callee, "+15550100");
}

/// `POST /v1/calls` with `anonymous` (VoIPBIN's call `anonymous`): `"yes"` places the call with
/// its source hidden (From anonymous, RFC 3323 §4.1.1.3; the source in P-Asserted-Identity and
/// `Privacy: id`, RFC 3325 §9.1), `"no"` with its source in From.
#[test]
fn posted_calls_hide_their_source_when_anonymous() {
    for (anonymous, hidden) in [("yes", true), ("no", false)] {
        let mut callee = Callee::start();
        let engine = start_with(&[], &[], &[], |_| {});
        let body = json!({
            "source": {"type": "tel", "target": "+15550100"},
            "destinations": [{"type": "sip", "target": callee.uri.clone()}],
            "actions": [{"type": "beep", "option": {"duration": 3000}}],
            "anonymous": anonymous
        });
        let (status, answer) = http(engine.api, "POST", "/v1/calls", Some(&body.to_string()));
        assert_eq!(status, 200, "{answer}");
        assert!(
            callee.done(),
            "the callee answered and hung up ({anonymous})"
        );
        if hidden {
            assert_hidden(&callee, "+15550100");
        } else {
            assert_shown(&callee, "+15550100");
        }
    }
}
