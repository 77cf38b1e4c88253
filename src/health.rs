//! Watched parts: the threads the engine cannot take calls without (the SIP UDP receiver, the
//! storage writer, the recording writer) run under [`spawn_watched`], which sees them die (a
//! panic, or a return nobody asked for) and either restarts them after a back-off or reports
//! the death as fatal so the process drains and exits non-zero. One part is no thread: the
//! database (`storage`), which the storage writer reports down while its commits fail.
//! [`Health`] holds every part's state for `/readyz` and the `activeflow_component_up` gauge.
//! Depends on nothing but `metrics`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A watched part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    /// The SIP UDP receive thread (`sip::transport::udp`): restarted.
    SipUdp,
    /// The storage writer thread (`storage::writer`): fatal.
    StorageWriter,
    /// The recording writer thread (`media::recording`): restarted.
    RecordingWriter,
    /// The database: down while commits fail for a passing cause (disk full, I/O error, a
    /// lock held too long); the writer keeps the writes and retries (`storage::writer`).
    Storage,
}

impl Component {
    pub const ALL: [Component; 4] = [
        Component::SipUdp,
        Component::StorageWriter,
        Component::RecordingWriter,
        Component::Storage,
    ];

    /// Its name in `/readyz` and the metrics label (one of [`crate::metrics::COMPONENTS`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Component::SipUdp => "sip_udp",
            Component::StorageWriter => "storage_writer",
            Component::RecordingWriter => "recording_writer",
            Component::Storage => "storage",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A part's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartState {
    /// Not started (storage disabled, say) or stopped as asked.
    Off,
    Up,
    /// Dead: waiting for its restart, or for the process to exit.
    Down,
}

impl PartState {
    pub fn as_str(self) -> &'static str {
        match self {
            PartState::Off => "off",
            PartState::Up => "up",
            PartState::Down => "down",
        }
    }

    fn from_u8(v: u8) -> PartState {
        match v {
            1 => PartState::Up,
            2 => PartState::Down,
            _ => PartState::Off,
        }
    }
}

/// What to do when a watched part dies.
#[derive(Debug, Clone, Copy)]
pub enum OnDeath {
    /// Run it again after `first`, doubling up to `max` while it keeps dying within a minute
    /// of its start.
    Restart { first: Duration, max: Duration },
    /// Leave it dead and report the death as fatal ([`Health::fatal`]).
    Exit,
}

/// How a watched body returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It was asked to stop: not a death.
    AsAsked,
    /// It returned although nobody asked: a death.
    Unexpectedly,
}

/// A part that stays up this long is healthy again: its next restart waits `first` again.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// Every watched part's state; cheap to clone.
#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    states: [AtomicU8; Component::ALL.len()],
    deaths: [AtomicU64; Component::ALL.len()],
    fatal: Mutex<Option<Component>>,
    fatal_notify: tokio::sync::Notify,
}

impl Health {
    pub fn new() -> Health {
        Health::default()
    }

    pub fn state(&self, c: Component) -> PartState {
        PartState::from_u8(self.inner.states[c.index()].load(Ordering::SeqCst))
    }

    /// Every part with its state.
    pub fn parts(&self) -> Vec<(Component, PartState)> {
        Component::ALL
            .iter()
            .map(|c| (*c, self.state(*c)))
            .collect()
    }

    /// The parts that are down (`/readyz` answers 503 naming them).
    pub fn down(&self) -> Vec<Component> {
        Component::ALL
            .into_iter()
            .filter(|c| self.state(*c) == PartState::Down)
            .collect()
    }

    /// How many times `c` has died since start.
    pub fn deaths(&self, c: Component) -> u64 {
        self.inner.deaths[c.index()].load(Ordering::SeqCst)
    }

    pub(crate) fn set(&self, c: Component, state: PartState) {
        self.inner.states[c.index()].store(state as u8, Ordering::SeqCst);
        crate::metrics::component_up(c.as_str(), state == PartState::Up);
    }

    fn died(&self, c: Component) {
        self.inner.deaths[c.index()].fetch_add(1, Ordering::SeqCst);
        self.set(c, PartState::Down);
    }

    /// Records that `c` died for good: [`Health::fatal`] resolves.
    fn fail(&self, c: Component) {
        self.inner
            .fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(c);
        self.inner.fatal_notify.notify_waiters();
        self.inner.fatal_notify.notify_one();
    }

