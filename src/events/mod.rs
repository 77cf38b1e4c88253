//! The event stream (issue 7): activeflow and call events published by the engine and call
//! sessions, kept in a bounded window for SSE readers (`GET /v1/events`, resumable by id) and
//! fed to webhooks. Publishing never blocks or awaits: one short lock to append to the window
//! (and, when a webhook wants the event, a `try_send` to its bounded queue); serialisation
//! happens later, on the reader's or the webhook's task; only a webhook in VoIPBIN's format
//! makes the engine add a snapshot of the activeflow. Imports only `flow` (the action model),
//! `http`, `metrics` and `clock`-like plain data: `call` and `engine` build the events.

mod deleted;
mod event;
mod hook;
mod signature;
pub mod voipbin;
mod webhook;
mod window;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::Notify;
use uuid::Uuid;

pub use event::{
    ActiveflowFacts, CallFacts, ConferenceFacts, Event, EventBody, EventFilter, EventType,
    ExecutedFacts,
};
pub use hook::FlowHook;
pub use signature::{WebhookSigner, SIGNATURE_HEADER, TIMESTAMP_HEADER};
pub use window::{Published, Read, Window};

use crate::flow::WebhookFormat;

/// The newest executed actions a VoIPBIN-format webhook's activeflow `data` carries (older ones
/// are counted in its `executed_actions_dropped`): one event's body stays bounded however long
/// an activeflow loops.
pub const SNAPSHOT_EXECUTED_ACTIONS: usize = 100;

/// Events kept for resuming readers by default (`events.window`).
pub const DEFAULT_WINDOW: usize = 65_536;

/// What the bus is built with (`[events]`).
#[derive(Debug, Clone)]
pub struct EventsOptions {
    /// Newest events kept for resume and slow readers.
    pub window: usize,
    /// A comment line goes to idle SSE readers this often.
    pub keep_alive: Duration,
    /// Gets every event; `None` = no global webhook.
    pub webhook_uri: Option<String>,
    /// The global webhook's body format, and flows' when they name none.
    pub webhook_format: WebhookFormat,
    /// Events waiting for webhook delivery, per queue, before new ones are dropped.
    pub webhook_queue: usize,
    /// Signs every event webhook request (`events.webhook_secret`); `None`: unsigned.
    pub webhook_signer: Option<WebhookSigner>,
    /// SSE readers at once and when a stalled one is dropped.
    pub readers: ReaderLimits,
}

/// What SSE readers may hold (`events.max_readers`, `events.reader_stall_timeout_ms`).
#[derive(Debug, Clone, Copy)]
pub struct ReaderLimits {
    /// Readers at once ([`EventBus::try_subscribe`] refuses more).
    pub max_readers: usize,
    /// A reader that takes no data this long is dropped (it resumes with `Last-Event-ID`).
    pub stall_timeout: Duration,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        ReaderLimits {
            max_readers: 256,
            stall_timeout: Duration::from_secs(30),
        }
    }
}

/// [`EventBus::try_subscribe`]: `max` readers already read the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{max} event stream readers already connected (events.max_readers)")]
pub struct ReadersFull {
    pub max: usize,
}

/// Gets every event as it is published, under the window's lock (so in id order), with its id:
/// the cluster's publisher ([`EventBus::set_tap`]). Must not block: a `try_send` at most.
pub type Tap = Box<dyn Fn(&Published) + Send + Sync>;

/// The activeflow a call drives and that activeflow's own webhook, if any.
#[derive(Debug, Clone)]
struct CallBinding {
    activeflow: Uuid,
    hook: Option<Arc<FlowHook>>,
}

