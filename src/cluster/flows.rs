//! Flow change notices (issue 20): a node that creates, replaces or deletes a flow over the API
//! publishes `activeflow.flows.changed` after the store committed it; every node then brings its
//! `FlowStore` in line with the store's API flows (PostgreSQL is the truth, the notice only
//! says "look"): flows added, changed ones replaced, API flows the store no longer has removed
//! (this node's file flows stay). The same full resync runs after every NATS reconnect (seen
//! in the client's `connects` counter, so a reconnect of any length is caught) and every
//! [`RESYNC_EVERY`] (a notice dropped by a slow consumer). Knows no HTTP.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::Cluster;
use crate::flow::{Flow, FlowError, FlowId, FlowStore};
use crate::storage::{FlowRow, FlowSource, Storage};

/// How often the client's reconnect counter is read (an atomic load: cheap).
const RECONNECT_CHECK: Duration = Duration::from_millis(100);
/// A full resync even without a reconnect, for a notice lost to a slow consumer.
pub const RESYNC_EVERY: Duration = Duration::from_secs(60);
/// After a failed resync (the store unreachable), the next attempt waits this long.
const RESYNC_RETRY: Duration = Duration::from_secs(1);

/// The subject flow changes are published on (under `cluster.prefix`).
pub fn changed_subject(cluster: &Cluster) -> String {
    format!("{}.flows.changed", cluster.prefix)
}

/// What happened to a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowChangeOp {
    Created,
    Replaced,
    Deleted,
}

/// The notice: which flow changed and how (the flow itself is read from the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowChange {
    pub flow_id: String,
    pub op: FlowChangeOp,
}

/// Publishes `change` and flushes it. A failure is logged: the store has the change, and
/// reconnecting nodes resync.
pub async fn publish(cluster: &Cluster, change: &FlowChange) {
    let Ok(payload) = serde_json::to_vec(change) else {
        return;
    };
    let sent = cluster
        .nats
        .publish(changed_subject(cluster), payload.into())
        .await;
    if let Err(e) = sent {
        tracing::warn!(flow_id = %change.flow_id, error = %e, "cluster: flow change not published");
        return;
    }
    if let Err(e) = cluster.nats.flush().await {
        tracing::warn!(flow_id = %change.flow_id, error = %e, "cluster: flow change not flushed");
    }
}

/// Subscribes to flow changes and resyncs `flows` from `storage` on each notice, after each
/// reconnect and every [`RESYNC_EVERY`], until the subscription ends. `file_flows` are the ids
/// this node loaded from its flows directory: never removed for being absent from the store's
/// API flows. Spawn it once per node.
pub async fn follow(
    cluster: Cluster,
    flows: Arc<FlowStore>,
    storage: Storage,
    file_flows: HashSet<FlowId>,
) -> Result<(), async_nats::SubscribeError> {
    let mut changes = cluster.nats.subscribe(changed_subject(&cluster)).await?;
    let stats = cluster.nats.statistics();
    let mut connects = stats.connects.load(Ordering::Relaxed);
    let mut check = tokio::time::interval(RECONNECT_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A change made between this node's start-up load and the subscription: resync at once.
    let mut next_resync = Some(tokio::time::Instant::now());
    loop {
        tokio::select! {
            message = changes.next() => {
                let Some(message) = message else { return Ok(()) };
                match serde_json::from_slice::<FlowChange>(&message.payload) {
                    Ok(change) => {
                        let done = resync(&flows, &storage, &file_flows, Some(&change)).await;
                        if !done {
                            next_resync = Some(tokio::time::Instant::now() + RESYNC_RETRY);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cluster: malformed flow change ignored"),
                }
            }
            _ = check.tick() => {
                let now = stats.connects.load(Ordering::Relaxed);
                if now != connects {
                    connects = now;
                    tracing::info!("cluster: reconnected to NATS, resyncing API flows");
                    next_resync = Some(tokio::time::Instant::now());
                }
                if next_resync.is_some_and(|at| at <= tokio::time::Instant::now()) {
                    let done = resync(&flows, &storage, &file_flows, None).await;
                    let wait = if done { RESYNC_EVERY } else { RESYNC_RETRY };
                    next_resync = Some(tokio::time::Instant::now() + wait);
                }
            }
        }
    }
}

/// Brings `flows` in line with the store's API flows; `change` is the notice that asked, if
/// any (a deleted flow it names goes even if it shadowed a file flow). False when the store
/// could not be read (try again later).
async fn resync(
    flows: &FlowStore,
    storage: &Storage,
    file_flows: &HashSet<FlowId>,
    change: Option<&FlowChange>,
) -> bool {
    let Some(store) = storage.store() else {
        return true;
    };
    let rows = match tokio::task::spawn_blocking(move || store.flows(FlowSource::Api)).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cluster: flows not resynced from the store");
            return false;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cluster: flow resync task failed");
            return false;
        }
    };
    apply(flows, &rows, file_flows, change);
    true
}

/// The resync itself (no I/O): removes API flows absent from `rows`, then adds or replaces
/// those that differ. A name held in memory by a stale API flow is handed to the flow the
/// store gives it (the store's names are unique).
pub(crate) fn apply(
    flows: &FlowStore,
    rows: &[FlowRow],
    file_flows: &HashSet<FlowId>,
    change: Option<&FlowChange>,
) {
    let mut wanted: HashMap<FlowId, Flow> = HashMap::new();
    for row in rows {
        match Flow::from_json(row.body.as_bytes()) {
            Ok(flow) => {
                wanted.insert(flow.id, flow);
            }
            Err(e) => {
                tracing::warn!(flow_id = %row.id, error = %e, "cluster: stored flow not loaded")
            }
        }
    }
    let named = change.and_then(|c| c.flow_id.parse::<FlowId>().ok());
    for held in flows.list() {
        let stale = !wanted.contains_key(&held.id)
            && (!file_flows.contains(&held.id) || named == Some(held.id));
        if stale {
            tracing::info!(flow_id = %held.id, "cluster: flow removed (no longer in the store)");
            flows.remove(&held.id);
        }
    }
    let mut pending: Vec<Flow> = wanted
        .into_values()
        .filter(|flow| flows.get(&flow.id).is_none_or(|held| *held != *flow))
        .collect();
    // A rename chain (b takes a's old name) settles in a few rounds; what still conflicts
    // after no round progresses evicts a stale API holder, or stays out (a file flow's name).
    loop {
        let before = pending.len();
        pending.retain(|flow| flows.insert(flow.clone()).is_err());
        if pending.is_empty() || pending.len() == before {
            break;
        }
    }
    for flow in pending {
        let holder = flows
            .get_by_name_or_id(&flow.name)
            .filter(|h| h.id != flow.id && h.name == flow.name);
        if let Some(holder) = holder.filter(|h| !file_flows.contains(&h.id)) {
            flows.remove(&holder.id);
        }
        if let Err(e) = flows.insert(flow.clone()) {
            log_refused(&flow, &e);
        }
    }
}

fn log_refused(flow: &Flow, e: &FlowError) {
    tracing::warn!(flow_id = %flow.id, error = %e, "cluster: stored flow not loaded");
}
