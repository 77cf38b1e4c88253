//! Cluster membership (issue 20) against a real NATS server (JetStream key-value): nodes see each
//! other in `GET /v1/nodes`, a node that stops beating is declared lost exactly once cluster-wide
//! (the reaper lease), and a node that comes back after being declared lost ends what it still
//! holds with `node_lost` and rejoins under a new incarnation.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use activeflow::cluster::bucket::key_value;
use activeflow::cluster::lease::Lease;
use common::cluster::{
    block_on, nats_url, nodes_view, state_of, unique_name, PrivateNats, TestCluster, Timers,
};
use common::{http, wait_until};
use serde_json::json;

/// Three nodes with distinct ids list each other, all `up`, within 3 s of starting.
#[test]
fn three_nodes_see_each_other() {
    let cluster = TestCluster::start(&["n1", "n2", "n3"], Timers::DEFAULT);
    for node in &cluster.nodes {
        wait_until(
            "every node up in GET /v1/nodes",
            Duration::from_secs(3),
            || {
                let view = nodes_view(node.api);
                let up = ["n1", "n2", "n3"]
                    .iter()
                    .all(|id| view.get(*id).is_some_and(|n| n["state"] == "up"));
                up.then_some(())
            },
        );
    }
    let view = nodes_view(cluster.nodes[0].api);
    let me = &view["n1"];
    assert_eq!(me["self"], true, "{me}");
    assert_eq!(view["n2"]["self"], false);
    assert!(me["load"]["activeflows"].is_u64(), "{me}");
    assert_eq!(
        me["incarnation"].as_str(),
        Some(
            cluster.nodes[0]
                .cluster
                .as_ref()
                .unwrap()
                .incarnation
                .to_string()
                .as_str()
        )
    );
    // A node that leaves gracefully is dropped at once, not declared lost.
    let mut cluster = cluster;
    let n3 = cluster.nodes.pop().unwrap();
    n3.shutdown(Duration::ZERO);
    wait_until("n3 gone from the list", Duration::from_secs(3), || {
        (!nodes_view(cluster.nodes[0].api).contains_key("n3")).then_some(())
    });
}

/// A node whose heartbeat stops (its tasks aborted, as a kill -9 would) is reported lost and
/// declared lost by exactly one survivor within 10 s (heartbeat 1 s, timeout 5 s).
#[test]
fn a_silent_node_is_declared_lost_once() {
    let cluster = TestCluster::start(&["a", "b", "c"], Timers::DEFAULT);
    for node in &cluster.nodes {
        wait_until("c seen up", Duration::from_secs(3), || {
            (state_of(node.api, "c").as_deref() == Some("up")).then_some(())
        });
    }
    // c runs an activeflow; its row is in PostgreSQL before c falls silent.
    let body = json!({"actions": [{"type": "block"}]}).to_string();
    let (status, created) = http(
        cluster.node("c").api,
        "POST",
        "/v1/activeflows",
        Some(&body),
    );
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    wait_until("c's activeflow stored", Duration::from_secs(5), || {
        let row = stored_activeflow(&cluster.db.url, &id)?;
        (row.0 == "running").then_some(())
    });
    let killed = Instant::now();
    cluster
        .node("c")
        .cluster
        .as_ref()
        .unwrap()
        .membership()
        .unwrap()
        .halt();
    let declared = || -> u64 {
        ["a", "b"]
            .iter()
            .map(|id| {
                let c = cluster.node(id).cluster.as_ref().unwrap();
                c.membership().unwrap().declared_lost()
            })
            .sum()
    };
    wait_until("c declared lost", Duration::from_secs(10), || {
        (declared() >= 1).then_some(())
    });
    let took = killed.elapsed();
    assert!(
        took > Duration::from_secs(4),
        "declared too early: {took:?}"
    );
    for id in ["a", "b"] {
        wait_until("c shown lost", Duration::from_secs(2), || {
            (state_of(cluster.node(id).api, "c").as_deref() == Some("lost")).then_some(())
        });
    }
    // Exactly once: several more beats (and lease renewals) later, still one declaration.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(declared(), 1);
    // The mark names c's run, in the lost bucket.
    let incarnation = cluster.node("c").cluster.as_ref().unwrap().incarnation;
    let prefix = cluster.prefix.clone();
    let mark = block_on(async move {
        let js = async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap());
        let kv = js.get_key_value(format!("{prefix}_lost")).await.unwrap();
        kv.get("c").await.unwrap()
    });
    assert_eq!(mark.as_deref(), Some(incarnation.to_string().as_bytes()));
    // The lost node's records ended node_lost in PostgreSQL, by the survivor's declaration.
    let row = stored_activeflow(&cluster.db.url, &id);
    assert_eq!(
        row,
        Some(("ended".to_string(), Some("node_lost".to_string()))),
        "c's activeflow {id}"
    );
}

