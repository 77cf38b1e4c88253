//! The membership's store side (issue 20), in a task of its own so that the heartbeat and the
//! lease renewal never wait on PostgreSQL: bringing this node back when its run was declared
//! lost, and, as the lease holder, declaring lost nodes (each declaration in its own task,
//! retried at a later round until the store and the lost mark are both written) and runs the
//! store lists `up` that no longer beat.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{holder_name, js_err, lock, Membership};
use crate::cluster::ClusterError;
use crate::engine::{EndReason, StopAll};

/// How a declaration ends: a mark for the cluster (a node seen beating), or the store only (a
/// run listed `up` in the store that never beat where this node could see it).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Write,
    StoreOnly,
}

impl Membership {
    pub(super) async fn reaper_loop(self) {
        let every = self.inner.cluster.timers.heartbeat;
        let timeout = self.inner.cluster.timers.node_timeout;
        let mut last_reconcile: Option<Instant> = None;
        loop {
            tokio::time::sleep(every).await;
            self.paused().await;
            if let Err(e) = self.comeback().await {
                tracing::warn!(error = %e, "cluster: lost mark not read");
            }
            if !self.may_reap(every, timeout) {
                continue;
            }
            self.reap();
            if last_reconcile.is_none_or(|t| t.elapsed() >= timeout) {
                last_reconcile = Some(Instant::now());
                self.reconcile().await;
            }
        }
    }

    /// Whether this node reaps now: it holds the lease (renewed lately), is not rejoining, and
    /// has beaten and watched without a gap for the whole timeout.
    fn may_reap(&self, every: Duration, timeout: Duration) -> bool {
        if self.inner.rejoining.load(Ordering::Relaxed) {
            return false;
        }
        let fresh = lock(&self.inner.fresh);
        let held = fresh
            .held
            .is_some_and(|at| at.elapsed() < every.saturating_mul(2).min(timeout));
        held && fresh.since.elapsed() >= timeout
    }

    /// Ends this node's work and rejoins when its run was declared lost: the store said so
    /// (a fenced write: authoritative), or the lost mark names the current run.
    async fn comeback(&self) -> Result<(), ClusterError> {
        let inner = &self.inner;
        let me = inner.cluster.node_id.to_string();
        let current = inner.cluster.current_incarnation().to_string();
        let fenced = (inner.hooks.fenced)();
        let mut proof = fenced || lock(&inner.marks).get(&me) == Some(&current);
        if !proof && inner.suspect.swap(false, Ordering::Relaxed) {
            // Read the mark itself: the watch may lag a comeback.
            let wait = inner.cluster.timers.node_timeout;
            let read = tokio::time::timeout(wait, inner.lost.get(me.as_str())).await;
            match read {
                Ok(Ok(mark)) => proof = mark.is_some_and(|v| v.as_ref() == current.as_bytes()),
                Ok(Err(e)) => {
                    inner.suspect.store(true, Ordering::Relaxed);
                    return Err(js_err("lost mark")(e.to_string()));
                }
                Err(_) => {
                    inner.suspect.store(true, Ordering::Relaxed);
                    return Err(js_err("lost mark")("timed out".into()));
                }
            }
        }
        if proof {
            self.rejoin(fenced).await;
        }
        Ok(())
    }

    async fn rejoin(&self, fenced: bool) {
        let inner = &self.inner;
        let me = inner.cluster.node_id.as_str();
        inner.rejoining.store(true, Ordering::Relaxed);
        tracing::warn!(
            node_id = %me,
            incarnation = %inner.cluster.current_incarnation(),
            by_store = fenced,
            "cluster: this node was declared lost; ending what it holds (node_lost) and rejoining"
        );
        let ended = inner
            .hooks
            .supervisor
            .send(StopAll {
                reason: EndReason::NodeLost,
            })
            .await
            .unwrap_or(0);
        let next = uuid::Uuid::new_v4();
        // The new run beats only once the store writes for it.
        if let Some(store) = inner.hooks.store.clone() {
            let run = next.to_string();
            loop {
                let (s, r) = (store.clone(), run.clone());
                match tokio::task::spawn_blocking(move || s.rejoin(&r)).await {
                    Ok(Ok(())) => break,
                    Ok(Err(e)) => tracing::error!(error = %e, "cluster: store rejoin failed"),
                    Err(e) => tracing::error!(error = %e, "cluster: store rejoin task failed"),
                }
                tokio::time::sleep(inner.cluster.timers.heartbeat).await;
            }
        }
        inner.cluster.set_incarnation(next);
        inner.lease.lock().await.rename(holder_name(&inner.cluster));
        // Fenced refusals of the old run's last batches are no news now.
        let _ = (inner.hooks.fenced)();
        inner.suspect.store(false, Ordering::Relaxed);
        inner.rejoining.store(false, Ordering::Relaxed);
        inner.rejoins.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cluster_rejoined();
        tracing::warn!(node_id = %me, ended, incarnation = %next, "cluster: rejoined");
    }

