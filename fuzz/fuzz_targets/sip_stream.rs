//! Fuzz target: a TCP byte stream framed with `frame` (Content-Length / CRLF keep-alives), each framed message through parse_stream_message.
#![no_main]

use activeflow::sip::message::{
    frame, parse_stream_message, Frame, MessageError, ResponseBuilder, TransactionKey,
};
use libfuzzer_sys::fuzz_target;
use rsip::SipMessage;

/// Same per-connection limit the datagram path uses.
const MAX_SIZE: usize = 65535;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    loop {
        match frame(buf, MAX_SIZE) {
            Ok(Frame::Message(n)) => {
                assert!(n > 0 && n <= buf.len(), "frame returned {n} for {} bytes", buf.len());
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
                assert!(n > 0 && n <= buf.len(), "keep-alive {n} for {} bytes", buf.len());
                buf = &buf[n..];
            }
            Ok(Frame::Incomplete) | Err(_) => break,
        }
    }
});
