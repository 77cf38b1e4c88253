//! Fuzz target: arbitrary bytes as a WAV file through media::wav::decode_to_8k_mono (chunk walk,
//! every sample format, channel mix-down and resampling).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = activeflow::media::wav::decode_to_8k_mono(data);
});
