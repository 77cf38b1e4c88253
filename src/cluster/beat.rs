//! The heartbeat a node puts into the cluster's key-value bucket (`nodes.<node_id>`) every
//! `cluster.heartbeat_ms`, and what `GET /v1/nodes` shows for each node.

use serde::{Deserialize, Serialize};

/// A node's own word on its state, in its heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BeatState {
    /// Taking calls.
    Up,
    /// Shutting down: finishing what it holds, taking nothing new.
    Draining,
}

/// What a node is, as the cluster sees it (`activeflow_cluster_nodes{state}` uses these words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Up,
    Draining,
    /// Its heartbeat is older than `cluster.node_timeout_ms`, or it was declared lost and has not
    /// come back with a new incarnation.
    Lost,
}

impl NodeState {
    /// Every state, in the order `activeflow_cluster_nodes{state}` is exported.
    pub const ALL: [NodeState; 3] = [NodeState::Up, NodeState::Draining, NodeState::Lost];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Up => "up",
            NodeState::Draining => "draining",
            NodeState::Lost => "lost",
        }
    }
}

impl From<BeatState> for NodeState {
    fn from(s: BeatState) -> NodeState {
        match s {
            BeatState::Up => NodeState::Up,
            BeatState::Draining => NodeState::Draining,
        }
    }
}

/// A node's load when it beat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    /// Activeflows running on it.
    pub activeflows: usize,
    /// Call sessions up on it.
    pub calls: usize,
}

/// The JSON value of `nodes.<node_id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Beat {
    pub node_id: String,
    /// The run (`Cluster::current_incarnation`) that wrote it.
    pub incarnation: String,
    pub state: BeatState,
    /// The SIP listener (`sip.listen` as bound).
    pub sip: String,
    /// The REST API listener.
    pub api: String,
    pub load: Load,
    /// RFC 3339 UTC: when this run started.
    pub started_at: String,
    /// The engine's version (`CARGO_PKG_VERSION`).
    pub version: String,
}

/// One row of `GET /v1/nodes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeView {
    pub node_id: String,
    pub state: NodeState,
    /// The run last seen (from its heartbeat, or from its lost mark); `None` when unknown.
    pub incarnation: Option<String>,
    /// Milliseconds since this node saw the heartbeat change (its own clock); `None` when
    /// only a lost mark is known.
    pub heartbeat_age_ms: Option<u64>,
    pub sip: Option<String>,
    pub api: Option<String>,
    pub load: Option<Load>,
    pub started_at: Option<String>,
    pub version: Option<String>,
    /// True for the node that answered.
    #[serde(rename = "self")]
    pub this_node: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The heartbeat's JSON is the documented shape, and reads back the same.
    #[test]
    fn a_beat_round_trips_as_documented() {
        let beat = Beat {
            node_id: "n1".into(),
            incarnation: "i".into(),
            state: BeatState::Draining,
            sip: "127.0.0.1:5060".into(),
            api: "127.0.0.1:8080".into(),
            load: Load {
                activeflows: 3,
                calls: 2,
            },
            started_at: "2026-12-06T00:00:00.000000Z".into(),
            version: "1".into(),
        };
        let json = serde_json::to_value(&beat).unwrap_or_default();
        assert_eq!(json["state"], "draining");
        assert_eq!(json["load"]["activeflows"], 3);
        let back: Option<Beat> = serde_json::from_value(json).ok();
        assert_eq!(back, Some(beat));
        let states: Vec<&str> = NodeState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(states, crate::metrics::CLUSTER_NODE_STATES);
    }
}
