//! Signed event webhooks (issue 21): an engine with `events.webhook_secret` sends its events to
//! a real HTTP receiver on loopback (the global webhook and a flow's own); every request carries
//! `X-Activeflow-Timestamp` and `X-Activeflow-Signature`, and the verification examples of
//! docs/EVENTS.md — the Python function and the openssl line, run as written with python3 and
//! sh — accept them with the secret and refuse them with another secret, a changed body or an
//! old timestamp (and a forged signature header that is not ASCII, without an exception).
//! `webhook_send` requests and an engine without a secret carry no signature.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{flow, http, run_python, start, wait_until, HttpRequest};
use serde_json::{json, Value};

const SECRET: &str = "whsec_t3st, with \"quotes\" and $igns";

/// A receiver answering 200 to every request; keeps each one whole.
fn receiver() -> (SocketAddr, Arc<Mutex<Vec<HttpRequest>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<HttpRequest>>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let request = common::read_http_request_with_headers(&stream);
            log.lock().unwrap().push(request);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (addr, seen)
}

/// The first fenced block of `language` after the "Verifying webhook signatures" heading of
/// docs/EVENTS.md.
fn documented(language: &str) -> String {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/EVENTS.md")).unwrap();
    let (_, section) = doc
        .split_once("### Verifying webhook signatures")
        .expect("the section in docs/EVENTS.md");
    let (_, block) = section
        .split_once(&format!("```{language}\n"))
        .unwrap_or_else(|| panic!("a {language} block in the section"));
    block.split_once("```").unwrap().0.to_owned()
}

/// One call of the documented `verify`.
struct Case {
    secret: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    /// The receiver's clock (Unix seconds); `None`: now.
    now: Option<i64>,
}

/// A request as the receiver got it: its headers and body.
type Received = (Vec<(String, String)>, Vec<u8>);

/// The documented Python `verify` on each case.
fn python_verify(cases: &[Case]) -> Vec<bool> {
    let driver = "\nimport json, sys\n\
        cases = json.load(sys.stdin)\n\
        print(json.dumps([verify(c[0].encode(), c[1], c[2], bytes.fromhex(c[3]), now=c[4]) \
        for c in cases]))\n";
    let program = documented("python") + driver;
    let input: Vec<Value> = cases
        .iter()
        .map(|c| {
            let hex: String = c.body.iter().map(|b| format!("{b:02x}")).collect();
            json!([c.secret, c.timestamp, c.signature, hex, c.now])
        })
        .collect();
    let input = Value::Array(input).to_string();
    serde_json::from_slice(&run_python(&program, input.as_bytes())).unwrap()
}

