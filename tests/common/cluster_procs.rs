//! Engine nodes as separate processes (the `activeflow` binary cargo builds for the tests) for
//! the cluster tests: each node keeps its SIP address across a kill -9 and a restart (Kamailio's
//! dispatcher list names it), and takes its config from a generated file (its flows and routes)
//! plus `ACTIVEFLOW_*` overrides. Nodes are single nodes (each its own SQLite) unless started
//! with [`Backing::Cluster`]: then one cluster on a fresh PostgreSQL database and NATS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::cluster::nats_url;
use super::peers::private_dir;
use super::pg::{self, ScratchDatabase};
use super::{reserve_port, scrape, spawn_engine_with, Spawned};

/// What the nodes share.
#[derive(Clone, Debug)]
pub enum Backing {
    /// No `[cluster]`: every node alone with its own SQLite file.
    Single,
    /// `[cluster]` on: `[storage] backend = "postgres"` on `db` (one database for all the
    /// nodes, dropped with the last handle, after the nodes) and NATS at `nats_url`.
    Cluster {
        db: Arc<ScratchDatabase>,
        nats_url: String,
    },
}

impl Backing {
    /// A cluster on a fresh database of the suite's PostgreSQL (`AF_TEST_PG_URL`) and
    /// the suite's NATS (`AF_TEST_NATS_URL`), as scripts/test.sh exports them.
    pub fn cluster_from_env() -> Backing {
        Backing::Cluster {
            db: Arc::new(pg::database()),
            nats_url: nats_url(),
        }
    }
}

/// One engine node: its name (`cluster.node_id`), its fixed SIP address, its process when up.
pub struct Node {
    pub name: String,
    pub sip: SocketAddr,
    pub process: Option<Spawned>,
}

/// N engine processes started from one config.
pub struct NodeSet {
    pub nodes: Vec<Node>,
    config: PathBuf,
    flows: PathBuf,
    backing: Backing,
    dir: PathBuf,
}

impl NodeSet {
    /// Starts `count` nodes on 127.0.0.1 (distinct SIP ports from the test peer range) with
    /// `flows` (JSON documents) and `routes` (number → flow name).
    pub fn start(
        count: usize,
        flows: &[Value],
        routes: &[(&str, &str)],
        backing: Backing,
    ) -> NodeSet {
        let dir = private_dir("nodes");
        let flows_dir = dir.join("flows");
        std::fs::create_dir_all(&flows_dir).expect("flows dir");
        for (n, f) in flows.iter().enumerate() {
            std::fs::write(flows_dir.join(format!("{n}.json")), f.to_string()).expect("flow");
        }
        // The shipped defaults with our routes instead of its `* → demo`.
        let defaults = activeflow::config::DEFAULT_TOML;
        let head = defaults
            .find("\n[[routes]]")
            .map_or(defaults, |at| &defaults[..at]);
        let mut config = head.to_string();
        for (number, flow) in routes {
            config.push_str(&format!(
                "\n[[routes]]\nnumber = \"{number}\"\nflow = \"{flow}\"\n"
            ));
        }
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config).expect("config");
        let tag = format!("kam{}", std::process::id());
        let mut set = NodeSet {
            nodes: Vec::new(),
            config: config_path,
            flows: flows_dir,
            backing,
            dir,
        };
        for n in 1..=count {
            let guard = reserve_port();
            let sip: SocketAddr = ([127, 0, 0, 1], guard.release()).into();
            set.nodes.push(Node {
                name: format!("{tag}-node{n}"),
                sip,
                process: None,
            });
            set.launch(n - 1);
        }
        set
    }

    /// Starts node `i` (again) on its own SIP address.
    fn launch(&mut self, i: usize) {
        let node = &self.nodes[i];
        let mut env: Vec<(String, String)> = vec![
            ("ACTIVEFLOW_SIP_LISTEN".into(), node.sip.to_string()),
            (
                "ACTIVEFLOW_FLOWS_DIR".into(),
                self.flows.display().to_string(),
            ),
            // SIPp's built-in callers send no RTP.
            ("ACTIVEFLOW_MEDIA_RTP_TIMEOUT_SECONDS".into(), "0".into()),
            (
                "ACTIVEFLOW_ENGINE_SHUTDOWN_GRACE_SECONDS".into(),
                "0".into(),
            ),
        ];
        if let Backing::Cluster { db, nats_url } = &self.backing {
            env.extend(pg::engine_env(db).map(|(k, v)| (k.to_owned(), v)));
            env.extend([
                ("ACTIVEFLOW_CLUSTER_NODE_ID".into(), node.name.clone()),
                ("ACTIVEFLOW_CLUSTER_NATS_URL".into(), nats_url.clone()),
                ("ACTIVEFLOW_CLUSTER_HEARTBEAT_MS".into(), "500".into()),
                ("ACTIVEFLOW_CLUSTER_NODE_TIMEOUT_MS".into(), "3000".into()),
            ]);
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let config = self.config.display().to_string();
        let spawned = spawn_engine_with(&["--config", &config], &env);
        assert_eq!(spawned.sip, node.sip, "node {} SIP address", node.name);
        self.nodes[i].process = Some(spawned);
    }

    /// Every node's SIP address, in order (up or not).
    pub fn sip_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.sip).collect()
    }

    fn up(&self, i: usize) -> &Spawned {
        self.nodes[i]
            .process
            .as_ref()
            .unwrap_or_else(|| panic!("node {} is down", self.nodes[i].name))
    }

    /// Node `i`'s REST API.
    pub fn api(&self, i: usize) -> SocketAddr {
        self.up(i).api
    }

    /// Activeflows node `i` started for SIP calls since its process started (its own
    /// `activeflow_started_total{reference_type="call"}`, whatever the backing).
    pub fn calls_started(&self, i: usize) -> u64 {
        scrape(
            self.up(i).metrics,
            "activeflow_started_total{reference_type=\"call\"}",
        ) as u64
    }

    /// SIGKILL (kill -9) node `i` and reap it: no drain, no goodbye.
    pub fn kill(&mut self, i: usize) {
        let spawned = self.nodes[i].process.take().expect("node up");
        spawned.reaper.assert_no_panic();
        drop(spawned); // Reaper: Child::kill is SIGKILL, then wait
    }

    /// Starts node `i` again with the same name, SIP address and config.
    pub fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].process.is_none(), "node {i} is up");
        self.launch(i);
    }
}

impl Drop for NodeSet {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            drop(node.process.take());
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
