//! Phones (`[[users]]`): SIP digest authentication of requests from outside every trunk's ACL
//! (RFC 3261 §22, RFC 7616), the REGISTER location service (RFC 3261 §10.3), `connect` to an
//! `extension` (a registered phone), and the failed-auth ban. Real peers: SIPp as phones
//! answering 401 challenges (its `[authentication]`), baresip as a registering softphone that
//! auto-answers. The trunk's ACL is 192.0.2.0/24, so the peers on 127.0.0.1 are strangers that
//! must authenticate; `sip.rate_limit_exempt` is emptied so that 127.0.0.1 may be banned.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use activeflow::config::UserConfig;
use activeflow::engine::{EndReason, Status};
use common::peers::{private_dir, write_tone_wav, Peer};
use common::{free_port, sipp, start_with, TestEngine};
use serde_json::{json, Value};

/// How long a step may take on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(20);

/// The engine with users alice/secret and bob/hunter2, a trunk that does not cover 127.0.0.1,
/// and `flows` routed by `routes`.
fn engine(flows: &[Value], routes: &[(&str, &str)]) -> TestEngine {
    // SIPp 3.6 reads only the first challenge and knows MD5 alone: MD5 is offered first here
    // (the default order, SHA-256 first, is checked by the unit tests).
    engine_offering(flows, routes, &["MD5", "SHA-256"])
}

/// [`engine`] challenging with `algorithms` (`sip.auth_algorithms`); idle TCP connections
/// no one holds are closed after 1 s.
fn engine_offering(flows: &[Value], routes: &[(&str, &str)], algorithms: &[&str]) -> TestEngine {
    start_with(
        flows,
        routes,
        &[("ACTIVEFLOW_SIP_TCP_IDLE_TIMEOUT_S", "1")],
        |c| {
            for t in &mut c.trunks {
                t.allow = vec!["192.0.2.0/24".into()];
            }
            c.sip.rate_limit_exempt = vec!["192.0.2.0/24".into()];
            c.sip.auth_algorithms = algorithms.iter().map(|a| a.to_string()).collect();
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
        },
    )
}

