//! Trunk addressing and RFC 3263 with real peers: a private dnsmasq serves NAPTR, SRV and A
//! records for trunk domains (the engine asks it through `sip.dns_servers`), SIPp plays the
//! carrier's servers — one that answers 503, one that answers the call — and the engine must
//! pick the transport and targets as RFC 3263 §4.1/§4.2 say and fail over as §4.3 says.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::uas::SippUas;
use common::{ended_one, flow, free_port, http, result_of, sipp, start_with, TestEngine};
use serde_json::{json, Value};

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// A private dnsmasq on a free loopback port, answering only from the records it is given
/// (`--local=/test/`: everything else under `.test` is NXDOMAIN, nothing goes upstream).
struct Dns {
    child: Child,
    port: u16,
}

impl Dns {
    fn start(records: &[String]) -> Dns {
        assert!(
            std::path::Path::new(DNSMASQ).exists(),
            "{DNSMASQ} missing; scripts/test.sh installs dnsmasq-base"
        );
        let port = free_port();
        let pid = std::env::temp_dir().join(format!("activeflow-dnsmasq-{port}.pid"));
        let child = Command::new(DNSMASQ)
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--local=/test/",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--pid-file={}", pid.display()))
            .args(records)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {DNSMASQ}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while UdpSocket::bind(("127.0.0.1", port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        Dns { child, port }
    }

    fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An engine whose first trunk is reached at `proxy` (over `transport`, "" = NAPTR decides),
/// resolving through `dns`, failing over after 700 ms of silence.
fn engine(flows: &[Value], dns: &Dns, proxy: &str, transport: &str) -> TestEngine {
    engine_with(flows, dns, proxy, transport, "700")
}

/// Like [`engine`] with `sip.failover_timeout_ms` = `failover_ms`.
fn engine_with(
    flows: &[Value],
    dns: &Dns,
    proxy: &str,
    transport: &str,
    failover_ms: &str,
) -> TestEngine {
    let routes: Vec<(String, String)> = flows
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let routes: Vec<(&str, &str)> = routes
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (server, proxy, transport) = (dns.server(), proxy.to_owned(), transport.to_owned());
    start_with(
        flows,
        &routes,
        &[("ACTIVEFLOW_SIP_FAILOVER_TIMEOUT_MS", failover_ms)],
        move |config| {
            config.sip.dns_servers = vec![server];
            config.trunks[0].outbound_proxy = proxy;
            config.trunks[0].transport = transport;
        },
    )
}

/// A flow that connects the caller to a number through the trunk, then hangs up.
fn connect_flow(name: &str) -> Value {
    flow(
        name,
        json!([
            {"type": "connect", "option": {"destinations": [{"type": "tel", "target": "+15550100"}]}},
            {"type": "hangup"}
        ]),
    )
}

/// Sends one MESSAGE through the trunk from an API activeflow; its `message_send` result.
fn send_message(engine: &TestEngine) -> Value {
    let body = json!({"actions": [
        {"type": "message_send", "option": {
            "source": {"type": "tel", "target": "+15550100"},
            "destinations": [{"type": "tel", "target": "+15550199"}],
            "text": "hello from activeflow"}}
    ]});
    let (status, created) = http(
        engine.api,
        "POST",
        "/v1/activeflows",
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{created}");
    result_of(&ended_one(engine, Duration::from_secs(15)), "message_send")
}

/// A SIPp UAS for one call or message, over UDP (`u1`) or TCP (`t1`), on `ip`.
fn server(name: &str, transport: &str, ip: &str, extra: &[&str]) -> SippUas {
    let rtp = free_port().to_string();
    let mut args = vec!["-key", "rtp_port", rtp.as_str()];
    args.extend_from_slice(extra);
    SippUas::start_on(name, ip, transport, &args)
}

/// RFC 3263 §4.1: NAPTR picks UDP (the better-ordered SCTP record is for a transport we do not
/// support, the SIPS one comes later in order);
/// §4.2: its SRV set is tried by priority; §4.3: the first target's 503 sends the INVITE to the
/// second, which answers, so the call connects through it.
#[test]
fn naptr_and_srv_fail_over_from_a_503_target_to_the_next() {
    let dead = server("uas_503.xml", "u1", "127.0.0.1", &[]);
    let live = server("uas_answer_then_bye.xml", "u1", "127.0.0.1", &["-d", "500"]);
    let dns = Dns::start(&[
        "--naptr-record=trunk.test,5,10,S,SIP+D2S,,_sip._sctp.trunk.test".into(),
        "--naptr-record=trunk.test,10,10,S,SIP+D2U,,_sip._udp.trunk.test".into(),
        "--naptr-record=trunk.test,20,10,S,SIPS+D2T,,_sips._tcp.trunk.test".into(),
        format!(
            "--srv-host=_sip._udp.trunk.test,one.trunk.test,{},10,0",
            dead.port
        ),
        format!(
            "--srv-host=_sip._udp.trunk.test,two.trunk.test,{},20,0",
            live.port
        ),
        "--host-record=one.trunk.test,127.0.0.1".into(),
        "--host-record=two.trunk.test,127.0.0.1".into(),
    ]);
    let engine = engine(&[connect_flow("failover")], &dns, "trunk.test", "");
    sipp(
        engine.sip,
        "uac_g711a_wait_bye.xml",
        "failover",
        &["-m", "1"],
    )
    .assert_all_ok(1);
    assert!(
        dead.succeeded(Duration::from_secs(10)),
        "the 503 server got INVITE and ACK"
    );
    assert!(
        live.succeeded(Duration::from_secs(10)),
        "the second target answered"
    );
    let result = result_of(&ended_one(&engine, Duration::from_secs(10)), "connect");
    assert_eq!(result["result"], "answered", "{result}");
}

/// RFC 3263 §4.1: a configured transport skips NAPTR (this zone's NAPTR points at a UDP target
/// nobody serves); §4.2 SRV `_sip._tcp`; §4.3: the first target refuses the TCP connection (a
/// transport error), so the INVITE goes at once to the second, a SIPp over TCP that answers.
#[test]
fn a_tcp_trunk_uses_srv_and_fails_over_on_a_refused_connection() {
    let refused = free_port(); // nothing listens there
    let live = server("uas_answer_then_bye.xml", "t1", "127.0.0.1", &["-d", "500"]);
    let dns = Dns::start(&[
        "--naptr-record=tcp.test,10,10,S,SIP+D2U,,_sip._udp.tcp.test".into(),
        format!(
            "--srv-host=_sip._udp.tcp.test,one.tcp.test,{},10,0",
            free_port()
        ),
        format!("--srv-host=_sip._tcp.tcp.test,one.tcp.test,{refused},10,0"),
        format!(
            "--srv-host=_sip._tcp.tcp.test,two.tcp.test,{},20,0",
            live.port
        ),
        "--host-record=one.tcp.test,127.0.0.1".into(),
        "--host-record=two.tcp.test,127.0.0.1".into(),
    ]);
    // A failover timeout far beyond the test's patience: only the transport error moves on.
    let engine = engine_with(
        &[connect_flow("tcp-failover")],
        &dns,
        "tcp.test",
        "tcp",
        "60000",
    );
    let started = Instant::now();
    sipp(
        engine.sip,
        "uac_g711a_wait_bye.xml",
        "tcp-failover",
        &["-m", "1"],
    )
    .assert_all_ok(1);
    assert!(
        live.succeeded(Duration::from_secs(10)),
        "the TCP target answered"
    );
    let result = result_of(&ended_one(&engine, Duration::from_secs(10)), "connect");
    assert_eq!(result["result"], "answered", "{result}");
    // Timer B (32 s) and the failover timeout (60 s) are far off: the refused connect moved on.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

/// RFC 3263 §4.3: with one target only, its 503 is the leg's final answer: failed, 503.
#[test]
fn a_single_target_answering_503_fails_the_leg_with_503() {
    let dead = server("uas_503.xml", "u1", "127.0.0.1", &[]);
    let dns = Dns::start(&[
        format!(
            "--srv-host=_sip._udp.only.test,one.only.test,{},10,0",
            dead.port
        ),
        "--host-record=one.only.test,127.0.0.1".into(),
    ]);
    let f = flow(
        "only",
        json!([
            {"type": "answer"},
            {"type": "connect", "option": {"destinations": [{"type": "tel", "target": "+15550100"}]}},
            {"type": "hangup"}
        ]),
    );
    let engine = engine(&[f], &dns, "only.test", "udp");
    sipp(engine.sip, "uac_engine_bye.xml", "only", &["-m", "1"]).assert_all_ok(1);
    assert!(
        dead.succeeded(Duration::from_secs(10)),
        "the server got INVITE and ACK"
    );
    let result = result_of(&ended_one(&engine, Duration::from_secs(10)), "connect");
    assert_eq!(result["result"], "failed", "{result}");
    assert_eq!(result["destinations"][0]["code"], 503, "{result}");
}

/// RFC 3263 §4.2: an explicit port skips NAPTR and SRV (both exist here and point at a port
/// nobody serves): the A record of the host, with that port, reaches the SIPp peer.
#[test]
fn a_host_and_port_proxy_resolves_through_a_records() {
    let peer = server("uas_message.xml", "u1", "127.0.0.1", &[]);
    let dns = Dns::start(&[
        "--naptr-record=pbx.test,10,10,S,SIP+D2U,,_sip._udp.pbx.test".into(),
        format!(
            "--srv-host=_sip._udp.pbx.test,pbx.test,{},10,0",
            free_port()
        ),
        "--host-record=pbx.test,127.0.0.1".into(),
    ]);
    let engine = engine(&[], &dns, &format!("pbx.test:{}", peer.port), "");
    let result = send_message(&engine);
    assert!(
        peer.succeeded(Duration::from_secs(10)),
        "the peer got the MESSAGE"
    );
    assert_eq!(result["destinations"][0]["status"], 200, "{result}");
}

/// RFC 3263 §4.3 for a MESSAGE: the first SRV target is silent (nothing reads that UDP port),
/// so after `sip.failover_timeout_ms` the MESSAGE goes to the second target, which answers.
#[test]
fn a_message_fails_over_from_a_silent_target() {
    let peer = server("uas_message.xml", "u1", "127.0.0.1", &[]);
    let dns = Dns::start(&[
        "--naptr-record=msg.test,10,10,S,SIP+D2U,,_sip._udp.msg.test".into(),
        format!(
            "--srv-host=_sip._udp.msg.test,one.msg.test,{},10,0",
            free_port()
        ),
        format!(
            "--srv-host=_sip._udp.msg.test,two.msg.test,{},20,0",
            peer.port
        ),
        "--host-record=one.msg.test,127.0.0.1".into(),
        "--host-record=two.msg.test,127.0.0.1".into(),
    ]);
    let engine = engine(&[], &dns, "msg.test", "");
    let result = send_message(&engine);
    assert!(
        peer.succeeded(Duration::from_secs(10)),
        "the second target got the MESSAGE"
    );
    assert_eq!(result["destinations"][0]["status"], 200, "{result}");
}

/// A literal `[::1]:port` proxy is used as is (RFC 3263 §4.2: no DNS for a numeric address),
/// reached over IPv6 from an engine listening on both stacks.
#[test]
fn an_ipv6_literal_proxy_is_reached_over_ipv6() {
    let peer = server("uas_message.xml", "u1", "::1", &[]);
    let dns = Dns::start(&[]);
    let proxy = format!("[::1]:{}", peer.port);
    let (server, proxy2) = (dns.server(), proxy.clone());
    let engine = start_with(
        &[],
        &[],
        &[
            ("ACTIVEFLOW_SIP_LISTEN", "[::]:0"),
            ("ACTIVEFLOW_SIP_PUBLIC_ADDRESS", "::1"),
        ],
        move |config| {
            config.sip.dns_servers = vec![server];
            config.trunks[0].outbound_proxy = proxy2;
        },
    );
    let result = send_message(&engine);
    assert!(
        peer.succeeded(Duration::from_secs(10)),
        "the IPv6 peer got the MESSAGE"
    );
    assert_eq!(result["destinations"][0]["status"], 200, "{result}");
}
