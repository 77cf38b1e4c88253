//! Event webhooks: every event to the global webhook (`events.webhook_uri`), an activeflow's
//! events (and those of the call it drives, from the answer on) to its flow's `webhook_uri`.
//! Publishers hand events to one bounded queue without waiting (full → dropped, counted); a
//! router task hands them on to one worker per destination (`http::DestinationQueues`, one
//! request at a time), which sends them in order through the engine's `HttpClient` (timeout,
//! size limit, `[http]` policy) with the shared webhook retry policy: the global one POSTed, a
//! flow's with its `webhook_method`, each in its format (native or VoIPBIN's, rendered here),
//! signed when `events.webhook_secret` is set (`signature`: each attempt signed afresh).
//! A slow destination delays only its own queue; an idle destination's worker retires.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::hook::{FlowHook, GlobalHook};
use super::signature::WebhookSigner;
use super::{voipbin, Event};
use crate::flow::{WebhookFormat, WebhookMethod};
use crate::http::{Attempted, DestinationQueues, HttpClient, QueueLimits, WEBHOOK_RETRY};
use crate::metrics::WebhookOutcome;

/// Webhook URIs (the global one and activeflows' own) with events in flight at once, as many
/// as `http.webhook_destinations` allows `webhook_send` by default: an API client naming a new
/// `webhook_uri` per activeflow cannot make the router hold unbounded workers.
const DESTINATIONS: usize = 1000;

/// One event on its way to webhooks.
pub(super) struct Delivery {
    pub(super) id: u64,
    pub(super) event: Arc<Event>,
    /// The activeflow's own webhook, besides the global one.
    pub(super) hook: Option<Arc<FlowHook>>,
    /// The activeflow the event is about or (a call event) whose call it is: VoIPBIN's
    /// `activeflow_id` on a call.
    pub(super) activeflow: Option<uuid::Uuid>,
    /// The activeflow as JSON, for VoIPBIN-format webhooks (`data`): only here, never in the
    /// SSE window, and dropped once delivered.
    pub(super) snapshot: Option<Arc<str>>,
}

/// The publishers' end of the webhook queue.
pub(super) struct Feed {
    tx: mpsc::Sender<Delivery>,
    /// The global webhook's format, when there is one.
    global: Option<WebhookFormat>,
}

impl Feed {
    /// Whether a global webhook wants every event.
    pub(super) fn has_global(&self) -> bool {
        self.global.is_some()
    }

    /// Whether the global webhook wants VoIPBIN's shape (so activeflow events need a snapshot).
    pub(super) fn global_wants_voipbin(&self) -> bool {
        self.global == Some(WebhookFormat::Voipbin)
    }

    /// Queues an event without waiting; false when the queue is full (or the router is gone).
    pub(super) fn offer(&self, delivery: Delivery) -> bool {
        self.tx.try_send(delivery).is_ok()
    }
}

/// Starts the router on the current tokio runtime; `global` is the global webhook's URI and
/// format; `signer` signs every request (global and flows' webhooks alike).
pub(super) fn start(
    http: HttpClient,
    global: Option<(&str, WebhookFormat)>,
    queue: usize,
    signer: Option<WebhookSigner>,
) -> Feed {
    let queue = queue.max(1);
    let (tx, rx) = mpsc::channel(queue);
    let global = global
        .filter(|(u, _)| !u.is_empty())
        .map(|(uri, format)| GlobalHook {
            uri: Arc::from(uri),
            format,
        });
    let feed = Feed {
        tx,
        global: global.as_ref().map(|g| g.format),
    };
    let sender = Sender { http, signer };
    tokio::spawn(route(rx, sender, global, queue, DESTINATIONS));
    feed
}

/// A feed whose router is gone (every offer fails): for tests of what publishing decides.
#[cfg(test)]
pub(super) fn detached(global: Option<WebhookFormat>) -> Feed {
    let (tx, _) = mpsc::channel(1);
    Feed { tx, global }
}

/// What delivers: the engine's HTTP client and the key requests are signed with.
#[derive(Clone)]
struct Sender {
    http: HttpClient,
    signer: Option<WebhookSigner>,
}

/// Where one event goes: URI, method, format, and the activeflow a call event belongs to.
struct Target {
    uri: Arc<str>,
    method: WebhookMethod,
    format: WebhookFormat,
    activeflow: Option<uuid::Uuid>,
}

async fn route(
    mut rx: mpsc::Receiver<Delivery>,
    sender: Sender,
    global: Option<GlobalHook>,
    queue: usize,
    destinations: usize,
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
            // Activeflows created over the API bring their own `webhook_uri`: at most
            // `destinations` URIs have a worker at once; an event for one more is dropped
            // (counted as a dropped webhook delivery).
            destinations,
        },
    );
    while let Some(d) = rx.recv().await {
        // The call's activeflow also tags a call event sent to the global webhook.
        let activeflow = d.activeflow;
        let global_target = global.as_ref().map(|g| Target {
            uri: g.uri.clone(),
            method: WebhookMethod::Post,
            format: g.format,
            activeflow,
        });
        // The very same request to the same URI goes once.
        let flow_target = d
            .hook
            .as_ref()
            .filter(|h| !global.as_ref().is_some_and(|g| g.same_as(h)))
            .map(|h| Target {
                uri: h.uri.clone(),
                method: h.method,
                format: h.format,
                activeflow,
            });
        for target in global_target.into_iter().chain(flow_target) {
            let key = target.uri.clone();
            let (sender, event, id) = (sender.clone(), d.event.clone(), d.id);
            let snapshot = d.snapshot.clone();
            let job = Box::pin(async move {
                deliver(&sender, &target, id, &event, snapshot.as_deref()).await
            });
            if workers.submit(key, job).is_err() {
                crate::metrics::webhook_delivery(WebhookOutcome::Dropped);
            }
        }
    }
}

