//! Event webhooks: every event to the global webhook (`events.webhook_uri`), an activeflow's
//! events (and those of the call it drives, from the answer on) to its flow's `webhook_uri`.
//! Publishers hand events to one bounded queue without waiting (full → dropped, counted); a
//! router task hands them on to one worker per destination, which POSTs them in order through
//! the engine's `HttpClient` (timeout, size limit, `[http]` policy) with the shared webhook
//! retry policy. A slow destination delays only its own queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Event;
use crate::http::{Attempted, HttpClient, WEBHOOK_RETRY};
use crate::metrics::WebhookOutcome;

/// A destination's worker idle this long stops (a new one starts with the next event).
const WORKER_IDLE: Duration = Duration::from_secs(60);

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

/// A destination's queue and its worker.
struct Worker {
    tx: mpsc::Sender<(u64, Arc<Event>)>,
    task: Option<JoinHandle<()>>,
}

async fn route(
    mut rx: mpsc::Receiver<Delivery>,
    http: HttpClient,
    global: Option<Arc<str>>,
    queue: usize,
) {
    let mut workers: HashMap<Arc<str>, Worker> = HashMap::new();
    while let Some(d) = rx.recv().await {
        let flow_hook = d.hook.as_ref().filter(|h| Some(*h) != global.as_ref());
        for uri in global.iter().chain(flow_hook) {
            hand_over(&mut workers, uri, (d.id, d.event.clone()), &http, queue);
        }
    }
}

/// Queues an event for `uri`'s worker, starting one if needed; full → dropped.
fn hand_over(
    workers: &mut HashMap<Arc<str>, Worker>,
    uri: &Arc<str>,
    item: (u64, Arc<Event>),
    http: &HttpClient,
    queue: usize,
) {
    let item = match workers.get(uri) {
        Some(w) => match w.tx.try_send(item) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(_)) => {
                crate::metrics::webhook_delivery(WebhookOutcome::Dropped);
                return;
            }
            // It stopped after idling.
            Err(mpsc::error::TrySendError::Closed(item)) => item,
        },
        None => item,
    };
    let previous = workers.remove(uri).and_then(|w| w.task);
    let (tx, rx) = mpsc::channel(queue);
    let _ = tx.try_send(item);
    let task = tokio::spawn(work(uri.clone(), rx, http.clone(), previous));
    workers.insert(
        uri.clone(),
        Worker {
            tx,
            task: Some(task),
        },
    );
}

/// Delivers `uri`'s events in order; stops after idling. Waits for the worker it replaces to
/// finish its last events first, so order holds across the restart.
async fn work(
    uri: Arc<str>,
    mut rx: mpsc::Receiver<(u64, Arc<Event>)>,
    http: HttpClient,
    previous: Option<JoinHandle<()>>,
) {
    if let Some(p) = previous {
        let _ = p.await;
    }
    loop {
        match tokio::time::timeout(WORKER_IDLE, rx.recv()).await {
            Ok(Some((id, event))) => deliver(&http, &uri, id, &event).await,
            Ok(None) => return,
            Err(_) => {
                // Refuse new events, deliver those already queued, stop.
                rx.close();
                while let Some((id, event)) = rx.recv().await {
                    deliver(&http, &uri, id, &event).await;
                }
                return;
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
