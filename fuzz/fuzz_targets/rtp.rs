//! Fuzz target: arbitrary bytes as an RTP datagram, its payload as RFC 4733 telephone-events and
//! the bytes as SIP INFO DTMF bodies. The body is `activeflow_fuzz::rtp` (fuzz/src/lib.rs), which
//! tests/fuzz_corpus.rs replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    activeflow_fuzz::rtp(data);
});
