//! SIP over TLS against real peers (RFC 3261 §26.2, §18; RFC 5630 for `sips:`). Debian's SIPp
//! is built without OpenSSL (`sipp -t l1` answers "To use a TLS transport you must compile SIPp
//! with OpenSSL"), so SIPp speaks SIP over TCP through `socat`, which does the TLS with OpenSSL:
//! a TLS stack independent of ours on the far side of every handshake. Certificates (a test CA
//! and a server certificate it signs) are made here with rcgen.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use activeflow::engine::{EndReason, Status};
use common::{
    ended_one, flow, free_port, require_on_path, result_of, scenario, sipp, start_with, TestEngine,
};
use serde_json::{json, Value};

/// A CA and a server certificate it signed, as PEM files in `dir`.
struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A fresh CA, and a server certificate for `names` signed by it.
fn pki(tag: &str, names: &[&str]) -> Pki {
    let dir = std::env::temp_dir().join(format!("activeflow-tls-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("activeflow test CA {tag}"),
    );
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut leaf_params = rcgen::CertificateParams::new(names).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        cert: write("cert.pem", leaf.pem()),
        key: write("key.pem", leaf_key.serialize_pem()),
        dir,
    }
}

/// A `socat` process, killed on drop.
struct Socat(Child);

impl Socat {
    /// Runs `socat <left> <right>` (one connection, no fork) and waits until `port` listens.
    fn start(left: &str, right: &str, port: u16) -> Socat {
        let child = Command::new("socat")
            .args([left, right])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run socat ({e}); scripts/test.sh installs it"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            assert!(Instant::now() < deadline, "socat never listened on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Socat(child)
    }
}

