//! Cluster membership (issue 20): heartbeats, node loss and fencing, on two JetStream key-value
//! buckets.
//!
//! - `<prefix>_nodes` (TTL `max_age` = `cluster.node_timeout_ms`): every node puts
//!   `nodes.<node_id>` = [`Beat`] every `cluster.heartbeat_ms`, and deletes it when it leaves
//!   (graceful stop). The reaper lease ([`super::lease`]) lives here too.
//! - `<prefix>_lost` (kept 24 h): `<node_id>` = the incarnation declared lost. Marks must outlive
//!   the heartbeat TTL, or a node paused longer than the timeout would never learn it was lost.
//!
//! Every node watches the nodes bucket (current values first) and judges a heartbeat's age by
//! its own monotonic clock: the time since it saw that key's revision change, never the remote
//! node's wall clock. Any gap in this node's own view (a NATS reconnect, a reopened or stalled
//! watch, a failed beat, a beat loop late by more than the timeout) resets every peer's age to
//! zero, and the reaper acts only after this node has beaten and watched without a gap for the
//! whole timeout: stale evidence of our own never declares a live peer lost.
//!
//! The beat loop only beats and renews the lease. A separate task ([`reaper`]) does the
//! PostgreSQL work: as the lease holder it declares lost every node whose beat is older than the
//! timeout (`Store::declare_node_lost`, then the lost mark with an expected revision, each
//! retried at a later round until both are done) and every run the store lists `up` that has not
//! beaten for the timeout; and it brings this node back when its run was declared lost.
//!
//! This node learns it was declared lost from the store refusing a write as fenced
//! (authoritative: the store fences only a run declared lost), from its lost mark, or, after a
//! gap, by reading the mark itself. It then ends everything it holds with `node_lost`, retries
//! `Store::rejoin` under a new incarnation until the store accepts it, and only then beats as
//! that run. A node that could not beat for longer than the timeout marks itself unreachable
//! ([`Cluster::reachable`]): its SIP side answers OPTIONS and new INVITEs 503 until it beats
//! again.

#[path = "reaper.rs"]
mod reaper;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Addr;
use async_nats::jetstream::kv;
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::beat::{Beat, BeatState, Load, NodeState, NodeView};
use super::bucket::key_value;
use super::lease::Lease;
use super::{Cluster, ClusterError};
use crate::engine::Supervisor;
use crate::storage::Store;

/// How long a lost mark is kept.
const LOST_MARK_AGE: Duration = Duration::from_secs(24 * 3600);
/// Pause before re-opening a watch that ended (NATS gone): bounded retry, not a busy loop.
const WATCH_RETRY: Duration = Duration::from_millis(500);

/// What membership needs from the engine.
pub struct Hooks {
    /// Any supervisor shard (`StopAll` reaches every activeflow of the node).
    pub supervisor: Addr<Supervisor>,
    /// The shared store (`None`: storage disabled).
    pub store: Option<Arc<dyn Store>>,
    /// This node's load now.
    pub load: Box<dyn Fn() -> Load + Send + Sync>,
    /// True once after the store refused a write as fenced (`Storage::take_fenced`).
    pub fenced: Box<dyn Fn() -> bool + Send + Sync>,
    pub sip: SocketAddr,
    pub api: SocketAddr,
}

/// A heartbeat as this node last saw it change.
struct Seen {
    beat: Beat,
    at: Instant,
}

/// How fresh this node's own view is.
struct Freshness {
    /// Since when this node has beaten and watched without a gap (reset by every gap).
    since: Instant,
    /// The last heartbeat NATS acknowledged.
    beat_ok: Instant,
    /// The last lease renewal (or take) NATS acknowledged; `None` while not held.
    held: Option<Instant>,
}

struct Inner {
    cluster: Cluster,
    nodes: kv::Store,
    lost: kv::Store,
    hooks: Hooks,
    started_at: String,
    table: Mutex<BTreeMap<String, Seen>>,
    /// Lost marks: node → incarnation declared lost.
    marks: Mutex<BTreeMap<String, String>>,
    draining: AtomicBool,
    /// After a gap: read this node's own lost mark (the watch may lag a comeback).
    suspect: AtomicBool,
    /// Ending this run's work and rejoining: no lease, no reaping.
    rejoining: AtomicBool,
    fresh: Mutex<Freshness>,
    /// Nodes whose declaration is under way (a task each).
    declaring: Mutex<BTreeSet<String>>,
    /// Runs the store lists `up` with no heartbeat seen: since when.
    unseen: Mutex<BTreeMap<(String, String), Instant>>,
    /// Reopen the nodes watch (it stopped delivering this node's own beats).
    rewatch: Notify,
    suspended_until: Mutex<Option<Instant>>,
    declared: AtomicU64,
    rejoins: AtomicU64,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    lease: tokio::sync::Mutex<Lease>,
}

