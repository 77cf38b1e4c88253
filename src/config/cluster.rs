//! `[cluster]` (issue 20): one node of many, sharing PostgreSQL (`[storage] backend =
//! "postgres"`) and talking over NATS. Absent or `nats_url = ""`: a single node, the default.

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError, StorageConfig};

/// The `[cluster]` section; every key has a default, so the section may be left out.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's name in the cluster: 1..=64 of `A-Za-z0-9_-` (it is part of NATS subjects
    /// and key-value keys). Required when `nats_url` is set.
    pub node_id: String,
    /// `nats://host:port` of the NATS server (JetStream enabled); "" = no cluster.
    pub nats_url: String,
    /// How often this node writes its heartbeat.
    pub heartbeat_ms: u64,
    /// A node whose heartbeat is older than this is lost (its activeflows end `node_lost`).
    pub node_timeout_ms: u64,
    /// How long a request forwarded to the owning node waits before the API answers 503.
    pub forward_timeout_ms: u64,
    /// First token of every NATS subject, stream and bucket this cluster uses (1..=32 of
    /// `A-Za-z0-9_-`): clusters sharing one NATS server need different prefixes.
    pub prefix: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: String::new(),
            nats_url: String::new(),
            heartbeat_ms: 1000,
            node_timeout_ms: 5000,
            forward_timeout_ms: 2000,
            prefix: crate::cluster::PREFIX.to_string(),
        }
    }
}

impl ClusterConfig {
    /// True when this node is part of a cluster.
    pub fn is_enabled(&self) -> bool {
        !self.nats_url.is_empty()
    }
}

/// The storage backend named by `storage.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBackend {
    Sqlite,
    Postgres,
}

impl StorageBackend {
    pub fn parse(raw: &str) -> Result<StorageBackend, ConfigError> {
        match raw {
            "sqlite" => Ok(StorageBackend::Sqlite),
            "postgres" => Ok(StorageBackend::Postgres),
            _ => Err(invalid(
                "storage.backend",
                "must be \"sqlite\" or \"postgres\"",
            )),
        }
    }
}

/// A node name usable in NATS subjects and key-value keys.
fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks `[cluster]` against `[storage]`: a cluster needs a node id, timers that make sense,
/// and the shared PostgreSQL store (each node's SQLite file would be an island).
pub(super) fn validate(
    cluster: &ClusterConfig,
    storage: &StorageConfig,
) -> Result<(), ConfigError> {
    let backend = StorageBackend::parse(&storage.backend)?;
    if backend == StorageBackend::Postgres && storage.url.is_empty() {
        return Err(invalid(
            "storage.url",
            "required with storage.backend = \"postgres\" (postgres://user@host:port/db)",
        ));
    }
    let postgres_url =
        storage.url.starts_with("postgres://") || storage.url.starts_with("postgresql://");
    if !storage.url.is_empty() && !postgres_url {
        return Err(invalid("storage.url", "must be a postgres:// URL"));
    }
    if !cluster.node_id.is_empty() && !valid_node_id(&cluster.node_id) {
        return Err(invalid(
            "cluster.node_id",
            "1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'",
        ));
    }
    if !cluster.is_enabled() {
        return Ok(());
    }
    if !cluster.nats_url.starts_with("nats://") {
        return Err(invalid(
            "cluster.nats_url",
            "must be a nats://host:port URL",
        ));
    }
    if cluster.node_id.is_empty() {
        return Err(invalid(
            "cluster.node_id",
            "required when cluster.nats_url is set",
        ));
    }
    if backend != StorageBackend::Postgres {
        return Err(invalid(
            "storage.backend",
            "a cluster needs the shared store: storage.backend = \"postgres\"",
        ));
    }
    if cluster.heartbeat_ms == 0 || cluster.node_timeout_ms < 2 * cluster.heartbeat_ms {
        return Err(invalid(
            "cluster.node_timeout_ms",
            "must be at least twice cluster.heartbeat_ms (and heartbeat_ms at least 1)",
        ));
    }
    if cluster.prefix.len() > 32 || !valid_node_id(&cluster.prefix) {
        return Err(invalid(
            "cluster.prefix",
            "1 to 32 characters of A-Z, a-z, 0-9, '_' and '-'",
        ));
    }
    if cluster.forward_timeout_ms == 0 {
        return Err(invalid("cluster.forward_timeout_ms", "must be at least 1"));
    }
    Ok(())
}