    /// As the lease holder: starts a declaration for every node whose beat is too old and whose
    /// run is not marked yet (none twice at once).
    fn reap(&self) {
        let inner = &self.inner;
        let me = inner.cluster.node_id.as_str();
        let timeout = inner.cluster.timers.node_timeout;
        let stale: Vec<(String, String)> = {
            let marks = lock(&inner.marks);
            lock(&inner.table)
                .iter()
                .filter(|(id, seen)| *id != me && seen.at.elapsed() > timeout)
                .filter(|(id, seen)| marks.get(*id) != Some(&seen.beat.incarnation))
                .map(|(id, seen)| (id.clone(), seen.beat.incarnation.clone()))
                .collect()
        };
        for (node, incarnation) in stale {
            self.spawn_declare(node, incarnation, Mark::Write);
        }
    }

    fn spawn_declare(&self, node: String, incarnation: String, mark: Mark) {
        if !lock(&self.inner.declaring).insert(node.clone()) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.declare(&node, &incarnation, mark).await {
                tracing::warn!(node_id = %node, error = %e, "cluster: node loss not declared; retrying");
            }
            lock(&this.inner.declaring).remove(&node);
        });
    }

    /// Declares run `incarnation` of `node` lost: the store first (it ends the records and
    /// fences the run in one transaction, at most once), then the mark. Whatever failed is
    /// done again at a later round: a store that declared already answers `None`, and the mark
    /// is known locally only once it is in the bucket.
    async fn declare(&self, node: &str, incarnation: &str, mark: Mark) -> Result<(), ClusterError> {
        let inner = &self.inner;
        let revision = match mark {
            Mark::Write => {
                let previous = inner
                    .lost
                    .entry(node)
                    .await
                    .map_err(|e| js_err("lost mark")(e.to_string()))?;
                match previous {
                    Some(e) if e.value.as_ref() == incarnation.as_bytes() => {
                        lock(&inner.marks).insert(node.to_string(), incarnation.to_string());
                        return Ok(());
                    }
                    Some(e) => e.revision,
                    None => 0,
                }
            }
            Mark::StoreOnly => 0,
        };
        let loss = match inner.hooks.store.clone() {
            Some(store) => {
                let (n, i) = (node.to_string(), incarnation.to_string());
                let now = crate::clock::timestamp();
                tokio::task::spawn_blocking(move || {
                    store.declare_node_lost(&n, &i, EndReason::NodeLost.as_str(), &now)
                })
                .await
                .map_err(|e| js_err("declare node lost")(e.to_string()))?
                .map_err(|e| js_err("declare node lost")(e.to_string()))?
            }
            None => None,
        };
        let (activeflows, calls) = loss
            .as_ref()
            .map_or((0, 0), |l| (l.activeflows.len(), l.calls.len()));
        if mark == Mark::StoreOnly {
            if loss.is_some() && activeflows + calls == 0 {
                tracing::info!(node_id = %node, %incarnation, "cluster: run gone without a heartbeat closed in the store");
            } else if loss.is_some() {
                tracing::warn!(
                    node_id = %node,
                    %incarnation,
                    activeflows,
                    calls,
                    "cluster: run up in the store but not beating declared lost; its records ended node_lost"
                );
            }
            return Ok(());
        }
        let value = bytes::Bytes::from(incarnation.to_string().into_bytes());
        // Expected revision: of two reapers (a lease handover), one writes the mark; the
        // other reads it at its next round.
        inner
            .lost
            .update(node, value, revision)
            .await
            .map_err(|e| js_err("lost mark")(e.to_string()))?;
        lock(&inner.marks).insert(node.to_string(), incarnation.to_string());
        inner.declared.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cluster_node_declared_lost();
        tracing::warn!(
            node_id = %node,
            %incarnation,
            activeflows,
            calls,
            "cluster: node lost; its activeflows and calls ended node_lost"
        );
        Ok(())
    }

    /// Declares (in the store only) every run the store lists `up` whose node has not beaten
    /// under that run for the whole timeout: a node that died before this one watched it.
    async fn reconcile(&self) {
        let inner = &self.inner;
        let Some(store) = inner.hooks.store.clone() else {
            return;
        };
        let runs = match tokio::task::spawn_blocking(move || store.up_runs()).await {
            Ok(Ok(runs)) => runs,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cluster: runs up in the store not listed");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cluster: runs up in the store not listed");
                return;
            }
        };
        let me = inner.cluster.node_id.as_str();
        let timeout = inner.cluster.timers.node_timeout;
        let now = Instant::now();
        let mut due = Vec::new();
        {
            let table = lock(&inner.table);
            let mut unseen = lock(&inner.unseen);
            let mut still = std::collections::BTreeMap::new();
            for (node, incarnation) in runs {
                let beating = table
                    .get(&node)
                    .is_some_and(|s| s.beat.incarnation == incarnation);
                if node == me || beating {
                    continue;
                }
                let key = (node, incarnation);
                let since = unseen.get(&key).copied().unwrap_or(now);
                if since.elapsed() > timeout {
                    due.push(key.clone());
                }
                still.insert(key, since);
            }
            *unseen = still;
        }
        for (node, incarnation) in due {
            self.spawn_declare(node, incarnation, Mark::StoreOnly);
        }
    }
}
