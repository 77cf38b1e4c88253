//! Trunks with accounts (issue 17) against real peers: SIPp as a carrier that challenges our
//! INVITE (401, 407), MESSAGE and BYE and checks the digest (RFC 3261 §22.2–22.4), refuses
//! credentials, checks the caller identity we send (From, P-Asserted-Identity, Privacy,
//! Diversion: RFC 3325 §9.1, RFC 3323, RFC 5806), and SIPp as a registrar (RFC 3261 §10.2).
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use activeflow::config::Config;
use common::{
    ended_one, flow, free_port, http, result_of, scenario, sipp, start_with, wait_until, TestEngine,
};
use serde_json::{json, Value};

/// SIPp as the carrier, on its own port, for one call, its messages traced to a file.
struct Carrier {
    child: Child,
    port: u16,
    messages: PathBuf,
}

impl Carrier {
    fn start(name: &str) -> Carrier {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("activeflow-carrier-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let messages = dir.join("messages.log");
        let child = Command::new("sipp")
            .current_dir(&dir)
            .args(["-sf", scenario(name).to_str().unwrap()])
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1"])
            .args(["-key", "rtp_port", &free_port().to_string()])
            .args([
                "-buff_size",
                "4194304",
                "-nostdin",
                "-trace_err",
                "-trace_msg",
            ])
            .args(["-message_file", messages.to_str().unwrap()])
            .args(["-timeout", "30s", "-timeout_error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sipp ({e}); scripts/test.sh installs it"));
        // SIPp binds its port at once: wait until it holds it.
        wait_until("sipp to bind", Duration::from_secs(5), || {
            UdpSocket::bind(("127.0.0.1", port)).is_err().then_some(())
        });
        Carrier {
            child,
            port,
            messages,
        }
    }

    /// Waits for SIPp to finish its one call; true when it succeeded.
    fn succeeded(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The requests of `method` SIPp received, in order, as text.
    fn received(&self, method: &str) -> Vec<String> {
        let log = std::fs::read_to_string(&self.messages).unwrap_or_default();
        log.split("UDP message received")
            .skip(1)
            .filter_map(|m| {
                let text = m.split("-----------").next()?;
                let start = text.find(&format!("\n{method} "))?;
                Some(text[start + 1..].to_string())
            })
            .collect()
    }

    /// Header `name` of each request of `method` SIPp received.
    fn received_headers(&self, method: &str, name: &str) -> Vec<Option<String>> {
        self.received(method)
            .iter()
            .map(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                    .map(|v| v.trim().to_string())
            })
            .collect()
    }

    fn errors(&self) -> String {
        let dir = self.messages.parent().unwrap();
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("errors.log"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect()
    }
}

impl Drop for Carrier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = self.messages.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The engine with its first trunk (`local`) pointed at the carrier, with credentials, and
/// `change` applied to that trunk.
fn engine(
    flows: &[Value],
    carrier: &Carrier,
    change: impl FnOnce(&mut activeflow::config::TrunkConfig),
) -> TestEngine {
    let routes: Vec<(String, String)> = flows
        .iter()
        .map(|f| {
            let n = f["name"].as_str().unwrap().to_owned();
            (n.clone(), n)
        })
        .collect();
    let routes: Vec<(&str, &str)> = routes
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let port = carrier.port;
    start_with(flows, &routes, &[], move |config: &mut Config| {
        let trunk = &mut config.trunks[0];
        trunk.outbound_proxy = format!("127.0.0.1:{port}");
        trunk.username = "alice".into();
        trunk.password = "s3cret".into();
        change(trunk);
    })
}

/// A flow that answers, connects to `+15550199` through the trunk with `extra` options, then
/// hangs up.
fn connect_flow(name: &str, extra: Value) -> Value {
    let mut option = json!({
        "source": {"type": "tel", "target": "+15550100"},
        "destinations": [{"type": "tel", "target": "+15550199"}],
    });
    if let (Some(o), Some(e)) = (option.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    flow(
        name,
        json!([
            {"type": "answer"},
            {"type": "connect", "option": option},
            {"type": "hangup"}
        ]),
    )
}

/// RFC 3261 §22.3: a 407 to our INVITE is ACKed and answered once with Proxy-Authorization
/// (the digest checked here against the password, as SIPp's verifyauth reads only
/// Authorization); the call goes through. From carries the trunk's from_user@from_domain.
#[test]
fn a_407_to_connect_is_answered_with_proxy_authorization() {
    let mut carrier = Carrier::start("uas_auth_407.xml");
    let engine = engine(&[connect_flow("p407", json!({}))], &carrier, |t| {
        t.from_user = "4420".into();
        t.from_domain = "carrier.example".into();
    });
    sipp(engine.sip, "uac_engine_bye.xml", "p407", &["-m", "1"]).assert_all_ok(1);
    assert!(
        carrier.succeeded(Duration::from_secs(15)),
        "carrier: {}",
        carrier.errors()
    );
    // The first INVITE carries none, the second its answer to the 407 (§22.3).
    let values = carrier.received_headers("INVITE", "Proxy-Authorization");
    assert_eq!(values.len(), 2, "{values:?}");
    assert!(values[0].is_none(), "{values:?}");
    let creds = activeflow::sip::auth::Credentials::parse(values[1].as_deref().unwrap()).unwrap();
    assert_eq!(creds.username, "alice");
    assert!(creds.verify("s3cret", "INVITE"), "{values:?}");
    assert!(!creds.verify("wrong", "INVITE"));
    let record = ended_one(&engine, Duration::from_secs(10));
    assert_eq!(result_of(&record, "connect")["result"], "answered");
}

/// RFC 3261 §22.2 with RFC 3325 §9.1 / RFC 3323 / RFC 5806: the 401 is answered with
/// Authorization that SIPp's verifyauth accepts; the INVITE hides the caller (From
/// anonymous, P-Asserted-Identity, Privacy: id) and carries the caller's Diversion.
#[test]
fn a_401_to_an_anonymous_diverted_connect_is_answered() {
    let mut carrier = Carrier::start("uas_auth_401.xml");
    let f = connect_flow("p401", json!({"anonymous": true}));
    let engine = engine(&[f], &carrier, |_| {});
    sipp(
        engine.sip,
        "uac_diverted_engine_bye.xml",
        "p401",
        &["-m", "1"],
    )
    .assert_all_ok(1);
    assert!(
        carrier.succeeded(Duration::from_secs(15)),
        "carrier: {}",
        carrier.errors()
    );
    let values = carrier.received_headers("INVITE", "Authorization");
    assert!(
        values.len() == 2 && values[0].is_none() && values[1].is_some(),
        "{values:?}"
    );
    let record = ended_one(&engine, Duration::from_secs(10));
    assert_eq!(result_of(&record, "connect")["result"], "answered");
}

/// RFC 3261 §22.3: a second 407 with the same nonce means our credentials were refused: no
/// third INVITE; connect's result is `failed` with code 407.
#[test]
fn credentials_refused_fail_connect_with_407() {
    let mut carrier = Carrier::start("uas_auth_407_twice.xml");
    let engine = engine(&[connect_flow("twice", json!({}))], &carrier, |_| {});
    sipp(engine.sip, "uac_engine_bye.xml", "twice", &["-m", "1"]).assert_all_ok(1);
    assert!(
        carrier.succeeded(Duration::from_secs(15)),
        "carrier: {}",
        carrier.errors()
    );
    let record = ended_one(&engine, Duration::from_secs(10));
    let result = result_of(&record, "connect");
    assert_eq!(result["result"], "failed", "{result}");
    assert_eq!(result["destinations"][0]["code"], 407, "{result}");
}

/// RFC 3428 through RFC 3261 §22.2: a MESSAGE challenged with 401 is sent again with
/// credentials (verifyauth) and delivered.
#[test]
fn a_401_to_message_send_is_answered() {
    let mut carrier = Carrier::start("uas_auth_message.xml");
    let engine = engine(&[], &carrier, |_| {});
    let body = json!({"actions": [
        {"type": "message_send", "option": {
            "source": {"type": "tel", "target": "+15550100"},
            "destinations": [{"type": "tel", "target": "+15550199"}],
            "text": "hello"}}
    ]});
    let (status, created) = http(
        engine.api,
        "POST",
        "/v1/activeflows",
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{created}");
    assert!(
        carrier.succeeded(Duration::from_secs(15)),
        "carrier: {}",
        carrier.errors()
    );
    let record = ended_one(&engine, Duration::from_secs(10));
    let result = result_of(&record, "message_send");
    assert_eq!(result["destinations"][0]["status"], 200, "{result}");
    assert_eq!(result["delivered"], 1, "{result}");
}

/// RFC 3261 §22.2 on BYE: the carrier challenges the INVITE, then the BYE the engine sends
/// when the caller hangs up, in the same realm; a new BYE with Authorization (verifyauth)
/// ends the leg.
#[test]
fn a_401_to_our_bye_is_answered() {
    let mut carrier = Carrier::start("uas_auth_bye.xml");
    let f = flow(
        "byeauth",
        json!([
            {"type": "answer"},
            {"type": "connect", "option": {
                "destinations": [{"type": "tel", "target": "+15550199"}]}},
            {"type": "hangup"}
        ]),
    );
    let engine = engine(&[f], &carrier, |_| {});
    sipp(engine.sip, "uac_caller_bye.xml", "byeauth", &["-m", "1"]).assert_all_ok(1);
    assert!(
        carrier.succeeded(Duration::from_secs(15)),
        "carrier: {}",
        carrier.errors()
    );
    // A new BYE: the next CSeq (§22.2), with the credentials.
    let cseqs = carrier.received_headers("BYE", "CSeq");
    assert_eq!(cseqs.len(), 2, "{cseqs:?}");
    let number = |c: &Option<String>| -> u32 {
        c.as_deref()
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(number(&cseqs[1]), number(&cseqs[0]) + 1, "{cseqs:?}");
    let auth = carrier.received_headers("BYE", "Authorization");
    assert!(auth[0].is_none() && auth[1].is_some(), "{auth:?}");
}

/// The registration's state as `GET /v1/trunks` shows it.
fn registration(engine: &TestEngine) -> Value {
    let (status, body) = http(engine.api, "GET", "/v1/trunks", None);
    assert_eq!(status, 200, "{body}");
    body["result"][0].clone()
}

/// RFC 3261 §10.2 with §22.2: the trunk registers through a 401 (verifyauth), refreshes at
/// half the 4 s granted, shows `registered` in GET /v1/trunks and the metrics, and removes
/// its binding (Expires: 0) at shutdown; the registrar's scenario checks each step.
#[test]
fn the_trunk_registers_refreshes_and_unregisters_at_shutdown() {
    let metrics = activeflow::metrics::install().expect("the only recorder in this binary");
    let mut registrar = Carrier::start("uas_auth_register.xml");
    let engine = engine(&[], &registrar, |t| {
        t.name = "carrier".into();
        t.register = true;
    });
    let first = wait_until("registered", Duration::from_secs(5), || {
        let t = registration(&engine);
        (t["registration"]["state"] == "registered").then_some(t)
    });
    assert_eq!(first["name"], "carrier");
    assert_eq!(first["register"], true);
    assert_eq!(first["registration"]["last_code"], 200);
    assert!(first.to_string().find("s3cret").is_none(), "{first}");
    let expires_at = |t: &Value| {
        chrono::DateTime::parse_from_rfc3339(t["registration"]["expires_at"].as_str().unwrap())
            .unwrap()
    };
    let granted = expires_at(&first);
    // The refresh (2 s in) gets 10 s: the binding's end moves out.
    wait_until("the refresh", Duration::from_secs(6), || {
        let t = registration(&engine);
        let later = t["registration"]["state"] == "registered"
            && expires_at(&t) > granted + chrono::Duration::seconds(4);
        later.then_some(())
    });
    let text = metrics.render();
    let series = |name: &str| common::metric(&text, &format!("{name}{{trunk=\"carrier\"}}"));
    assert_eq!(series("activeflow_trunk_registered"), Some(1.0), "{text}");
    assert_eq!(
        series("activeflow_trunk_register_failures_total"),
        Some(0.0),
        "{text}"
    );
    engine.shutdown(Duration::from_millis(100));
    assert!(
        registrar.succeeded(Duration::from_secs(10)),
        "registrar: {}",
        registrar.errors()
    );
    // Register (2: challenged), refresh (2), removal (2): the last two ask for Expires 0.
    let expires = registrar.received_headers("REGISTER", "Expires");
    let asked: Vec<&str> = expires.iter().map(|e| e.as_deref().unwrap_or("")).collect();
    assert_eq!(asked, ["3600", "3600", "3600", "3600", "0", "0"]);
}
