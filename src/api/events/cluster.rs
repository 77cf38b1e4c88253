//! The cluster path of `GET /v1/events`: a reader of the cluster's JetStream stream (every
//! node's events, in stream order), rendered as the local path renders the bus. SSE `id:` is
//! the stream sequence, so `Last-Event-ID` resumes on any node. NATS down: 503 with
//! `Retry-After`, never a hang.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Source, MAX_BATCH};
use crate::api::ApiError;
use crate::cluster::events::reader::{Item, StreamReader};
use crate::cluster::Cluster;
use crate::events::{EventBus, EventFilter, Subscription};

/// `Retry-After` (seconds) when the stream cannot be read.
const UNAVAILABLE_RETRY_AFTER: u32 = 2;

/// A cluster reader: the stream's consumer, its place among `events.max_readers` (a bus
/// subscription never read) and the bus, whose close ends the stream at shutdown.
pub(super) struct ClusterSource {
    reader: StreamReader,
    place: Subscription,
    bus: EventBus,
}

/// Opens the stream for a reader resuming after `last_event_id`; 503 when NATS is unavailable.
pub(super) async fn open(
    cluster: &Cluster,
    bus: &EventBus,
    place: Subscription,
    last_event_id: Option<u64>,
) -> Result<ClusterSource, ApiError> {
    let reader = StreamReader::open(cluster, last_event_id)
        .await
        .map_err(|e| ApiError::Busy {
            message: e.to_string(),
            retry_after_seconds: UNAVAILABLE_RETRY_AFTER,
        })?;
    Ok(ClusterSource {
        reader,
        place,
        bus: bus.clone(),
    })
}

impl Source for ClusterSource {
    async fn next_chunk(&mut self, filter: EventFilter) -> Option<Option<Bytes>> {
        let items = tokio::select! {
            items = self.reader.next(MAX_BATCH) => items?,
            () = self.bus.closed() => return None,
        };
        Some(render(&items, filter))
    }

    fn into_place(self) -> Subscription {
        self.place
    }
}

/// Items as SSE messages; `None` when the filter left nothing.
fn render(items: &[Item], filter: EventFilter) -> Option<Bytes> {
    let mut out = BytesMut::new();
    for item in items {
        match item {
            Item::Event {
                sequence,
                kind,
                data,
            } => {
                if !filter.contains(*kind) {
                    continue;
                }
                out.put_slice(
                    format!("id: {sequence}\nevent: {}\ndata: ", kind.as_str()).as_bytes(),
                );
                out.put_slice(data);
                out.put_slice(b"\n\n");
            }
            Item::Exceeded {
                last_event_id,
                oldest_id,
            } => {
                crate::metrics::events_window_exceeded();
                out.put_slice(&super::window_exceeded(*last_event_id, *oldest_id));
            }
        }
    }
    (!out.is_empty()).then(|| out.freeze())
}