/// SIPp's arguments for one REGISTER of alice with `password`, asking for `expires`.
fn register_args<'a>(password: &'a str, expires: &'a str) -> Vec<&'a str> {
    vec![
        "-m",
        "1",
        "-au",
        "alice",
        "-ap",
        password,
        "-set",
        "expires",
        expires,
        "-set",
        "contact_port",
        "5999",
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
    assert!(
        source.starts_with("127.0.0.1:") && !source.ends_with(":5999"),
        "{source}"
    );
    let expires_at = rows[0]["expires_at"].as_str().unwrap();
    let left = chrono::DateTime::parse_from_rfc3339(expires_at)
        .unwrap()
        .to_utc()
        - chrono::Utc::now();
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

/// The engine binary (`serve --config FILE`) with [`engine`]'s users and trunk, written as an
/// operator would; its /metrics are real.
fn spawn_binary() -> (common::Spawned, PathBuf) {
    let dir = private_dir("phones-config");
    let config = activeflow::config::DEFAULT_TOML
        .replace(
            r#"allow = ["127.0.0.0/8", "::1"]  # source CIDRs"#,
            r#"allow = ["192.0.2.0/24"]  # source CIDRs"#,
        )
        .replace(
            r#"rate_limit_exempt = ["127.0.0.0/8", "::1"]"#,
            r#"rate_limit_exempt = ["192.0.2.0/24"]"#,
        )
        .replace(
            r#"auth_algorithms = ["SHA-256", "MD5"]"#,
            r#"auth_algorithms = ["MD5", "SHA-256"]"#,
        )
        + "\n[[users]]\nusername = \"alice\"\npassword = \"secret\"\n";
    assert!(
        config.contains(r#"allow = ["192.0.2.0/24"]"#)
            && config.contains(r#"rate_limit_exempt = ["192.0.2.0/24"]"#),
        "config/default.toml changed: this test no longer edits it"
    );
    let path = dir.join("activeflow.toml");
    std::fs::write(&path, config).unwrap();
    (
        common::spawn_engine_with(&["--config", path.to_str().unwrap()], &[]),
        dir,
    )
}

/// RFC 3261 §22.4 and the fail2ban-style limit, on the binary: alice registers
/// (`activeflow_registrations_active` 1); then a wrong password gets a fresh 401 each time; the 5th
/// failure within the window (`sip.auth_fail_limit` 5) bans the source, so the 5th wrong
/// REGISTER and then even a right one get no answer at all, and a new TCP connection from it
/// is closed at accept. `activeflow_sip_auth_failures_total` counts the 5 wrong passwords,
/// `activeflow_sip_auth_banned_total` the ban.
#[test]
fn wrong_passwords_get_401_then_the_source_is_banned() {
    let (engine, dir) = spawn_binary();
    let scrape = |series: &str| common::scrape(engine.metrics, series);
    // Not banned yet: a phone's TCP connection is accepted and stays open.
    assert!(
        !tcp_closed_at_accept(engine.sip),
        "connection refused before any ban"
    );
    assert_eq!(scrape("activeflow_registrations_active"), 0.0);
    assert_eq!(scrape("activeflow_sip_auth_banned_total"), 0.0);
    sipp(
        engine.sip,
        "uac_register_auth.xml",
        "alice",
        &register_args("secret", "120"),
    )
    .assert_all_ok(1);
    assert_eq!(scrape("activeflow_registrations_active"), 1.0);
    let refused = |m: &str| {
        sipp(
            engine.sip,
            "uac_register_auth_refused.xml",
            "alice",
            &["-m", m, "-au", "alice", "-ap", "wrong"],
        )
    };
    // Four failures: each answered 401 again.
    refused("4").assert_all_ok(4);
    assert_eq!(
        scrape(r#"activeflow_sip_auth_failures_total{reason="wrong_password"}"#),
        4.0
    );
    assert_eq!(scrape("activeflow_sip_auth_banned_total"), 0.0);
    // The fifth bans: its wrong REGISTER gets no 401 (SIPp's 1 s wait runs out).
    let run = refused("1");
    assert_eq!((run.successful, run.failed), (0, 1), "{}", run.errors);
    assert!(
        run.errors.contains("timeout"),
        "not a wait for nothing: {}",
        run.errors
    );
    // Banned: even the right password gets no answer now.
    let run = sipp(
        engine.sip,
        "uac_register_auth.xml",
        "alice",
        &register_args("secret", "120"),
    );
    assert_eq!((run.successful, run.failed), (0, 1), "{}", run.errors);
    assert!(
        run.errors.contains("timeout"),
        "not a wait for nothing: {}",
        run.errors
    );
    assert_eq!(
        scrape(r#"activeflow_sip_auth_failures_total{reason="wrong_password"}"#),
        5.0
    );
    assert_eq!(scrape("activeflow_sip_auth_banned_total"), 1.0);
    // Banned, the source gets no new SIP/TCP connection either: closed at accept.
    assert!(
        tcp_closed_at_accept(engine.sip),
        "a banned source's connection was kept"
    );
    assert_eq!(
        scrape(r#"activeflow_sip_tcp_connections_refused_total{reason="banned"}"#),
        1.0
    );
    drop(engine);
    let _ = std::fs::remove_dir_all(dir);
}

/// Whether a TCP connection to `sip` is closed by the engine within a second (`false`: it
/// is still open, idle, after that second).
fn tcp_closed_at_accept(sip: SocketAddr) -> bool {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(sip).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => panic!("the engine spoke first"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            false
        }
        Err(e) => panic!("read: {e}"),
    }
}

/// The ban stops what no dialog takes, not established calls: bob's authenticated call is up
/// when wrong passwords from the same source (127.0.0.1) ban it; a new REGISTER then gets no
/// answer, yet bob's BYE inside the call (RFC 3261 §15.1.2) still gets its 200 and ends it.
#[test]
fn a_ban_leaves_the_sources_established_calls_alone() {
    let hold = common::flow(
        "hold",
        json!([{"type": "answer"}, {"type": "sleep", "option": {"duration": 10000}}]),
    );
    let e = engine(&[hold], &[("2000", "hold")]);
    let caller = std::thread::spawn({
        let e_sip = e.sip;
        move || {
            let uri = format!("2000@{e_sip}");
            sipp(
                e_sip,
                "uac_auth_call_long.xml",
                "2000",
                &["-m", "1", "-au", "bob", "-ap", "hunter2", "-auth_uri", &uri],
            )
        }
    });
    e.wait_for("the call to be answered", PATIENCE, |all| {
        all.iter()
            .any(|a| a.executed_actions.iter().any(|x| x.action.kind == "answer"))
    });
    let run = sipp(
        e.sip,
        "uac_register_auth_refused.xml",
        "alice",
        &["-m", "5", "-au", "alice", "-ap", "wrong"],
    );
    assert_eq!((run.successful, run.failed), (4, 1), "{}", run.errors);
    assert!(run.errors.contains("timeout"), "not banned: {}", run.errors);
    caller.join().unwrap().assert_all_ok(1);
    e.wait_for("the activeflow to end", PATIENCE, |all| {
        all.len() == 1 && all[0].status == Status::Ended
    });
    let a = e.activeflows().remove(0);
    assert_eq!(a.end_reason, Some(EndReason::Hangup), "{a:?}");
}

/// SIPp calls `number` at the engine as the phone bob (digest answer to the 401, RFC 3261
/// §22.2); it hangs up itself after a second of answered call.
fn call_as_bob(e: &TestEngine, number: &str) -> common::SippRun {
    call_as_bob_with(e, number, "uac_auth_call.xml")
}

/// [`call_as_bob`] running SIPp scenario `scenario`.
fn call_as_bob_with(e: &TestEngine, number: &str, scenario: &str) -> common::SippRun {
    // SIPp's digest `uri` is the engine's address unless told (RFC 7616 §3.4.6: it must be the
    // Request-URI, and the engine checks it).
    let uri = format!("{number}@{}", e.sip); // SIPp puts `sip:` in front
    sipp(
        e.sip,
        scenario,
        number,
        &["-m", "1", "-au", "bob", "-ap", "hunter2", "-auth_uri", &uri],
    )
}

/// A private baresip (the `tests/baresip/config` template) registered at the engine as alice
/// with her password, answering incoming calls at once (`answermode=auto`).
struct Phone {
    peer: Peer,
    dir: PathBuf,
}

impl Drop for Phone {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Phone {
    fn register(engine: SocketAddr, user: &str, password: &str) -> Phone {
        common::require_on_path("baresip");
        common::require("stdbuf");
        let dir = private_dir("phone");
        let recordings = dir.join("recordings");
        std::fs::create_dir_all(&recordings).unwrap();
        let source = dir.join("microphone.wav");
        // Longer than the test: aufile ends the call when its file runs out.
        write_tone_wav(&source, 440.0, Duration::from_secs(30));
        // baresip also listens on its SIP port + 1 (TLS): the console must not be there.
        let sip_port = free_port();
        let console_port = loop {
            let p = free_port();
            if p != sip_port && p != sip_port.wrapping_add(1) {
                break p;
            }
        };
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/baresip");
        let config = std::fs::read_to_string(templates.join("config"))
            .unwrap()
            .replace("@SIP_PORT@", &sip_port.to_string())
            .replace("@CONS_PORT@", &console_port.to_string())
            .replace("@SOURCE_WAV@", source.to_str().unwrap())
            .replace("@RECORDINGS@", recordings.to_str().unwrap());
        std::fs::write(dir.join("config"), config).unwrap();
        // The AoR's host is the registrar (RFC 3261 §10.2.6 default): the engine.
        std::fs::write(
            dir.join("accounts"),
            format!(
                "<sip:{user}@{engine}>;auth_pass={password};regint=600;answermode=auto;\
                 audio_codecs=PCMU\n"
            ),
        )
        .unwrap();
        let mut cmd = Command::new("stdbuf");
        cmd.current_dir(&dir)
            .args(["-oL", "-eL", "baresip", "-s"])
            .arg("-f")
            .arg(&dir);
        Phone {
            peer: Peer::spawn("baresip", cmd),
            dir,
        }
    }

    fn log(&self) -> String {
        self.peer.output().join("\n")
    }
}

/// Waits until `user` has a registration listed (baresip's output on failure).
fn wait_registered(e: &TestEngine, user: &str, phone: &Phone) -> Value {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(row) = registrations(e).into_iter().find(|r| r["user"] == user) {
            return row;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{user} did not register; baresip's output:\n{}",
            phone.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// RFC 3261 §10.3 and §22.4 with a real softphone: baresip registers as alice (401, then 200
/// with her password). A SIPp phone outside the trunk's ACL calls with bob's credentials (401,
/// INVITE again with Authorization, §22.2); the flow `connect`s to the extension alice: the
/// engine sends the INVITE to baresip's registered contact at the address its REGISTER came
/// from, baresip answers, and the caller is bridged (200) until it hangs up. The flow sees who
/// called (`call.source.user` = bob) and whom it reached (`connect.destination` = alice).
#[test]
fn baresip_registers_and_an_authenticated_caller_reaches_it_as_an_extension() {
    let ring = common::flow(
        "ring-alice",
        json!([{"type": "connect", "option": {
            "destinations": [{"type": "extension", "target": "alice"}],
            "ring_timeout": 10000}}]),
    );
    // baresip 1.0 (libre) gives up on a 401 holding any challenge but MD5.
    let e = engine_offering(&[ring], &[("2000", "ring-alice")], &["MD5"]);
    let phone = Phone::register(e.sip, "alice", "secret");
    let row = wait_registered(&e, "alice", &phone);
    assert_eq!(row["transport"], "udp", "{row}");
    assert!(
        !phone
            .peer
            .matching(&["SIP/2.0 401 Unauthorized"])
            .is_empty(),
        "baresip was not challenged first:\n{}",
        phone.log()
    );

    let run = call_as_bob(&e, "2000");
    run.assert_all_ok(1);
    assert!(
        !phone.peer.matching(&["INVITE sip:alice"]).is_empty(),
        "baresip got no INVITE:\n{}",
        phone.log()
    );
    e.wait_for("the activeflow to end", PATIENCE, |all| {
        all.len() == 1 && all[0].status == Status::Ended
    });
    let a = e.activeflows().remove(0);
    assert_eq!(a.end_reason, Some(EndReason::Hangup), "{a:?}");
    let (status, vars) = common::http(
        e.api,
        "GET",
        &format!("/v1/activeflows/{}/variables", a.id),
        None,
    );
    assert_eq!(status, 200, "{vars}");
    let vars = if vars.get("variables").is_some() {
        vars["variables"].clone()
    } else {
        vars
    };
    assert_eq!(vars["call.source.user"], "bob", "{vars}");
    assert_eq!(vars["connect.destination"], "alice", "{vars}");
}

/// A `connect` to an extension with no registration fails at once, `connect.result` `failed`
/// with reason `not_registered` (users change: the flow is valid when saved); the flow goes on
/// and answers the authenticated caller itself.
#[test]
fn connect_to_an_unregistered_extension_fails_with_not_registered() {
    let flow = common::flow(
        "ring-alice",
        json!([
            {"type": "connect", "option": {"destinations": [{"type": "extension", "target": "alice"}]}},
            {"type": "answer"},
            {"type": "sleep", "option": {"duration": 10000}}
        ]),
    );
    let e = engine(&[flow], &[("2000", "ring-alice")]);
    call_as_bob(&e, "2000").assert_all_ok(1);
    e.wait_for("the activeflow to end", PATIENCE, |all| {
        all.len() == 1 && all[0].status == Status::Ended
    });
    let a = e.activeflows().remove(0);
    let connect = a
        .executed_actions
        .iter()
        .find(|x| x.action.kind == "connect")
        .unwrap_or_else(|| panic!("{a:?}"));
    let result = connect.result.clone().unwrap_or(Value::Null);
    assert_eq!(result["result"], "failed", "{result}");
    assert_eq!(
        result["destinations"][0]["reason"], "not_registered",
        "{result}"
    );
    assert!(
        result["errors"]["alice"]
            .as_str()
            .is_some_and(|m| m.contains("not_registered")),
        "{result}"
    );
}

/// RFC 3261 §22.1 and §9.2: a CANCEL is never challenged; the phone's CANCEL of its
/// authenticated INVITE matches that INVITE's transaction (200 to the CANCEL, 487 to the
/// INVITE), and the activeflow ends with `hangup`. The ACK for the first INVITE's 401 was
/// absorbed (no second call, no answer).
#[test]
fn an_authenticated_caller_cancels_and_the_cancel_is_not_challenged() {
    let wait = common::flow(
        "wait",
        json!([{"type": "sleep", "option": {"duration": 10000}}, {"type": "answer"}]),
    );
    let e = engine(&[wait], &[("2000", "wait")]);
    call_as_bob_with(&e, "2000", "uac_auth_cancel.xml").assert_all_ok(1);
    e.wait_for("the activeflow to end", PATIENCE, |all| {
        all.len() == 1 && all[0].status == Status::Ended
    });
    let a = e.activeflows().remove(0);
    assert_eq!(a.end_reason, Some(EndReason::Hangup), "{a:?}");
}

/// A phone over TCP written by hand (SIPp matches an incoming INVITE to no call of its own
/// once it has registered, so it cannot be this phone): one connection, whole messages
/// framed by Content-Length.
struct TcpPhone {
    stream: std::net::TcpStream,
    buffer: Vec<u8>,
}

impl TcpPhone {
    fn send(&mut self, message: &str) {
        use std::io::Write;
        self.stream.write_all(message.as_bytes()).unwrap();
    }

    /// The next whole message (head and body), or a panic after `PATIENCE`.
    fn recv(&mut self) -> String {
        use std::io::Read;
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffer[..end]).to_string();
                let length: usize = common::header(&head, "Content-Length")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if self.buffer.len() >= end + 4 + length {
                    let message: Vec<u8> = self.buffer.drain(..end + 4 + length).collect();
                    return String::from_utf8_lossy(&message).to_string();
                }
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(
                !left.is_zero(),
                "no whole message over TCP: {:?}",
                self.buffer
            );
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).unwrap_or(0);
            assert!(n > 0, "the engine closed the phone's TCP connection");
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// A response to `request` echoing its Via, From, To (with our tag), Call-ID and CSeq.
    fn answer(&mut self, request: &str, status: &str, extra: &str) {
        let h = |name| {
            common::header(request, name)
                .unwrap_or_default()
                .to_string()
        };
        let to = h("To");
        let to = if to.contains("tag=") {
            to
        } else {
            format!("{to};tag=phone1")
        };
        let response = format!(
            "SIP/2.0 {status}\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}",
            h("Via"),
            h("From"),
            h("Call-ID"),
            h("CSeq"),
        );
        self.send(&response);
    }
}

/// RFC 3261 §10.3 with RFC 5626-lite over TCP: a phone behind NAT registers over TCP with a
/// Contact nobody can connect to (port 5999); its connection is held while the binding lives
/// (here past `sip.tcp_idle_timeout_s`, 1 s, which closes idle connections no one holds), and
/// a call to the extension reaches the phone over that very connection: it answers, and the
/// caller is bridged until it hangs up (the engine's BYE comes over it too).
#[test]
fn a_phone_registered_over_tcp_is_called_back_over_its_connection() {
    let ring = common::flow(
        "ring-alice",
        json!([{"type": "connect", "option": {
            "destinations": [{"type": "extension", "target": "alice"}],
            "ring_timeout": 10000}}]),
    );
    let e = engine(&[ring], &[("2000", "ring-alice")]);
    let stream = std::net::TcpStream::connect(e.sip).unwrap();
    let local = stream.local_addr().unwrap();
    let mut phone = TcpPhone {
        stream,
        buffer: Vec::new(),
    };
    let uri = format!("sip:{}", e.sip);
    let register = |cseq: u32, authorization: &str| {
        format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-reg{cseq}\r\n\
             From: <sip:alice@{}>;tag=reg\r\nTo: <sip:alice@{}>\r\nCall-ID: tcp-reg\r\n\
             CSeq: {cseq} REGISTER\r\nContact: <sip:alice@127.0.0.1:5999;transport=tcp>\r\n\
             Expires: 120\r\n{authorization}Content-Length: 0\r\n\r\n",
            e.sip, e.sip
        )
    };
    phone.send(&register(1, ""));
    let challenge = phone.recv();
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    let challenge = activeflow::sip::auth::Challenge::parse(
        common::header(&challenge, "WWW-Authenticate").unwrap(),
    )
    .unwrap();
    let credentials = challenge
        .answer("alice", "secret", "REGISTER", &uri, 1, "tcpphone")
        .to_header_value();
    phone.send(&register(2, &format!("Authorization: {credentials}\r\n")));
    let ok = phone.recv();
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let row = registrations(&e).into_iter().next().unwrap();
    assert_eq!(
        (&row["transport"], &row["source"]),
        (&json!("tcp"), &json!(local.to_string()))
    );

    // Longer than the idle timeout: an unheld connection would be closed by now.
    std::thread::sleep(Duration::from_millis(2500));
    let caller = std::thread::spawn({
        let e_sip = e.sip;
        move || {
            let uri = format!("2000@{e_sip}");
            sipp(
                e_sip,
                "uac_auth_call.xml",
                "2000",
                &["-m", "1", "-au", "bob", "-ap", "hunter2", "-auth_uri", &uri],
            )
        }
    });
    let invite = phone.recv();
    assert!(
        invite.starts_with("INVITE sip:alice@127.0.0.1:5999;transport=tcp SIP/2.0"),
        "{invite}"
    );
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 5998 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    phone.answer(
        &invite,
        "200 OK",
        &format!(
            "Contact: <sip:alice@127.0.0.1:5999;transport=tcp>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ),
    );
    let ack = phone.recv();
    assert!(ack.starts_with("ACK "), "{ack}");
    let bye = phone.recv();
    assert!(bye.starts_with("BYE "), "{bye}");
    phone.answer(&bye, "200 OK", "Content-Length: 0\r\n\r\n");
    caller.join().unwrap().assert_all_ok(1);
}