    /// Resolves once a part whose death is fatal has died, with that part.
    pub async fn fatal(&self) -> Component {
        loop {
            let notified = self.inner.fatal_notify.notified();
            if let Some(c) = *self.inner.fatal.lock().unwrap_or_else(|p| p.into_inner()) {
                return c;
            }
            notified.await;
        }
    }
}

/// Starts `body` on a thread named `name`, watched as `component`: up while it runs; if it
/// panics or returns [`Ended::Unexpectedly`] it is down, then restarted or reported fatal as
/// `on_death` says. Returns when `body` returns [`Ended::AsAsked`] (the part is then off).
pub fn spawn_watched(
    name: &str,
    component: Component,
    on_death: OnDeath,
    health: Health,
    mut body: impl FnMut() -> Ended + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    health.set(component, PartState::Up);
    let watcher = health.clone();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let health = watcher;
            let mut delay = None;
            loop {
                let started = Instant::now();
                let why = match catch_unwind(AssertUnwindSafe(&mut body)) {
                    Ok(Ended::AsAsked) => {
                        health.set(component, PartState::Off);
                        return;
                    }
                    Ok(Ended::Unexpectedly) => "returned unexpectedly".to_string(),
                    Err(panic) => panic_message(panic.as_ref()),
                };
                health.died(component);
                let OnDeath::Restart { first, max } = on_death else {
                    tracing::error!(%component, why, "watched part died; exiting");
                    health.fail(component);
                    return;
                };
                let wait = restart_delay(delay, started.elapsed(), first, max);
                delay = Some(wait);
                tracing::error!(%component, why, restart_in = ?wait, "watched part died; restarting");
                crate::metrics::component_restarted(component.as_str());
                std::thread::sleep(wait);
                health.set(component, PartState::Up);
            }
        });
    if spawned.is_err() {
        health.set(component, PartState::Off);
    }
    spawned
}

/// The wait before a restart: `first` after a healthy run (or the first death), else double
/// the previous wait, at most `max`.
fn restart_delay(
    previous: Option<Duration>,
    ran_for: Duration,
    first: Duration,
    max: Duration,
) -> Duration {
    match previous {
        Some(d) if ran_for < HEALTHY_AFTER => max.min(d * 2),
        _ => first,
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn restarts_back_off_while_a_part_keeps_dying_and_reset_once_it_ran_well() {
        let (first, max) = (Duration::from_millis(100), Duration::from_secs(5));
        let quick = Duration::from_secs(1);
        let mut waits = Vec::new();
        let mut previous = None;
        for _ in 0..8 {
            let wait = restart_delay(previous, quick, first, max);
            waits.push(wait.as_millis());
            previous = Some(wait);
        }
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(restart_delay(previous, HEALTHY_AFTER, first, max), first);
    }

    #[test]
    fn names_match_the_metric_labels() {
        let names: Vec<&str> = Component::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names, crate::metrics::COMPONENTS);
    }

    /// A part that panics is down during its back-off, then up again and running.
    #[test]
    fn a_restarted_part_is_down_then_up_and_runs_again() {
        let health = Health::new();
        let runs = Arc::new(AtomicU64::new(0));
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let counted = runs.clone();
        let on_death = OnDeath::Restart {
            first: Duration::from_secs(1),
            max: Duration::from_secs(1),
        };
        let thread = spawn_watched(
            "t",
            Component::SipUdp,
            on_death,
            health.clone(),
            move || {
                if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("first run dies");
                }
                let _ = stop_rx.recv();
                Ended::AsAsked
            },
        )
        .unwrap();
        wait_until("the death", || health.deaths(Component::SipUdp) == 1);
        assert_eq!(health.down(), vec![Component::SipUdp]);
        wait_until("the restart", || runs.load(Ordering::SeqCst) == 2);
        assert_eq!(health.state(Component::SipUdp), PartState::Up);
        assert!(health.down().is_empty());
        stop_tx.send(()).unwrap();
        thread.join().unwrap();
        assert_eq!(health.state(Component::SipUdp), PartState::Off);
    }

    /// A part whose death is fatal stays down and [`Health::fatal`] names it; an unexpected
    /// return is a death like a panic.
    #[test]
    fn a_fatal_part_stays_down_and_is_reported() {
        let health = Health::new();
        let runs = Arc::new(AtomicU64::new(0));
        let counted = runs.clone();
        let c = Component::StorageWriter;
        spawn_watched("t", c, OnDeath::Exit, health.clone(), move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ended::Unexpectedly
        })
        .unwrap()
        .join()
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(health.fatal()), c);
        assert_eq!((health.down(), runs.load(Ordering::SeqCst)), (vec![c], 1));
    }
}
