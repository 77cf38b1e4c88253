//! Phones (`[[users]]`): SIP digest authentication of requests from outside every trunk's ACL
//! (RFC 3261 §22, RFC 7616), the REGISTER location service (RFC 3261 §10.3), `connect` to an
//! `extension` (a registered phone), and the failed-auth ban. Real peers: SIPp as phones
//! answering 401 challenges (its `[authentication]`), baresip as a registering softphone that
//! auto-answers. The trunk's ACL is 192.0.2.0/24, so the peers on 127.0.0.1 are strangers that
//! must authenticate; `sip.rate_limit_exempt` is emptied so that 127.0.0.1 may be banned.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use activeflow::config::UserConfig;
use common::{sipp, start_with, TestEngine};
use serde_json::{json, Value};

/// How long a step may take on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(20);

/// The engine with users alice/secret and bob/hunter2, a trunk that does not cover 127.0.0.1,
/// and `flows` routed by `routes`.
fn engine(flows: &[Value], routes: &[(&str, &str)]) -> TestEngine {
    start_with(flows, routes, &[], |c| {
        for t in &mut c.trunks {
            t.allow = vec!["192.0.2.0/24".into()];
        }
        c.sip.rate_limit_exempt = vec!["192.0.2.0/24".into()];
        // SIPp 3.6 reads only the first challenge and knows MD5 alone: MD5 is offered first
        // here (the default order, SHA-256 first, is checked by the unit tests).
        c.sip.auth_algorithms = vec!["MD5".into(), "SHA-256".into()];
        c.users = vec![
            UserConfig {
                username: "alice".into(),
                password: "secret".into(),
            },
            UserConfig {
                username: "bob".into(),
                password: "hunter2".into(),
            },
        ];
    })
}

/// SIPp's arguments for one REGISTER of alice with `password`, asking for `expires`.
fn register_args<'a>(password: &'a str, expires: &'a str) -> Vec<&'a str> {
    vec![
        "-m", "1", "-au", "alice", "-ap", password, "-set", "expires", expires, "-set",
        "contact_port", "5999",
    ]
}

fn registrations(e: &TestEngine) -> Vec<Value> {
    let (status, body) = common::http(e.api, "GET", "/v1/registrations", None);
    assert_eq!(status, 200, "{body}");
    body["result"].as_array().cloned().unwrap_or_default()
}

/// RFC 3261 §10.3 with §22.4: a REGISTER from outside the ACL is challenged (401 with
/// `qop="auth"`, RFC 7616 §3.3), the authenticated one binds the contact (200 listing it
/// with its expiry; `GET /v1/registrations` shows user, contact, source, transport); a
/// REGISTER with `Expires: 0` removes the binding.
#[test]
fn sipp_registers_with_digest_and_unregisters_with_expires_zero() {
    let e = engine(&[], &[]);
    let run = sipp(
        e.sip,
        "uac_register_auth.xml",
        "alice",
        &register_args("secret", "120"),
    );
    run.assert_all_ok(1);
    let rows = registrations(&e);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["user"], "alice");
    assert_eq!(rows[0]["transport"], "udp");
    assert_eq!(
        rows[0]["contact"], "sip:alice@127.0.0.1:5999;transport=UDP",
        "{rows:?}"
    );
    // Where the REGISTER came from (SIPp's own port), not the Contact's port.
    let source = rows[0]["source"].as_str().unwrap();
    assert!(source.starts_with("127.0.0.1:") && !source.ends_with(":5999"), "{source}");
    let expires_at = rows[0]["expires_at"].as_str().unwrap();
    let left = chrono::DateTime::parse_from_rfc3339(expires_at).unwrap().to_utc() - chrono::Utc::now();
    assert!((100..=121).contains(&left.num_seconds()), "{expires_at}");

    let run = sipp(
        e.sip,
        "uac_register_auth.xml",
        "alice",
        &register_args("secret", "0"),
    );
    run.assert_all_ok(1);
    assert!(registrations(&e).is_empty());
}