/// `(status, end_reason)` of activeflow `id` in the cluster's PostgreSQL database.
fn stored_activeflow(db_url: &str, id: &str) -> Option<(String, Option<String>)> {
    let (db_url, id) = (db_url.to_string(), id.to_string());
    block_on(async move {
        let (client, connection) = tokio_postgres::connect(&db_url, tokio_postgres::NoTls)
            .await
            .ok()?;
        let conn = tokio::spawn(connection);
        let row = client
            .query_opt(
                "SELECT status, end_reason FROM activeflows WHERE id = $1",
                &[&id],
            )
            .await
            .ok()
            .flatten();
        drop(client);
        let _ = conn.await;
        row.map(|r| (r.get(0), r.get(1)))
    })
}

/// A node paused longer than the timeout (as SIGSTOP would) finds itself declared lost when it
/// resumes: it ends its running activeflows with `node_lost`, takes a new incarnation and is
/// `up` again in its peers' view.
#[test]
fn a_node_back_from_a_pause_ends_its_work_and_rejoins() {
    let cluster = TestCluster::start(&["p", "q"], Timers::DEFAULT);
    let (p, q) = (cluster.node("p"), cluster.node("q"));
    wait_until("p seen up by q", Duration::from_secs(3), || {
        (state_of(q.api, "p").as_deref() == Some("up")).then_some(())
    });
    let body = json!({"actions": [{"type": "block"}]}).to_string();
    let (status, a) = http(p.api, "POST", "/v1/activeflows", Some(&body));
    assert_eq!(status, 200, "{a}");
    let id = a["id"].as_str().unwrap().to_owned();
    let pc = p.cluster.as_ref().unwrap();
    let first = pc.current_incarnation();
    pc.membership()
        .unwrap()
        .suspend_for(Duration::from_secs(12));
    wait_until("q declares p lost", Duration::from_secs(10), || {
        let qc = q.cluster.as_ref().unwrap();
        (qc.membership().unwrap().declared_lost() == 1).then_some(())
    });
    // Still paused: it holds its activeflow yet.
    let (_, still) = http(p.api, "GET", &format!("/v1/activeflows/{id}"), None);
    assert_eq!(still["status"], "running", "{still}");
    wait_until("p rejoins", Duration::from_secs(10), || {
        (pc.membership().unwrap().rejoins() == 1).then_some(())
    });
    let ended = wait_until("p's activeflow ended", Duration::from_secs(5), || {
        let (_, a) = http(p.api, "GET", &format!("/v1/activeflows/{id}"), None);
        (a["status"] == "ended").then_some(a)
    });
    assert_eq!(ended["end_reason"], "node_lost", "{ended}");
    let next = pc.current_incarnation();
    assert_ne!(next, first);
    wait_until(
        "q sees p up under its new run",
        Duration::from_secs(3),
        || {
            let view = nodes_view(q.api);
            let row = view.get("p")?;
            (row["state"] == "up" && row["incarnation"] == next.to_string()).then_some(())
        },
    );
    // Not declared again: the new run beats.
    std::thread::sleep(Duration::from_secs(2));
    let qc = q.cluster.as_ref().unwrap();
    assert_eq!(qc.membership().unwrap().declared_lost(), 1);
}

