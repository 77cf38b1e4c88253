//! The cluster's event stream (issue 20): every node publishes its local bus's events (the JSON
//! an SSE reader gets) to one JetStream stream, and `GET /v1/events` on any node reads that
//! stream ([`reader`]). Publishing never blocks the engine: the bus's tap only `try_send`s to a
//! bounded queue, one publisher task publishes in order and awaits the acks behind it; a full
//! queue (NATS slow or down) drops the event, counted in `activeflow_cluster_events_dropped_total`.
//! Nothing here sends webhooks: each node delivers its own bus's events (docs/EVENTS.md).

pub mod reader;

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture, stream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Cluster, ClusterError, NodeId};
use crate::events::{EventBus, Published};
use crate::metrics::ClusterEventDrop;

/// How long the stream keeps an event (a reader can resume this far back at most).
pub const MAX_AGE: Duration = Duration::from_secs(3600);
/// The stream is sized for this many nodes' `events.window` each.
pub const NODES_SIZED: usize = 8;
/// Bytes per event the stream's byte limit assumes (an `activeflow_updated` is ~0.5-1 KiB).
const EVENT_BYTES_SIZED: usize = 2048;
/// Events waiting for the publisher task before new ones are dropped.
pub const QUEUE: usize = 10_000;
/// Publishes whose ack is awaited at once (they are sent in order; acks settle behind).
const IN_FLIGHT: usize = 256;
/// A publish not acked this long after it was sent counts as `unconfirmed`.
const ACK_WAIT: Duration = Duration::from_secs(5);

/// Header: the event's type (`activeflow_created`, ...), so readers filter without parsing.
pub const HEADER_TYPE: &str = "Activeflow-Event-Type";
/// Header: the node that published it.
pub const HEADER_NODE: &str = "Activeflow-Node";

/// The stream's name: `ACTIVEFLOW_EVENTS`.
pub fn stream_name(cluster: &Cluster) -> String {
    stream_name_in(&cluster.prefix)
}

fn stream_name_in(prefix: &str) -> String {
    format!("{}_EVENTS", prefix.to_ascii_uppercase())
}

/// The subject node `node` publishes on: `activeflow.events.<node_id>`.
pub fn subject(cluster: &Cluster, node: &NodeId) -> String {
    subject_in(&cluster.prefix, node)
}

fn subject_in(prefix: &str, node: &NodeId) -> String {
    format!("{prefix}.events.{node}")
}