/// This node's membership: cheap to clone.
#[derive(Clone)]
pub struct Membership {
    inner: Arc<Inner>,
}

fn js_err(what: &'static str) -> impl Fn(String) -> ClusterError {
    move |message| ClusterError::JetStream { what, message }
}

impl Membership {
    /// Opens (or creates) the buckets, puts the first heartbeat and starts the beat, watch and
    /// reaper tasks (on the current tokio runtime). Registers itself on `cluster`.
    pub async fn start(cluster: &Cluster, hooks: Hooks) -> Result<Membership, ClusterError> {
        let js = &cluster.jetstream;
        let nodes_bucket = format!("{}_nodes", cluster.prefix);
        let nodes = key_value(js, &nodes_bucket, cluster.timers.node_timeout).await?;
        let lost = key_value(js, &format!("{}_lost", cluster.prefix), LOST_MARK_AGE).await?;
        let lease = Lease::new(nodes.clone(), holder_name(cluster));
        let now = Instant::now();
        let membership = Membership {
            inner: Arc::new(Inner {
                cluster: cluster.clone(),
                nodes,
                lost,
                hooks,
                started_at: crate::clock::timestamp(),
                table: Mutex::new(BTreeMap::new()),
                marks: Mutex::new(BTreeMap::new()),
                draining: AtomicBool::new(false),
                suspect: AtomicBool::new(false),
                rejoining: AtomicBool::new(false),
                fresh: Mutex::new(Freshness {
                    since: now,
                    beat_ok: now,
                    held: None,
                }),
                declaring: Mutex::new(BTreeSet::new()),
                unseen: Mutex::new(BTreeMap::new()),
                rewatch: Notify::new(),
                suspended_until: Mutex::new(None),
                declared: AtomicU64::new(0),
                rejoins: AtomicU64::new(0),
                tasks: Mutex::new(Vec::new()),
                lease: tokio::sync::Mutex::new(lease),
            }),
        };
        membership.put_beat().await?;
        let tasks = vec![
            tokio::spawn(membership.clone().watch_nodes()),
            tokio::spawn(membership.clone().watch_lost()),
            tokio::spawn(membership.clone().beat_loop()),
            tokio::spawn(membership.clone().reaper_loop()),
        ];
        *lock(&membership.inner.tasks) = tasks;
        let _ = cluster.membership.set(membership.clone());
        tracing::info!(
            node_id = %cluster.node_id,
            incarnation = %cluster.current_incarnation(),
            "cluster: joined"
        );
        Ok(membership)
    }

    /// Every node known: heartbeats seen (with their state) and lost marks, by node id.
    pub fn nodes(&self) -> Vec<NodeView> {
        let inner = &self.inner;
        let me = inner.cluster.node_id.as_str();
        let timeout = inner.cluster.timers.node_timeout;
        let marks = lock(&inner.marks).clone();
        let mut out: BTreeMap<String, NodeView> = BTreeMap::new();
        for (id, seen) in lock(&inner.table).iter() {
            let age = seen.at.elapsed();
            let declared = marks.get(id) == Some(&seen.beat.incarnation);
            let state = match declared || (id != me && age > timeout) {
                true => NodeState::Lost,
                false => seen.beat.state.into(),
            };
            let b = &seen.beat;
            out.insert(
                id.clone(),
                NodeView {
                    node_id: id.clone(),
                    state,
                    incarnation: Some(b.incarnation.clone()),
                    heartbeat_age_ms: Some(u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
                    sip: Some(b.sip.clone()),
                    api: Some(b.api.clone()),
                    load: Some(b.load),
                    started_at: Some(b.started_at.clone()),
                    version: Some(b.version.clone()),
                    this_node: id == me,
                },
            );
        }
        for (id, incarnation) in marks {
            out.entry(id.clone()).or_insert(NodeView {
                node_id: id.clone(),
                state: NodeState::Lost,
                incarnation: Some(incarnation),
                heartbeat_age_ms: None,
                sip: None,
                api: None,
                load: None,
                started_at: None,
                version: None,
                this_node: id == me,
            });
        }
        out.into_values().collect()
    }

    /// How many node runs this node declared lost (as the lease holder).
    pub fn declared_lost(&self) -> u64 {
        self.inner.declared.load(Ordering::Relaxed)
    }

    /// How many times this node came back after being declared lost.
    pub fn rejoins(&self) -> u64 {
        self.inner.rejoins.load(Ordering::Relaxed)
    }

    /// Beats `draining` from now on (shutdown started).
    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
    }

