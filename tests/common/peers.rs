//! Real peers as child processes (Kamailio, baresip): their output is collected line by line on
//! reader threads so a test can wait, with a deadline, for a line to appear instead of sleeping,
//! and print everything a peer said when an assertion fails. The child is killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Lines a child printed on stdout and stderr, in arrival order, shared with the reader threads.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    grown: Condvar,
}

/// A running peer; stopped (and reaped) when dropped, pass or fail.
pub struct Peer {
    name: String,
    child: Child,
    lines: Arc<Lines>,
    terminate: bool,
}

impl Peer {
    /// Spawns `cmd` with stdout and stderr piped into the line log. Panics if it cannot start:
    /// tests never skip a peer.
    pub fn spawn(name: &str, mut cmd: Command) -> Peer {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({e}); scripts/test.sh installs it"));
        let lines = Arc::new(Lines::default());
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        collect(out, lines.clone());
        collect(err, lines.clone());
        Peer {
            name: name.to_string(),
            child,
            lines,
            terminate: false,
        }
    }

    /// Stop this peer with SIGTERM rather than SIGKILL: for peers that fork workers (Kamailio)
    /// and take them down only when asked to stop. SIGKILL follows if it lingers.
    pub fn terminate_on_drop(mut self) -> Peer {
        self.terminate = true;
        self
    }

    /// Everything printed so far.
    pub fn output(&self) -> Vec<String> {
        self.lines.lines.lock().expect("lines").clone()
    }

    /// The lines printed so far that contain every one of `needles`.
    pub fn matching(&self, needles: &[&str]) -> Vec<String> {
        self.output()
            .into_iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .collect()
    }

    /// Waits until a line containing every one of `needles` has been printed; returns it.
    /// Panics after `limit` with the peer's whole output.
    pub fn wait_line(&self, needles: &[&str], limit: Duration) -> String {
        self.try_wait_line(needles, limit).unwrap_or_else(|| {
            panic!(
                "{} printed no line with {needles:?} within {limit:?}; its output:\n{}",
                self.name,
                self.output().join("\n")
            )
        })
    }

    /// Like [`Peer::wait_line`], but None after `limit`.
    pub fn try_wait_line(&self, needles: &[&str], limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        let mut lines = self.lines.lines.lock().expect("lines");
        loop {
            if let Some(l) = lines.iter().find(|l| needles.iter().all(|n| l.contains(n))) {
                return Some(l.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            lines = self.lines.grown.wait_timeout(lines, left).expect("lines").0;
        }
    }

    /// The child's stdin (baresip's console reads it when `stdio` is loaded).
    pub fn stdin(&mut self) -> &mut std::process::ChildStdin {
        self.child.stdin.as_mut().expect("stdin")
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.terminate {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(stream: impl Read + Send + 'static, lines: Arc<Lines>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            lines.lines.lock().expect("lines").push(line);
            lines.grown.notify_all();
        }
    });
}

/// A fresh private directory under the temp dir for one peer's config and runtime files.
pub fn private_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("activeflow-{tag}-{}", super::unique()));
    std::fs::create_dir_all(&dir).expect("peer dir");
    dir
}

/// A 16-bit 8 kHz mono WAV with a sine of `frequency` Hz.
pub fn write_tone_wav(path: &Path, frequency: f64, length: Duration) {
    let frames = (8000.0 * length.as_secs_f64()) as usize;
    let mut data = Vec::with_capacity(frames * 2);
    for i in 0..frames {
        let s = 6000.0 * (2.0 * std::f64::consts::PI * frequency * i as f64 / 8000.0).sin();
        data.extend_from_slice(&(s as i16).to_le_bytes());
    }
    let mut wav = Vec::with_capacity(44 + data.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    std::fs::write(path, wav).unwrap();
}
