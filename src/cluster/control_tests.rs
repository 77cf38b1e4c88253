//! The control tasks against a real NATS server (`AF_TEST_NATS_URL`, default
//! `nats://127.0.0.1:4222`): forwarding round trip, no responders, timeout, a malformed
//! request, and flow change notices reloading from a real (SQLite) store. Node ids are
//! unique per test, so parallel runs do not meet on a subject.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cluster::flows::{self, FlowChange, FlowChangeOp};
use crate::cluster::forward::{
    self, api_subject, ForwardError, ForwardOp, ForwardReply, ForwardRequest, Handler,
};
use crate::cluster::{Cluster, NodeId};
use crate::config::ClusterConfig;
use crate::flow::{Flow, FlowStore};
use crate::storage::{FlowSource, SqliteOptions, Storage, Write};

fn nats_url() -> String {
    std::env::var("AF_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

async fn node(prefix: &str, forward_timeout_ms: u64) -> Cluster {
    let config = ClusterConfig {
        node_id: format!("{prefix}-{}", uuid::Uuid::new_v4().simple()),
        nats_url: nats_url(),
        forward_timeout_ms,
        ..ClusterConfig::default()
    };
    Cluster::connect(&config).await.expect("NATS is up")
}

/// Answers with the request echoed, after `delay`.
fn echo(delay: Duration) -> Handler {
    Rc::new(move |request: ForwardRequest| {
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            ForwardReply {
                status: 200,
                body: json!({"op": request.op, "id": request.id, "body": request.body}),
                headers: Default::default(),
            }
        })
    })
}

/// Serves `owner`'s subject and waits until the server has it (a flush round trip).
async fn serve(owner: &Cluster, handler: Handler) {
    actix_rt::spawn(forward::serve(owner.clone(), handler));
    let deadline = Instant::now() + Duration::from_secs(5);
    let probe = owner.nats.clone();
    while Instant::now() < deadline {
        let answer = probe
            .request(api_subject(owner, &owner.node_id), "{}".into())
            .await;
        if answer.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("forward server never answered");
}

#[actix_rt::test]
async fn a_forwarded_request_gets_the_owners_reply() {
    let (asking, owner) = (node("ask", 2000).await, node("own", 2000).await);
    serve(&owner, echo(Duration::ZERO)).await;
    let request = ForwardRequest {
        op: ForwardOp::Variables,
        id: "42".into(),
        body: Some(json!({"variables": {"k": "v"}})),
        timeout_ms: None,
    };
    let reply = forward::forward(&asking, &owner.node_id, &request)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["op"], "variables");
    assert_eq!(reply.body["body"]["variables"]["k"], "v");
}

#[actix_rt::test]
async fn nobody_serving_the_owner_is_unavailable_at_once() {
    let asking = node("ask", 3000).await;
    let request = ForwardRequest {
        op: ForwardOp::Stop,
        id: "1".into(),
        body: None,
        timeout_ms: None,
    };
    let started = Instant::now();
    let gone = NodeId::new(format!("gone-{}", uuid::Uuid::new_v4().simple()));
    let e = forward::forward(&asking, &gone, &request)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ForwardError::Unavailable { ref node, .. } if *node == gone),
        "{e}"
    );
    // NATS says "no responders" (nats-server ≥ 2.2) long before the 3 s timeout.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[actix_rt::test]
