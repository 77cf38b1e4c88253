//! Fast byte-level builders for responses (RFC 3261 §8.2.6) and in-dialog requests
//! (§12.2.1.1), plus branch/tag generators. No rsip round trip: writes bytes directly.
//! Always emits Content-Length; strips CR/LF from values so callers cannot inject headers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rsip::prelude::*;
use rsip::Header;

use crate::sip::message::key::tag_param;

/// The RFC 3261 §21 reason phrase of a code (and RFC 3262/3329/4028/6665 additions); every
/// code the engine sends has its own, others get their class's phrase.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            1 => "Session Progress",
            2 => "OK",
            3 => "Redirected",
            4 => "Request Failure",
            5 => "Server Failure",
            _ => "Global Failure",
        },
    }
}

fn unique_hex() -> String {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ (u64::from(std::process::id()) << 32)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // splitmix64 is a bijection, so distinct counters give distinct outputs.
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    format!("{:016x}", z ^ (z >> 31))
}

/// New RFC 3261 branch: `z9hG4bK` + 16 hex digits, unique within the process.
pub fn new_branch() -> String {
    format!("z9hG4bK{}", unique_hex())
}

/// New From/To tag: 16 hex digits, unique within the process.
pub fn new_tag() -> String {
    unique_hex()
}

pub(super) fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    let clean = |s: &str, out: &mut Vec<u8>| {
        out.extend(
            s.bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    };
    clean(name, out);
    out.extend_from_slice(b": ");
    clean(&crate::sip::message::ipv6::unmask(value), out);
    out.extend_from_slice(b"\r\n");
}

