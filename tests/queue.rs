//! Queues with real peers: SIPp callers join a queue (`queue_join`) whose agents are SIPp UASs
//! dialled over real sockets (RFC 3261 §13: a 486 final response ends that INVITE transaction,
//! the next agent is tried; §9: an agent still ringing when the caller leaves gets CANCEL;
//! §15: the bridged agent's BYE ends the bridge), and the `/v1/queues` API (400 naming the
//! field, 404 for unknown ids). The agent's SDP points its media at a socket of this test, so
//! the relayed caller audio is seen.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use activeflow::engine::EndReason;
use common::queue::{create_queue, engine, set_flow, sip};
use common::uas::SippUas;
use common::{free_port, http, result_of, sipp};
use serde_json::{json, Value};

const FLOW_ID: &str = "7f3c1f7e-3f55-4a0e-9a53-5b4f0c2d9e01";

/// RTP packets with payload type `pt` received on `socket` within `limit`.
fn count_rtp(socket: &UdpSocket, pt: u8, limit: Duration) -> usize {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut n = 0;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            if len > 12 && buf[1] & 0x7f == pt {
                n += 1;
            }
        }
    }
    n
}

fn queue_flow(queue_id: &str) -> Value {
    json!([
        {"type": "queue_join", "option": {"queue_id": queue_id}},
        {"type": "variable_set", "option": {"key": "after", "value": "${queue.result}"}},
        {"type": "hangup"}
    ])
}