/// The engine's event bus. Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    window: Mutex<Window>,
    /// Wakes readers waiting at the head of the window.
    notify: Notify,
    /// Readers subscribed: publishing skips the wake-up when there are none.
    readers: AtomicUsize,
    /// The most readers [`EventBus::try_subscribe`] admits, and the stall timeout.
    limits: ReaderLimits,
    webhooks: Option<webhook::Feed>,
    /// A flow's webhook format when it names none (`events.webhook_format`).
    default_format: WebhookFormat,
    /// Calls that activeflows drive (call id → binding): their events name the activeflow and
    /// go to its own webhook too.
    call_hooks: DashMap<Uuid, CallBinding>,
    /// Entries in `call_hooks`: calls skip the lookup while it is zero.
    call_hooks_bound: AtomicUsize,
    keep_alive: Duration,
    /// The engine is stopping: readers' streams end (so HTTP shutdown need not wait for them).
    closed: AtomicBool,
    /// Set once in cluster mode: the event stream's publisher (`cluster::events`).
    tap: OnceLock<Tap>,
    /// Wakes [`EventBus::closed`] waiters (cluster readers) once, at close.
    close_notify: Notify,
}

impl EventBus {
    /// A bus with webhook delivery (global webhook from `options`, per-flow ones as they come).
    /// Must run inside a tokio runtime: the webhook router is spawned on it.
    pub fn start(options: &EventsOptions, http: crate::http::HttpClient) -> EventBus {
        let global = options
            .webhook_uri
            .as_deref()
            .map(|uri| (uri, options.webhook_format));
        let feed = webhook::start(
            http,
            global,
            options.webhook_queue,
            options.webhook_signer.clone(),
        );
        Self::build(
            options.window,
            options.keep_alive,
            Some((feed, options.webhook_format)),
            options.readers,
        )
    }

    /// A bus that only keeps the window (for tests and tools).
    pub fn without_webhooks(window: usize, keep_alive: Duration) -> EventBus {
        Self::build(window, keep_alive, None, ReaderLimits::default())
    }

    fn build(
        window: usize,
        keep_alive: Duration,
        webhooks: Option<(webhook::Feed, WebhookFormat)>,
        limits: ReaderLimits,
    ) -> EventBus {
        let (webhooks, default_format) = match webhooks {
            Some((feed, format)) => (Some(feed), format),
            None => (None, WebhookFormat::Native),
        };
        // Ids start at the start-up time in microseconds: they grow across restarts too, so an
        // id from an earlier run is recognised as older than the window, never taken for a
        // future one.
        let first_id = chrono::Utc::now().timestamp_micros().max(1) as u64;
        EventBus {
            inner: Arc::new(Inner {
                window: Mutex::new(Window::new(window, first_id)),
                notify: Notify::new(),
                readers: AtomicUsize::new(0),
                limits: ReaderLimits {
                    max_readers: limits.max_readers.max(1),
                    ..limits
                },
                webhooks,
                default_format,
                call_hooks: DashMap::new(),
                call_hooks_bound: AtomicUsize::new(0),
                keep_alive,
                closed: AtomicBool::new(false),
                tap: OnceLock::new(),
                close_notify: Notify::new(),
            }),
        }
    }

    /// How often idle SSE readers get a keep-alive comment.
    pub fn keep_alive(&self) -> Duration {
        self.inner.keep_alive
    }

    /// How long an SSE reader may take no data before it is dropped.
    pub fn stall_timeout(&self) -> Duration {
        self.inner.limits.stall_timeout
    }

    fn window(&self) -> MutexGuard<'_, Window> {
        // The window is only ever appended to; a panic elsewhere leaves it consistent.
        self.inner.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes an event; `flow_hook` is the webhook of the activeflow's flow, if any.
    /// Never blocks: a full webhook queue drops the event for webhooks (counted).
    pub fn publish(&self, event: Event, flow_hook: Option<Arc<FlowHook>>) {
        self.publish_with(event, flow_hook, None);
    }

