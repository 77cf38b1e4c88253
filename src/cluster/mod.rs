//! Cluster mode (issue 20): this node's identity and its NATS connection. Durable state lives
//! in PostgreSQL (`storage::postgres`); NATS carries what moves between nodes: heartbeats in a
//! JetStream key-value bucket, requests forwarded to a record's owner (request/reply), flow
//! change notices and the cluster's event stream. Nothing here holds mutable state shared
//! across nodes. A single node (no `[cluster]`) builds none of it.
//!
//! Subjects and buckets all start with [`Cluster::prefix`] (`cluster.prefix`, default
//! [`PREFIX`]), so several clusters (or parallel tests) may share a NATS server under different
//! prefixes. Membership (heartbeats, node loss, fencing) is in [`membership`]; credentials in
//! `cluster.nats_url` in [`nats_auth`].

pub mod events;

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::config::ClusterConfig;

pub mod beat;
pub mod bucket;
pub mod lease;
pub mod membership;
pub mod nats_auth;

/// The first token of every subject, stream and bucket name this engine uses.
pub const PREFIX: &str = "activeflow";

/// A node's name (`cluster.node_id`): `A-Za-z0-9_-`, so it can be a subject token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    /// `raw` as validated by the config (`cluster.node_id`).
    pub fn new(raw: impl Into<String>) -> NodeId {
        NodeId(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why the cluster could not be joined.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("connecting to NATS at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("NATS JetStream {what}: {message}")]
    JetStream { what: &'static str, message: String },
}

/// Timers of `[cluster]`, parsed.
#[derive(Debug, Clone, Copy)]
pub struct ClusterTimers {
    pub heartbeat: Duration,
    pub node_timeout: Duration,
    pub forward_timeout: Duration,
}

/// This node in the cluster: cheap to clone (the NATS client is a handle).
#[derive(Clone)]
pub struct Cluster {
    pub node_id: NodeId,
    /// This run of the node (a new one at every start): a node declared lost recognises itself
    /// by it, and the store fences writes with it.
    /// The first run's; after a rejoin (a comeback from being declared lost) the run is
    /// [`Cluster::current_incarnation`].
    pub incarnation: uuid::Uuid,
    pub nats: async_nats::Client,
    pub jetstream: async_nats::jetstream::Context,
    pub timers: ClusterTimers,
    /// `cluster.prefix`: the first token of every subject, stream and bucket name.
    pub prefix: String,
    /// False while this node could not beat for longer than `cluster.node_timeout_ms` (cut off
    /// from NATS): the SIP dispatcher then answers OPTIONS and new INVITEs 503, so Kamailio
    /// sends its calls elsewhere. Set by [`membership::Membership`].
    pub reachable: Arc<std::sync::atomic::AtomicBool>,
    current: Arc<Mutex<uuid::Uuid>>,
    membership: Arc<OnceLock<membership::Membership>>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.node_id)
            .field("incarnation", &self.incarnation)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to `cluster.nats_url` (must run inside a tokio runtime; the client's tasks
    /// live on it). The config is validated: a cluster is enabled and has a node id.
    pub async fn connect(config: &ClusterConfig) -> Result<Cluster, ClusterError> {
        // The URL may carry credentials: errors show it as `activeflow config` does.
        let connect_error = |message: String| ClusterError::Connect {
            url: crate::config::masked_url(&config.nats_url),
            message,
        };
        let target = nats_auth::split(&config.nats_url).map_err(connect_error)?;
        let options = async_nats::ConnectOptions::new()
            .name(format!("{PREFIX}-{}", config.node_id))
            .connection_timeout(Duration::from_secs(5))
            // Refused at start when NATS is down; once up, reconnect for ever (a NATS restart
            // must not end the node).
            .max_reconnects(None);
        let nats = target
            .credentials
            .apply(options)
            .connect(target.url.as_str())
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        let jetstream = async_nats::jetstream::new(nats.clone());
        let incarnation = uuid::Uuid::new_v4();
        Ok(Cluster {
            node_id: NodeId::new(config.node_id.clone()),
            incarnation,
            nats,
            jetstream,
            timers: ClusterTimers {
                heartbeat: Duration::from_millis(config.heartbeat_ms),
                node_timeout: Duration::from_millis(config.node_timeout_ms),
                forward_timeout: Duration::from_millis(config.forward_timeout_ms),
            },
            prefix: config.prefix.clone(),
            reachable: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            current: Arc::new(Mutex::new(incarnation)),
            membership: Arc::new(OnceLock::new()),
        })
    }

    /// This node's run now: [`Cluster::incarnation`] until the node rejoins after being declared
    /// lost, then the new one.
    pub fn current_incarnation(&self) -> uuid::Uuid {
        *self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adopts run `next` (a rejoin the store accepted).
    pub(crate) fn set_incarnation(&self, next: uuid::Uuid) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = next;
    }

    /// The heartbeat and node-loss watch, once started ([`membership::Membership::start`]).
    pub fn membership(&self) -> Option<&membership::Membership> {
        self.membership.get()
    }
}

pub mod control;
pub mod flows;
pub mod forward;
