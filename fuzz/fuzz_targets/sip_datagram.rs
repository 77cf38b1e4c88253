//! Fuzz target: one UDP datagram through normalize, parse_datagram, transaction keys, the 400 builder, the 501 path and SDP negotiation.
//! The body is `activeflow_fuzz::sip_datagram` (fuzz/src/lib.rs), which tests/fuzz_corpus.rs replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    activeflow_fuzz::sip_datagram(data);
});
