//! One `GET /v1/events` reader of the cluster's stream: an ephemeral ordered push consumer,
//! from the sequence after the reader's `Last-Event-ID` (or from new events). Yields events in
//! stream order with their stream sequence (the SSE `id:`), their JSON's `event_id` set to it and
//! the publishing node added as `node_id`. Reads only: never feeds webhooks.

use std::time::Duration;

use async_nats::jetstream::consumer::{self, push};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};

use super::{stream_name, HEADER_NODE, HEADER_TYPE};
use crate::cluster::Cluster;
use crate::events::EventType;

/// The stream cannot be read now (NATS down or slow): the API answers 503.
#[derive(Debug, thiserror::Error)]
#[error("the cluster event stream is unavailable: {0}")]
pub struct StreamUnavailable(pub String);

/// What a reader gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// One event: its stream sequence, type and JSON.
    Event {
        sequence: u64,
        kind: EventType,
        data: Bytes,
    },
    /// The events after `last_event_id` up to `oldest_id - 1` are not in the stream (aged out,
    /// or an id the stream never gave); reading goes on at `oldest_id`.
    Exceeded { last_event_id: u64, oldest_id: u64 },
}

/// A reader's consumer on the stream.
pub struct StreamReader {
    messages: push::Ordered,
    /// Said once, first.
    exceeded: Option<Item>,
}

/// Where a reader resuming after `last` starts, given the stream's first and last sequence,
/// and whether it must be told that events were lost.
fn start_at(
    last: Option<u64>,
    first_seq: u64,
    last_seq: u64,
) -> (consumer::DeliverPolicy, Option<Item>) {
    use consumer::DeliverPolicy as P;
    let Some(last) = last else {
        return (P::New, None);
    };
    let exceeded = |oldest_id| {
        Some(Item::Exceeded {
            last_event_id: last,
            oldest_id,
        })
    };
    if last > last_seq {
        // Never given by this stream (another one's, or a single node's window id).
        let next = last_seq + 1;
        return (
            P::ByStartSequence {
                start_sequence: next,
            },
            exceeded(next),
        );
    }
    let next = last + 1;
    if next < first_seq {
        return (
            P::ByStartSequence {
                start_sequence: first_seq,
            },
            exceeded(first_seq),
        );
    }
    (
        P::ByStartSequence {
            start_sequence: next,
        },
        None,
    )
}

impl StreamReader {
    /// A reader after `last_event_id` (a stream sequence), or of new events when `None`.
    /// Fails at once when NATS is not connected, or after `cluster.forward_timeout_ms`.
    pub async fn open(
        cluster: &Cluster,
        last_event_id: Option<u64>,
    ) -> Result<StreamReader, StreamUnavailable> {
        if cluster.nats.connection_state() != async_nats::connection::State::Connected {
            return Err(StreamUnavailable("not connected to NATS".into()));
        }
        let wait = cluster
            .timers
            .forward_timeout
            .max(Duration::from_millis(100));
        tokio::time::timeout(wait, Self::create(cluster, last_event_id))
            .await
            .map_err(|_| StreamUnavailable("NATS did not answer in time".into()))?
    }

