//! The node's control tasks in a cluster (issue 20): serving requests forwarded to this node
//! (`forward`) and following flow changes (`flows`). Started once by `app.rs` when clustered,
//! on the actix thread that runs the API state (the forward handler's futures are local).

use std::collections::HashSet;
use std::sync::Arc;

use super::forward::{self, ForwardOp, Handler};
use super::{flows, Cluster};
use crate::flow::{FlowId, FlowStore};
use crate::storage::Storage;

/// Metric: forwarded requests by `op` (`ForwardOp::as_str`) and `result` ([`RESULTS`]).
pub const CLUSTER_FORWARDED_REQUESTS_TOTAL: &str = "activeflow_cluster_forwarded_requests_total";
/// `result` label values: answered by the owner, no answer in time (503), bad reply (502).
pub const RESULTS: [&str; 3] = ["ok", "unavailable", "bad_reply"];

/// Counts one forwarded request.
pub fn count_forwarded(op: ForwardOp, result: &'static str) {
    metrics::counter!(CLUSTER_FORWARDED_REQUESTS_TOTAL, "op" => op.as_str(), "result" => result)
        .increment(1);
}

/// Spawns the forward server and the flow follower on the current actix thread. `file_flows`:
/// the ids loaded from this node's flows directory (a resync never removes them).
pub fn start(
    cluster: Cluster,
    handler: Handler,
    flows: Arc<FlowStore>,
    storage: Storage,
    file_flows: HashSet<FlowId>,
) {
    metrics::describe_counter!(
        CLUSTER_FORWARDED_REQUESTS_TOTAL,
        "API requests forwarded to the node that holds the record, by op and result"
    );
    for op in ForwardOp::ALL {
        for result in RESULTS {
            metrics::counter!(CLUSTER_FORWARDED_REQUESTS_TOTAL, "op" => op.as_str(), "result" => result)
                .absolute(0);
        }
    }
    let serving = cluster.clone();
    actix_rt::spawn(async move {
        if let Err(e) = forward::serve(serving, handler).await {
            tracing::error!(error = %e, "cluster: forwarded api requests not served");
        }
    });
    actix_rt::spawn(async move {
        if let Err(e) = flows::follow(cluster, flows, storage, file_flows).await {
            tracing::error!(error = %e, "cluster: flow changes not followed");
        }
    });
}

#[cfg(test)]
#[path = "control_tests.rs"]
mod tests;
