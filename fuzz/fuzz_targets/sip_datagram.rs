//! Fuzz target: one UDP datagram through normalize, parse_datagram, transaction keys, the 400 builder, the 501 path and SDP negotiation.
#![no_main]

use activeflow::media::sdp;
use activeflow::sip::message::{
    normalize, parse_datagram, unknown_method, MessageError, ResponseBuilder, TransactionKey,
};
use libfuzzer_sys::fuzz_target;
use rsip::SipMessage;

fn exercise_request(req: &rsip::Request) {
    let _ = TransactionKey::from_request(req);
    let _ = ResponseBuilder::new(req, 400, "Bad Request").build();
    let _ = sdp::negotiate(&req.body);
}

fuzz_target!(|data: &[u8]| {
    let _ = normalize(data);
    let _ = unknown_method::not_implemented(data);
    match parse_datagram(data, 65535) {
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
});