    async fn create(
        cluster: &Cluster,
        last_event_id: Option<u64>,
    ) -> Result<StreamReader, StreamUnavailable> {
        let unavailable = |e: &dyn std::fmt::Display| StreamUnavailable(e.to_string());
        let mut stream = cluster
            .jetstream
            .get_stream(stream_name(cluster))
            .await
            .map_err(|e| unavailable(&e))?;
        let state = stream
            .info()
            .await
            .map_err(|e| unavailable(&e))?
            .state
            .clone();
        let (deliver_policy, exceeded) =
            start_at(last_event_id, state.first_sequence, state.last_sequence);
        let consumer = stream
            .create_consumer(push::OrderedConfig {
                deliver_subject: cluster.nats.new_inbox(),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(&e))?;
        let messages = consumer.messages().await.map_err(|e| unavailable(&e))?;
        Ok(StreamReader { messages, exceeded })
    }

    /// The next items (at least one, at most `max`), waiting for one; `None` when the stream
    /// failed (the reader reconnects with `Last-Event-ID`). Cancel-safe.
    pub async fn next(&mut self, max: usize) -> Option<Vec<Item>> {
        if let Some(exceeded) = self.exceeded.take() {
            return Some(vec![exceeded]);
        }
        let mut items = Vec::new();
        let first = self.messages.next().await?;
        items.extend(self.item(first)?);
        while items.len() < max.max(1) {
            match self.messages.next().now_or_never() {
                Some(Some(m)) => items.extend(self.item(m)?),
                _ => break,
            }
        }
        Some(items)
    }

    /// One message as an item; `Some(None)` for one that is not an event of ours (skipped),
    /// `None` when the consumer failed.
    fn item(
        &self,
        message: Result<async_nats::jetstream::Message, push::OrderedError>,
    ) -> Option<Option<Item>> {
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cluster events: stream reader failed");
                return None;
            }
        };
        let sequence = message.info().ok()?.stream_sequence;
        let headers = message.headers.as_ref();
        let header = |name| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
        let Some(kind) = header(HEADER_TYPE).and_then(EventType::parse) else {
            return Some(None);
        };
        let node = header(HEADER_NODE).unwrap_or("");
        let data =
            restamp(&message.payload, sequence, node).unwrap_or_else(|| message.payload.clone());
        Some(Some(Item::Event {
            sequence,
            kind,
            data,
        }))
    }
}

/// The event's JSON with `event_id` set to the stream sequence and `node_id` after it. The JSON
/// is ours (`Event::to_json`: `{"type":"...","event_id":N,...`), so this splices bytes instead
/// of parsing; `None` when it does not look like ours.
fn restamp(json: &[u8], sequence: u64, node: &str) -> Option<Bytes> {
    const KEY: &[u8] = b",\"event_id\":";
    let head = &json[..json.len().min(64)];
    let at = head.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = json[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0
        || !node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return None;
    }
    let mut out = Vec::with_capacity(json.len() + node.len() + 32);
    out.extend_from_slice(&json[..at]);
    out.extend_from_slice(sequence.to_string().as_bytes());
    out.extend_from_slice(b",\"node_id\":\"");
    out.extend_from_slice(node.as_bytes());
    out.push(b'"');
    out.extend_from_slice(&json[at + digits..]);
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use consumer::DeliverPolicy as P;

    #[test]
    fn restamp_sets_the_stream_sequence_and_the_node() {
        let json = br#"{"type":"call_created","event_id":1732612345678912,"id":"x"}"#;
        let out = restamp(json, 42, "node-a").unwrap();
        assert_eq!(
            &out[..],
            br#"{"type":"call_created","event_id":42,"node_id":"node-a","id":"x"}"#
        );
        assert!(restamp(b"{\"id\":1}", 1, "a").is_none());
        assert!(restamp(json, 1, "a\"b").is_none());
    }

    #[test]
    fn resuming_starts_after_the_id_or_says_what_was_lost() {
        assert!(matches!(start_at(None, 1, 10), (P::New, None)));
        assert!(matches!(
            start_at(Some(5), 1, 10),
            (P::ByStartSequence { start_sequence: 6 }, None)
        ));
        assert!(matches!(
            start_at(Some(10), 1, 10),
            (P::ByStartSequence { start_sequence: 11 }, None)
        ));
        let (policy, said) = start_at(Some(2), 7, 10);
        assert!(matches!(policy, P::ByStartSequence { start_sequence: 7 }));
        assert_eq!(
            said,
            Some(Item::Exceeded {
                last_event_id: 2,
                oldest_id: 7
            })
        );
        let (policy, said) = start_at(Some(1_732_612_345_678_912), 1, 10);
        assert!(matches!(policy, P::ByStartSequence { start_sequence: 11 }));
        assert!(said.is_some());
    }
}
