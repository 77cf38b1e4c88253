//! Any node answers for the cluster (issue 20, part 3), with real peers: two in-process nodes
//! sharing a fresh PostgreSQL database and the NATS server (`AF_TEST_PG_URL`,
//! `AF_TEST_NATS_URL`), SIPp as the caller. An operator's stop, continue, variables,
//! delete or hangup sent to a node that does not hold the record is forwarded to the node that
//! does; flows changed on one node route calls on the others within a second, and a node cut
//! off from NATS resyncs its flows when it comes back. Flow names are unique across the
//! cluster. Needs the PostgreSQL store (`[storage] backend = "postgres"`).

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::cluster::{PrivateNats, TestCluster, Timers};
use common::{flow, http, sipp, wait_until, TestEngine};
use serde_json::{json, Value};

/// Answers, then holds the call until someone ends it.
fn hold() -> Value {
    flow(
        "hold",
        json!([
            {"type": "answer"},
            {"type": "sleep", "option": {"duration": 30000}}
        ]),
    )
}

/// Two nodes of one cluster, `a` holding the `hold` flow routed from 6000. Node loss is slow
/// (60 s) so these tests never see a node declared lost.
fn pair(b_routes: &[(&str, &str)]) -> (TestCluster, TestEngine, String, TestEngine, String) {
    let cluster = TestCluster::on_nats(common::cluster::nats_url(), Timers::NEVER_LOST);
    let (a_id, b_id) = (TestCluster::node_id("ctl-a"), TestCluster::node_id("ctl-b"));
    let a = cluster.start_node_with(&a_id, &[hold()], &[("6000", "hold")], &[]);
    let b = cluster.start_node_with(&b_id, &[], b_routes, &[]);
    (cluster, a, a_id, b, b_id)
}

/// Waits until `node` serves activeflow `id` (from the shared store when another node runs it).
fn visible(node: &TestEngine, path: &str) -> Value {
    wait_until(path, Duration::from_secs(10), || {
        let (status, body) = http(node.api, "GET", path, None);
        (status == 200).then_some(body)
    })
}

/// The id of the call-started activeflow running on `node`.
fn running_call(node: &TestEngine) -> (String, String) {
    wait_until("a running call on node A", Duration::from_secs(10), || {
        node.activeflows()
            .into_iter()
            .find(|a| a.status == activeflow::engine::Status::Running)
            .map(|a| (a.id.to_string(), a.reference_id.to_string()))
    })
}