/// The reaper lease: of two contenders one holds it; its holder renews; once the holder stops
/// renewing, the TTL frees it and the other takes it.
#[test]
fn one_reaper_holds_the_lease() {
    let bucket = unique_name("lease");
    block_on(async move {
        let js = async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap());
        let kv = key_value(&js, &bucket, Duration::from_secs(1))
            .await
            .unwrap();
        let mut a = Lease::new(kv.clone(), "a/1".into());
        let mut b = Lease::new(kv.clone(), "b/1".into());
        assert!(a.hold().await, "a takes the free lease");
        assert!(!b.hold().await, "b may not take a held lease");
        assert!(a.hold().await, "a renews");
        assert!(!b.hold().await);
        // a stops renewing: the entry expires with the bucket's TTL (the server checks
        // expiry on its own schedule), then b takes it and a has lost it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !b.hold().await {
            assert!(Instant::now() < deadline, "lease never freed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!a.hold().await, "a's renewal fails once b holds it");
        let _ = js.delete_key_value(&bucket).await;
    });
}

/// A single node (no `[cluster]`) lists just itself: `node_id` `local`, state `up`, its load.
#[test]
fn a_single_node_lists_itself() {
    let e = common::start(&[], &[], &[]);
    let body = json!({"actions": [{"type": "block"}]}).to_string();
    let (status, _) = http(e.api, "POST", "/v1/activeflows", Some(&body));
    assert_eq!(status, 200);
    let view = nodes_view(e.api);
    assert_eq!(view.len(), 1, "{view:?}");
    let me = &view["local"];
    assert_eq!(
        (me["state"].as_str(), me["self"].as_bool()),
        (Some("up"), Some(true))
    );
    assert_eq!(me["load"]["activeflows"], 1, "{me}");
    // The VoIPBIN spelling answers the same.
    let (status, _) = http(e.api, "GET", "/v1.0/nodes", None);
    assert_eq!(status, 200);
}

