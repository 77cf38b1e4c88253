//! Fuzz target: arbitrary bytes as an RTP datagram through media::rtp::parse, its payload as
//! RFC 4733 telephone-events into an EventDetector, and the raw bytes as SIP INFO DTMF bodies.
#![no_main]

use activeflow::media::dtmf::{info_digit, EventDetector, TelephoneEvent};
use activeflow::media::rtp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut detector = EventDetector::new();
    if let Some((header, payload)) = rtp::parse(data) {
        assert!(payload.len() <= data.len() - rtp::HEADER_LEN);
        if let Some(event) = TelephoneEvent::parse(payload) {
            assert!(detector.on_event(header.timestamp, &event).len() <= 2);
        }
    }
    // Also as a run of 8-byte (timestamp, event) records, to exercise the detector's ordering.
    for record in data.chunks_exact(8) {
        let timestamp = u32::from_be_bytes([record[0], record[1], record[2], record[3]]);
        if let Some(event) = TelephoneEvent::parse(&record[4..]) {
            assert!(detector.on_event(timestamp, &event).len() <= 2);
        }
    }
    let _ = detector.flush();
    let _ = info_digit("application/dtmf-relay", data);
    let _ = info_digit("application/dtmf", data);
});