#[test]
fn a_busy_agent_is_skipped_and_the_caller_is_bridged_to_the_next() {
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let media_port = media.local_addr().unwrap().port();
    let busy = SippUas::start("uas_busy.xml", &[]);
    // Answers, then hangs up after 4 s: the caller's audio is relayed meanwhile.
    let agent = SippUas::start_with_rtp("uas_answer_then_bye.xml", media_port, &["-d", "4000"]);
    let agent_uri = agent.uri();
    let engine = engine(FLOW_ID);
    let queue = create_queue(
        engine.api,
        json!({"name": "support", "strategy": "roundrobin", "wait_timeout": 30000,
               "agents": [sip(&busy.uri()), sip(&agent.uri())],
               "wait_actions": [{"type": "beep", "option": {"duration": 200}},
                                {"type": "sleep", "option": {"duration": 300}}]}),
    );
    set_flow(engine.api, FLOW_ID, queue_flow(&queue));
    let caller = std::thread::spawn({
        let sip = engine.sip;
        move || sipp(sip, "uac_queue_caller.xml", "queue", &["-m", "1"])
    });
    let relayed = count_rtp(&media, 8, Duration::from_secs(6));
    caller.join().unwrap().assert_all_ok(1);
    assert!(
        busy.succeeded(Duration::from_secs(10)),
        "agent 1: INVITE, 486, ACK"
    );
    assert!(
        agent.succeeded(Duration::from_secs(10)),
        "agent 2: INVITE, 200, ACK, its BYE answered"
    );
    assert!(
        relayed > 50,
        "{relayed} PCMA packets of the caller relayed to the agent"
    );

    let record = common::ended_one(&engine, Duration::from_secs(20));
    assert_eq!(record.end_reason, Some(EndReason::Completed));
    let result = result_of(&record, "queue_join");
    assert_eq!(result["result"], "answered", "{result}");
    assert_eq!(result["agent"]["target"], agent_uri.as_str(), "{result}");
    assert_eq!(result["ended_by"], "agent", "{result}");
    assert_eq!(result["attempts"][0]["status"], "busy", "{result}");
    assert_eq!(result["attempts"][0]["code"], 486, "{result}");
    assert!(result["duration_ms"].as_u64().unwrap() >= 3500, "{result}");
    assert_eq!(record.variables.get("after"), Some("answered"));
    assert_eq!(
        record.variables.get("queue.agent"),
        Some(agent_uri.as_str())
    );

    let (_, q) = http(engine.api, "GET", &format!("/v1/queues/{queue}"), None);
    assert_eq!(q["total_incoming_count"], 1, "{q}");
    assert_eq!(q["total_serviced_count"], 1, "{q}");
    assert_eq!(q["waiting_callers"], json!([]), "{q}");
    assert!(
        q["agents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "available"),
        "{q}"
    );
}

#[test]
fn roundrobin_gives_the_second_caller_the_next_agent() {
    let a = SippUas::start_with_rtp("uas_answer_then_bye.xml", free_port(), &["-d", "500"]);
    let b = SippUas::start_with_rtp("uas_answer_then_bye.xml", free_port(), &["-d", "500"]);
    let (a_uri, b_uri) = (a.uri(), b.uri());
    let engine = engine(FLOW_ID);
    let queue = create_queue(
        engine.api,
        json!({"name": "rr", "strategy": "roundrobin",
               "agents": [sip(&a.uri()), sip(&b.uri())]}),
    );
    set_flow(engine.api, FLOW_ID, queue_flow(&queue));
    let mut agents = Vec::new();
    for n in 1..=2 {
        sipp(engine.sip, "uac_queue_caller.xml", "queue", &["-m", "1"]).assert_all_ok(1);
        engine.wait_for("the call to end", Duration::from_secs(20), |all| {
            all.len() == n
                && all
                    .iter()
                    .all(|r| r.status == activeflow::engine::Status::Ended)
        });
        let all = engine.activeflows();
        let record = all
            .iter()
            .find(|r| !agents.iter().any(|(id, _)| *id == r.id))
            .unwrap();
        let result = result_of(record, "queue_join");
        assert_eq!(result["result"], "answered", "{result}");
        assert_eq!(result["attempts"].as_array().unwrap().len(), 1, "{result}");
        agents.push((record.id, result["agent"]["target"].clone()));
    }
    assert_eq!(agents[0].1, json!(a_uri), "the first caller rang agent 1");
    assert_eq!(agents[1].1, json!(b_uri), "the second caller rang agent 2");
    assert!(a.succeeded(Duration::from_secs(10)));
    assert!(b.succeeded(Duration::from_secs(10)));
}

#[test]
fn no_answer_within_wait_timeout_leaves_with_timeout_and_the_flow_branches() {
    let agent = SippUas::start_with_rtp("uas_ring_cancel.xml", free_port(), &[]);
    let engine = engine(FLOW_ID);
    let queue = create_queue(
        engine.api,
        json!({"name": "slow", "wait_timeout": 2000, "agents": [sip(&agent.uri())],
               "wait_actions": [{"type": "beep", "option": {"duration": 100}}]}),
    );
    set_flow(
        engine.api,
        FLOW_ID,
        json!([
            {"type": "queue_join", "option": {"queue_id": queue}},
            {"type": "branch", "option": {"variable": "queue.result",
                "target_ids": {"timeout": "00000000-0000-4000-8000-0000000000a1"},
                "default_target_id": "00000000-0000-4000-8000-0000000000a2"}},
            {"id": "00000000-0000-4000-8000-0000000000a1", "type": "variable_set",
             "option": {"key": "branch", "value": "timeout"}},
            {"type": "hangup"},
            {"id": "00000000-0000-4000-8000-0000000000a2", "type": "variable_set",
             "option": {"key": "branch", "value": "other"}}
        ]),
    );
    sipp(engine.sip, "uac_queue_caller.xml", "queue", &["-m", "1"]).assert_all_ok(1);
    assert!(
        agent.succeeded(Duration::from_secs(10)),
        "the ringing agent got CANCEL"
    );
    let record = common::ended_one(&engine, Duration::from_secs(20));
    let result = result_of(&record, "queue_join");
    assert_eq!(result["result"], "timeout", "{result}");
    assert!(result["wait_ms"].as_u64().unwrap() >= 2000, "{result}");
    assert_eq!(record.variables.get("branch"), Some("timeout"));
    let (_, q) = http(engine.api, "GET", &format!("/v1/queues/{queue}"), None);
    assert_eq!(q["total_timeout_count"], 1, "{q}");
    assert_eq!(q["agents"][0]["status"], "available", "{q}");
}

#[test]
fn an_operator_stop_leaves_the_queue_and_cancels_the_agent() {
    let agent = SippUas::start_with_rtp("uas_ring_cancel.xml", free_port(), &["-trace_msg"]);
    let engine = engine(FLOW_ID);
    let queue = create_queue(
        engine.api,
        json!({"name": "stop", "agents": [sip(&agent.uri())]}),
    );
    set_flow(engine.api, FLOW_ID, queue_flow(&queue));
    let caller = std::thread::spawn({
        let sip = engine.sip;
        move || sipp(sip, "uac_queue_caller.xml", "queue", &["-m", "1"])
    });
    let path = format!("/v1/queues/{queue}");
    let waiting = common::wait_until(
        "a caller ringing the agent",
        Duration::from_secs(10),
        || {
            let (_, q) = http(engine.api, "GET", &path, None);
            (q["agents"][0]["status"] == "ringing").then_some(q)
        },
    );
    assert_eq!(
        waiting["waiting_callers"][0]["status"], "connecting",
        "{waiting}"
    );
    let id = waiting["waiting_callers"][0]["activeflow_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // "ringing" is the queue's decision; the INVITE may not be out yet, and a stop before it
    // rightly sends none (nothing to CANCEL). Stop once the agent has rung (RFC 3261 §9.1:
    // CANCEL only after a provisional).
    assert!(
        agent.traced("SIP/2.0 180 Ringing", Duration::from_secs(10)),
        "the agent never rang"
    );
    let (status, a) = http(
        engine.api,
        "POST",
        &format!("/v1/activeflows/{id}/stop"),
        None,
    );
    assert_eq!(status, 200, "{a}");
    caller.join().unwrap().assert_all_ok(1);
    assert!(
        agent.succeeded(Duration::from_secs(10)),
        "the agent got CANCEL"
    );
    let (_, q) = http(engine.api, "GET", &path, None);
    assert_eq!(q["waiting_callers"], json!([]), "{q}");
    assert_eq!(q["agents"][0]["status"], "available", "{q}");
    assert_eq!(
        q["total_abandoned_count"], 0,
        "a stop is not an abandon: {q}"
    );
    let record = common::ended_one(&engine, Duration::from_secs(10));
    assert_eq!(record.end_reason, Some(EndReason::OperatorStop));
    assert_eq!(result_of(&record, "queue_join")["result"], "stopped");
}

/// The caller hanging up while it waits is an abandoned call: counted in
/// `activeflow_queue_abandoned_total` (exported at 0 from start-up) and in the queue's totals.
#[test]
fn a_caller_hanging_up_while_waiting_is_counted_abandoned() {
    let agent = SippUas::start_with_rtp("uas_ring_cancel.xml", free_port(), &[]);
    let engine = common::spawn_engine_with(&[], &[]);
    assert_eq!(
        common::metric(
            &common::raw_get(engine.metrics, "/metrics"),
            "activeflow_queue_abandoned_total"
        ),
        Some(0.0),
        "exported from start-up"
    );
    let queue = create_queue(
        engine.api,
        json!({"name": "abandon", "agents": [sip(&agent.uri())]}),
    );
    // Every number routes to the demo flow: it becomes the queue flow.
    let (_, flows) = http(engine.api, "GET", "/v1/flows", None);
    let demo = flows["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "demo")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"name": "demo", "actions": queue_flow(&queue)}).to_string();
    let (status, f) = http(engine.api, "PUT", &format!("/v1/flows/{demo}"), Some(&body));
    assert_eq!(status, 200, "{f}");
    // Waits a little, then hangs up (BYE) before any agent answers.
    sipp(engine.sip, "uac_queue_hangup.xml", "queue", &["-m", "1"]).assert_all_ok(1);
    assert!(
        agent.succeeded(Duration::from_secs(10)),
        "the agent got CANCEL"
    );
    common::wait_until("the abandon counted", Duration::from_secs(10), || {
        (common::scrape(engine.metrics, "activeflow_queue_abandoned_total") == 1.0).then_some(())
    });
    let (_, q) = http(engine.api, "GET", &format!("/v1/queues/{queue}"), None);
    assert_eq!(q["total_abandoned_count"], 1, "{q}");
    assert_eq!(q["waiting_callers"], json!([]), "{q}");
    assert_eq!(
        common::scrape(engine.metrics, "activeflow_queue_callers_waiting"),
        0.0
    );
    let text = common::raw_get(engine.metrics, "/metrics");
    assert_eq!(
        common::metric(
            &text,
            "activeflow_queue_wait_seconds_count{result=\"abandoned\"}"
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn the_queue_api_validates_and_answers_404_for_unknown_ids() {
    let engine = engine(FLOW_ID);
    let api = engine.api;
    let post = |body: Value| http(api, "POST", "/v1/queues", Some(&body.to_string()));
    let agents = json!([{"type": "sip", "target": "sip:a@127.0.0.1"}]);
    for (body, field) in [
        (json!({"agents": agents}), "name"),
        (json!({"name": "q"}), "agents"),
        (
            json!({"name": "q", "agents": [{"type": "fax", "target": "1"}]}),
            "agents[0].type",
        ),
        (
            json!({"name": "q", "agents": agents, "strategy": "random"}),
            "strategy",
        ),
        (
            json!({"name": "q", "agents": agents, "wait_timeout": -1}),
            "wait_timeout",
        ),
        (
            json!({"name": "q", "agents": agents,
                   "wait_actions": [{"type": "talk", "option": {"text": "hi"}}, {"type": "hangup"}]}),
            "wait_actions[1].type",
        ),
    ] {
        let (status, e) = post(body.clone());
        assert_eq!(status, 400, "{body}: {e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field}:")),
            "{body}: {message}"
        );
    }
    let unknown = "/v1/queues/2b1f6c52-8d0e-4c57-9a51-1d7e1c0b7f00";
    assert_eq!(http(api, "GET", unknown, None).0, 404);
    assert_eq!(http(api, "GET", "/v1/queues/not-an-id", None).0, 404);
    assert_eq!(http(api, "DELETE", unknown, None).0, 404);
    let body = json!({"name": "q", "agents": agents}).to_string();
    assert_eq!(http(api, "PUT", unknown, Some(&body)).0, 404);

    let id = create_queue(api, json!({"name": "q", "agents": agents}));
    let path = format!("/v1/queues/{id}");
    let (_, list) = http(api, "GET", "/v1/queues", None);
    assert_eq!(list["result"][0]["id"], id.as_str(), "{list}");
    assert_eq!(list["result"][0]["strategy"], "ringall", "{list}");
    let body = json!({"name": "q2", "agents": agents, "strategy": "longest_idle"}).to_string();
    let (status, q) = http(api, "PUT", &path, Some(&body));
    assert_eq!(
        (status, q["strategy"].as_str()),
        (200, Some("longest_idle")),
        "{q}"
    );
    assert_eq!(http(api, "DELETE", &path, None).0, 200);
    assert_eq!(http(api, "GET", &path, None).0, 404);

    // A flow's queue_join is validated like every action.
    let flow = json!({"name": "bad", "actions": [{"type": "queue_join", "option": {}}]});
    let (status, e) = http(api, "POST", "/v1/flows", Some(&flow.to_string()));
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("actions[0].option.queue_id"),
        "{e}"
    );
}

#[test]
fn an_unknown_queue_moves_the_flow_on_with_not_found() {
    let engine = engine(FLOW_ID);
    // The sleep lets the caller's ACK arrive before the hangup's BYE.
    set_flow(
        engine.api,
        FLOW_ID,
        json!([
            {"type": "queue_join", "option": {"queue_id": "2b1f6c52-8d0e-4c57-9a51-1d7e1c0b7f00"}},
            {"type": "variable_set", "option": {"key": "after", "value": "${queue.result}"}},
            {"type": "sleep", "option": {"duration": 500}},
            {"type": "hangup"}
        ]),
    );
    sipp(engine.sip, "uac_queue_caller.xml", "queue", &["-m", "1"]).assert_all_ok(1);
    let record = common::ended_one(&engine, Duration::from_secs(20));
    assert_eq!(record.variables.get("after"), Some("not_found"));
}

/// The queue's `wait_actions` loop while the caller waits: a 200 ms beep then 400 ms of sleep,
/// so the caller (a raw SIP/RTP peer decoding what it gets) hears several separate bursts of
/// the 1 kHz tone before the 3 s timeout ends the wait.
#[test]
fn the_wait_actions_play_in_a_loop_while_the_caller_waits() {
    let agent = SippUas::start_with_rtp("uas_ring_cancel.xml", free_port(), &[]);
    let engine = engine(FLOW_ID);
    let queue = create_queue(
        engine.api,
        json!({"name": "hold", "wait_timeout": 3000, "agents": [sip(&agent.uri())],
               "wait_actions": [{"type": "beep", "option": {"duration": 200}},
                                {"type": "sleep", "option": {"duration": 400}}]}),
    );
    set_flow(engine.api, FLOW_ID, queue_flow(&queue));
    let mut caller = common::rtp::MediaCaller::new(engine.sip);
    let ok = caller.call("queue", 0);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let packets = caller.capture(Duration::from_millis(1500), Duration::from_millis(2800));
    // Tone packets: µ-law frames with a clear level (silence decodes near 0).
    let tone: Vec<Instant> = packets
        .iter()
        .filter(|p| p.payload_type == 0)
        .filter(|p| {
            let sum: f64 = p
                .payload
                .iter()
                .map(|&c| f64::from(common::rtp::ulaw_to_linear(c)).powi(2))
                .sum();
            (sum / p.payload.len().max(1) as f64).sqrt() > 1000.0
        })
        .map(|p| p.at)
        .collect();
    let bursts = 1 + tone
        .windows(2)
        .filter(|w| w[1].duration_since(w[0]) > Duration::from_millis(250))
        .count();
    assert!(
        !tone.is_empty() && bursts >= 3,
        "{bursts} beep bursts ({} tone packets)",
        tone.len()
    );
    caller.expect_bye();
    assert!(
        agent.succeeded(Duration::from_secs(10)),
        "the agent got CANCEL"
    );
    let record = common::ended_one(&engine, Duration::from_secs(10));
    assert_eq!(record.variables.get("after"), Some("timeout"));
}

/// `ringall` rings both agents at once (one busy, one answering); the caller hanging up while
/// bridged sends the agent BYE (RFC 3261 §15.1), frees it and is not an abandoned call.
#[test]
fn ringall_bridges_the_answering_agent_and_a_caller_bye_frees_it() {
    let busy = SippUas::start("uas_busy.xml", &[]);
    let agent = SippUas::start_with_rtp("uas_answer_wait_bye.xml", free_port(), &[]);
    let agent_uri = agent.uri();
    let engine = engine(FLOW_ID);
    let queue = create_queue(
        engine.api,
        json!({"name": "all", "strategy": "ringall",
               "agents": [sip(&busy.uri()), sip(&agent_uri)]}),
    );
    set_flow(engine.api, FLOW_ID, queue_flow(&queue));
    // Hangs up 1.5 s after its ACK: the agent answered at once and is bridged by then.
    sipp(engine.sip, "uac_queue_hangup.xml", "queue", &["-m", "1"]).assert_all_ok(1);
    assert!(
        busy.succeeded(Duration::from_secs(10)),
        "agent 1: INVITE, 486, ACK"
    );
    assert!(agent.succeeded(Duration::from_secs(10)), "agent 2 got BYE");
    let record = common::ended_one(&engine, Duration::from_secs(10));
    assert_eq!(record.end_reason, Some(EndReason::Hangup));
    let result = result_of(&record, "queue_join");
    assert_eq!(result["result"], "answered", "{result}");
    assert_eq!(result["ended_by"], "caller", "{result}");
    assert_eq!(result["agent"]["target"], agent_uri.as_str(), "{result}");
    let path = format!("/v1/queues/{queue}");
    let q = common::wait_until("the agent freed", Duration::from_secs(5), || {
        let (_, q) = http(engine.api, "GET", &path, None);
        (q["agents"][1]["status"] == "available").then_some(q)
    });
    assert_eq!(q["total_serviced_count"], 1, "{q}");
    assert_eq!(q["total_abandoned_count"], 0, "{q}");
}