/// RFC 3261 §15.1.1: the UA that ends a confirmed dialog sends BYE — node A, which holds
/// the dialog, though the stop was sent to node B; B answers 200 with the ended record. B's
/// listing shows A's activeflow, tagged with A's node id, once.
#[test]
fn stop_sent_to_another_node_ends_the_call_on_its_owner() {
    let (_cluster, a, a_id, b, _) = pair(&[]);
    let sip = a.sip;
    let caller = std::thread::spawn(move || sipp(sip, "uac_engine_bye.xml", "6000", &["-m", "1"]));
    let (id, _) = running_call(&a);
    let seen = visible(&b, &format!("/v1/activeflows/{id}"));
    assert_eq!(seen["node_id"], a_id.as_str(), "{seen}");

    let (status, list) = http(b.api, "GET", "/v1/activeflows?page_size=50", None);
    assert_eq!(status, 200);
    let listed: Vec<&Value> = list["result"]
        .as_array()
        .expect("result")
        .iter()
        .filter(|r| r["id"] == id.as_str())
        .collect();
    assert_eq!(listed.len(), 1, "{list}");
    assert_eq!(listed[0]["node_id"], a_id.as_str());

    let (status, body) = http(b.api, "POST", &format!("/v1/activeflows/{id}/stop"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ended", "{body}");
    assert_eq!(body["end_reason"], "operator_stop", "{body}");
    caller.join().expect("sipp thread").assert_all_ok(1);
    // Ended now: a second stop is answered from the store, the same record.
    let (status, again) = http(b.api, "POST", &format!("/v1/activeflows/{id}/stop"), None);
    assert_eq!(
        (status, &again["status"]),
        (200, &json!("ended")),
        "{again}"
    );
}

/// Variables merged through node B are the running activeflow's on node A.
#[test]
fn variables_put_through_another_node_reach_the_owner() {
    let (_cluster, a, _, b, _) = pair(&[]);
    let start = json!({"actions": [{"type": "sleep", "option": {"duration": 30000}}]});
    let (status, created) = http(a.api, "POST", "/v1/activeflows", Some(&start.to_string()));
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    visible(&b, &format!("/v1/activeflows/{id}"));

    let put = json!({"variables": {"color": "blue"}}).to_string();
    let path = format!("/v1/activeflows/{id}/variables");
    let (status, merged) = http(b.api, "PUT", &path, Some(&put));
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["variables"]["color"], "blue");
    let (status, on_a) = http(a.api, "GET", &path, None);
    assert_eq!((status, &on_a["variables"]["color"]), (200, &json!("blue")));
    // A reserved key is refused the same way, wherever it is sent.
    let bad = json!({"variables": {"activeflow.id": "x"}}).to_string();
    assert_eq!(http(b.api, "PUT", &path, Some(&bad)).0, 400);
}

/// RFC 3261 §15.1.1: `POST /v1/calls/{id}/hangup` on node B makes node A, the dialog's UA,
/// send the BYE.
#[test]
fn hangup_sent_to_another_node_sends_bye_from_the_owner() {
    let (_cluster, a, _, b, _) = pair(&[]);
    let sip = a.sip;
    let caller = std::thread::spawn(move || sipp(sip, "uac_engine_bye.xml", "6000", &["-m", "1"]));
    let (_, call_id) = running_call(&a);
    visible(&b, &format!("/v1/calls/{call_id}"));
    let (status, body) = http(b.api, "POST", &format!("/v1/calls/{call_id}/hangup"), None);
    assert_eq!(status, 200, "{body}");
    caller.join().expect("sipp thread").assert_all_ok(1);
}

/// The owner is out of reach (its NATS is another server: nobody serves its subject here):
/// the forwarding node answers 503 naming it, well within `forward_timeout_ms`.
#[test]
fn stop_for_an_unreachable_owner_is_503_within_the_forward_timeout() {
    let cluster = TestCluster::on_nats(common::cluster::nats_url(), Timers::NEVER_LOST);
    let island = PrivateNats::start();
    let (c_id, b_id) = (TestCluster::node_id("ctl-c"), TestCluster::node_id("ctl-b"));
    let c = cluster.start_node(&c_id, &[("ACTIVEFLOW_CLUSTER_NATS_URL", &island.url)]);
    let timeout = [("ACTIVEFLOW_CLUSTER_FORWARD_TIMEOUT_MS", "500")];
    let b = cluster.start_node(&b_id, &timeout);
    let start = json!({"actions": [{"type": "sleep", "option": {"duration": 30000}}]});
    let (status, created) = http(c.api, "POST", "/v1/activeflows", Some(&start.to_string()));
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    visible(&b, &format!("/v1/activeflows/{id}"));

    let began = Instant::now();
    let (status, body) = http(b.api, "POST", &format!("/v1/activeflows/{id}/stop"), None);
    let took = began.elapsed();
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&c_id), "{body}");
    assert!(took < Duration::from_millis(500 + 2000), "{took:?}");
    // Still running on its owner: nothing was stopped behind the 503.
    let (_, on_c) = http(c.api, "GET", &format!("/v1/activeflows/{id}"), None);
    assert_eq!(on_c["status"], "running", "{on_c}");
}

/// A flow created over node A's API routes calls arriving at node B within a second: B answers
/// 404 before (RFC 3261 §21.4.5), and runs the new flow once it serves it (its BYE ends the
/// call).
#[test]
fn a_flow_created_on_one_node_routes_calls_on_another() {
    let (_cluster, a, _, b, _) = pair(&[("7000", "late")]);
    sipp(b.sip, "uac_404.xml", "7000", &["-m", "1"]).assert_all_ok(1);
    let late = flow("late", json!([{"type": "answer"}, {"type": "hangup"}]));
    let (status, body) = http(a.api, "POST", "/v1/flows", Some(&late.to_string()));
    let created = Instant::now();
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("id");
    // The notice is flushed before the 201, but B applies it on its own time: measure it.
    wait_until("B serving the new flow", Duration::from_secs(5), || {
        (http(b.api, "GET", &format!("/v1/flows/{id}"), None).0 == 200).then_some(())
    });
    let propagation = created.elapsed();
    eprintln!("flow propagation A -> B: {propagation:?}");
    assert!(propagation < Duration::from_secs(1), "{propagation:?}");
    sipp(b.sip, "uac_engine_bye.xml", "7000", &["-m", "1"]).assert_all_ok(1);
    // Deleted on A: gone from B too.
    assert_eq!(
        http(a.api, "DELETE", &format!("/v1/flows/{id}"), None).0,
        200
    );
    wait_until("the flow gone from B", Duration::from_secs(5), || {
        (http(b.api, "GET", &format!("/v1/flows/{id}"), None).0 == 404).then_some(())
    });
}