/// The documented openssl line, run by sh in a scratch directory holding `body.json`.
fn openssl_verify(secret: &str, timestamp: &str, signature: &str, body: &[u8]) -> bool {
    let dir = std::env::temp_dir().join(format!(
        "activeflow-webhook-signing-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("body.json"), body).unwrap();
    let out = Command::new("sh")
        .args(["-c", &documented("sh")])
        .current_dir(&dir)
        .env("SECRET", secret)
        .env("TS", timestamp)
        .env("SIG", signature)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "sh: {out:?}");
    match String::from_utf8(out.stdout).unwrap().trim() {
        "valid" => true,
        "INVALID" => false,
        other => panic!("the documented line printed {other:?}"),
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Starts an activeflow of flow `name` over the API.
fn run_flow(api: SocketAddr, name: &str) {
    let (status, body) = http(
        api,
        "POST",
        "/v1/activeflows",
        Some(&json!({ "flow_id": name }).to_string()),
    );
    assert_eq!(status, 200, "{body}");
}

/// Waits until `seen` holds an `activeflow_ended` event at `path`; the requests to it.
fn requests_to(seen: &Mutex<Vec<HttpRequest>>, path: &str) -> Vec<Received> {
    wait_until(
        &format!("activeflow_ended at {path}"),
        Duration::from_secs(30),
        || {
            let seen = seen.lock().unwrap();
            let at: Vec<_> = seen
                .iter()
                .filter(|r| r.path == path)
                .map(|r| (r.headers.clone(), r.body.clone()))
                .collect();
            let ended = at.iter().any(|(_, body)| {
                serde_json::from_slice::<Value>(body).is_ok_and(|v| v["type"] == "activeflow_ended")
            });
            ended.then_some(at)
        },
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn event_webhooks_are_signed_and_the_documented_checks_verify_them() {
    let (server, seen) = receiver();
    let mut hooked = flow(
        "hooked",
        json!([
            {"type": "webhook_send", "option": {"uri": format!("http://{server}/send"),
                "sync": true, "data": "{\"from\": \"${activeflow.id}\"}"}},
            {"type": "sleep", "option": {"duration": 10}}
        ]),
    );
    hooked["webhook_uri"] = json!(format!("http://{server}/flow"));
    let global = format!("http://{server}/global");
    let e = start(
        &[hooked],
        &[],
        &[
            ("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32"),
            ("ACTIVEFLOW_EVENTS_WEBHOOK_URI", &global),
            ("ACTIVEFLOW_EVENTS_WEBHOOK_SECRET", SECRET),
        ],
    );
    run_flow(e.api, "hooked");
    let mut signed = requests_to(&seen, "/global");
    let flow_requests = requests_to(&seen, "/flow");
    assert!(
        signed.len() >= 3 && flow_requests.len() >= 3,
        "{}",
        signed.len()
    );
    signed.extend(flow_requests);

    let mut cases = Vec::new();
    for (headers, body) in &signed {
        let ts = header(headers, "x-activeflow-timestamp").expect("timestamp header");
        let sig = header(headers, "x-activeflow-signature").expect("signature header");
        let at: i64 = ts.parse().unwrap();
        let now = chrono::Utc::now().timestamp();
        assert!((now - at).abs() < 120, "signed at {at}, now {now}");
        assert!(sig.starts_with("v1=") && sig.len() == 67, "{sig}");
        let (ts, sig) = (ts.to_owned(), sig.to_owned());
        let mut tampered = body.clone();
        tampered.extend_from_slice(b" ");
        let case = |secret: &str, body: &[u8], now| Case {
            secret: secret.to_owned(),
            timestamp: ts.clone(),
            signature: sig.clone(),
            body: body.to_vec(),
            now,
        };
        cases.extend([
            case(SECRET, body, None),
            case("whsec_wrong", body, None),
            case(SECRET, &tampered, None),
            // The replay guard: five minutes and a second after signing.
            case(SECRET, body, Some(at + 301)),
        ]);
    }
    let mut expected: Vec<bool> = (0..cases.len()).map(|i| i % 4 == 0).collect();
    // A forged signature header that is not ASCII is refused, not an exception (as a str,
    // Python's `hmac.compare_digest` raises TypeError on it).
    let (headers, body) = &signed[0];
    for forged in ["v1=\u{e9}t\u{e9}", "v1=\u{1F600}"] {
        cases.push(Case {
            secret: SECRET.to_owned(),
            timestamp: header(headers, "x-activeflow-timestamp")
                .unwrap()
                .to_owned(),
            signature: forged.to_owned(),
            body: body.clone(),
            now: None,
        });
        expected.push(false);
    }
    let verdicts = python_verify(&cases);
    assert_eq!(verdicts, expected);

    // The openssl line on the first and the last request.
    for (headers, body) in [&signed[0], &signed[signed.len() - 1]] {
        let ts = header(headers, "x-activeflow-timestamp").unwrap();
        let sig = header(headers, "x-activeflow-signature").unwrap();
        assert!(openssl_verify(SECRET, ts, sig, body));
        assert!(!openssl_verify("whsec_wrong", ts, sig, body));
    }

    // The flow's own `webhook_send` is not an event webhook: unsigned.
    let sends: Vec<Vec<(String, String)>> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == "/send")
        .map(|r| r.headers.clone())
        .collect();
    assert_eq!(sends.len(), 1);
    assert!(
        header(&sends[0], "x-activeflow-signature").is_none(),
        "{sends:?}"
    );
    assert!(header(&sends[0], "x-activeflow-timestamp").is_none());
}

#[test]
fn without_a_secret_webhooks_are_unsigned() {
    let (server, seen) = receiver();
    let global = format!("http://{server}/global");
    let e = start(
        &[flow(
            "plain",
            json!([{"type": "sleep", "option": {"duration": 10}}]),
        )],
        &[],
        &[
            ("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32"),
            ("ACTIVEFLOW_EVENTS_WEBHOOK_URI", &global),
        ],
    );
    run_flow(e.api, "plain");
    let requests = requests_to(&seen, "/global");
    for (headers, _) in &requests {
        assert!(
            headers.iter().all(|(n, _)| !n.starts_with("x-activeflow-")),
            "{headers:?}"
        );
    }
}
