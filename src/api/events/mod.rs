//! `GET /v1/events`: the event stream as Server-Sent Events. Each reader is a task on the API
//! worker that reads the bus's window from its own cursor and renders events there (never on
//! the engine's threads); the connection holds at most a few rendered batches, so a slow reader
//! falls behind in the window and is told (`window_exceeded`), never buffered without bound.
//! A reader's place among `events.max_readers` lasts as long as its response body, so it bounds
//! the connections (and their buffers) held, not only the readers still being fed.
//! In cluster mode the reader reads the cluster's stream instead ([`cluster`]); the rest (SSE
//! framing, keep-alives, stall handling, `events.max_readers`) is the same path.

mod cluster;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{ApiError, ApiState};
use crate::events::{Batch, EventFilter, Subscription};

/// Events rendered into one chunk at most.
const MAX_BATCH: usize = 256;
/// Rendered chunks waiting for the socket at most (the rest waits in the window).
const CHUNKS_QUEUED: usize = 4;
/// `Retry-After` (seconds) for a reader refused at `events.max_readers`.
const READERS_FULL_RETRY_AFTER: u32 = 5;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::get().to(stream));
}

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    /// Comma-separated event types; all when absent.
    types: Option<String>,
    /// For clients that cannot set headers (a browser's first `EventSource` connection).
    last_event_id: Option<String>,
}

#[utoipa::path(operation_id = "events_stream", get, path = "/v1/events", tag = "events",
    params(("types" = Option<String>, Query, description = "comma-separated: activeflow_created, activeflow_updated, activeflow_ended, activeflow_deleted, call_created, call_answered, call_ended"),
           ("Last-Event-ID" = Option<u64>, Header, description = "resume after this event id (also ?last_event_id=)")),
    responses((status = 200, description = "text/event-stream: `id:`, `event:` and `data:` (JSON) per event; `event: window_exceeded` when events were lost; `: keep-alive` comments", content_type = "text/event-stream"),
              (status = 400, description = "unknown event type or bad Last-Event-ID", body = serde_json::Value),
              (status = 503, description = "events.max_readers streams already open (Retry-After)", body = serde_json::Value)))]
pub(super) async fn stream(
    state: web::Data<ApiState>,
    req: HttpRequest,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = match &query.types {
        Some(list) => EventFilter::parse(list)
            .map_err(|name| ApiError::BadRequest(format!("types: unknown event type {name:?}")))?,
        None => EventFilter::ALL,
    };
    let header = req
        .headers()
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let last_event_id = match header.or(query.last_event_id.as_deref()) {
        None => None,
        Some(raw) => Some(raw.trim().parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!("Last-Event-ID: {raw:?} is not an event id"))
        })?),
    };
    let refused = |full: crate::events::ReadersFull| {
        crate::metrics::events_reader_refused();
        ApiError::Busy {
            message: full.to_string(),
            retry_after_seconds: READERS_FULL_RETRY_AFTER,
        }
    };
    let timing = Timing {
        keep_alive: state.events.keep_alive(),
        stall: state.events.stall_timeout(),
    };
    if let Some(node) = &state.cluster {
        let slot = state.events.try_reserve_reader().map_err(refused)?;
        let source = cluster::open(node, &state.events, slot, last_event_id).await?;
        return Ok(respond(source, filter, timing));
    }
    let subscription = state.events.try_subscribe(last_event_id).map_err(refused)?;
    Ok(respond(subscription, filter, timing))
}

/// Where a reader's events come from: this node's bus, or the cluster's stream.
trait Source: 'static {
    /// The next rendered chunk: `None` when the stream ends, `Some(None)` when the filter left
    /// nothing of a batch. Cancel-safe.
    async fn next_chunk(&mut self, filter: EventFilter) -> Option<Option<Bytes>>;

    /// The reader's place among `events.max_readers`, handed to the body of a stalled reader.
    fn into_place(self) -> Subscription;
}

impl Source for Subscription {
    async fn next_chunk(&mut self, filter: EventFilter) -> Option<Option<Bytes>> {
        let batch = self.next(MAX_BATCH).await?;
        Some(render(&batch, filter))
    }

    fn into_place(self) -> Subscription {
        self
    }
}

