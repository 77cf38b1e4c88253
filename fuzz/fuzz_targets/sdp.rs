//! Fuzz target: arbitrary bytes as an SDP offer through media::sdp::negotiate.
//! The body is `activeflow_fuzz::sdp` (fuzz/src/lib.rs), which tests/fuzz_corpus.rs replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    activeflow_fuzz::sdp(data);
});
