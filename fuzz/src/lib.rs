//! The fuzz targets' bodies, one function per target in `fuzz_targets/`: the targets are one-line
//! wrappers, and `tests/fuzz_corpus.rs` replays every seed of `corpus/<target>/` through these
//! same functions on stable Rust (cargo-fuzz needs nightly flags). Only the activeflow entry
//! points that read bytes from the network, and assertions that hold for any input.

use activeflow::media::dtmf::{info_digit, EventDetector, TelephoneEvent};
use activeflow::media::{rtp, sdp};
use activeflow::sip::message::{
    frame, normalize, parse_datagram, parse_stream_message, unknown_method, Frame, MessageError,
    ResponseBuilder, TransactionKey,
};
use rsip::SipMessage;

/// The transport's datagram and per-connection size limit.
const MAX_SIZE: usize = 65535;

/// One UDP datagram: normalize, parse_datagram, transaction keys, the 400 builder, the 501 path
/// and SDP negotiation.
pub fn sip_datagram(data: &[u8]) {
    let _ = normalize(data);
    let _ = unknown_method::not_implemented(data);
    match parse_datagram(data, MAX_SIZE) {
        Ok(SipMessage::Request(req)) => exercise_request(&req),
        Ok(SipMessage::Response(resp)) => {
            let _ = TransactionKey::for_response(&resp);
            let _ = sdp::negotiate(&resp.body);
        }
        // Addressable errors carry the request the engine would answer with a 400.
        Err(MessageError::BadRequest { request, .. }) => exercise_request(&request),
        Err(_) => {}
    }
    let _ = sdp::negotiate(data);
}

fn exercise_request(req: &rsip::Request) {
    let _ = TransactionKey::from_request(req);
    let _ = ResponseBuilder::new(req, 400, "Bad Request").build();
    let _ = sdp::negotiate(&req.body);
}

/// A TCP byte stream framed with `frame` (Content-Length / CRLF keep-alives), each framed
/// message through parse_stream_message.
pub fn sip_stream(data: &[u8]) {
    let mut buf = data;
    loop {
        match frame(buf, MAX_SIZE) {
            Ok(Frame::Message(n)) => {
                assert!(
                    n > 0 && n <= buf.len(),
                    "frame returned {n} for {} bytes",
                    buf.len()
                );
                let (msg, rest) = buf.split_at(n);
                match parse_stream_message(msg) {
                    Ok(SipMessage::Request(req)) => {
                        let _ = TransactionKey::from_request(&req);
                        let _ = ResponseBuilder::new(&req, 400, "Bad Request").build();
                    }
                    Ok(SipMessage::Response(resp)) => {
                        let _ = TransactionKey::for_response(&resp);
                    }
                    Err(MessageError::BadRequest { request, .. }) => {
                        let _ = ResponseBuilder::new(&request, 400, "Bad Request").build();
                    }
                    Err(_) => {}
                }
                buf = rest;
            }
            Ok(Frame::KeepAlive(n)) => {
                assert!(
                    n > 0 && n <= buf.len(),
                    "keep-alive {n} for {} bytes",
                    buf.len()
                );
                buf = &buf[n..];
            }
            Ok(Frame::Incomplete) | Err(_) => break,
        }
    }
}

/// Arbitrary bytes as an SDP offer.
pub fn sdp(data: &[u8]) {
    let _ = sdp::negotiate(data);
}

/// An RTP datagram through media::rtp::parse, its payload as RFC 4733 telephone-events into an
/// EventDetector, and the raw bytes as SIP INFO DTMF bodies.
pub fn rtp(data: &[u8]) {
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
}

/// Arbitrary bytes as a WAV file (chunk walk, every sample format, mix-down, resampling).
pub fn wav(data: &[u8]) {
    let _ = activeflow::media::wav::decode_to_8k_mono(data);
}