/// The streaming response of a reader fed from `source`.
fn respond(source: impl Source, filter: EventFilter, timing: Timing) -> HttpResponse {
    let (tx, rx) = mpsc::channel(CHUNKS_QUEUED);
    let (hand_over, handed_over) = oneshot::channel();
    actix_web::rt::spawn(pump(source, filter, timing, tx, hand_over));
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .body(SseBody::new(rx, handed_over))
}

/// A reader's clocks.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// A comment goes out after this long without events.
    keep_alive: Duration,
    /// A reader whose queue stays full this long is dropped (`events.reader_stall_timeout_ms`).
    stall: Duration,
}

/// Feeds one reader until it goes away, or stops taking chunks for `timing.stall`: then it is
/// dropped. Its subscription is handed over to the body (`hand_over`), so its place among
/// `events.max_readers` stays taken until the body, and with it the connection, is gone: a
/// stalled connection is not polled by actix (its write buffer is full), yet holds its buffers.
/// The body ends the connection with an error once polled, and the reader resumes later with
/// `Last-Event-ID` (or learns it is behind the window). What the body holds meanwhile is at
/// most `CHUNKS_QUEUED` rendered chunks.
async fn pump(
    mut source: impl Source,
    filter: EventFilter,
    timing: Timing,
    tx: mpsc::Sender<Bytes>,
    hand_over: oneshot::Sender<Subscription>,
) {
    // At once, so the reader knows it is subscribed (headers and a first chunk go out).
    let mut sent = send(&tx, Bytes::from_static(b": activeflow events\n\n"), timing).await;
    let mut last_sent = Instant::now();
    while sent == Sent::Queued {
        let next =
            tokio::time::timeout_at(last_sent + timing.keep_alive, source.next_chunk(filter));
        let chunk = tokio::select! {
            c = next => c,
            () = tx.closed() => return,
        };
        let chunk = match chunk {
            Err(_) => Bytes::from_static(b": keep-alive\n\n"),
            // The engine is stopping (or the cluster's stream failed): end the response.
            Ok(None) => return,
            Ok(Some(Some(chunk))) => chunk,
            Ok(Some(None)) => continue,
        };
        sent = send(&tx, chunk, timing).await;
        last_sent = Instant::now();
    }
    if sent == Sent::Stalled {
        crate::metrics::events_reader_dropped();
        // Before `tx` drops, so a body woken by the closed queue finds it and fails; if the
        // body is already gone the subscription drops here.
        let _ = hand_over.send(source.into_place());
    }
}

/// What became of one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Queued,
    /// The body is gone.
    Gone,
    /// The queue stayed full for `timing.stall`.
    Stalled,
}

async fn send(tx: &mpsc::Sender<Bytes>, chunk: Bytes, timing: Timing) -> Sent {
    match tokio::time::timeout(timing.stall, tx.send(chunk)).await {
        Ok(Ok(())) => Sent::Queued,
        Ok(Err(_)) => Sent::Gone,
        Err(_) => Sent::Stalled,
    }
}

/// One batch as SSE messages; `None` when the filter left nothing.
fn render(batch: &Batch, filter: EventFilter) -> Option<Bytes> {
    let mut out = BytesMut::new();
    match batch {
        Batch::Events(events) => {
            for p in events {
                let kind = p.event.event_type();
                if !filter.contains(kind) {
                    continue;
                }
                out.put_slice(format!("id: {}\nevent: {}\ndata: ", p.id, kind.as_str()).as_bytes());
                out.put_slice(&p.event.to_json(p.id));
                out.put_slice(b"\n\n");
            }
        }
        Batch::Exceeded {
            last_event_id,
            oldest_id,
        } => out.put_slice(&window_exceeded(*last_event_id, *oldest_id)),
    }
    (!out.is_empty()).then(|| out.freeze())
}

/// The `window_exceeded` message (no `id:` line: the client's last id stays that of the last
/// event it really got).
fn window_exceeded(last_event_id: u64, oldest_id: u64) -> Vec<u8> {
    let data = serde_json::json!({
        "type": "window_exceeded",
        "last_event_id": last_event_id,
        "oldest_id": oldest_id,
    });
    format!("event: window_exceeded\ndata: {data}\n\n").into_bytes()
}