    /// Beats and reaps nothing for `pause` (the watches go on), as a stopped process would
    /// (SIGSTOP); for tests of the comeback.
    pub fn suspend_for(&self, pause: Duration) {
        *lock(&self.inner.suspended_until) = Some(Instant::now() + pause);
    }

    /// Stops every task without a word to the cluster, as a killed process would; for tests of
    /// node loss.
    pub fn halt(&self) {
        for task in lock(&self.inner.tasks).drain(..) {
            task.abort();
        }
    }

    /// Graceful leave: stops the tasks, releases the lease and deletes this node's heartbeat, so
    /// peers drop it at once instead of declaring it lost.
    pub async fn leave(&self) {
        self.halt();
        self.inner.lease.lock().await.release().await;
        let key = beat_key(self.inner.cluster.node_id.as_str());
        if let Err(e) = self.inner.nodes.delete(&key).await {
            tracing::warn!(error = %e, "cluster: heartbeat not deleted at leave");
        }
        tracing::info!(node_id = %self.inner.cluster.node_id, "cluster: left");
    }

    async fn put_beat(&self) -> Result<(), ClusterError> {
        let inner = &self.inner;
        let state = match inner.draining.load(Ordering::Relaxed) {
            true => BeatState::Draining,
            false => BeatState::Up,
        };
        let beat = Beat {
            node_id: inner.cluster.node_id.to_string(),
            incarnation: inner.cluster.current_incarnation().to_string(),
            state,
            sip: inner.hooks.sip.to_string(),
            api: inner.hooks.api.to_string(),
            load: (inner.hooks.load)(),
            started_at: inner.started_at.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let value = serde_json::to_vec(&beat).map_err(|e| js_err("heartbeat")(e.to_string()))?;
        inner
            .nodes
            .put(beat_key(&beat.node_id), value.into())
            .await
            .map_err(|e| js_err("heartbeat")(e.to_string()))?;
        Ok(())
    }

    /// Waits out a [`Membership::suspend_for`].
    async fn paused(&self) {
        let until = *lock(&self.inner.suspended_until);
        if let Some(until) = until.filter(|u| *u > Instant::now()) {
            tokio::time::sleep_until(until).await;
        }
    }

    /// Every gap in this node's own view: peers' ages restart from now, and the reaper waits a
    /// whole timeout of unbroken view again.
    fn reset_view(&self, why: &'static str) {
        let now = Instant::now();
        for seen in lock(&self.inner.table).values_mut() {
            seen.at = now;
        }
        lock(&self.inner.fresh).since = now;
        lock(&self.inner.unseen).clear();
        tracing::debug!(why, "cluster: view reset");
    }

    /// Beats and renews the lease, nothing else (the store's work is the reaper's task).
    async fn beat_loop(self) {
        let inner = &self.inner;
        let every = inner.cluster.timers.heartbeat;
        let timeout = inner.cluster.timers.node_timeout;
        // A beat or renewal NATS does not acknowledge within this counts as failed.
        let wait = every.max(Duration::from_millis(500));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let nats = inner.cluster.nats.clone();
        let mut connects = nats.statistics().connects.load(Ordering::Relaxed);
        let mut last = Instant::now();
        loop {
            tick.tick().await;
            self.paused().await;
            // Back from a gap longer than the timeout (a stopped process, a stalled runtime),
            // or reconnected: peers may have declared this run lost meanwhile, and what this
            // node saw of them is stale.
            let now_connects = nats.statistics().connects.load(Ordering::Relaxed);
            let reconnected = now_connects != connects;
            connects = now_connects;
            if last.elapsed() > timeout || reconnected {
                inner.suspect.store(true, Ordering::Relaxed);
                self.reset_view(if reconnected {
                    "reconnected"
                } else {
                    "beat gap"
                });
            } else if nats.connection_state() != async_nats::connection::State::Connected {
                self.reset_view("disconnected");
            }
            let beat = tokio::time::timeout(wait, self.put_beat()).await;
            let ok = matches!(beat, Ok(Ok(())));
            match beat {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cluster: heartbeat not written"),
                Err(_) => tracing::warn!("cluster: heartbeat not acknowledged in time"),
            }
            self.note_beat(ok, timeout);
            if ok {
                self.check_watch(every);
            }
            let views = self.nodes();
            for state in NodeState::ALL {
                let n = views.iter().filter(|v| v.state == state).count();
                crate::metrics::cluster_nodes(state.as_str(), n);
            }
            let holds = match ok && !inner.rejoining.load(Ordering::Relaxed) {
                true => {
                    let mut lease = inner.lease.lock().await;
                    tokio::time::timeout(wait, lease.hold())
                        .await
                        .unwrap_or(false)
                }
                false => false,
            };
            lock(&inner.fresh).held = holds.then(Instant::now);
            last = Instant::now();
        }
    }

    /// Records a beat's outcome: a failed one is a gap; no beat for longer than the timeout
    /// makes this node unreachable (503 to OPTIONS and new INVITEs) until it beats again.
    fn note_beat(&self, ok: bool, timeout: Duration) {
        let inner = &self.inner;
        let reachable = &inner.cluster.reachable;
        if ok {
            lock(&inner.fresh).beat_ok = Instant::now();
            if !reachable.swap(true, Ordering::Relaxed) {
                tracing::warn!("cluster: beating again; taking calls");
            }
            return;
        }
        self.reset_view("beat failed");
        let silent = lock(&inner.fresh).beat_ok.elapsed() > timeout;
        if silent && reachable.swap(false, Ordering::Relaxed) {
            tracing::error!("cluster: no heartbeat for the node timeout; refusing new calls (503)");
        }
    }

    /// This node's own beats must come back through the nodes watch; when they stopped (a
    /// stalled consumer), the view is stale: reset it and reopen the watch.
    fn check_watch(&self, every: Duration) {
        let me = self.inner.cluster.node_id.as_str();
        let limit = every.saturating_mul(3).max(Duration::from_secs(2));
        let since = lock(&self.inner.fresh).since;
        let stale = match lock(&self.inner.table).get(me) {
            Some(seen) => seen.at.elapsed() > limit,
            // Not seen yet: give a (re)opened watch the same time.
            None => since.elapsed() > limit,
        };
        if stale {
            self.reset_view("own beats not watched");
            self.inner.rewatch.notify_one();
        }
    }

    async fn watch_nodes(self) {
        loop {
            match self.inner.nodes.watch_with_history(">").await {
                Ok(mut watch) => {
                    // Current values first: a node that died before this one started is seen
                    // (and judged from now on).
                    self.reset_view("nodes watch opened");
                    loop {
                        let entry = tokio::select! {
                            entry = watch.next() => entry,
                            () = self.inner.rewatch.notified() => break,
                        };
                        match entry {
                            Some(Ok(entry)) => self.seen_node(entry),
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "cluster: nodes watch");
                                break;
                            }
                            None => break,
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cluster: nodes watch not opened"),
            }
            self.reset_view("nodes watch ended");
            tokio::time::sleep(WATCH_RETRY).await;
        }
    }

    fn seen_node(&self, entry: kv::Entry) {
        let Some(id) = entry.key.strip_prefix("nodes.") else {
            return;
        };
        let mut table = lock(&self.inner.table);
        match entry.operation {
            kv::Operation::Put => match serde_json::from_slice::<Beat>(&entry.value) {
                Ok(beat) => {
                    table.insert(
                        id.to_string(),
                        Seen {
                            beat,
                            at: Instant::now(),
                        },
                    );
                }
                Err(e) => tracing::warn!(node_id = %id, error = %e, "cluster: bad heartbeat"),
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                table.remove(id);
            }
        }
    }

    async fn watch_lost(self) {
        loop {
            match self.inner.lost.watch_with_history(">").await {
                Ok(mut watch) => {
                    while let Some(entry) = watch.next().await {
                        let Ok(entry) = entry else { break };
                        let mut marks = lock(&self.inner.marks);
                        match entry.operation {
                            kv::Operation::Put => {
                                let value = String::from_utf8_lossy(&entry.value).into_owned();
                                marks.insert(entry.key, value);
                            }
                            kv::Operation::Delete | kv::Operation::Purge => {
                                marks.remove(&entry.key);
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cluster: lost-mark watch not opened"),
            }
            tokio::time::sleep(WATCH_RETRY).await;
        }
    }
}

fn beat_key(node: &str) -> String {
    format!("nodes.{node}")
}

fn holder_name(cluster: &Cluster) -> String {
    format!("{}/{}", cluster.node_id, cluster.current_incarnation())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
