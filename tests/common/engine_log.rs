//! Panics inside an engine under test fail the test that ran it. A spawned binary's stderr is
//! collected per child (the last lines, and every "panicked at" line) and checked when its
//! [`super::Reaper`] drops; an in-process engine's threads are watched by a panic hook and
//! checked when its [`super::TestEngine`] drops. Neither check panics while a test is already
//! panicking (no double panic: the first failure is the one to read).

use std::collections::{HashMap, VecDeque};
use std::io::BufRead;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

/// Lines of a spawned engine's stderr kept for the failure message.
const TAIL: usize = 60;

/// What one spawned engine printed on stderr.
#[derive(Default)]
pub struct EngineLog {
    state: Mutex<LogState>,
    closed: Condvar,
}

#[derive(Default)]
struct LogState {
    tail: VecDeque<String>,
    panics: Vec<String>,
    eof: bool,
    /// Every line, when the test asked for them all (see [`collect_all`]).
    all: Option<Vec<String>>,
}

impl EngineLog {
    fn push(&self, line: String) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if line.contains("panicked at") {
            s.panics.push(line.clone());
        }
        if s.tail.len() == TAIL {
            s.tail.pop_front();
        }
        if let Some(all) = &mut s.all {
            all.push(line.clone());
        }
        s.tail.push_back(line);
    }

    /// Every line printed so far, for a log from [`collect_all`] (else none).
    pub fn all(&self) -> Vec<String> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.all.clone().unwrap_or_default()
    }

    /// The last lines printed so far.
    pub fn tail(&self) -> Vec<String> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.tail.iter().cloned().collect()
    }

    /// Every "panicked at" line printed so far.
    pub fn panics(&self) -> Vec<String> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.panics.clone()
    }

    /// Waits (bounded) until the pipe closed, so nothing printed before exit is missed.
    fn wait_closed(&self, limit: Duration) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self.closed.wait_timeout_while(s, limit, |s| !s.eof);
    }
}

fn logs() -> &'static Mutex<HashMap<u32, Arc<EngineLog>>> {
    static LOGS: OnceLock<Mutex<HashMap<u32, Arc<EngineLog>>>> = OnceLock::new();
    LOGS.get_or_init(Default::default)
}

/// Collects `lines` (the rest of child `pid`'s stderr) on a thread, keyed by the pid.
pub fn collect(pid: u32, lines: impl Iterator<Item = String> + Send + 'static) -> Arc<EngineLog> {
    collect_into(pid, lines, EngineLog::default())
}

/// [`collect`], keeping every line (after `before`) for [`EngineLog::all`]: for tests that read
/// the log itself, whose engines print a few hundred lines, not a load test's thousands.
pub fn collect_all(
    pid: u32,
    before: Vec<String>,
    lines: impl Iterator<Item = String> + Send + 'static,
) -> Arc<EngineLog> {
    let log = EngineLog::default();
    log.state.lock().unwrap_or_else(|p| p.into_inner()).all = Some(before);
    collect_into(pid, lines, log)
}

fn collect_into(
    pid: u32,
    lines: impl Iterator<Item = String> + Send + 'static,
    log: EngineLog,
) -> Arc<EngineLog> {
    let log = Arc::new(log);
    logs()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(pid, log.clone());
    let writer = log.clone();
    std::thread::spawn(move || {
        for line in lines {
            writer.push(line);
        }
        let mut s = writer.state.lock().unwrap_or_else(|p| p.into_inner());
        s.eof = true;
        writer.closed.notify_all();
    });
    log
}

/// The log of child `pid`, if it is a spawned engine.
pub fn of(pid: u32) -> Option<Arc<EngineLog>> {
    logs()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&pid)
        .cloned()
}

/// After child `pid` exited: panics with its stderr tail if it printed "panicked at" (unless
/// this thread is panicking already). Forgets the child either way.
pub fn check_exited(pid: u32) {
    let log = logs()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&pid);
    let Some(log) = log else { return };
    log.wait_closed(Duration::from_secs(5));
    let panics = log.panics();
    if !panics.is_empty() && !std::thread::panicking() {
        panic!(
            "the engine (pid {pid}) panicked:\n{}\n--- its last stderr lines ---\n{}",
            panics.join("\n"),
            log.tail().join("\n")
        );
    }
}

/// Reads `reader` as lines for [`collect`], lossy on invalid UTF-8.
pub fn lines(reader: impl BufRead + Send + 'static) -> impl Iterator<Item = String> + Send {
    reader
        .split(b'\n')
        .map_while(Result::ok)
        .map(|l| String::from_utf8_lossy(&l).trim_end().to_string())
}

// ---- in-process engines ----

/// Panics seen on any thread of this test process: (thread name, message and location).
fn in_process_panics() -> &'static Mutex<Vec<(String, String)>> {
    static PANICS: OnceLock<Mutex<Vec<(String, String)>>> = OnceLock::new();
    PANICS.get_or_init(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current().name().unwrap_or("").to_string();
            if let Some(panics) = PANICS.get() {
                panics
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((thread, info.to_string()));
            }
            default(info);
        }));
        Mutex::new(Vec::new())
    })
}

/// Starts recording panics (installs the hook once per process).
pub fn watch_in_process() {
    let _ = in_process_panics();
}

/// Panics on threads whose name `belongs` to one engine (its own thread, its arbiters).
pub fn in_process_panics_of(belongs: impl Fn(&str) -> bool) -> Vec<String> {
    in_process_panics()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(thread, _)| belongs(thread))
        .map(|(thread, message)| format!("thread '{thread}' {message}"))
        .collect()
}
