//! The operator's metric families, scraped from the `activeflow` binary (README "Monitoring"):
//! every family is one of the stable core names, a `process_*` one, or prefixed `activeflow_`
//! (a new unprefixed family fails here); `activeflow_build_info{version}`; the RTP port pool's
//! use and size following real calls; and every SIP 503 counted under its reason
//! (`activeflow_sip_unavailable_total{reason}`), each reason driven by the cap it names, once
//! it is sent (not a 503 a CANCEL overtook), an isolated node's OPTIONS apart from its INVITEs.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use activeflow::metrics::UNAVAILABLE_REASONS;
use common::rtp::MediaCaller;
use common::{header, http, metric, raw_get, spawn_engine_with, wait_until, RawPeer};
use serde_json::json;

/// The core names (README "Monitoring"): kept without the prefix because dashboards and
/// operators' alerts were built on them.
const CORE: [&str; 14] = [
    "activeflow_running",
    "activeflow_started_total",
    "activeflow_ended_total",
    "activeflow_duration_seconds",
    "activeflow_actions_executed_total",
    "activeflow_action_errors_total",
    "activeflow_action_duration_seconds",
    "sip_requests_received_total",
    "sip_responses_sent_total",
    "sip_retransmissions_total",
    "sip_malformed_total",
    "calls_active",
    "calls_total",
    "call_setup_seconds",
];

/// Every `# TYPE` family of an exposition, with its type.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

/// `activeflow_sip_unavailable_total` by reason, now.
fn unavailable(metrics: SocketAddr) -> BTreeMap<&'static str, f64> {
    let text = raw_get(metrics, "/metrics");
    UNAVAILABLE_REASONS
        .iter()
        .map(|r| {
            let series = format!("activeflow_sip_unavailable_total{{reason=\"{r}\"}}");
            (*r, metric(&text, &series).unwrap_or(f64::NAN))
        })
        .collect()
}

