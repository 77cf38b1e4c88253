//! Cluster events (issue 20) over real NATS JetStream: an activeflow started on node A is
//! streamed by `GET /v1/events` on node B, in order, with the stream sequence as its id; a
//! reconnect to node A with B's `Last-Event-ID` resumes with the next event of the same stream
//! (nothing repeated, nothing missed); a global webhook set on both nodes gets each event once
//! (from the node that produced it); with NATS gone the stream is refused with 503 and
//! `Retry-After` (not a hang). SSE resume: WHATWG HTML Living Standard §9.2 (Server-sent
//! events, `Last-Event-ID`).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::cluster::{nats_url, PrivateNats, TestCluster, Timers};
use common::http_server::http_server_answering;
use common::sse::{Message, SseReader};
use common::{http_with, TestEngine};
use serde_json::{json, Value};

/// Starts an activeflow over the API on `e` (three actions, then it runs out: `completed`).
fn start_activeflow(e: &TestEngine) -> String {
    let body = json!({"actions": [
        {"type": "variable_set", "option": {"key": "a", "value": "1"}},
        {"type": "sleep", "option": {"duration": 50}},
        {"type": "variable_set", "option": {"key": "b", "value": "2"}}
    ]})
    .to_string();
    let (status, a) = http_with(e.api, "POST", "/v1/activeflows", Some(&body), &[]);
    assert_eq!(status, 200, "{a}");
    a["id"].as_str().unwrap().to_owned()
}

/// Messages of `reader` until activeflow `id` ended (every message, other tests' too).
fn until_ended(reader: &mut SseReader, id: &str) -> Vec<Message> {
    reader.until(|got| {
        got.last()
            .is_some_and(|m| m.event == "activeflow_ended" && m.data["id"] == id)
    })
}

fn of<'a>(messages: &'a [Message], id: &str) -> Vec<&'a Message> {
    messages.iter().filter(|m| m.data["id"] == id).collect()
}

const LIFE: [&str; 5] = [
    "activeflow_created",
    "activeflow_updated",
    "activeflow_updated",
    "activeflow_updated",
    "activeflow_ended",
];

#[test]
fn an_activeflow_on_one_node_streams_from_another_resumes_anywhere_and_hooks_once() {
    let (hook, seen) = http_server_answering(Duration::ZERO, |_| "{}".into());
    let global = format!("http://{hook}/global");
    let env = [
        ("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32"),
        ("ACTIVEFLOW_EVENTS_WEBHOOK_URI", global.as_str()),
    ];
    let cluster = TestCluster::on_nats(nats_url(), Timers::DEFAULT);
    let a_id = TestCluster::node_id("a");
    let a = cluster.start_node(&a_id, &env);
    let b = cluster.start_node(&TestCluster::node_id("b"), &env);

    let mut from_b = SseReader::connect(b.api, "", None);
    let id = start_activeflow(&a);
    let seen_b = until_ended(&mut from_b, &id);
    let ours = of(&seen_b, &id);
    let kinds: Vec<&str> = ours.iter().map(|m| m.event.as_str()).collect();
    assert_eq!(kinds, LIFE, "node B streams node A's activeflow in order");
    for m in &ours {
        assert_eq!(m.data["node_id"], a_id.as_str(), "{:?}", m.data);
        assert_eq!(m.data["event_id"].as_u64(), m.id, "event_id is the SSE id");
    }
    // Every event of the stream since B subscribed, other tests' too: consecutive sequences,
    // so nothing is missed or repeated.
    let ids: Vec<u64> = seen_b.iter().map(|m| m.id.unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive stream sequences: {ids:?}"
    );

    // Resume on node A after B's second event of ours: the next event of the stream comes
    // first, then the rest, the same ids B had.
    let resume_after = ours[1].id.unwrap();
    let mut from_a = SseReader::connect(a.api, "", Some(resume_after));
    let seen_a = until_ended(&mut from_a, &id);
    assert_eq!(
        seen_a[0].id,
        Some(resume_after + 1),
        "resumes with the next event"
    );
    let tail_b: Vec<(Option<u64>, &str)> = seen_b
        .iter()
        .filter(|m| m.id.unwrap() > resume_after)
        .map(|m| (m.id, m.event.as_str()))
        .collect();
    let tail_a: Vec<(Option<u64>, &str)> = seen_a
        .iter()
        .take(tail_b.len())
        .map(|m| (m.id, m.event.as_str()))
        .collect();
    assert_eq!(tail_a, tail_b, "the same stream on either node");
    let resumed: Vec<&str> = of(&seen_a, &id).iter().map(|m| m.event.as_str()).collect();
    assert_eq!(resumed, LIFE[2..], "nothing repeated, nothing missed");

    // The global webhook, set on both nodes, gets each of the activeflow's events once: from
    // node A, which produced them (no node delivers from the cluster's stream).
    let hooked = || -> Vec<Value> {
        seen.lock()
            .unwrap()
            .iter()
            .filter_map(|(_, _, body)| serde_json::from_str::<Value>(body).ok())
            .filter(|v| v["id"] == id.as_str())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while hooked().len() < LIFE.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A second delivery (from node B) would come as fast as the first did.
    std::thread::sleep(Duration::from_millis(500));
    let hooked = hooked();
    let kinds: Vec<&str> = hooked.iter().map(|v| v["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, LIFE, "each event once, in order: {hooked:?}");
    let mut event_ids: Vec<u64> = hooked
        .iter()
        .map(|v| v["event_id"].as_u64().unwrap())
        .collect();
    event_ids.dedup();
    assert_eq!(
        event_ids.len(),
        LIFE.len(),
        "distinct event ids: {hooked:?}"
    );
}

/// Status line and headers of `GET /v1/events` on `api` (the body is not read).
fn events_head(api: SocketAddr) -> (u16, Vec<String>) {
    let stream = TcpStream::connect(api).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (&stream)
        .write_all(format!("GET /v1/events HTTP/1.1\r\nHost: {api}\r\n\r\n").as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a response, not a hang");
        if line.trim().is_empty() {
            break;
        }
        lines.push(line.trim().to_ascii_lowercase());
    }
    let status = lines[0].split(' ').nth(1).unwrap().parse().unwrap();
    (status, lines)
}

#[test]
fn without_nats_the_stream_is_refused_with_503_and_retry_after() {
    let mut nats = PrivateNats::start();
    let cluster = TestCluster::on_nats(nats.url.clone(), Timers::DEFAULT);
    let node = cluster.start_node(&TestCluster::node_id("a"), &[]);
    assert_eq!(events_head(node.api).0, 200);
    nats.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, head) = loop {
        let (status, head) = events_head(node.api);
        if status != 200 || Instant::now() > deadline {
            break (status, head);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status, 503, "{head:?}");
    assert!(
        head.iter().any(|l| l.starts_with("retry-after:")),
        "{head:?}"
    );
    // The engine goes on without NATS: activeflows still run and end.
    let id = start_activeflow(&node);
    node.wait_for(
        "the activeflow ends without NATS",
        Duration::from_secs(10),
        |all| {
            all.iter()
                .any(|a| a.id.to_string() == id && a.status == activeflow::engine::Status::Ended)
        },
    );
}
