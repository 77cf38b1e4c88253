//! Fuzz target: arbitrary bytes as an SDP offer through media::sdp::negotiate.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = activeflow::media::sdp::negotiate(data);
});