/// The stream's configuration for nodes under `cluster.prefix` = `prefix` with
/// `events.window` = `window`.
fn stream_config(prefix: &str, window: usize) -> stream::Config {
    let messages = window.max(1).saturating_mul(NODES_SIZED);
    stream::Config {
        name: stream_name_in(prefix),
        subjects: vec![format!("{prefix}.events.*")],
        max_age: MAX_AGE,
        max_messages: i64::try_from(messages).unwrap_or(i64::MAX),
        max_bytes: i64::try_from(messages.saturating_mul(EVENT_BYTES_SIZED)).unwrap_or(i64::MAX),
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

/// The event stream, created if no node did yet (idempotent: the first node's limits stay).
pub async fn ensure_stream(
    cluster: &Cluster,
    window: usize,
) -> Result<stream::Stream, ClusterError> {
    cluster
        .jetstream
        .get_or_create_stream(stream_config(&cluster.prefix, window))
        .await
        .map_err(|e| ClusterError::JetStream {
            what: "event stream",
            message: e.to_string(),
        })
}

/// Creates the stream if needed and taps `bus`: from now on every event it publishes goes to
/// the stream too. Must run inside a tokio runtime (the publisher task is spawned on it).
pub async fn start(cluster: &Cluster, bus: &EventBus, window: usize) -> Result<(), ClusterError> {
    ensure_stream(cluster, window).await?;
    let (tx, rx) = mpsc::channel::<Published>(QUEUE);
    let tap = Box::new(move |p: &Published| {
        if tx.try_send(p.clone()).is_err() {
            crate::metrics::cluster_event_dropped(ClusterEventDrop::QueueFull);
        }
    });
    if bus.set_tap(tap).is_err() {
        return Err(ClusterError::JetStream {
            what: "event stream",
            message: "the event bus is already tapped".into(),
        });
    }
    let publisher = Publisher {
        jetstream: cluster.jetstream.clone(),
        subject: subject(cluster, &cluster.node_id),
        node: cluster.node_id.clone(),
        in_flight: VecDeque::with_capacity(IN_FLIGHT),
        failing: false,
    };
    tokio::spawn(publisher.run(rx));
    Ok(())
}

/// The one task that publishes this node's events, in the order the bus gave them ids.
struct Publisher {
    jetstream: jetstream::Context,
    subject: String,
    node: NodeId,
    /// Sent, ack not yet seen: (sent at, ack).
    in_flight: VecDeque<(Instant, PublishAckFuture)>,
    /// The last publish failed (logged once per failing spell, not per event).
    failing: bool,
}

impl Publisher {
    async fn run(mut self, mut rx: mpsc::Receiver<Published>) {
        loop {
            let next = if self.in_flight.is_empty() {
                rx.recv().await
            } else {
                match rx.try_recv() {
                    Ok(p) => Some(p),
                    Err(mpsc::error::TryRecvError::Empty) => {
                        self.settle_oldest().await;
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            let Some(published) = next else { break };
            if self.in_flight.len() >= IN_FLIGHT {
                self.settle_oldest().await;
            }
            self.publish(published).await;
        }
        while !self.in_flight.is_empty() {
            self.settle_oldest().await;
        }
    }

    async fn publish(&mut self, p: Published) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(HEADER_TYPE, p.event.event_type().as_str());
        headers.insert(HEADER_NODE, self.node.as_str());
        let payload = p.event.to_json(p.id);
        match self
            .jetstream
            .publish_with_headers(self.subject.clone(), headers, payload.into())
            .await
        {
            Ok(ack) => self.in_flight.push_back((Instant::now(), ack)),
            Err(e) => {
                crate::metrics::cluster_event_dropped(ClusterEventDrop::PublishFailed);
                self.failed(&e);
            }
        }
    }

    /// Waits for the oldest publish's ack, at most until `ACK_WAIT` after it was sent (an ack
    /// already received settles at once, however late it is looked at).
    async fn settle_oldest(&mut self) {
        let Some((sent, ack)) = self.in_flight.pop_front() else {
            return;
        };
        match tokio::time::timeout_at(sent + ACK_WAIT, ack).await {
            Ok(Ok(_)) => {
                if self.failing {
                    self.failing = false;
                    tracing::info!("cluster events: publishing to the stream again");
                }
            }
            Ok(Err(e)) => {
                crate::metrics::cluster_event_dropped(ClusterEventDrop::Unconfirmed);
                self.failed(&e);
            }
            Err(_) => {
                crate::metrics::cluster_event_dropped(ClusterEventDrop::Unconfirmed);
                self.failed(&"no ack in time");
            }
        }
    }

    fn failed(&mut self, error: &dyn std::fmt::Display) {
        if !self.failing {
            self.failing = true;
            tracing::warn!(error = %error, "cluster events: publishing to the stream fails; \
                events are dropped (activeflow_cluster_events_dropped_total) until it recovers");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_sized_by_the_window_and_named_after_the_prefix() {
        let c = stream_config(crate::cluster::PREFIX, 1000);
        assert_eq!(c.name, "ACTIVEFLOW_EVENTS");
        assert_eq!(c.subjects, ["activeflow.events.*"]);
        assert_eq!(c.max_messages, 8000);
        assert_eq!(c.max_bytes, 8000 * 2048);
        assert_eq!(
            subject_in(crate::cluster::PREFIX, &NodeId::new("a-1")),
            "activeflow.events.a-1"
        );
        let other = stream_config("af_c_1", 10);
        assert_eq!(other.name, "AF_C_1_EVENTS");
        assert_eq!(other.subjects, ["af_c_1.events.*"]);
    }
}
