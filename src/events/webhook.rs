//! Event webhooks: every event to the global webhook (`events.webhook_uri`), an activeflow's
//! events (and those of the call it drives, from the answer on) to its flow's `webhook_uri`.
//! Publishers hand events to one bounded queue without waiting (full → dropped, counted); a
//! router task hands them on to one worker per destination (`http::DestinationQueues`, one
//! request at a time), which POSTs them in order through the engine's `HttpClient` (timeout,
//! size limit, `[http]` policy) with the shared webhook retry policy. A slow destination delays
//! only its own queue; an idle destination's worker retires and leaves nothing behind.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::Event;
use crate::http::{Attempted, DestinationQueues, HttpClient, QueueLimits, WEBHOOK_RETRY};
use crate::metrics::WebhookOutcome;

/// One event on its way to webhooks.
struct Delivery {
    id: u64,
    event: Arc<Event>,
    /// The flow's webhook, besides the global one.
    hook: Option<Arc<str>>,
}

/// The publishers' end of the webhook queue.
pub(super) struct Feed {
    tx: mpsc::Sender<Delivery>,
    global: bool,
}

impl Feed {
    /// Whether a global webhook wants every event.
    pub(super) fn has_global(&self) -> bool {
        self.global
    }

    /// Queues an event without waiting; false when the queue is full (or the router is gone).
    pub(super) fn offer(&self, id: u64, event: Arc<Event>, hook: Option<Arc<str>>) -> bool {
        self.tx.try_send(Delivery { id, event, hook }).is_ok()
    }
}

/// Starts the router on the current tokio runtime.
pub(super) fn start(http: HttpClient, global: Option<&str>, queue: usize) -> Feed {
    let queue = queue.max(1);
    let (tx, rx) = mpsc::channel(queue);
    let global: Option<Arc<str>> = global.filter(|u| !u.is_empty()).map(Arc::from);
    let feed = Feed {
        tx,
        global: global.is_some(),
    };
    tokio::spawn(route(rx, http, global, queue));
    feed
}

async fn route(
    mut rx: mpsc::Receiver<Delivery>,
    http: HttpClient,
    global: Option<Arc<str>>,
    queue: usize,
) {
    // In order per destination (one at a time); an idle destination's worker retires and
    // leaves no entry behind, so flows with many webhook URIs do not accumulate workers.
    let workers = DestinationQueues::new(
        "event_webhook",
        QueueLimits {
            capacity: queue,
            concurrency: 1,
            // A destination's worker idle this long stops (a new one starts with the next event).
            idle: crate::http::WEBHOOK_WORKER_IDLE,
            // Bounded by the global URI plus the flows' own: no cap of its own.
            destinations: usize::MAX,
        },
    );
    while let Some(d) = rx.recv().await {
        let flow_hook = d.hook.as_ref().filter(|h| Some(*h) != global.as_ref());
        for uri in global.iter().chain(flow_hook) {
            let (http, uri_owned, event, id) = (http.clone(), uri.clone(), d.event.clone(), d.id);
            let job = Box::pin(async move { deliver(&http, &uri_owned, id, &event).await });
            if workers.submit(uri.clone(), job).is_err() {
                crate::metrics::webhook_delivery(WebhookOutcome::Dropped);
            }
        }
    }
}

/// POSTs one event as JSON, retrying 5xx and transient failures.
async fn deliver(http: &HttpClient, uri: &str, id: u64, event: &Event) {
    let body = event.to_json(id);
    let Attempted { outcome, attempts } = http
        .send_retrying(
            reqwest::Method::POST,
            uri,
            Some(("application/json", &body)),
            WEBHOOK_RETRY,
        )
        .await;
    let failure = match outcome {
        Ok(r) if r.status < 400 => None,
        Ok(r) => Some(format!("HTTP {}", r.status)),
        Err(e) => Some(e.to_string()),
    };
    match failure {
        None => crate::metrics::webhook_delivery(WebhookOutcome::Delivered),
        Some(error) => {
            crate::metrics::webhook_delivery(WebhookOutcome::Failed);
            tracing::warn!(webhook = uri, event_id = id, attempts, %error, "event webhook failed");
        }
    }
}