pub(super) fn push_tail(
    out: &mut Vec<u8>,
    extra: &[(String, String)],
    body: Option<&(String, Bytes)>,
) {
    for (name, value) in extra {
        push_header(out, name, value);
    }
    match body {
        Some((content_type, bytes)) => {
            push_header(out, "Content-Type", content_type);
            push_header(out, "Content-Length", &bytes.len().to_string());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(bytes);
        }
        None => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
}

/// Response to a parsed request: copies all Via (in order), From, To, Call-ID, CSeq.
#[derive(Debug, Clone)]
pub struct ResponseBuilder {
    code: u16,
    reason: String,
    vias: Vec<String>,
    from: String,
    to: String,
    call_id: String,
    cseq: String,
    record_route: Vec<String>,
    copy_record_route: bool,
    extra: Vec<(String, String)>,
    body: Option<(String, Bytes)>,
    stateless: bool,
}

/// Longest extra header value a stateless reply carries (e.g. a `Warning` text).
const STATELESS_EXTRA_MAX: usize = 128;
/// Vias a stateless reply copies: every hop of a real path (RFC 3261 §8.2.6.2 wants them all,
/// and a stateless proxy in front needs the next one), but not a padded list.
const STATELESS_VIAS: usize = 10;

impl ResponseBuilder {
    /// A reply sent without a transaction (400 to malformed input, the dispatcher's
    /// 403/404/481/501/503): at most [`STATELESS_VIAS`] Vias (every hop of a real path, so
    /// proxies in front can still route it, RFC 3261 §8.2.6.2), no Record-Route, no body, extra
    /// values cut to 128 bytes. So the reply is never larger than the request plus a few
    /// headers and the engine amplifies no spoofed source.
    pub fn stateless(req: &rsip::Request, code: u16, reason: &str) -> ResponseBuilder {
        let mut b = ResponseBuilder::new(req, code, reason);
        b.vias.truncate(STATELESS_VIAS);
        b.record_route.clear();
        b.stateless = true;
        b
    }

    /// Adds `received`/`rport` to the top Via from the request's source address (RFC 3261
    /// §18.2.1, RFC 3581 §4); call it with the transport's peer address on every response.
    pub fn received_from(mut self, source: std::net::SocketAddr) -> ResponseBuilder {
        if let Some(top) = self.vias.first_mut() {
            *top = crate::sip::message::via::with_received(top, source);
        }
        self
    }

    pub fn new(req: &rsip::Request, code: u16, reason: &str) -> ResponseBuilder {
        let mut b = ResponseBuilder {
            code,
            reason: reason.to_string(),
            vias: Vec::new(),
            from: String::new(),
            to: String::new(),
            call_id: String::new(),
            cseq: String::new(),
            record_route: Vec::new(),
            copy_record_route: false,
            extra: Vec::new(),
            body: None,
            stateless: false,
        };
        for h in req.headers.iter() {
            match h {
                Header::Via(v) => b.vias.push(v.value().to_string()),
                Header::From(v) if b.from.is_empty() => b.from = v.value().to_string(),
                Header::To(v) if b.to.is_empty() => b.to = v.value().to_string(),
                Header::CallId(v) if b.call_id.is_empty() => b.call_id = v.value().to_string(),
                Header::CSeq(v) if b.cseq.is_empty() => b.cseq = v.value().to_string(),
                Header::RecordRoute(v) => b.record_route.push(v.value().to_string()),
                _ => {}
            }
        }
        b
    }

    /// Adds `;tag=` to To unless it already carries a tag.
    #[allow(clippy::wrong_self_convention)]
    pub fn to_tag(mut self, tag: &str) -> ResponseBuilder {
        if tag_param(&self.to).is_none() {
            self.to.push_str(";tag=");
            self.to.push_str(tag);
        }
        self
    }

    /// Copies the request's Record-Route headers (dialog-creating responses, §12.1.1).
    /// Ignored on a stateless reply.
    pub fn record_route(mut self) -> ResponseBuilder {
        self.copy_record_route = !self.stateless;
        self
    }

    /// Extra header, emitted in call order after CSeq.
    pub fn header(mut self, name: &str, value: &str) -> ResponseBuilder {
        let mut value = value.to_string();
        if self.stateless && value.len() > STATELESS_EXTRA_MAX {
            let mut cut = STATELESS_EXTRA_MAX;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
        }
        self.extra.push((name.to_string(), value));
        self
    }

    /// Extra header never cut, even on a stateless reply: for values the engine makes itself
    /// and bounds itself (a digest challenge: realm, nonce and algorithm), never the request's.
    pub fn header_uncut(mut self, name: &str, value: &str) -> ResponseBuilder {
        self.extra.push((name.to_string(), value.to_string()));
        self
    }

    /// The body; ignored on a stateless reply.
    pub fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> ResponseBuilder {
        if !self.stateless {
            self.body = Some((content_type.to_string(), body.into()));
        }
        self
    }

    pub fn build(&self) -> Bytes {
        let body_len = self.body.as_ref().map_or(0, |(_, b)| b.len());
        let mut out = Vec::with_capacity(256usize.saturating_add(body_len));
        out.extend_from_slice(format!("SIP/2.0 {} ", self.code).as_bytes());
        out.extend(self.reason.bytes().filter(|&b| b != b'\r' && b != b'\n'));
        out.extend_from_slice(b"\r\n");
        for via in &self.vias {
            push_header(&mut out, "Via", via);
        }
        if self.copy_record_route {
            for rr in &self.record_route {
                push_header(&mut out, "Record-Route", rr);
            }
        }
        push_header(&mut out, "From", &self.from);
        push_header(&mut out, "To", &self.to);
        push_header(&mut out, "Call-ID", &self.call_id);
        push_header(&mut out, "CSeq", &self.cseq);
        push_tail(&mut out, &self.extra, self.body.as_ref());
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{parse_datagram, parse_stream_message};
    use rsip::SipMessage;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1, SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa\r\n\
        Record-Route: <sip:p1.example.com;lr>\r\n\
        Max-Forwards: 69\r\n\
        To: Bob <sip:bob@example.com>\r\n\
        From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710@pc33\r\n\
        CSeq: 314159 INVITE\r\n\
        Content-Length: 0\r\n\r\n";

    fn invite() -> rsip::Request {
        match parse_datagram(INVITE.as_bytes(), 4096).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!("not a request"),
        }
    }

    #[test]
    fn response_round_trips_through_rsip() {
        let bytes = ResponseBuilder::new(&invite(), 200, reason_phrase(200))
            .to_tag("totag1")
            .to_tag("ignored")
            .record_route()
            .header("Contact", "<sip:engine@10.0.0.2>")
            .body("application/sdp", &b"v=0\r\n"[..])
            .build();
        let SipMessage::Response(resp) = parse_stream_message(&bytes).unwrap() else {
            panic!("not a response");
        };
        assert_eq!(resp.status_code.code(), 200);
        let vias: Vec<_> = resp
            .headers
            .iter()
            .filter_map(|h| match h {
                Header::Via(v) => Some(v.value().to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(
            vias,
            [
                "SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1",
                "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa"
            ]
        );
        let to = resp.to_header().unwrap();
        assert_eq!(
            to.tag().unwrap().map(|t| t.to_string()),
            Some("totag1".into())
        );
        assert_eq!(
            resp.call_id_header().unwrap().value(),
            "a84b4c76e66710@pc33"
        );
        assert_eq!(resp.cseq_header().unwrap().value(), "314159 INVITE");
        assert_eq!(resp.body, b"v=0\r\n");
        assert!(resp.record_route_header().is_some());
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(text.contains("Content-Length: 5\r\n"));
    }

    #[test]
    fn response_without_body_has_zero_length_and_no_injection() {
        let bytes = ResponseBuilder::new(&invite(), 486, "Busy\r\nX: y")
            .header("Retry-After", "30\r\nEvil: 1")
            .build();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(text.starts_with("SIP/2.0 486 BusyX: y\r\n"));
        assert!(text.contains("Retry-After: 30  Evil: 1\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
        assert!(!text.contains("Record-Route"));
    }

    #[test]
    fn branches_and_tags_unique() {
        let set: std::collections::HashSet<_> = (0..10_000).map(|_| new_branch()).collect();
        assert_eq!(set.len(), 10_000);
        assert!(new_branch().starts_with("z9hG4bK"));
        assert_ne!(new_tag(), new_tag());
        assert_eq!(reason_phrase(481), "Call/Transaction Does Not Exist");
    }

    /// RFC 3261 §21: every code the engine sends carries its own phrase.
    #[test]
    fn every_code_the_engine_sends_has_its_phrase() {
        let sent = [
            100, 180, 200, 202, 400, 403, 404, 405, 408, 415, 420, 480, 481, 483, 486, 487, 488,
            491, 500, 501, 503, 603,
        ];
        for code in sent {
            let phrase = reason_phrase(code);
            assert!(!phrase.is_empty() && phrase != "Unknown", "{code}");
        }
        assert_eq!(reason_phrase(420), "Bad Extension");
        assert_eq!(reason_phrase(483), "Too Many Hops");
        assert_eq!(reason_phrase(491), "Request Pending");
        assert_eq!(reason_phrase(499), "Request Failure");
    }
}
