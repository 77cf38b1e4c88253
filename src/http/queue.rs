//! Bounded per-destination work queues: each destination (a `webhook_send` scheme+host+port, an
//! event webhook URI) gets one queue of at most `capacity` jobs and a worker task that runs at
//! most `concurrency` of them at once; at most `destinations` have a worker at a time. A full
//! queue (or too many destinations) refuses the job at once (the caller counts it); a worker with nothing queued or running for `idle` removes itself, so destinations that
//! come and go leave nothing behind. With `concurrency` 1 jobs run in submission order, across a
//! worker's retirement too: it retires under the map's lock only when its queue is empty.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Semaphore};

/// One unit of work: a request and whatever it reports when done.
pub type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why a job was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueFull {
    #[error("the destination's queue is full ({capacity} waiting)")]
    Destination { capacity: usize },
    #[error("too many destinations with work queued ({destinations})")]
    Destinations { destinations: usize },
}

/// How big and how busy each destination's queue may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Jobs waiting per destination.
    pub capacity: usize,
    /// Jobs running at once per destination.
    pub concurrency: usize,
    /// A worker with nothing to do this long retires.
    pub idle: Duration,
    /// Destinations with a worker at once: a flow cycling through hosts cannot start more.
    pub destinations: usize,
}

/// A destination's (scheme, host, port): what `webhook_send` queues by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    scheme: String,
    host: String,
    port: u16,
}

