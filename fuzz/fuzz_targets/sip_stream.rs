//! Fuzz target: a TCP byte stream framed with `frame` (Content-Length / CRLF keep-alives), each framed message through parse_stream_message.
//! The body is `activeflow_fuzz::sip_stream` (fuzz/src/lib.rs), which tests/fuzz_corpus.rs replays on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    activeflow_fuzz::sip_stream(data);
});
