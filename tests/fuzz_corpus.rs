//! Replays every seed in `fuzz/corpus/<target>/` (and any minimised crash in
//! `fuzz/regressions/<target>/`) through the fuzz targets' own bodies (`fuzz/src/lib.rs`) on
//! stable Rust, so the normal suite catches a panic on a known input without cargo-fuzz/nightly.
//! Each input runs under `catch_unwind`; the test fails naming every input that panicked.

#[allow(unreachable_pub, dead_code)] // the fuzz crate's public API, used here as a module
#[path = "../fuzz/src/lib.rs"]
mod entry;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// A fuzz target's body: bytes in, a panic on a bug.
type Body = fn(&[u8]);

/// Every target, with the function its `fuzz_targets/<name>.rs` calls.
const TARGETS: [(&str, Body); 5] = [
    ("sip_datagram", entry::sip_datagram),
    ("sip_stream", entry::sip_stream),
    ("sdp", entry::sdp),
    ("rtp", entry::rtp),
    ("wav", entry::wav),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files directly in `dir`, sorted; empty if it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Runs `body` on each file; returns how many ran and a line per input that panicked.
fn replay(files: &[PathBuf], body: Body) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    for file in files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(&data))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: panicked: {message}", file.display()));
        }
    }
    (files.len(), failures)
}

fn replay_target(name: &str) {
    let body = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .expect("a known target");
    let seeds = inputs(&fuzz_dir().join("corpus").join(name));
    assert!(!seeds.is_empty(), "no seeds in fuzz/corpus/{name}/");
    let regressions = inputs(&fuzz_dir().join("regressions").join(name));
    let (ran, mut failures) = replay(&seeds, body);
    let (ran_regressions, more) = replay(&regressions, body);
    failures.extend(more);
    assert!(
        failures.is_empty(),
        "{name}: {} of {} inputs panicked:\n{}",
        failures.len(),
        ran + ran_regressions,
        failures.join("\n")
    );
}

#[test]
fn sip_datagram_corpus_replays_without_panic() {
    replay_target("sip_datagram");
}

#[test]
fn sip_stream_corpus_replays_without_panic() {
    replay_target("sip_stream");
}

#[test]
fn sdp_corpus_replays_without_panic() {
    replay_target("sdp");
}

#[test]
fn rtp_corpus_replays_without_panic() {
    replay_target("rtp");
}

#[test]
fn wav_corpus_replays_without_panic() {
    replay_target("wav");
}

/// A target added to fuzz/Cargo.toml without a replay here would go unchecked.
#[test]
fn every_fuzz_target_is_replayed() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz manifest");
    let mut declared: Vec<String> = manifest
        .split("[[bin]]")
        .skip(1)
        .filter_map(|bin| {
            let line = bin.lines().find(|l| l.trim_start().starts_with("name"))?;
            Some(line.split('"').nth(1)?.to_owned())
        })
        .collect();
    declared.sort();
    let mut replayed: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    replayed.sort();
    assert_eq!(declared, replayed);
}

/// The replay really reports a panicking input (and carries on to the next one).
#[test]
fn a_panicking_input_is_reported_with_its_file() {
    let seeds = inputs(&fuzz_dir().join("corpus").join("sdp"));
    let (ran, failures) = replay(&seeds, |data| assert!(data.is_empty(), "boom"));
    assert_eq!(ran, seeds.len());
    assert_eq!(failures.len(), seeds.len(), "{failures:?}");
    assert!(failures[0].contains("corpus/sdp/") && failures[0].contains("boom"));
}