/// The response body: chunks from the reader's task. Dropped with the connection, and only
/// then does a stalled reader's subscription (its place among `events.max_readers`) end.
struct SseBody {
    rx: mpsc::Receiver<Bytes>,
    /// Sent when the reader stalled and was dropped; unread, the subscription lives in the
    /// channel until the body drops.
    handed_over: oneshot::Receiver<Subscription>,
    /// The stalled reader's subscription once seen: the connection ends with an error (not a
    /// clean end, so the client knows to reconnect with `Last-Event-ID`).
    stalled: Option<Subscription>,
}

impl SseBody {
    fn new(rx: mpsc::Receiver<Bytes>, handed_over: oneshot::Receiver<Subscription>) -> SseBody {
        SseBody {
            rx,
            handed_over,
            stalled: None,
        }
    }
}

/// The reader took no data for `events.reader_stall_timeout_ms`.
#[derive(Debug, thiserror::Error)]
#[error("event stream reader stalled; dropped")]
struct ReaderStalled;

impl MessageBody for SseBody {
    type Error = ReaderStalled;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let body = self.get_mut();
        if body.stalled.is_none() {
            body.stalled = body.handed_over.try_recv().ok();
        }
        if body.stalled.is_some() {
            return Poll::Ready(Some(Err(ReaderStalled)));
        }
        body.rx.poll_recv(cx).map(|chunk| chunk.map(Ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{call_event, EventBus};

    /// A reader on `bus` whose body nobody polls while 20,000 events (far more than its queue)
    /// are published; returns once its pump has ended on the stall, with what the body gets.
    async fn stall_a_reader(
        bus: &EventBus,
    ) -> (mpsc::Receiver<Bytes>, oneshot::Receiver<Subscription>) {
        let subscription = bus.try_subscribe(None).unwrap();
        let (tx, rx) = mpsc::channel(CHUNKS_QUEUED);
        let (hand_over, handed_over) = oneshot::channel();
        let timing = Timing {
            keep_alive: Duration::from_secs(15),
            stall: Duration::from_secs(1),
        };
        let pump = tokio::spawn(pump(subscription, EventFilter::ALL, timing, tx, hand_over));
        for i in 0..20_000 {
            bus.publish(call_event(i), None);
            if i % 500 == 0 {
                tokio::task::yield_now().await;
            }
        }
        tokio::time::timeout(Duration::from_secs(5), pump)
            .await
            .expect("a stalled reader's pump ends")
            .unwrap();
        (rx, handed_over)
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_never_reads_holds_a_few_chunks_then_is_dropped() {
        let bus = EventBus::without_webhooks(100_000, Duration::from_secs(15));
        let (mut rx, handed_over) = stall_a_reader(&bus).await;
        // The connection (the body) is still held: so is its place among max_readers.
        assert_eq!(bus.readers(), 1);
        let mut queued = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            queued.push(chunk);
        }
        assert!(queued.len() <= CHUNKS_QUEUED, "{} chunks", queued.len());
        let events: usize = queued
            .iter()
            .map(|c| c.windows(4).filter(|w| w == b"id: ").count())
            .sum();
        assert!(events <= CHUNKS_QUEUED * MAX_BATCH, "{events} events held");
        // The connection then ends with an error, not a clean end of stream, and its place is
        // free once the body is dropped.
        let body = SseBody::new(rx, handed_over);
        assert!(actix_web::body::to_bytes(body).await.is_err());
        assert_eq!(bus.readers(), 0, "its place among max_readers is free");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_never_polled_again_frees_its_place_when_dropped() {
        let bus = EventBus::without_webhooks(100_000, Duration::from_secs(15));
        let (rx, handed_over) = stall_a_reader(&bus).await;
        let body = SseBody::new(rx, handed_over);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(bus.readers(), 1, "held while the connection is");
        drop(body);
        assert_eq!(bus.readers(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_connection_ends_its_reader() {
        let bus = EventBus::without_webhooks(100_000, Duration::from_secs(15));
        let (tx, rx) = mpsc::channel(CHUNKS_QUEUED);
        let (hand_over, handed_over) = oneshot::channel();
        let timing = Timing {
            keep_alive: Duration::from_secs(15),
            stall: Duration::from_secs(1),
        };
        let subscription = bus.try_subscribe(None).unwrap();
        let pump = tokio::spawn(pump(subscription, EventFilter::ALL, timing, tx, hand_over));
        drop(SseBody::new(rx, handed_over));
        tokio::time::timeout(Duration::from_secs(5), pump)
            .await
            .expect("the pump sees the body gone")
            .unwrap();
        assert_eq!(bus.readers(), 0);
    }
}