impl Destination {
    /// The destination of an http(s) URL (default ports filled in); `None` for anything else.
    pub fn of(url: &str) -> Option<Destination> {
        let url = url::Url::parse(url).ok()?;
        Some(Destination {
            scheme: url.scheme().to_owned(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Queues by destination `K`. Cheap to share (`Arc`); jobs run on the tokio runtime of the
/// caller that started the destination's worker.
pub struct DestinationQueues<K> {
    /// The `queue` label of `activeflow_webhook_workers_active`.
    name: &'static str,
    limits: QueueLimits,
    workers: Mutex<HashMap<K, mpsc::Sender<Job>>>,
}

impl<K: Clone + Eq + Hash + Send + 'static> DestinationQueues<K> {
    /// `name`: one of [`crate::metrics::WEBHOOK_QUEUES`].
    pub fn new(name: &'static str, limits: QueueLimits) -> Arc<Self> {
        Arc::new(DestinationQueues {
            name,
            limits: QueueLimits {
                capacity: limits.capacity.max(1),
                concurrency: limits.concurrency.max(1),
                destinations: limits.destinations.max(1),
                ..limits
            },
            workers: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, mpsc::Sender<Job>>> {
        // Held for map operations only; a panic cannot leave the map half-updated.
        self.workers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job` for `destination` without waiting, starting its worker if it has none.
    pub fn submit(self: &Arc<Self>, destination: K, job: Job) -> Result<(), QueueFull> {
        let mut workers = self.lock();
        let job = match workers.get(&destination) {
            None => job,
            Some(tx) => match tx.try_send(job) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(_)) => {
                    return Err(QueueFull::Destination {
                        capacity: self.limits.capacity,
                    })
                }
                // A worker retires under this lock after removing its entry, so a closed
                // queue means its runtime went away with it (an arbiter stopped): replace it.
                Err(TrySendError::Closed(job)) => {
                    workers.remove(&destination);
                    crate::metrics::webhook_workers(self.name, -1.0);
                    job
                }
            },
        };
        if workers.len() >= self.limits.destinations {
            return Err(QueueFull::Destinations {
                destinations: self.limits.destinations,
            });
        }
        let (tx, rx) = mpsc::channel(self.limits.capacity);
        let _ = tx.try_send(job);
        workers.insert(destination.clone(), tx);
        crate::metrics::webhook_workers(self.name, 1.0);
        tokio::spawn(work(self.clone(), destination, rx));
        Ok(())
    }

    /// Destinations with a worker now.
    pub fn destinations(&self) -> usize {
        self.lock().len()
    }
}

/// A destination's worker: runs jobs up to the concurrency limit; retires when idle.
async fn work<K: Clone + Eq + Hash + Send + 'static>(
    queues: Arc<DestinationQueues<K>>,
    destination: K,
    mut rx: mpsc::Receiver<Job>,
) {
    let limits = queues.limits;
    let running = Arc::new(Semaphore::new(limits.concurrency));
    loop {
        let job = match tokio::time::timeout(limits.idle, rx.recv()).await {
            Ok(Some(job)) => job,
            // Every sender gone: our entry was already taken out of the map (it holds one),
            // and whatever is there now is a replacement's.
            Ok(None) => return,
            Err(_) => {
                if running.available_permits() < limits.concurrency {
                    continue; // still busy: not idle
                }
                // Retire under the lock, so nothing can be queued to us after this check.
                let mut workers = queues.lock();
                match rx.try_recv() {
                    Ok(job) => {
                        drop(workers);
                        job
                    }
                    Err(_) => {
                        workers.remove(&destination);
                        crate::metrics::webhook_workers(queues.name, -1.0);
                        return;
                    }
                }
            }
        };
        let Ok(permit) = running.clone().acquire_owned().await else {
            // Never closed. Were it, our closed queue would make the next submit replace us.
            return;
        };
        if limits.concurrency == 1 {
            // In order: the next job starts after this one.
            job.await;
            drop(permit);
        } else {
            tokio::spawn(async move {
                job.await;
                drop(permit);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn limits(capacity: usize, concurrency: usize) -> QueueLimits {
        QueueLimits {
            capacity,
            concurrency,
            idle: Duration::from_secs(60),
            destinations: 100,
        }
    }

    #[test]
    fn destinations_are_scheme_host_and_port() {
        let a = Destination::of("http://Hooks.Example/a?x=1").unwrap();
        assert_eq!(a, Destination::of("http://hooks.example:80/b").unwrap());
        assert_ne!(a, Destination::of("https://hooks.example/a").unwrap());
        assert_ne!(a, Destination::of("http://hooks.example:8080/a").unwrap());
        assert_eq!(a.to_string(), "http://hooks.example:80");
        assert!(Destination::of("not a url").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_refuses_and_concurrency_is_bounded() {
        let queues = DestinationQueues::new("webhook_send", limits(2, 1));
        let (release, gate) = tokio::sync::watch::channel(false);
        let started = Arc::new(AtomicUsize::new(0));
        let job = || -> Job {
            let (mut gate, started) = (gate.clone(), started.clone());
            Box::pin(async move {
                started.fetch_add(1, Ordering::SeqCst);
                let _ = gate.wait_for(|open| *open).await;
            })
        };
        queues.submit("a", job()).unwrap();
        tokio::task::yield_now().await; // the worker takes the first job and holds it
        queues.submit("a", job()).unwrap();
        queues.submit("a", job()).unwrap();
        assert_eq!(
            queues.submit("a", job()),
            Err(QueueFull::Destination { capacity: 2 })
        );
        // Another destination has its own queue.
        queues.submit("b", job()).unwrap();
        tokio::task::yield_now().await;
        assert_eq!(
            started.load(Ordering::SeqCst),
            2,
            "one per destination at once"
        );
        release.send(true).unwrap();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(started.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_workers_retire_and_leave_no_entry() {
        let queues = DestinationQueues::new("webhook_send", limits(4, 3));
        let done = Arc::new(AtomicUsize::new(0));
        for host in 0..50 {
            let done = done.clone();
            queues
                .submit(
                    host,
                    Box::pin(async move {
                        done.fetch_add(1, Ordering::SeqCst);
                    }),
                )
                .unwrap();
        }
        assert_eq!(queues.destinations(), 50);
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert_eq!(done.load(Ordering::SeqCst), 50);
        assert_eq!(queues.destinations(), 50, "not idle long enough yet");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(queues.destinations(), 0);
        // A destination seen again gets a new worker.
        queues.submit(7, Box::pin(async {})).unwrap();
        assert_eq!(queues.destinations(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn destinations_are_capped_until_workers_retire() {
        let queues = DestinationQueues::new(
            "webhook_send",
            QueueLimits {
                destinations: 3,
                ..limits(4, 1)
            },
        );
        for host in 0..3 {
            queues.submit(host, Box::pin(async {})).unwrap();
        }
        assert_eq!(
            queues.submit(3, Box::pin(async {})),
            Err(QueueFull::Destinations { destinations: 3 })
        );
        queues.submit(0, Box::pin(async {})).unwrap(); // a known one still queues
        tokio::time::sleep(Duration::from_secs(61)).await;
        queues.submit(3, Box::pin(async {})).unwrap();
    }

    #[test]
    fn a_worker_lost_with_its_runtime_is_replaced() {
        let queues = DestinationQueues::new("webhook_send", limits(4, 1));
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        first.block_on(async { queues.submit("a", Box::pin(async {})).unwrap() });
        drop(first); // its worker task is dropped with it, entry and all
        let second = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        second.block_on(async {
            let job: Job = Box::pin(async move {
                d.fetch_add(1, Ordering::SeqCst);
            });
            queues.submit("a", job).unwrap();
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        });
        assert_eq!(done.load(Ordering::SeqCst), 1);
        assert_eq!(queues.destinations(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_worker_is_not_idle() {
        let queues = DestinationQueues::new("webhook_send", limits(4, 2));
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        queues
            .submit(
                "slow",
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_secs(90)).await;
                    d.fetch_add(1, Ordering::SeqCst);
                }),
            )
            .unwrap();
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(queues.destinations(), 1, "a job still runs");
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert_eq!(done.load(Ordering::SeqCst), 1);
        assert_eq!(queues.destinations(), 0);
    }
}