/// Sends one event as JSON with the target's method (a GET or DELETE carries the body too, as
/// VoIPBIN's webhook-manager sends it), retrying 5xx and transient failures.
async fn deliver(sender: &Sender, target: &Target, id: u64, event: &Event, snapshot: Option<&str>) {
    let body = match target.format {
        WebhookFormat::Native => event.to_json(id),
        WebhookFormat::Voipbin => voipbin::to_json(event, target.activeflow, snapshot),
    };
    let method = match target.method {
        WebhookMethod::Post => reqwest::Method::POST,
        WebhookMethod::Put => reqwest::Method::PUT,
        WebhookMethod::Get => reqwest::Method::GET,
        WebhookMethod::Delete => reqwest::Method::DELETE,
    };
    let uri = &*target.uri;
    let sign = || {
        sender
            .signer
            .as_ref()
            .map_or_else(Vec::new, |s| s.headers(&body))
    };
    let Attempted { outcome, attempts } = sender
        .http
        .send_retrying_with(
            method,
            uri,
            Some(("application/json", &body)),
            WEBHOOK_RETRY,
            sign,
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use uuid::Uuid;

    use super::*;
    use crate::http::HttpPolicy;

    /// A loopback server answering 200 to every request; sends each request's first line.
    async fn server() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]);
                let _ = tx.send(text.lines().next().unwrap_or_default().to_owned());
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            }
        });
        (addr, rx)
    }

    fn delivery(uri: String) -> Delivery {
        Delivery {
            id: 1,
            event: Arc::new(crate::events::call_event(1)),
            hook: Some(Arc::new(FlowHook {
                uri: Arc::from(uri),
                method: WebhookMethod::Post,
                format: WebhookFormat::Native,
                activeflow: Uuid::nil(),
            })),
            activeflow: None,
            snapshot: None,
        }
    }

    /// A server answering 503 to the first request and 200 to the rest; sends each request's
    /// whole text (head and body).
    async fn flaky_server() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut first = true;
            while let Ok((mut s, _)) = listener.accept().await {
                let mut text = Vec::new();
                let mut buf = [0u8; 4096];
                // Head and the whole body (by Content-Length).
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    text.extend_from_slice(&buf[..n]);
                    let t = String::from_utf8_lossy(&text).to_string();
                    let done = t.split_once("\r\n\r\n").is_some_and(|(head, body)| {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        body.len() >= length
                    });
                    if n == 0 || done {
                        break;
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&text).to_string());
                let status = if std::mem::take(&mut first) {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let answer =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        (addr, rx)
    }

    /// With a secret every attempt is signed, a retry too, over the exact body sent.
    #[tokio::test]
    async fn every_attempt_is_signed() {
        let (addr, mut seen) = flaky_server().await;
        let http = HttpClient::new(HttpPolicy::permissive(Duration::from_secs(5), 1024)).unwrap();
        let signer = WebhookSigner::new("s3cret").unwrap();
        let (tx, rx) = mpsc::channel(8);
        let sender = Sender {
            http,
            signer: Some(signer.clone()),
        };
        tokio::spawn(route(rx, sender, None, 8, 4));
        tx.send(delivery(format!("http://{addr}/hook")))
            .await
            .unwrap();
        for attempt in 0..2 {
            let request = tokio::time::timeout(Duration::from_secs(10), seen.recv())
                .await
                .unwrap()
                .unwrap();
            let (head, body) = request.split_once("\r\n\r\n").unwrap();
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                    })
                    .unwrap_or_else(|| panic!("attempt {attempt}: no {name} in {head}"))
            };
            let timestamp: i64 = header(super::super::TIMESTAMP_HEADER).parse().unwrap();
            assert_eq!(
                header(super::super::SIGNATURE_HEADER),
                signer.signature(timestamp, body.as_bytes()),
                "attempt {attempt}"
            );
        }
    }

    #[tokio::test]
    async fn events_for_a_destination_beyond_the_cap_are_dropped() {
        let (addr, mut seen) = server().await;
        let http = HttpClient::new(HttpPolicy::permissive(Duration::from_secs(5), 1024)).unwrap();
        let (tx, rx) = mpsc::channel(8);
        let sender = Sender { http, signer: None };
        tokio::spawn(route(rx, sender, None, 8, 1));
        tx.send(delivery(format!("http://{addr}/a"))).await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await;
        assert!(first.unwrap().unwrap().contains("/a"));
        // `/a`'s worker stays (idle 60 s): a second URI is over the cap of 1 and dropped;
        // `/a` itself still gets its events.
        tx.send(delivery(format!("http://{addr}/b"))).await.unwrap();
        tx.send(delivery(format!("http://{addr}/a"))).await.unwrap();
        let next = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await;
        assert!(next.unwrap().unwrap().contains("/a"));
        let none = tokio::time::timeout(Duration::from_millis(300), seen.recv()).await;
        assert!(none.is_err(), "{none:?}");
    }
}