async fn a_slow_owner_times_out_within_forward_timeout() {
    let (asking, owner) = (node("ask", 300).await, node("own", 300).await);
    let slow: Handler = echo(Duration::from_secs(3));
    // Probe with the real handler would take 3 s: serve, then probe with a raw publish-free
    // flush so the subscription is known to the server.
    actix_rt::spawn(forward::serve(owner.clone(), slow));
    tokio::time::sleep(Duration::from_millis(200)).await;
    owner.nats.flush().await.unwrap();
    let request = ForwardRequest {
        op: ForwardOp::Hangup,
        id: "1".into(),
        body: None,
        timeout_ms: None,
    };
    let started = Instant::now();
    let e = forward::forward(&asking, &owner.node_id, &request)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(e, ForwardError::Unavailable { .. }), "{e}");
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[actix_rt::test]
async fn a_malformed_request_gets_a_400_reply() {
    let (asking, owner) = (node("ask", 2000).await, node("own", 2000).await);
    serve(&owner, echo(Duration::ZERO)).await;
    let answer = asking
        .nats
        .request(api_subject(&owner, &owner.node_id), "not json".into())
        .await
        .unwrap();
    let reply: ForwardReply = serde_json::from_slice(&answer.payload).unwrap();
    assert_eq!(reply.status, 400);
    // Still serving after it.
    let ok = asking
        .nats
        .request(
            api_subject(&owner, &owner.node_id),
            r#"{"op":"stop","id":"x"}"#.into(),
        )
        .await
        .unwrap();
    let reply: ForwardReply = serde_json::from_slice(&ok.payload).unwrap();
    assert_eq!(reply.status, 200);
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A store on a fresh SQLite file under the temp dir, and that file (for the test to remove).
fn scratch_storage() -> (Storage, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("af-flows-{}.db", uuid::Uuid::new_v4()));
    let (storage, _) = Storage::open_sqlite(
        &path,
        SqliteOptions::default(),
        &crate::health::Health::new(),
    )
    .unwrap();
    (storage, path)
}