    /// Like [`EventBus::publish`], with the activeflow's JSON for VoIPBIN-format webhooks (their
    /// `data`). The snapshot goes with the webhook delivery only, never into the SSE window.
    pub fn publish_with(
        &self,
        event: Event,
        flow_hook: Option<Arc<FlowHook>>,
        snapshot: Option<Arc<str>>,
    ) {
        let inner = &*self.inner;
        let call_end = matches!(event.body, EventBody::CallEnded(_));
        let (hook, activeflow) = match flow_hook {
            Some(hook) => {
                let activeflow = hook.activeflow;
                (Some(hook), Some(activeflow))
            }
            None if inner.call_hooks_bound.load(Ordering::Relaxed) > 0
                && matches!(
                    event.body,
                    EventBody::CallAnswered(_) | EventBody::CallEnded(_)
                ) =>
            {
                match inner.call_hooks.get(&event.subject) {
                    Some(b) => (b.hook.clone(), Some(b.activeflow)),
                    None => (None, None),
                }
            }
            None => (None, None),
        };
        let subject = event.subject;
        let event = Arc::new(event);
        let wanted = inner
            .webhooks
            .as_ref()
            .filter(|f| f.has_global() || hook.is_some());
        let tap = inner.tap.get();
        let (evicted, dropped) = {
            let mut window = self.window();
            match wanted {
                None if tap.is_none() => (window.push(event).1, false),
                None => {
                    let (id, evicted) = window.push(event.clone());
                    if let Some(tap) = tap {
                        tap(&Published { id, event });
                    }
                    (evicted, false)
                }
                Some(feed) => {
                    let (id, evicted) = window.push(event.clone());
                    if let Some(tap) = tap {
                        tap(&Published {
                            id,
                            event: event.clone(),
                        });
                    }
                    let delivery = webhook::Delivery {
                        id,
                        event,
                        hook,
                        activeflow,
                        snapshot,
                    };
                    // Under the lock, so webhooks get events in id order.
                    (evicted, !feed.offer(delivery))
                }
            }
        };
        drop(evicted);
        if dropped {
            crate::metrics::webhook_delivery(crate::metrics::WebhookOutcome::Dropped);
        }
        if inner.readers.load(Ordering::SeqCst) > 0 {
            inner.notify.notify_waiters();
        }
        if call_end {
            self.unbind_call(subject);
        }
    }

    /// Hands every event published from now on to `tap` too, in id order (the cluster's
    /// publisher). Set once: a second tap is refused and returned.
    pub fn set_tap(&self, tap: Tap) -> Result<(), Tap> {
        self.inner.tap.set(tap)
    }

    /// Takes a place among `events.max_readers` for a reader that does not read this bus (a
    /// cluster SSE reader, which reads the cluster's stream): the place is held as long as the
    /// returned subscription, which is never read.
    pub fn try_reserve_reader(&self) -> Result<Subscription, ReadersFull> {
        self.try_subscribe(None)
    }

