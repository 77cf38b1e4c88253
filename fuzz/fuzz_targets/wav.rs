//! Fuzz target: arbitrary bytes as a WAV file through media::wav::decode_to_8k_mono. The body is
//! `activeflow_fuzz::wav` (fuzz/src/lib.rs), which tests/fuzz_corpus.rs replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    activeflow_fuzz::wav(data);
});