/// The status code of the answer to one out-of-dialog OPTIONS sent over UDP to `sip` (`None`:
/// no answer within 2 s).
fn options_status(sip: SocketAddr) -> Option<u16> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let me = socket.local_addr().ok()?;
    let request = format!(
        "OPTIONS sip:probe@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-probe-{n}\r\n\
         From: <sip:probe@{me}>;tag=pr{n}\r\nTo: <sip:probe@{sip}>\r\nCall-ID: probe-{n}-{me}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    socket.send_to(request.as_bytes(), sip).ok()?;
    let mut buf = [0u8; 4096];
    let (len, _) = socket.recv_from(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..len]);
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// NATS restarts, down longer than the node timeout, while three nodes run (H1): no node is
/// declared lost (every gap in a node's own view resets its peers' ages, and reaping waits a
/// whole timeout of unbroken view), and no activeflow ends `node_lost`. While a node cannot
/// beat for longer than the timeout it answers OPTIONS 503 (RFC 3261 §11.2: the answer an
/// INVITE would get), so Kamailio's probing takes it out of rotation; 200 again once it beats.
#[test]
fn a_nats_restart_declares_no_node_lost_and_cut_off_nodes_answer_503() {
    let mut nats = PrivateNats::start();
    let mut cluster = TestCluster::start(&[], Timers::DEFAULT);
    let url = nats.url.clone();
    for id in ["r1", "r2", "r3"] {
        let node = cluster.start_node(id, &[("ACTIVEFLOW_CLUSTER_NATS_URL", &url)]);
        cluster.nodes.push(node);
    }
    for node in &cluster.nodes {
        wait_until("all three up", Duration::from_secs(5), || {
            let view = nodes_view(node.api);
            let up = ["r1", "r2", "r3"]
                .iter()
                .all(|id| view.get(*id).is_some_and(|n| n["state"] == "up"));
            up.then_some(())
        });
    }
    // Long enough for every node to be eligible to reap.
    std::thread::sleep(Duration::from_secs(6));
    let body = json!({"actions": [{"type": "block"}]}).to_string();
    let (status, created) = http(
        cluster.node("r2").api,
        "POST",
        "/v1/activeflows",
        Some(&body),
    );
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let r1 = cluster.node("r1").sip;
    assert_eq!(options_status(r1), Some(200));

    nats.stop();
    let stopped = Instant::now();
    wait_until("r1 answers OPTIONS 503", Duration::from_secs(12), || {
        (options_status(r1) == Some(503)).then_some(())
    });
    let took = stopped.elapsed();
    assert!(took > Duration::from_secs(4), "503 too early: {took:?}");
    // Down for longer than the node timeout in all.
    std::thread::sleep(Duration::from_secs(3));
    nats.resume();
    wait_until(
        "r1 answers OPTIONS 200 again",
        Duration::from_secs(15),
        || (options_status(r1) == Some(200)).then_some(()),
    );
    // Several timeouts after the restart: nobody was declared lost.
    std::thread::sleep(Duration::from_secs(12));
    let declared: u64 = cluster
        .nodes
        .iter()
        .map(|n| {
            n.cluster
                .as_ref()
                .unwrap()
                .membership()
                .unwrap()
                .declared_lost()
        })
        .sum();
    assert_eq!(declared, 0, "nodes declared lost after a NATS restart");
    let rejoins: u64 = cluster
        .nodes
        .iter()
        .map(|n| n.cluster.as_ref().unwrap().membership().unwrap().rejoins())
        .sum();
    assert_eq!(rejoins, 0);
    for node in &cluster.nodes {
        let view = nodes_view(node.api);
        for id in ["r1", "r2", "r3"] {
            assert_eq!(view[id]["state"], "up", "{id} as {:?} sees it", node.api);
        }
    }
    let (_, a) = http(
        cluster.node("r2").api,
        "GET",
        &format!("/v1/activeflows/{id}"),
        None,
    );
    assert_eq!(a["status"], "running", "{a}");
    assert_eq!(
        stored_activeflow(&cluster.db.url, &id).map(|r| r.0),
        Some("running".to_string())
    );
}

/// The bucket's TTL follows the config (M2): opening an existing bucket with another
/// `max_age` updates it, so a changed `cluster.node_timeout_ms` changes the heartbeat TTL.
#[test]
fn an_existing_bucket_takes_the_configured_ttl() {
    let bucket = unique_name("ttl");
    block_on(async move {
        let js = async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap());
        key_value(&js, &bucket, Duration::from_secs(60))
            .await
            .unwrap();
        key_value(&js, &bucket, Duration::from_secs(5))
            .await
            .unwrap();
        let mut stream = js.get_stream(format!("KV_{bucket}")).await.unwrap();
        let age = stream.info().await.unwrap().config.max_age;
        let _ = js.delete_key_value(&bucket).await;
        assert_eq!(age, Duration::from_secs(5));
    });
}