    /// Ends every reader's stream (at shutdown); publishing goes on into the window.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
        self.inner.close_notify.notify_waiters();
    }

    /// Resolves once [`EventBus::close`] was called (readers that do not read the window end
    /// their streams on it).
    pub async fn closed(&self) {
        let notified = self.inner.close_notify.notified();
        if self.inner.closed.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
    }

    /// Whether call events must be bound to the activeflow driving them even when its flow has
    /// no webhook: the global webhook wants VoIPBIN's shape (its `data.activeflow_id`).
    pub fn binds_every_call(&self) -> bool {
        self.inner
            .webhooks
            .as_ref()
            .is_some_and(webhook::Feed::global_wants_voipbin)
    }

    /// Call `call` is driven by `activeflow`: its events (answered, ended) name it in VoIPBIN's
    /// shape and go to `hook` (the activeflow's own webhook) too, until the call ends or
    /// [`EventBus::unbind_call_of`].
    pub fn bind_call(&self, call: Uuid, activeflow: Uuid, hook: Option<Arc<FlowHook>>) {
        let binding = CallBinding { activeflow, hook };
        if self.inner.call_hooks.insert(call, binding).is_none() {
            self.inner.call_hooks_bound.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Forgets call `call`'s binding (idempotent).
    pub fn unbind_call(&self, call: Uuid) {
        if self.inner.call_hooks_bound.load(Ordering::Relaxed) == 0 {
            return;
        }
        if self.inner.call_hooks.remove(&call).is_some() {
            self.inner.call_hooks_bound.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Forgets call `call`'s binding if `activeflow` still holds it (not a successor that drives
    /// the same call); after `delay` when one is given and a tokio runtime runs (so the call's
    /// own end, which may still be on its way, is delivered as bound).
    pub fn unbind_call_of(&self, call: Uuid, activeflow: Uuid, delay: Option<Duration>) {
        let holds = |bus: &EventBus| {
            bus.inner
                .call_hooks
                .get(&call)
                .is_some_and(|b| b.activeflow == activeflow)
        };
        if !holds(self) {
            return;
        }
        let bus = self.clone();
        let unbind = move || {
            let inner = &bus.inner;
            if inner
                .call_hooks
                .remove_if(&call, |_, b| b.activeflow == activeflow)
                .is_some()
            {
                inner.call_hooks_bound.fetch_sub(1, Ordering::Relaxed);
            }
        };
        match (delay, tokio::runtime::Handle::try_current()) {
            (Some(delay), Ok(rt)) => {
                rt.spawn(async move {
                    tokio::time::sleep(delay).await;
                    unbind();
                });
            }
            _ => unbind(),
        }
    }

    /// Like [`EventBus::subscribe`], unless `max_readers` readers are already subscribed.
    pub fn try_subscribe(&self, last_event_id: Option<u64>) -> Result<Subscription, ReadersFull> {
        let max = self.inner.limits.max_readers;
        // Counted before the cursor is read (see `subscribe`), and never past the cap.
        self.inner
            .readers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| ReadersFull { max })?;
        Ok(self.subscribed(last_event_id))
    }

    /// A reader starting after event `last_event_id` (a reconnect's `Last-Event-ID`), or at the
    /// next event published when `None`. Not capped: for the engine's own readers and tests.
    pub fn subscribe(&self, last_event_id: Option<u64>) -> Subscription {
        // Counted before the cursor is read: a publisher that saw no reader published before
        // the cursor was taken, so its event is either in the replay or not wanted.
        self.inner.readers.fetch_add(1, Ordering::SeqCst);
        self.subscribed(last_event_id)
    }

    /// SSE readers subscribed now.
    pub fn readers(&self) -> usize {
        self.inner.readers.load(Ordering::SeqCst)
    }

    /// The subscription of a reader already counted.
    fn subscribed(&self, last_event_id: Option<u64>) -> Subscription {
        crate::metrics::events_readers(1.0);
        let cursor = match last_event_id {
            Some(last) => last.saturating_add(1),
            None => self.window().next_id(),
        };
        Subscription {
            bus: self.clone(),
            cursor,
        }
    }
}

/// What a reader gets next.
#[derive(Debug)]
pub enum Batch {
    /// Consecutive events from the reader's cursor on.
    Events(Vec<Published>),
    /// The events after `last_event_id` up to `oldest_id - 1` are gone (the reader was too
    /// slow, or resumed from an id older than the window or from another run); reading goes on
    /// at `oldest_id`.
    Exceeded { last_event_id: u64, oldest_id: u64 },
}

/// One reader's position in the stream. Holds no events of its own: a reader that stops
/// reading costs nothing but its cursor.
pub struct Subscription {
    bus: EventBus,
    /// The id this reader wants next.
    cursor: u64,
}

impl Subscription {
    /// The next batch (at most `max` events), waiting for one if the reader is up to date;
    /// `None` once the bus is closed. Cancel-safe: dropping the future loses nothing.
    pub async fn next(&mut self, max: usize) -> Option<Batch> {
        // A clone of the bus, so the wait does not borrow the cursor.
        let bus = self.bus.clone();
        loop {
            let notified = bus.inner.notify.notified();
            tokio::pin!(notified);
            // Registered before looking, so an event published after the look wakes us.
            notified.as_mut().enable();
            if bus.inner.closed.load(Ordering::SeqCst) {
                return None;
            }
            if let Some(batch) = self.try_next(max) {
                return Some(batch);
            }
            notified.await;
        }
    }

    /// The next batch if there is one now.
    pub fn try_next(&mut self, max: usize) -> Option<Batch> {
        let read = self.bus.window().read(self.cursor, max);
        match read {
            Read::Behind { oldest } => {
                let last_event_id = self.cursor.saturating_sub(1);
                self.cursor = oldest;
                crate::metrics::events_window_exceeded();
                Some(Batch::Exceeded {
                    last_event_id,
                    oldest_id: oldest,
                })
            }
            Read::Events(events) => {
                let last = events.last()?.id;
                self.cursor = last + 1;
                Some(Batch::Events(events))
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.bus.inner.readers.fetch_sub(1, Ordering::SeqCst);
        crate::metrics::events_readers(-1.0);
    }
}

/// A `call_created` event for call `n`: the tests' sample event.
#[cfg(test)]
pub(crate) fn call_event(n: usize) -> Event {
    Event::now(
        Uuid::from_u128(n as u128),
        EventBody::CallCreated(CallFacts {
            direction: "incoming",
            source: "a".into(),
            destination: "b".into(),
            status: "ringing",
            end_cause: None,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Flow;

    fn ids(b: Batch) -> Vec<u64> {
        match b {
            Batch::Events(v) => v.iter().map(|p| p.id).collect(),
            Batch::Exceeded { .. } => panic!("exceeded"),
        }
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken_by_a_publish_from_another_thread() {
        let bus = EventBus::without_webhooks(16, Duration::from_secs(15));
        let mut sub = bus.subscribe(None);
        let publisher = bus.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            publisher.publish(call_event(1), None);
        });
        let got = tokio::time::timeout(Duration::from_secs(5), sub.next(10))
            .await
            .expect("woken");
        assert_eq!(ids(got.unwrap()).len(), 1);
        t.join().unwrap();
        // Closing ends a waiting reader.
        let closer = bus.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            closer.close();
        });
        let end = tokio::time::timeout(Duration::from_secs(5), sub.next(10)).await;
        assert!(matches!(end, Ok(None)), "{end:?}");
        t.join().unwrap();
    }

    #[tokio::test]
    async fn resume_replays_then_goes_live_without_gap_or_duplicate() {
        let bus = EventBus::without_webhooks(1000, Duration::from_secs(15));
        let mut first = bus.subscribe(None);
        for i in 0..10 {
            bus.publish(call_event(i), None);
        }
        let seen = ids(first.next(4).await.unwrap());
        drop(first);
        let last = *seen.last().unwrap();
        let mut again = bus.subscribe(Some(last));
        for i in 10..20 {
            bus.publish(call_event(i), None);
        }
        let mut got = Vec::new();
        while got.len() < 16 {
            got.extend(ids(again.next(5).await.unwrap()));
        }
        let expected: Vec<u64> = (last + 1..=last + 16).collect();
        assert_eq!(got, expected);
        assert!(again.try_next(10).is_none());
    }

    #[tokio::test]
    async fn a_slow_reader_gets_exceeded_and_resyncs_at_the_oldest_event() {
        let bus = EventBus::without_webhooks(8, Duration::from_secs(15));
        let mut sub = bus.subscribe(None);
        let first = bus.window().next_id();
        for i in 0..30 {
            bus.publish(call_event(i), None);
        }
        match sub.next(100).await.unwrap() {
            Batch::Exceeded {
                last_event_id,
                oldest_id,
            } => {
                assert_eq!(last_event_id, first - 1);
                assert_eq!(oldest_id, first + 22);
            }
            b => panic!("{b:?}"),
        }
        assert_eq!(
            ids(sub.next(100).await.unwrap()),
            (first + 22..first + 30).collect::<Vec<_>>()
        );
    }

    #[test]
    fn readers_beyond_the_cap_are_refused_until_one_leaves() {
        let limits = ReaderLimits {
            max_readers: 2,
            ..ReaderLimits::default()
        };
        let bus = EventBus::build(8, Duration::from_secs(15), None, limits);
        let first = bus.try_subscribe(None).unwrap();
        let second = bus.try_subscribe(Some(1)).unwrap();
        assert_eq!(bus.try_subscribe(None).err(), Some(ReadersFull { max: 2 }));
        assert_eq!(bus.readers(), 2);
        drop(first);
        let third = bus.try_subscribe(None).unwrap();
        assert!(bus.try_subscribe(None).is_err());
        drop((second, third));
        assert_eq!(bus.readers(), 0);
    }

    #[test]
    fn call_hooks_are_forgotten_when_the_call_ends() {
        let bus = EventBus::without_webhooks(8, Duration::from_secs(15));
        let call = Uuid::from_u128(7);
        let flow =
            Flow::from_json(br#"{"webhook_uri":"http://h/x","actions":[{"type":"answer"}]}"#)
                .unwrap();
        let hook = FlowHook::of(&flow, Uuid::nil(), WebhookFormat::Native).unwrap();
        bus.bind_call(call, Uuid::nil(), Some(Arc::new(hook)));
        assert_eq!(bus.inner.call_hooks_bound.load(Ordering::Relaxed), 1);
        let mut ended = call_event(7);
        ended.body = EventBody::CallEnded(CallFacts {
            direction: "incoming",
            source: "a".into(),
            destination: "b".into(),
            status: "ended",
            end_cause: Some("remote_bye"),
        });
        bus.publish(ended, None);
        assert_eq!(bus.inner.call_hooks_bound.load(Ordering::Relaxed), 0);
        assert!(bus.inner.call_hooks.is_empty());
        bus.unbind_call(call);
    }

    #[test]
    fn an_ended_activeflow_unbinds_only_its_own_call_binding() {
        let bus = EventBus::without_webhooks(8, Duration::from_secs(15));
        let (call, first, second) = (Uuid::from_u128(7), Uuid::from_u128(1), Uuid::from_u128(2));
        // Bound without a hook (a VoIPBIN global webhook wants `activeflow_id` only).
        bus.bind_call(call, first, None);
        // A successor driving the same call took it over: the first's end leaves it.
        bus.bind_call(call, second, None);
        bus.unbind_call_of(call, first, None);
        assert_eq!(bus.inner.call_hooks_bound.load(Ordering::Relaxed), 1);
        // Without a runtime a delay cannot be waited for: unbound at once (no leak).
        bus.unbind_call_of(call, second, Some(Duration::from_secs(60)));
        assert_eq!(bus.inner.call_hooks_bound.load(Ordering::Relaxed), 0);
        assert!(bus.inner.call_hooks.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_delayed_unbind_happens_after_its_delay() {
        let bus = EventBus::without_webhooks(8, Duration::from_secs(15));
        let (call, af) = (Uuid::from_u128(7), Uuid::from_u128(1));
        bus.bind_call(call, af, None);
        bus.unbind_call_of(call, af, Some(Duration::from_secs(40)));
        tokio::time::sleep(Duration::from_secs(39)).await;
        assert_eq!(bus.inner.call_hooks.len(), 1);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(bus.inner.call_hooks.is_empty());
        assert_eq!(bus.inner.call_hooks_bound.load(Ordering::Relaxed), 0);
    }
}