#[actix_rt::test]
async fn a_flow_change_notice_reloads_the_flow_from_the_store() {
    let (storage, path) = scratch_storage();
    let store = storage.store().unwrap();
    let (writer, follower) = (node("w", 2000).await, node("f", 2000).await);
    let local = Arc::new(FlowStore::new());
    actix_rt::spawn(flows::follow(
        follower.clone(),
        local.clone(),
        storage.clone(),
        Default::default(),
    ));
    // The follower's subscription must be on the server before the notice goes out.
    tokio::time::sleep(Duration::from_millis(300)).await;
    follower.nats.flush().await.unwrap();

    let flow = Flow::from_json(br#"{"name":"notice","actions":[{"type":"answer"}]}"#).unwrap();
    let row = crate::engine::persist::flow_row(&flow, FlowSource::Api);
    store.apply(&[Write::Flow(row)]).unwrap();
    let change = FlowChange {
        flow_id: flow.id.to_string(),
        op: FlowChangeOp::Created,
    };
    flows::publish(&writer, &change).await;
    until("the created flow", || local.get(&flow.id).is_some()).await;

    store
        .apply(&[Write::DeleteFlow(flow.id.to_string())])
        .unwrap();
    let change = FlowChange {
        flow_id: flow.id.to_string(),
        op: FlowChangeOp::Deleted,
    };
    flows::publish(&writer, &change).await;
    until("the deleted flow gone", || local.get(&flow.id).is_none()).await;
    let _ = std::fs::remove_file(path);
}

/// A private `nats-server` on `port` (JetStream off: flow notices need none).
fn nats_server(port: u16) -> std::process::Child {
    std::process::Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nats-server on PATH")
}

async fn listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "nats-server never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A notice missed while the node was cut off from NATS: on reconnecting it resyncs every
/// API flow from the store, a flow deleted meanwhile included.
#[actix_rt::test]
async fn a_reconnect_reloads_every_api_flow() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = nats_server(port);
    listening(port).await;
    let config = ClusterConfig {
        node_id: format!("rc-{}", uuid::Uuid::new_v4().simple()),
        nats_url: format!("nats://127.0.0.1:{port}"),
        ..ClusterConfig::default()
    };
    let follower = Cluster::connect(&config).await.unwrap();
    let (storage, path) = scratch_storage();
    let local = Arc::new(FlowStore::new());
    actix_rt::spawn(flows::follow(
        follower.clone(),
        local.clone(),
        storage.clone(),
        Default::default(),
    ));
    // Its start-up resync (of an empty store) done before the outage.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let _ = server.kill();
    let _ = server.wait();
    // Written while the node cannot hear about it.
    let flow = Flow::from_json(br#"{"name":"missed","actions":[{"type":"answer"}]}"#).unwrap();
    let row = crate::engine::persist::flow_row(&flow, FlowSource::Api);
    storage.store().unwrap().apply(&[Write::Flow(row)]).unwrap();
    until("the node to notice the outage", || {
        follower.nats.connection_state() != async_nats::connection::State::Connected
    })
    .await;
    assert!(local.get(&flow.id).is_none(), "loaded before any reconnect");

    // Back at once: the reconnect counter catches even a reconnect shorter than any poll.
    let mut server = nats_server(port);
    listening(port).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while local.get(&flow.id).is_none() {
        assert!(
            Instant::now() < deadline,
            "not reloaded after the reconnect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Deleted while cut off again: gone after the reconnect.
    let _ = server.kill();
    let _ = server.wait();
    let store = storage.store().unwrap();
    store
        .apply(&[Write::DeleteFlow(flow.id.to_string())])
        .unwrap();
    until("the node to notice the outage", || {
        follower.nats.connection_state() != async_nats::connection::State::Connected
    })
    .await;
    assert!(
        local.get(&flow.id).is_some(),
        "removed before any reconnect"
    );
    let mut server = nats_server(port);
    listening(port).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while local.get(&flow.id).is_some() {
        assert!(Instant::now() < deadline, "not removed after the reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_file(path);
}

fn api_row(flow: &Flow) -> crate::storage::FlowRow {
    crate::engine::persist::flow_row(flow, FlowSource::Api)
}

fn named(name: &str) -> Flow {
    Flow::from_json(format!(r#"{{"name":"{name}","actions":[{{"type":"answer"}}]}}"#).as_bytes())
        .unwrap()
}

/// A full resync: API flows the store lost go, file flows stay, changed ones are replaced,
/// and names move as the store says (b took a's old name while a was renamed).
#[test]
fn a_resync_follows_the_store() {
    let local = FlowStore::new();
    let file = local.insert(named("from-file")).unwrap();
    let gone = local.insert(named("gone")).unwrap();
    let a = local.insert(named("ivr")).unwrap();
    let b = local.insert(named("other")).unwrap();
    let files = std::collections::HashSet::from([file.id]);

    let mut a2 = (*a).clone();
    a2.name = "ivr-old".into();
    let mut b2 = (*b).clone();
    b2.name = "ivr".into();
    let fresh = named("fresh");
    // b before a: inserting b first meets "ivr" still held by a's old version.
    let rows = [api_row(&b2), api_row(&a2), api_row(&fresh)];
    flows::apply(&local, &rows, &files, None);

    assert!(local.get(&gone.id).is_none(), "deleted in the store");
    assert!(local.get(&file.id).is_some(), "a file flow stays");
    assert_eq!(local.get_by_name_or_id("ivr").unwrap().id, b.id);
    assert_eq!(local.get_by_name_or_id("ivr-old").unwrap().id, a.id);
    assert!(local.get(&fresh.id).is_some());
    assert!(local.get_by_name_or_id("other").is_none());
    // Unchanged flows are kept as they are (the same Arc).
    let held = local.get(&fresh.id).unwrap();
    flows::apply(&local, &rows, &files, None);
    assert!(Arc::ptr_eq(&held, &local.get(&fresh.id).unwrap()));
}

/// A request that waited for a slot past its asker's timeout is dropped, not run: with every
/// slot busy for 1 s, the one over [`forward::MAX_CONCURRENT_REQUESTS`] (asker timeout 300 ms)
/// never runs after its asker answered 503.
#[actix_rt::test]
async fn a_request_that_outwaited_its_asker_is_not_run() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (asking, owner) = (node("ask", 300).await, node("own", 300).await);
    let ran = Arc::new(AtomicUsize::new(0));
    let counted = ran.clone();
    let handler: Handler = Rc::new(move |_request: ForwardRequest| {
        let ran = counted.clone();
        Box::pin(async move {
            ran.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
            ForwardReply {
                status: 200,
                body: json!({}),
                headers: Default::default(),
            }
        })
    });
    actix_rt::spawn(forward::serve(owner.clone(), handler));
    tokio::time::sleep(Duration::from_millis(200)).await;
    owner.nats.flush().await.unwrap();
    let total = forward::MAX_CONCURRENT_REQUESTS + 1;
    let asks = (0..total).map(|i| {
        let (asking, owner_id) = (asking.clone(), owner.node_id.clone());
        async move {
            let request = ForwardRequest {
                op: ForwardOp::Continue,
                id: i.to_string(),
                body: None,
                timeout_ms: None,
            };
            forward::forward(&asking, &owner_id, &request).await
        }
    });
    let answers = futures_util::future::join_all(asks).await;
    assert!(answers.iter().all(Result::is_err), "all time out at 300 ms");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ran.load(Ordering::SeqCst), forward::MAX_CONCURRENT_REQUESTS);
}
