//! Cluster test nodes (issue 20): in-process engines with `[cluster]` set — one PostgreSQL
//! database made for the test ([`ScratchDatabase`] on `AF_TEST_PG_URL`'s server) and a NATS
//! prefix of their own (`AF_TEST_NATS_URL`, or a [`PrivateNats`]), so parallel tests never see
//! each other's nodes, subjects, streams or buckets. Dropping a [`TestCluster`] stops its nodes,
//! then removes its NATS buckets and stream and its database.

use std::future::Future;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::pg::{self, ScratchDatabase};
use super::{http, reserve_port, start, wait_until, TestEngine};

/// The NATS server the cluster tests use (`AF_TEST_NATS_URL`, default the local one).
pub fn nats_url() -> String {
    std::env::var("AF_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A name no other test (or earlier run) uses: `af_<tag>_<pid>_<n>_<nanos>`, lower case.
pub fn unique_name(tag: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("af_{tag}_{}_{n}_{nanos}", std::process::id()).to_ascii_lowercase()
}

/// Runs `f` to completion on a fresh current-thread runtime (the tests' own NATS and
/// PostgreSQL clients; the engines run on their own threads).
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Timers of the test cluster (`cluster.heartbeat_ms`, `cluster.node_timeout_ms`).
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    pub heartbeat_ms: u64,
    pub node_timeout_ms: u64,
}

impl Timers {
    /// The shipped defaults: 1 s heartbeat, 5 s timeout.
    pub const DEFAULT: Timers = Timers {
        heartbeat_ms: 1000,
        node_timeout_ms: 5000,
    };

    /// The default heartbeat with a 60 s timeout: tests that must never see a node declared
    /// lost on a loaded machine.
    pub const NEVER_LOST: Timers = Timers {
        heartbeat_ms: 1000,
        node_timeout_ms: 60_000,
    };
}

/// N engines of one cluster.
pub struct TestCluster {
    /// `cluster.prefix` of every node.
    pub prefix: String,
    /// `cluster.nats_url` of its nodes (a node's `env` may override it).
    pub nats_url: String,
    /// The nodes' shared database (`storage.url` is `db.url`), dropped after the nodes.
    pub db: ScratchDatabase,
    pub timers: Timers,
    pub nodes: Vec<TestEngine>,
}

impl TestCluster {
    /// Starts `ids.len()` nodes named `ids`, sharing a fresh database and a fresh prefix, on
    /// the suite's NATS.
    pub fn start(ids: &[&str], timers: Timers) -> TestCluster {
        let mut cluster = TestCluster::on_nats(nats_url(), timers);
        for id in ids {
            let node = cluster.start_node(id, &[]);
            cluster.nodes.push(node);
        }
        cluster
    }

    /// A cluster with no node yet on the NATS server at `nats_url` (the suite's, or a
    /// [`PrivateNats`] for tests that stop it), a fresh database and a fresh prefix.
    pub fn on_nats(nats_url: String, timers: Timers) -> TestCluster {
        TestCluster {
            prefix: unique_name("c"),
            nats_url,
            db: pg::database(),
            timers,
            nodes: Vec::new(),
        }
    }

    /// A node id no other test uses: `name` and a random suffix (tests that look for the id
    /// in what a node says, where a short name could match by chance).
    pub fn node_id(name: &str) -> String {
        format!(
            "{name}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        )
    }

    /// One more node of this cluster (not added to `nodes`), with `env` overrides on top.
    pub fn start_node(&self, node_id: &str, env: &[(&str, &str)]) -> TestEngine {
        self.start_node_with(node_id, &[], &[], env)
    }

    /// Like [`TestCluster::start_node`], with `flows` (JSON documents) and `routes`
    /// (number → flow name).
    pub fn start_node_with(
        &self,
        node_id: &str,
        flows: &[Value],
        routes: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> TestEngine {
        let heartbeat = self.timers.heartbeat_ms.to_string();
        let timeout = self.timers.node_timeout_ms.to_string();
        let mut vars: Vec<(&str, &str)> = vec![
            ("ACTIVEFLOW_CLUSTER_NODE_ID", node_id),
            ("ACTIVEFLOW_CLUSTER_NATS_URL", &self.nats_url),
            ("ACTIVEFLOW_CLUSTER_PREFIX", &self.prefix),
            ("ACTIVEFLOW_CLUSTER_HEARTBEAT_MS", &heartbeat),
            ("ACTIVEFLOW_CLUSTER_NODE_TIMEOUT_MS", &timeout),
            ("ACTIVEFLOW_STORAGE_BACKEND", "postgres"),
            ("ACTIVEFLOW_STORAGE_URL", &self.db.url),
        ];
        vars.extend_from_slice(env);
        start(flows, routes, &vars)
    }

    /// The node named `id`.
    pub fn node(&self, id: &str) -> &TestEngine {
        self.nodes
            .iter()
            .find(|n| n.cluster.as_ref().is_some_and(|c| c.node_id.as_str() == id))
            .unwrap_or_else(|| panic!("no node {id}"))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // Stop the nodes first: they hold connections to the database and the buckets (the
        // database goes with `db`, after this).
        self.nodes.clear();
        let prefix = self.prefix.clone();
        let url = self.nats_url.clone();
        // Best effort, even while a failed test unwinds (a panic here would abort).
        block_on(async move {
            if let Ok(client) = async_nats::connect(url).await {
                let js = async_nats::jetstream::new(client);
                for bucket in ["nodes", "lost"] {
                    let _ = js.delete_key_value(format!("{prefix}_{bucket}")).await;
                }
                let _ = js
                    .delete_stream(format!("{}_EVENTS", prefix.to_ascii_uppercase()))
                    .await;
            }
        });
    }
}

/// A `nats-server -js` of its own on a free port (its store in a scratch directory), killed on
/// drop: a node on it is out of reach of the others, and a test can take it away ([`stop`]) and
/// bring it back on the same port and store ([`resume`]): a NATS outage.
///
/// [`stop`]: PrivateNats::stop
/// [`resume`]: PrivateNats::resume
pub struct PrivateNats {
    pub url: String,
    port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

impl PrivateNats {
    pub fn start() -> PrivateNats {
        let port = reserve_port().release();
        let mut nats = PrivateNats {
            url: format!("nats://127.0.0.1:{port}"),
            port,
            child: None,
            dir: std::env::temp_dir().join(unique_name("nats")),
        };
        nats.resume();
        nats
    }

    /// Starts the server again (same port, same store) and waits until it listens.
    pub fn resume(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on PATH (scripts/test.sh installs it)");
        self.child = Some(child);
        let port = self.port;
        wait_until("private nats-server", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    /// Stops the server now.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `GET /v1/nodes` on `api`: node id → its row.
pub fn nodes_view(api: SocketAddr) -> std::collections::BTreeMap<String, Value> {
    let (status, body) = http(api, "GET", "/v1/nodes", None);
    assert_eq!(status, 200, "{body}");
    body["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|n| (n["node_id"].as_str().unwrap_or("").to_string(), n.clone()))
        .collect()
}

/// The state `api` reports for node `id` (`None`: not listed).
pub fn state_of(api: SocketAddr, id: &str) -> Option<String> {
    nodes_view(api)
        .get(id)
        .and_then(|n| n["state"].as_str().map(str::to_string))
}

/// Polling interval of the cluster waits (a wait on a condition, never a fixed sleep).
pub const POLL: Duration = Duration::from_millis(50);