impl Drop for Socat {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn engine(flows: &[Value], env: &[(&str, &str)], trunk: impl FnOnce(&mut Value)) -> TestEngine {
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
    let mut t = json!({});
    trunk(&mut t);
    start_with(flows, &routes, env, move |config| {
        let t0 = &mut config.trunks[0];
        let field = |k: &str| t[k].as_str().unwrap_or_default().to_string();
        t0.outbound_proxy = field("outbound_proxy");
        t0.transport = field("transport");
        t0.tls_ca = field("tls_ca");
    })
}

/// A 300 ms 8 kHz mono 16-bit WAV tone at `path`.
fn write_tone(path: &Path) {
    let samples: Vec<i16> = (0..2400)
        .map(|i| ((i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin() * 8000.0) as i16)
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        wav.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, wav).unwrap();
}

/// RFC 3261 §26.2 / §18.2.2 and RFC 5630 §3.1.3: SIPp calls the engine's TLS listener (through
/// OpenSSL, which checks the engine's certificate against the test CA for "localhost"); the flow
/// answers, plays and hangs up. The 200's Contact names the TLS port — `sips:` for a `sips:`
/// Request-URI, `;transport=tls` for `sip:...;transport=tls` — and the engine's BYE comes back
/// over the same TLS connection with a `SIP/2.0/TLS` Via.
#[test]
fn sipp_over_tls_calls_the_tls_listener_and_the_dialog_stays_on_tls() {
    require_on_path("sipp");
    require_on_path("socat");
    let pki = pki("in", &["localhost", "127.0.0.1"]);
    let prompts = pki.dir.join("prompts");
    std::fs::create_dir_all(&prompts).unwrap();
    write_tone(&prompts.join("tone.wav"));
    let f = flow(
        "tls-in",
        json!([
            {"type": "answer"},
            {"type": "play", "option": {"stream_urls": ["tone.wav"]}},
            {"type": "hangup"}
        ]),
    );
    let engine = engine(
        &[f],
        &[
            ("ACTIVEFLOW_SIP_TLS_LISTEN", "127.0.0.1:0"),
            ("ACTIVEFLOW_SIP_TLS_CERT", path(&pki.cert)),
            ("ACTIVEFLOW_SIP_TLS_KEY", path(&pki.key)),
            ("ACTIVEFLOW_MEDIA_PROMPTS_DIR", path(&prompts)),
        ],
        |_| {},
    );
    let tls: SocketAddr = engine.sip_tls.expect("the TLS listener runs");
    for (scheme, params, contact) in [
        (
            "sips",
            ";user=phone",
            format!("Contact: <sips:activeflow@127.0.0.1:{}>", tls.port()),
        ),
        (
            "sip",
            ";transport=tls",
            format!(
                "Contact: <sip:activeflow@127.0.0.1:{};transport=tls>",
                tls.port()
            ),
        ),
    ] {
        let tunnel_port = free_port();
        let _tunnel = Socat::start(
            &format!("TCP-LISTEN:{tunnel_port},bind=127.0.0.1,reuseaddr"),
            &format!(
                "OPENSSL:127.0.0.1:{},cafile={},commonname=localhost",
                tls.port(),
                path(&pki.ca)
            ),
            tunnel_port,
        );
        let tunnel: SocketAddr = ([127, 0, 0, 1], tunnel_port).into();
        let run = sipp(
            tunnel,
            "uac_tls_engine_bye.xml",
            "tls-in",
            &[
                "-t",
                "t1",
                "-m",
                "1",
                "-trace_msg",
                "-key",
                "scheme",
                scheme,
                "-key",
                "uri_params",
                params,
            ],
        );
        run.assert_all_ok(1);
        // The message trace (in `errors`, with the error log): what SIPp received.
        let trace = &run.errors;
        assert!(trace.contains(&contact), "{scheme}: {contact} in\n{trace}");
        let bye = trace
            .split("message received")
            .find(|m| m.contains("BYE "))
            .unwrap_or_else(|| panic!("no BYE received:\n{trace}"));
        let via = format!("Via: SIP/2.0/TLS 127.0.0.1:{};branch=", tls.port());
        assert!(bye.contains(&via), "{via} in {bye}");
    }
    engine.wait_for("both activeflows to end", Duration::from_secs(15), |all| {
        all.len() == 2 && all.iter().all(|a| a.status == Status::Ended)
    });
    for record in engine.activeflows() {
        assert_eq!(record.end_reason, Some(EndReason::Completed));
        assert_eq!(result_of(&record, "play")["played_ms"], 300, "{record:?}");
    }
}

/// SIPp as a TCP callee behind a TLS server (socat with `pki`'s certificate); waits until it
/// listens. Returns SIPp, the TLS server, its port and the directory of SIPp's message trace.
fn tls_callee(pki: &Pki, scenario_name: &str) -> (Child, Socat, u16, PathBuf) {
    let sipp_port = free_port();
    let dir = pki.dir.join(format!("uas-{sipp_port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new("sipp")
        .current_dir(&dir)
        .args(["-sf", scenario(scenario_name).to_str().unwrap()])
        .args(["-t", "t1", "-i", "127.0.0.1", "-p", &sipp_port.to_string()])
        .args(["-m", "1", "-d", "500", "-trace_msg"])
        .args(["-key", "rtp_port", &free_port().to_string()])
        .args(["-nostdin", "-timeout", "30s", "-timeout_error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpListener::bind(("127.0.0.1", sipp_port)).is_ok() {
        assert!(Instant::now() < deadline, "sipp never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let tls_port = free_port();
    let server = Socat::start(
        &format!(
            "OPENSSL-LISTEN:{tls_port},bind=127.0.0.1,reuseaddr,cert={},key={},verify=0",
            path(&pki.cert),
            path(&pki.key)
        ),
        &format!("TCP:127.0.0.1:{sipp_port}"),
        tls_port,
    );
    (child, server, tls_port, dir)
}

/// Every file SIPp wrote in `dir`, concatenated.
fn read_dir_text(dir: &Path) -> String {
    let mut text = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
    }
    text
}

fn connect_flow() -> Value {
    flow(
        "tls-out",
        json!([
            {"type": "answer"},
            {"type": "connect", "option": {
                "destinations": [{"type": "tel", "target": "+15550199"}]}},
            {"type": "hangup"}
        ]),
    )
}

/// RFC 3261 §26.2, §26.3.1 and §18.1.1: a `connect` through a trunk with `transport = "tls"`,
/// `tls_ca` = the test CA and `outbound_proxy = "localhost:<port>"` opens a TLS connection whose
/// certificate (issued for "localhost" only, no IP) is checked against the proxy's host name;
/// SIPp behind it answers, then hangs up over the same connection.
#[test]
fn connect_through_a_tls_trunk_checks_the_proxy_name_against_its_ca() {
    require_on_path("sipp");
    require_on_path("socat");
    let pki = pki("out", &["localhost"]);
    let (mut callee, _server, tls_port, trace_dir) = tls_callee(&pki, "uas_answer_then_bye.xml");
    let engine = engine(&[connect_flow()], &[], |t| {
        t["outbound_proxy"] = json!(format!("localhost:{tls_port}"));
        t["transport"] = json!("tls");
        t["tls_ca"] = json!(path(&pki.ca));
    });
    sipp(engine.sip, "uac_engine_bye.xml", "tls-out", &["-m", "1"]).assert_all_ok(1);
    assert!(
        succeeded(&mut callee, Duration::from_secs(15)),
        "the TLS callee's scenario"
    );
    // What arrived through the TLS server: our INVITE over TLS, to the proxy's name.
    let trace = read_dir_text(&trace_dir);
    assert!(
        trace.contains(&format!(
            "INVITE sip:+15550199@localhost:{tls_port};transport=tls SIP/2.0"
        )),
        "{trace}"
    );
    assert!(trace.contains("Via: SIP/2.0/TLS "), "{trace}");
    assert!(trace.contains(";transport=tls>"), "our Contact: {trace}");
    let record = ended_one(&engine, Duration::from_secs(15));
    let result = result_of(&record, "connect");
    assert_eq!(result["result"], "answered", "{result}");
    assert_eq!(result["ended_by"], "callee", "{result}");
}

/// RFC 3261 §26.3.1: the same trunk trusting a CA that did not sign the proxy's certificate, or
/// reaching a proxy whose certificate (from the right CA) names another host, fails the
/// handshake, so the leg fails at once (`connect` result `failed`) and the flow goes on to its
/// hangup.
#[test]
fn a_proxy_certificate_from_another_ca_or_for_another_name_fails_the_leg() {
    require_on_path("sipp");
    require_on_path("socat");
    let right = pki("server", &["localhost"]);
    let other_ca = pki("other", &["localhost"]);
    let other_name = pki("name", &["sbc.example.com", "127.0.0.1"]);
    for (server, trusted) in [(&right, &other_ca), (&other_name, &other_name)] {
        let tls_port = free_port();
        let _server = Socat::start(
            &format!(
                "OPENSSL-LISTEN:{tls_port},bind=127.0.0.1,reuseaddr,cert={},key={},verify=0",
                path(&server.cert),
                path(&server.key)
            ),
            "TCP:127.0.0.1:9",
            tls_port,
        );
        let engine = engine(&[connect_flow()], &[], |t| {
            t["outbound_proxy"] = json!(format!("localhost:{tls_port}"));
            t["transport"] = json!("tls");
            t["tls_ca"] = json!(path(&trusted.ca));
        });
        let started = Instant::now();
        sipp(engine.sip, "uac_engine_bye.xml", "tls-out", &["-m", "1"]).assert_all_ok(1);
        let record = ended_one(&engine, Duration::from_secs(15));
        let result = result_of(&record, "connect");
        assert_eq!(result["result"], "failed", "{result}");
        assert_eq!(record.end_reason, Some(EndReason::Completed));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "failed at the handshake, not by a transaction timeout"
        );
    }
}

struct Drop_;

impl activeflow::sip::transport::InboundHandler for Drop_ {
    fn on_message(&self, _inbound: activeflow::sip::transport::Inbound) {}
}

/// RFC 3261 §26.3.1 at the transport: `SipSender::connect_tls` to an OpenSSL server says why a
/// certificate is refused (an unknown issuer; a name that does not match), and once a
/// connection is up, a message sent to that peer over TLS arrives in clear behind the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tls_says_why_a_certificate_is_refused_and_sends_over_the_connection() {
    use activeflow::sip::transport::{
        serve_tcp, Peer, SipSender, TlsClient, TlsTarget, TransportKind,
    };
    require_on_path("socat");
    let right = pki("unit", &["localhost"]);
    let other = pki("unit-other", &["localhost"]);
    let udp = std::sync::Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sender = SipSender::new(udp, listener.local_addr().unwrap());
    let serving = serve_tcp(
        listener,
        std::sync::Arc::new(Drop_),
        sender.clone(),
        65_535,
        Vec::new(),
    );
    tokio::spawn(serving);
    while !sender.tcp_serving() {
        tokio::task::yield_now().await;
    }
    let behind = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let behind_port = behind.local_addr().unwrap().port();
    let target = |name: &str, pki: &Pki| TlsTarget {
        server_name: name.into(),
        client: Some(TlsClient::from_ca_file(&pki.ca).unwrap()),
    };
    for (name, trusted, why) in [
        ("localhost", &other, "UnknownIssuer"),
        ("sbc.example.com", &right, "not valid for name"),
    ] {
        let port = free_port();
        let _server = Socat::start(
            &format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,cert={},key={},verify=0",
                path(&right.cert),
                path(&right.key)
            ),
            &format!("TCP:127.0.0.1:{behind_port}"),
            port,
        );
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let e = sender
            .connect_tls(addr, target(name, trusted))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(why) && e.contains(name), "{e}");
        assert_eq!(sender.tls_connection_count(), 0);
    }
    let port = free_port();
    let _server = Socat::start(
        &format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,cert={},key={},verify=0",
            path(&right.cert),
            path(&right.key)
        ),
        &format!("TCP:127.0.0.1:{behind_port}"),
        port,
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    sender
        .connect_tls(addr, target("localhost", &right))
        .await
        .unwrap();
    assert_eq!(sender.tls_connection_count(), 1);
    let peer = Peer {
        addr,
        transport: TransportKind::Tls,
    };
    let message = bytes::Bytes::from_static(b"\r\n\r\nhello over tls");
    sender.send(&peer, &message).unwrap();
    let got = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let (mut conn, _) = behind.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains("hello over tls") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    })
    .await
    .unwrap();
    assert!(got.contains("hello over tls"), "{got:?}");
}