/// The counts expected: `counts` for the reasons it names, zero for every other.
fn expect(counts: &[(&'static str, f64)]) -> BTreeMap<&'static str, f64> {
    let mut all: BTreeMap<&'static str, f64> =
        UNAVAILABLE_REASONS.iter().map(|r| (*r, 0.0)).collect();
    all.extend(counts.iter().copied());
    all
}

#[test]
fn every_family_is_a_core_name_a_process_one_or_prefixed_and_exported_from_start() {
    let e = spawn_engine_with(&[], &[]);
    let text = raw_get(e.metrics, "/metrics");
    let all = families(&text);
    assert!(all.len() > 60, "only {} families: {text}", all.len());
    let stray: Vec<_> = all
        .keys()
        .filter(|f| {
            !CORE.contains(&f.as_str())
                && !f.starts_with("process_")
                && !f.starts_with("activeflow_")
        })
        .collect();
    assert!(
        stray.is_empty(),
        "families neither core, process_* nor activeflow_*: {stray:?}"
    );
    for name in CORE {
        assert!(all.contains_key(name), "{name} missing");
    }
    for (name, kind) in [
        ("activeflow_build_info", "gauge"),
        ("activeflow_rtp_ports_in_use", "gauge"),
        ("activeflow_rtp_ports_capacity", "gauge"),
        ("activeflow_sip_unavailable_total", "counter"),
        ("activeflow_storage_writes_total", "counter"),
        ("activeflow_webhook_deliveries_total", "counter"),
        ("activeflow_cluster_nodes", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
    ] {
        assert_eq!(all.get(name).map(String::as_str), Some(kind), "{name}");
    }
    let build = format!(
        "activeflow_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(metric(&text, &build), Some(1.0), "{build}");
    // The reasons an operator alerts on are all there, at zero.
    for reason in [
        "overload",
        "rate_limited",
        "max_activeflows",
        "rtp_ports_exhausted",
        "node_isolated",
        "shutting_down",
    ] {
        assert!(UNAVAILABLE_REASONS.contains(&reason), "{reason}");
    }
    assert_eq!(unavailable(e.metrics), expect(&[]));
    // The test RTP range (`common::rtp_port_range`) has 1000 even ports; the pool may be
    // fewer where the open-file limit is the bound, never more.
    let total = metric(&text, "activeflow_rtp_ports_capacity").unwrap();
    assert!((1.0..=1000.0).contains(&total), "{total}");
    assert_eq!(metric(&text, "activeflow_rtp_ports_in_use"), Some(0.0));
    e.reaper.assert_no_panic();
}

const RING: &str = "a1000000-0000-4000-8000-000000000002";

/// A flows dir whose `demo` flow (the default route's) answers number 100 and holds it, and
/// leaves any other number ringing (no answer: no RTP port).
fn flows_dir() -> PathBuf {
    let db = common::temp_db_path();
    let dir = PathBuf::from(&db).parent().unwrap().join("flows");
    std::fs::create_dir_all(&dir).unwrap();
    let demo = json!({"name": "demo", "actions": [
        {"type": "condition_variable", "option": {"condition": "==",
            "variable": "call.destination.target", "value_type": "string",
            "value_string": "100", "false_target_id": RING}},
        {"type": "answer"},
        {"id": RING, "type": "sleep", "option": {"duration": 60000}}
    ]});
    std::fs::write(dir.join("demo.json"), demo.to_string()).unwrap();
    dir
}

/// One even RTP port free now, from this test's slice, as a one-port `media.rtp_ports`.
fn one_rtp_port() -> String {
    let range = common::rtp_port_range();
    let first: u16 = range.split('-').next().unwrap().parse().unwrap();
    let port = (first..first + 2000)
        .step_by(2)
        .map(|p| p + p % 2)
        .find(|p| UdpSocket::bind(("0.0.0.0", *p)).is_ok())
        .expect("a free even port");
    format!("{port}-{}", port + 1)
}

/// A new INVITE from its own peer: the peer, and the INVITE as sent (to retransmit or CANCEL).
fn invite(sip: SocketAddr, number: &str, name: &str) -> (RawPeer, String) {
    let peer = RawPeer::new(sip);
    let invite = peer.invite(number, &format!("{name}@t"), &format!("z9hG4bK-{name}"));
    peer.send(&invite);
    (peer, invite)
}

/// The final response to `invite`, which must be a 503 with Retry-After; ACKed (RFC 3261
/// §17.1.1.3) so the engine stops retransmitting it.
fn refused(peer: &RawPeer, invite: &str) {
    let answer = peer.recv_final();
    assert!(answer.starts_with("SIP/2.0 503"), "{answer}");
    assert!(header(&answer, "Retry-After").is_some(), "{answer}");
    peer.send(&non_2xx_ack(invite, &answer));
}

/// The ACK for a non-2xx final response: the INVITE's request line, Via, From and Call-ID,
/// the response's To.
fn non_2xx_ack(invite: &str, answer: &str) -> String {
    let request_uri = invite.lines().next().unwrap().split(' ').nth(1).unwrap();
    format!(
        "ACK {request_uri} SIP/2.0\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\n\
         CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        header(invite, "Via").unwrap(),
        header(invite, "From").unwrap(),
        header(answer, "To").unwrap(),
        header(invite, "Call-ID").unwrap(),
    )
}

/// The CANCEL of `invite` (same branch, RFC 3261 §9.1).
fn cancel(invite: &str) -> String {
    let request_uri = invite.lines().next().unwrap().split(' ').nth(1).unwrap();
    format!(
        "CANCEL {request_uri} SIP/2.0\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\n\
         CSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        header(invite, "Via").unwrap(),
        header(invite, "From").unwrap(),
        header(invite, "To").unwrap(),
        header(invite, "Call-ID").unwrap(),
    )
}

fn scraped(metrics: SocketAddr, series: &str, want: f64) {
    wait_until(
        &format!("{series} = {want}"),
        Duration::from_secs(20),
        || (common::scrape(metrics, series) == want).then_some(()),
    );
}

/// With `engine.max_activeflows` 2 and a one-port RTP pool, each cap refuses a call with 503
/// under its own reason — the supervisor's and the door's `max_activeflows`,
/// `rtp_ports_exhausted`, a refused INVITE's retransmission, and an in-dialog flood over its
/// dialog's transactions — while the pool gauges follow the answered call. Every 503 the
/// engine sent is counted once, under one reason.
#[test]
fn every_503_is_counted_by_its_reason_and_the_rtp_pool_follows_calls() {
    let flows = flows_dir();
    let ports = one_rtp_port();
    let e = spawn_engine_with(
        &[],
        &[
            ("ACTIVEFLOW_FLOWS_DIR", flows.to_str().unwrap()),
            ("ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS", "2"),
            ("ACTIVEFLOW_MEDIA_RTP_PORTS", &ports),
        ],
    );
    let m = e.metrics;
    let text = raw_get(m, "/metrics");
    assert_eq!(metric(&text, "activeflow_rtp_ports_capacity"), Some(1.0));
    assert_eq!(metric(&text, "activeflow_rtp_ports_in_use"), Some(0.0));

    // An API activeflow and a ringing call: two activeflows running, one call, the port free.
    let body = json!({"actions": [{"type": "sleep", "option": {"duration": 60000}}]});
    let (status, api_flow) = http(e.api, "POST", "/v1/activeflows", Some(&body.to_string()));
    assert_eq!(status, 200, "{api_flow}");
    let (ringing, ringing_invite) = invite(e.sip, "200", "ringing");
    assert!(ringing.recv_until("SIP/2.0").starts_with("SIP/2.0 100"));
    scraped(m, "activeflow_running", 2.0);
    // The door lets a third call in (one call, a free port); the supervisor refuses it.
    let (peer, sent) = invite(e.sip, "100", "over-activeflows");
    refused(&peer, &sent);
    assert_eq!(unavailable(m), expect(&[("max_activeflows", 1.0)]));

    // The API activeflow stops; an answered call takes the only port.
    let id = api_flow["id"].as_str().unwrap();
    let (status, _) = http(e.api, "POST", &format!("/v1/activeflows/{id}/stop"), None);
    assert_eq!(status, 200);
    scraped(m, "activeflow_running", 1.0);
    let mut answered = MediaCaller::new(e.sip);
    answered.call("100", 0);
    scraped(m, "activeflow_rtp_ports_in_use", 1.0);
    // Two calls up: the door refuses the next one.
    let (peer, sent) = invite(e.sip, "200", "over-calls");
    refused(&peer, &sent);
    assert_eq!(unavailable(m), expect(&[("max_activeflows", 2.0)]));

    // The ringing caller cancels: one call up, but no port left.
    ringing.send(&cancel(&ringing_invite));
    let terminated = ringing.recv_until("487");
    ringing.send(&non_2xx_ack(&ringing_invite, &terminated));
    scraped(m, "calls_active", 1.0);
    let (peer, sent) = invite(e.sip, "100", "no-port");
    refused(&peer, &sent);
    // Its retransmission is refused again, from the linger table.
    peer.send(&sent);
    refused(&peer, &sent);
    let counts = [
        ("max_activeflows", 2.0),
        ("rtp_ports_exhausted", 1.0),
        ("retransmission", 1.0),
    ];
    assert_eq!(unavailable(m), expect(&counts));

    // An INFO flood in the answered call's dialog: past its 128 transactions, 503.
    let statuses: Vec<String> = (0..140)
        .map(|_| answered.info("application/dtmf-relay", "Signal=5\r\nDuration=100\r\n"))
        .collect();
    let over = statuses.iter().filter(|s| s.contains(" 503 ")).count();
    assert!(over >= 10, "{statuses:?}");
    let mut counts = counts.to_vec();
    counts.push(("dialog_transactions", over as f64));
    assert_eq!(unavailable(m), expect(&counts));

    // The caller hangs up: its port returns to the pool.
    answered.bye();
    scraped(m, "activeflow_rtp_ports_in_use", 0.0);
    // Every 503 sent is one counted under a reason.
    let sent_503 = common::scrape(m, "sip_responses_sent_total{code=\"503\"}");
    let counted: f64 = unavailable(m).values().sum();
    assert_eq!(sent_503, counted);
    e.reaper.assert_no_panic();
}

/// A CANCEL sent right behind its INVITE races the supervisor's 503 (`engine.max_activeflows`
/// reached): whichever the call session takes first decides the final response, 503 or 487.
/// A 503 is counted where the call's leg sends it, so `max_activeflows` counts exactly the
/// 503s the callers got, never one a CANCEL turned into a 487.
#[test]
fn a_503_overtaken_by_cancel_is_not_counted() {
    let flows = flows_dir();
    let e = spawn_engine_with(
        &[],
        &[
            ("ACTIVEFLOW_FLOWS_DIR", flows.to_str().unwrap()),
            ("ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS", "1"),
        ],
    );
    let m = e.metrics;
    // One API activeflow fills the engine: the door lets calls in, the supervisor refuses.
    let body = json!({"actions": [{"type": "sleep", "option": {"duration": 60000}}]});
    let (status, api_flow) = http(e.api, "POST", "/v1/activeflows", Some(&body.to_string()));
    assert_eq!(status, 200, "{api_flow}");
    scraped(m, "activeflow_running", 1.0);

    let (mut refused, mut cancelled) = (0.0, 0.0);
    for n in 0..20 {
        let (peer, sent) = invite(e.sip, "200", &format!("race-{n}"));
        peer.send(&cancel(&sent));
        // The 200 to the CANCEL and the INVITE's final response come in either order.
        let answer = loop {
            let msg = peer.recv().expect("an answer to the INVITE");
            let is_final = msg.starts_with("SIP/2.0 ") && !msg.starts_with("SIP/2.0 1");
            if is_final && msg.contains(" INVITE\r\n") {
                break msg;
            }
        };
        match &answer[8..11] {
            "503" => refused += 1.0,
            "487" => cancelled += 1.0,
            _ => panic!("{answer}"),
        }
        peer.send(&non_2xx_ack(&sent, &answer));
    }
    // The supervisor refused every call; those a CANCEL ended first got no 503, and none is
    // counted for them.
    assert_eq!(unavailable(m), expect(&[("max_activeflows", refused)]));
    let sent =
        |code: &str| common::scrape(m, &format!("sip_responses_sent_total{{code=\"{code}\"}}"));
    assert_eq!(sent("503"), refused);
    assert_eq!(sent("487"), cancelled);
    e.reaper.assert_no_panic();
}

/// One out-of-dialog OPTIONS from `peer`; the status code of its answer.
fn options(peer: &RawPeer, n: usize) -> u16 {
    let me = format!("127.0.0.1:{}", peer.port());
    let sip = peer.engine;
    peer.send(&format!(
        "OPTIONS sip:probe@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-opt-{n}\r\n\
         From: <sip:probe@{me}>;tag=o{n}\r\nTo: <sip:probe@{sip}>\r\nCall-ID: opt-{n}-{me}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ));
    let answer = peer.recv_until("SIP/2.0");
    answer[8..11].parse().unwrap()
}

/// A cluster node cut off from NATS for longer than its node timeout answers OPTIONS 503
/// (out of its proxy's rotation) and refuses new INVITEs with 503: the INVITEs are counted
/// `node_isolated`, the OPTIONS apart as `node_isolated_options`, so the share of INVITEs
/// refused (the dashboard's) never counts an OPTIONS.
#[test]
fn an_isolated_node_counts_its_refused_invites_apart_from_its_503s_to_options() {
    let mut nats = common::cluster::PrivateNats::start();
    let db = common::pg::database();
    let mut env = vec![
        ("ACTIVEFLOW_CLUSTER_NODE_ID", "isolated".to_owned()),
        ("ACTIVEFLOW_CLUSTER_NATS_URL", nats.url.clone()),
        ("ACTIVEFLOW_CLUSTER_HEARTBEAT_MS", "500".to_owned()),
        ("ACTIVEFLOW_CLUSTER_NODE_TIMEOUT_MS", "3000".to_owned()),
    ];
    env.extend(common::pg::engine_env(&db));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let e = spawn_engine_with(&[], &env);
    let m = e.metrics;
    let peer = RawPeer::new(e.sip);
    assert_eq!(options(&peer, 0), 200);

    nats.stop();
    let mut options_503 = 0.0;
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in 1.. {
        assert!(Instant::now() < deadline, "OPTIONS still answered 200");
        if options(&peer, n) == 503 {
            options_503 += 1.0;
            if options_503 == 3.0 {
                break;
            }
        } else {
            assert_eq!(options_503, 0.0, "200 again while NATS is down");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // A new INVITE meanwhile: refused at the door.
    let (caller, sent) = invite(e.sip, "100", "isolated");
    refused(&caller, &sent);
    assert_eq!(
        unavailable(m),
        expect(&[
            ("node_isolated", 1.0),
            ("node_isolated_options", options_503)
        ])
    );
    e.reaper.assert_no_panic();
}

/// The overload guard at a threshold of 0 ms (every call session's queue lag is over it) trips
/// with the first admitted call; new INVITEs during its hold get 503, counted `overload`.
#[test]
fn invites_refused_by_the_overload_guard_are_counted_overload() {
    let flows = flows_dir();
    let e = spawn_engine_with(
        &[],
        &[
            ("ACTIVEFLOW_FLOWS_DIR", flows.to_str().unwrap()),
            ("ACTIVEFLOW_SIP_OVERLOAD_LAG_MS", "0"),
        ],
    );
    // Calls to 200 ring (no port). Each admitted one trips the guard for its hold (100 ms):
    // the next INVITE goes as soon as the last one's 100 Trying is back.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    let refusals = loop {
        assert!(Instant::now() < deadline, "no 503 after {n} INVITEs");
        n += 1;
        let (peer, sent) = invite(e.sip, "200", &format!("overload-{n}"));
        let first = peer.recv().expect("an answer to the INVITE");
        if first.starts_with("SIP/2.0 503") {
            peer.send(&non_2xx_ack(&sent, &first));
            break 1.0;
        }
        assert!(first.starts_with("SIP/2.0 100"), "{first}");
    };
    assert_eq!(unavailable(e.metrics), expect(&[("overload", refusals)]));
    e.reaper.assert_no_panic();
}