/// Runs `sql` on the cluster's database.
fn pg_exec(db_url: &str, sql: &str) {
    let (db_url, sql) = (db_url.to_string(), sql.to_string());
    block_on(async move {
        let (client, connection) = tokio_postgres::connect(&db_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let conn = tokio::spawn(connection);
        client.batch_execute(&sql).await.unwrap();
        drop(client);
        let _ = conn.await;
    })
}

/// The store's fence is authoritative (H3): a run declared lost in PostgreSQL with no lost mark
/// in NATS (the reaper's mark write failed) learns it from its first fenced write: it ends its
/// work `node_lost`, rejoins under a new incarnation, and its writes count again.
#[test]
fn a_fenced_write_alone_makes_a_node_rejoin() {
    let cluster = TestCluster::start(&["f"], Timers::DEFAULT);
    let f = cluster.node("f");
    let fc = f.cluster.as_ref().unwrap();
    let first = fc.current_incarnation();
    pg_exec(
        &cluster.db.url,
        "UPDATE cluster_nodes SET state = 'lost' WHERE node_id = 'f'",
    );
    let body = json!({"actions": [{"type": "block"}]}).to_string();
    let (status, created) = http(f.api, "POST", "/v1/activeflows", Some(&body));
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    wait_until("f rejoins", Duration::from_secs(10), || {
        (fc.membership().unwrap().rejoins() == 1).then_some(())
    });
    let ended = wait_until("f's activeflow ended", Duration::from_secs(5), || {
        let (_, a) = http(f.api, "GET", &format!("/v1/activeflows/{id}"), None);
        (a["status"] == "ended").then_some(a)
    });
    assert_eq!(ended["end_reason"], "node_lost", "{ended}");
    assert_ne!(fc.current_incarnation(), first);
    // The new run's writes are stored.
    let (status, again) = http(f.api, "POST", "/v1/activeflows", Some(&body));
    assert_eq!(status, 200, "{again}");
    let id = again["id"].as_str().unwrap().to_owned();
    wait_until(
        "the new run's activeflow stored",
        Duration::from_secs(5),
        || stored_activeflow(&cluster.db.url, &id).map(|_| ()),
    );
    assert_eq!(fc.membership().unwrap().rejoins(), 1);
}

/// A declaration stuck on PostgreSQL (the lost run's row locked, as by a frozen node's open
/// batch) delays neither the reaper's heartbeat nor its lease (H2): for longer than the node
/// timeout nobody else is declared lost, and once the lock is gone the lost node is declared,
/// once.
#[test]
fn a_stuck_declaration_does_not_stop_the_heartbeat() {
    let cluster = TestCluster::start(&["s1", "s2", "s3"], Timers::DEFAULT);
    for node in &cluster.nodes {
        wait_until("s3 seen up", Duration::from_secs(3), || {
            (state_of(node.api, "s3").as_deref() == Some("up")).then_some(())
        });
    }
    // Long enough for every node to be eligible to reap.
    std::thread::sleep(Duration::from_secs(6));
    let (locked_tx, locked_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let db_url = cluster.db.url.clone();
    let holder = std::thread::spawn(move || {
        block_on(async move {
            let (client, connection) = tokio_postgres::connect(&db_url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let conn = tokio::spawn(connection);
            client
                .batch_execute("BEGIN; SELECT 1 FROM cluster_nodes WHERE node_id = 's3' FOR UPDATE")
                .await
                .unwrap();
            let _ = locked_tx.send(());
            let _ = release_rx.await;
            let _ = client.batch_execute("COMMIT").await;
            drop(client);
            let _ = conn.await;
        })
    });
    locked_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    cluster
        .node("s3")
        .cluster
        .as_ref()
        .unwrap()
        .membership()
        .unwrap()
        .halt();
    let survivors = ["s1", "s2"];
    let declared = || -> u64 {
        survivors
            .iter()
            .map(|id| {
                let c = cluster.node(id).cluster.as_ref().unwrap();
                c.membership().unwrap().declared_lost()
            })
            .sum()
    };
    // Three timeouts with the declaration stuck: the survivors still beat for each other.
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        for id in survivors {
            for other in survivors {
                let state = state_of(cluster.node(id).api, other);
                assert_eq!(state.as_deref(), Some("up"), "{other} as {id} sees it");
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(declared(), 0, "declared while its row was locked");
    let _ = release_tx.send(());
    holder.join().unwrap();
    wait_until("s3 declared lost", Duration::from_secs(10), || {
        (declared() == 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(declared(), 1);
    for id in survivors {
        assert_eq!(state_of(cluster.node("s1").api, id).as_deref(), Some("up"));
    }
}