/// Waits for a SIPp child to finish; true when its scenario succeeded.
fn succeeded(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// RFC 3428 over RFC 3261 §26.2: `message_send` through a TLS trunk reaches SIPp behind the
/// TLS server (certificate checked against the trunk's CA and the proxy's name) and its 200
/// comes back over the same connection.
#[test]
fn message_send_through_a_tls_trunk_is_delivered() {
    require_on_path("sipp");
    require_on_path("socat");
    let pki = pki("message", &["localhost"]);
    let (mut peer, _server, tls_port, trace_dir) = tls_callee(&pki, "uas_message.xml");
    let engine = engine(&[], &[], |t| {
        t["outbound_proxy"] = json!(format!("localhost:{tls_port}"));
        t["transport"] = json!("tls");
        t["tls_ca"] = json!(path(&pki.ca));
    });
    let body = json!({"actions": [
        {"type": "message_send", "option": {
            "source": {"type": "tel", "target": "+15550100"},
            "destinations": [{"type": "tel", "target": "+15550199"}],
            "text": "hello from activeflow"}}
    ]});
    let (status, created) = common::http(
        engine.api,
        "POST",
        "/v1/activeflows",
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{created}");
    assert!(
        succeeded(&mut peer, Duration::from_secs(15)),
        "the peer got the MESSAGE"
    );
    let record = ended_one(&engine, Duration::from_secs(15));
    let result = result_of(&record, "message_send");
    assert_eq!(result["destinations"][0]["status"], 200, "{result}");
    let trace = read_dir_text(&trace_dir);
    assert!(trace.contains("Via: SIP/2.0/TLS "), "{trace}");
}

/// RFC 3261 §26.2: the TLS listener speaks only TLS. A peer sending SIP in clear to it fails the
/// handshake and is disconnected; the listener goes on serving TLS (a second, real TLS client
/// completes its handshake through OpenSSL).
#[test]
fn clear_text_on_the_tls_port_is_disconnected_and_tls_still_serves() {
    use std::io::{Read, Write};
    require_on_path("socat");
    let pki = pki("clear", &["localhost"]);
    let engine = engine(
        &[],
        &[
            ("ACTIVEFLOW_SIP_TLS_LISTEN", "127.0.0.1:0"),
            ("ACTIVEFLOW_SIP_TLS_CERT", path(&pki.cert)),
            ("ACTIVEFLOW_SIP_TLS_KEY", path(&pki.key)),
        ],
        |_| {},
    );
    let tls = engine.sip_tls.unwrap();
    let mut clear = std::net::TcpStream::connect(tls).unwrap();
    clear
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    clear
        .write_all(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    // Closed by the engine (at most a TLS alert first), not left hanging until the timeout.
    let closed = clear.read_to_end(&mut rest);
    let timed_out = closed.as_ref().is_err_and(|e| {
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
    });
    assert!(!timed_out, "the clear-text peer was left connected");
    assert!(
        !String::from_utf8_lossy(&rest).contains("SIP/2.0"),
        "{rest:?}"
    );
    // A real TLS client still gets through: openssl s_client via socat's OPENSSL address.
    let out = Command::new("socat")
        .args([
            "-T",
            "5",
            "STDIO",
            &format!(
                "OPENSSL:127.0.0.1:{},cafile={},commonname=localhost",
                tls.port(),
                path(&pki.ca)
            ),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = out;
    // Kept open until the answer is read: socat ends soon after its input does.
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(
            b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bKclear\r\n\
              From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: clear-1\r\n\
              CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
    let mut answer = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1024];
    while !answer.contains("\r\n\r\n") && Instant::now() < deadline {
        match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.starts_with("SIP/2.0 200"), "{answer:?}");
    assert!(
        answer.contains("Via: SIP/2.0/TLS 127.0.0.1:9"),
        "{answer:?}"
    );
}