/// Node A on the shared NATS, node B on a NATS of its own (so B hears none of A's notices),
/// one database; `flows` are created over A's API before B starts (B loads them).
fn split_pair(
    flows: &[Value],
) -> (
    TestCluster,
    TestEngine,
    TestEngine,
    PrivateNats,
    Vec<String>,
) {
    let cluster = TestCluster::on_nats(common::cluster::nats_url(), Timers::NEVER_LOST);
    let island = PrivateNats::start();
    let a = cluster.start_node(&TestCluster::node_id("ctl-a"), &[]);
    let ids = flows
        .iter()
        .map(|f| {
            let (status, body) = http(a.api, "POST", "/v1/flows", Some(&f.to_string()));
            assert_eq!(status, 201, "{body}");
            body["id"].as_str().expect("id").to_string()
        })
        .collect();
    let b = cluster.start_node(
        &TestCluster::node_id("ctl-b"),
        &[("ACTIVEFLOW_CLUSTER_NATS_URL", &island.url)],
    );
    (cluster, a, b, island, ids)
}

/// A flow deleted while node B was cut off from NATS (its notice never reached B) is gone
/// from B once B reconnects: the reconnect resyncs every API flow from the store.
#[test]
fn a_flow_deleted_while_a_node_was_cut_off_is_gone_after_it_reconnects() {
    let doomed = flow("doomed", json!([{"type": "answer"}, {"type": "hangup"}]));
    let (_cluster, a, b, mut island, ids) = split_pair(&[doomed]);
    let path = format!("/v1/flows/{}", ids[0]);
    assert_eq!(
        http(b.api, "GET", &path, None).0,
        200,
        "B loaded it at start"
    );

    island.stop();
    assert_eq!(http(a.api, "DELETE", &path, None).0, 200);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        http(b.api, "GET", &path, None).0,
        200,
        "B cannot have heard of the delete yet"
    );
    island.resume();
    wait_until("the flow gone from B", Duration::from_secs(15), || {
        (http(b.api, "GET", &path, None).0 == 404).then_some(())
    });
}

/// A flow name is unique across the cluster: node B, which never heard of A's flow "dup"
/// (another NATS), still refuses the name with 409 as one node does, and keeps nothing of it.
#[test]
fn a_flow_name_taken_on_another_node_is_409() {
    let (_cluster, a, b, _island, _) = split_pair(&[]);
    let dup = flow("dup", json!([{"type": "answer"}]));
    let (status, body) = http(a.api, "POST", "/v1/flows", Some(&dup.to_string()));
    assert_eq!(status, 201, "{body}");
    let (status, body) = http(b.api, "POST", "/v1/flows", Some(&dup.to_string()));
    assert_eq!(status, 409, "{body}");
    let (_, list) = http(b.api, "GET", "/v1/flows", None);
    let on_b: Vec<&Value> = list["result"]
        .as_array()
        .expect("result")
        .iter()
        .filter(|f| f["name"] == "dup")
        .collect();
    assert!(on_b.is_empty(), "{list}");
    // A replace on B that renames another flow to "dup" is refused the same way.
    let other = flow("other", json!([{"type": "answer"}]));
    let (status, body) = http(b.api, "POST", "/v1/flows", Some(&other.to_string()));
    assert_eq!(status, 201, "{body}");
    let path = format!("/v1/flows/{}", body["id"].as_str().expect("id"));
    let (status, body) = http(b.api, "PUT", &path, Some(&dup.to_string()));
    assert_eq!(status, 409, "{body}");
    let (_, kept) = http(b.api, "GET", &path, None);
    assert_eq!(kept["name"], "other", "{kept}");
}
