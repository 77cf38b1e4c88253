//! Turns raw bytes into `rsip::SipMessage`: normalize, enforce Content-Length (RFC 3261
//! §18.3), rsip parse, then the sanity checks the engine relies on (mandatory headers,
//! CSeq method). Must not panic; errors tell the caller whether a 400 can be addressed.

use rsip::prelude::*;
use rsip::{Header, SipMessage};

use crate::sip::message::{
    content_length, find_header_end, normalize, BadRequestReason, ContentLengthError, MessageError,
    MAX_HEADERS,
};

/// Parses one UDP datagram. A body longer than Content-Length is truncated to it; a
/// shorter one is an error; without Content-Length the body runs to the end.
pub fn parse_datagram(raw: &[u8], max_size: usize) -> Result<SipMessage, MessageError> {
    if raw.len() > max_size {
        return Err(MessageError::TooLarge {
            size: raw.len(),
            max: max_size,
        });
    }
    parse_framed(raw)
}

/// Parses one already-framed stream (TCP) message (see `framing::frame`).
pub fn parse_stream_message(raw: &[u8]) -> Result<SipMessage, MessageError> {
    parse_framed(raw)
}

fn parse_framed(raw: &[u8]) -> Result<SipMessage, MessageError> {
    let start = raw
        .iter()
        .position(|&b| !matches!(b, b'\r' | b'\n'))
        .ok_or(MessageError::Empty)?;
    let raw = raw.get(start..).unwrap_or_default();
    let norm = normalize(raw)?;
    let bytes: &[u8] = &norm;
    let end = find_header_end(bytes).ok_or(MessageError::NoHeaderEnd)?;
    let head = bytes.get(..end.head_len).unwrap_or_default();
    // Counted before rsip parses (and allocates) anything; the scan is of bytes only.
    // Every line of the head ends in LF: the start line plus one per header field.
    let fields = head
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        .saturating_sub(1);
    if fields > MAX_HEADERS {
        return Err(MessageError::TooManyHeaders { max: MAX_HEADERS });
    }
    let body_len = bytes.len().saturating_sub(end.body_start);
    let headers_only = bytes.get(..end.body_start).unwrap_or_default();
    match content_length(head) {
        Ok(None) => validate(rsip_parse(bytes)?),
        Ok(Some(cl)) if cl <= body_len => {
            let msg_end = end.body_start.saturating_add(cl);
            validate(rsip_parse(bytes.get(..msg_end).unwrap_or(bytes))?)
        }
        Ok(Some(cl)) => reject(
            headers_only,
            BadRequestReason::BodyTruncated {
                declared: cl,
                actual: body_len,
            },
            MessageError::BodyTruncated {
                declared: cl,
                actual: body_len,
            },
        ),
        Err(ContentLengthError::Invalid | ContentLengthError::Conflicting) => reject(
            headers_only,
            BadRequestReason::InvalidContentLength,
            MessageError::InvalidContentLength,
        ),
    }
}

/// A status line starts `SIP/`; anything else is parsed as a request. rsip's own
/// `SipMessage::try_from` tries the response grammar first and, for every request, builds an
/// error string holding the whole message before trying the request grammar.
fn rsip_parse(bytes: &[u8]) -> Result<SipMessage, MessageError> {
    let parsed = if bytes.starts_with(b"SIP/") {
        rsip::Response::try_from(bytes).map(SipMessage::Response)
    } else {
        rsip::Request::try_from(bytes).map(SipMessage::Request)
    };
    parsed.map_err(|e| MessageError::Unparseable(e.to_string()))
}

/// A framing-level problem: answerable with 400 only if the headers parse and validate.
fn reject(
    headers_only: &[u8],
    reason: BadRequestReason,
    plain: MessageError,
) -> Result<SipMessage, MessageError> {
    match rsip_parse(headers_only).and_then(validate) {
        Ok(SipMessage::Request(request)) => Err(MessageError::BadRequest {
            reason,
            request: Box::new(request),
        }),
        Ok(SipMessage::Response(_)) => Err(plain),
        Err(e @ MessageError::BadRequest { .. }) => Err(e),
        Err(_) => Err(plain),
    }
}

/// Mandatory headers (RFC 3261 §8.1.1) and CSeq consistency.
fn validate(msg: SipMessage) -> Result<SipMessage, MessageError> {
    let headers = msg.headers();
    let has = |pred: fn(&Header) -> bool| headers.iter().any(pred);
    if !has(|h| matches!(h, Header::Via(_))) {
        return Err(MessageError::MissingHeader("Via"));
    }
    if !has(|h| matches!(h, Header::From(_))) {
        return Err(MessageError::MissingHeader("From"));
    }
    if !has(|h| matches!(h, Header::To(_))) {
        return Err(MessageError::MissingHeader("To"));
    }
    if !has(|h| matches!(h, Header::CallId(_))) {
        return Err(MessageError::MissingHeader("Call-ID"));
    }
    let Some(cseq) = headers.iter().find_map(|h| match h {
        Header::CSeq(c) => Some(c),
        _ => None,
    }) else {
        return Err(MessageError::MissingHeader("CSeq"));
    };
    let typed = cseq.typed();
    match msg {
        SipMessage::Request(request) => {
            let reason = match &typed {
                Err(_) => Some(BadRequestReason::InvalidHeader("CSeq")),
                Ok(c) if c.method != request.method => Some(BadRequestReason::CSeqMethodMismatch {
                    cseq: c.method.to_string(),
                    method: request.method.to_string(),
                }),
                Ok(_) => None,
            };
            match reason {
                Some(reason) => Err(MessageError::BadRequest {
                    reason,
                    request: Box::new(request),
                }),
                None => Ok(SipMessage::Request(request)),
            }
        }
        SipMessage::Response(response) => match typed {
            Ok(_) => Ok(SipMessage::Response(response)),
            Err(_) => Err(MessageError::InvalidHeader("CSeq")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n\
        Max-Forwards: 70\r\n\
        To: Bob <sip:bob@example.com>\r\n\
        From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710@pc33\r\n\
        CSeq: 314159 INVITE\r\n\
        Contact: <sip:alice@10.0.0.1>\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\n";

    fn req(s: &str) -> rsip::Request {
        match parse_datagram(s.as_bytes(), 65535).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!("expected request"),
        }
    }

    /// `extra` more header fields after the 9 of [`INVITE`].
    fn with_extra_headers(extra: usize) -> String {
        let (head, body) = INVITE.split_once("\r\n\r\n").expect("blank line");
        let filler: String = (0..extra).map(|n| format!("X-F{n}: v\r\n")).collect();
        format!("{head}\r\n{filler}\r\n{body}")
    }

    #[test]
    fn header_count_is_capped_before_rsip_parses() {
        let at_cap = with_extra_headers(MAX_HEADERS - 9);
        assert!(parse_datagram(at_cap.as_bytes(), 65535).is_ok());
        assert!(parse_stream_message(at_cap.as_bytes()).is_ok());
        let over = with_extra_headers(MAX_HEADERS - 8);
        let e = parse_datagram(over.as_bytes(), 65535).unwrap_err();
        assert_eq!(e, MessageError::TooManyHeaders { max: MAX_HEADERS });
        assert!(!e.is_addressable());
        let e = parse_stream_message(over.as_bytes()).unwrap_err();
        assert_eq!(e, MessageError::TooManyHeaders { max: MAX_HEADERS });
        // The worst case the size cap allows: ~13,000 one-letter headers, refused as cheaply.
        let flood = with_extra_headers(13_000);
        assert_eq!(
            parse_datagram(flood.as_bytes(), 1_048_576).unwrap_err(),
            MessageError::TooManyHeaders { max: MAX_HEADERS }
        );
    }

    #[test]
    fn size_cap_applies_to_datagrams() {
        let e = parse_datagram(INVITE.as_bytes(), INVITE.len() - 1).unwrap_err();
        assert!(matches!(e, MessageError::TooLarge { .. }), "{e}");
        assert!(parse_datagram(INVITE.as_bytes(), INVITE.len()).is_ok());
    }

    #[test]
    fn parses_and_truncates_extra_body() {
        let r = req(&format!("{INVITE}GARBAGE"));
        assert_eq!(r.body, b"v=0\n");
        assert_eq!(r.method, rsip::Method::Invite);
    }

    #[test]
    fn short_body_is_addressable() {
        let raw = INVITE.replace("Content-Length: 4", "Content-Length: 40");
        let err = parse_datagram(raw.as_bytes(), 65535).unwrap_err();
        assert!(err.is_addressable(), "{err}");
        assert!(err.request().is_some());
    }

    #[test]
    fn missing_content_length_body_runs_to_end() {
        let r = req(&INVITE.replace("Content-Length: 4\r\n", ""));
        assert_eq!(r.body, b"v=0\n");
    }

    #[test]
    fn missing_headers_named_and_not_addressable() {
        for (line, name) in [
            ("Call-ID: a84b4c76e66710@pc33\r\n", "Call-ID"),
            ("CSeq: 314159 INVITE\r\n", "CSeq"),
            (
                "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n",
                "Via",
            ),
        ] {
            let err = parse_datagram(INVITE.replace(line, "").as_bytes(), 65535).unwrap_err();
            assert_eq!(err, MessageError::MissingHeader(name));
            assert!(!err.is_addressable());
        }
    }

    #[test]
    fn cseq_mismatch_is_addressable() {
        let raw = INVITE.replace("314159 INVITE", "314159 BYE");
        let err = parse_datagram(raw.as_bytes(), 65535).unwrap_err();
        assert!(matches!(
            err,
            MessageError::BadRequest {
                reason: BadRequestReason::CSeqMethodMismatch { .. },
                ..
            }
        ));
    }

    #[test]
    fn compact_form_and_multi_via() {
        let raw = "BYE sip:bob@example.com SIP/2.0\r\n\
            v: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com;branch=z9hG4bK2\r\n\
            t: <sip:bob@example.com>;tag=2\r\nf: <sip:alice@example.com>;tag=1\r\n\
            i: abc\r\nCSeq: 2 BYE\r\nl: 0\r\n\r\n";
        let r = req(raw);
        let vias: Vec<_> = r
            .headers
            .iter()
            .filter(|h| matches!(h, Header::Via(_)))
            .collect();
        assert_eq!(vias.len(), 2);
        assert_eq!(r.call_id_header().unwrap().value(), "abc");
    }

    #[test]
    fn size_and_empty() {
        assert!(matches!(
            parse_datagram(INVITE.as_bytes(), 10),
            Err(MessageError::TooLarge { .. })
        ));
        assert_eq!(parse_datagram(b"\r\n\r\n", 100), Err(MessageError::Empty));
    }

    #[test]
    fn response_parses() {
        let raw = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>;tag=2\r\n\
            From: <sip:a@h>;tag=1\r\nCall-ID: x\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
        let msg = parse_stream_message(raw.as_bytes()).unwrap();
        assert!(msg.is_response());
    }

    /// RFC 3261 §19.1.1 / RFC 5118 §4: IPv6 references in the Request-URI, Via, From, To and
    /// Contact parse (rsip alone refuses them) and are written back unchanged by the builders.
    #[test]
    fn ipv6_references_parse_and_round_trip() {
        let raw = "INVITE sip:alice@[2001:db8::1]:5060 SIP/2.0\r\n\
            Via: SIP/2.0/UDP [2001:db8::2]:5070;branch=z9hG4bK1;rport\r\n\
            From: \"A\" <sip:a@[2001:db8::2]>;tag=1\r\nTo: <sip:alice@[2001:db8::1]>\r\n\
            Contact: <sip:a@[2001:db8::2]:5070;transport=tcp>\r\n\
            Call-ID: v6\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let r = req(raw);
        assert_eq!(r.uri.auth.as_ref().map(|a| a.user.as_str()), Some("alice"));
        let host = r.uri.host_with_port.host.to_string();
        assert_eq!(
            crate::sip::message::host_ip(&host),
            "2001:db8::1".parse().ok()
        );
        let via = r.via_header().unwrap().typed().unwrap();
        let sent_by = via.uri.host_with_port.host.to_string();
        assert_eq!(
            crate::sip::message::host_ip(&sent_by),
            "2001:db8::2".parse().ok()
        );
        let contact = r.contact_header().unwrap().typed().unwrap();
        assert_eq!(
            contact.uri.host_with_port.port.map(|p| *p.value()),
            Some(5070)
        );
        let reply = crate::sip::message::ResponseBuilder::new(&r, 200, "OK").build();
        let text = String::from_utf8(reply.to_vec()).unwrap();
        for line in [
            "Via: SIP/2.0/UDP [2001:db8::2]:5070;branch=z9hG4bK1;rport\r\n",
            "From: \"A\" <sip:a@[2001:db8::2]>;tag=1\r\n",
            "To: <sip:alice@[2001:db8::1]>\r\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        let bye =
            crate::sip::message::RequestBuilder::new(rsip::Method::Bye, &contact.uri.to_string())
                .build();
        assert!(
            bye.starts_with(b"BYE sip:a@[2001:db8::2]:5070;transport="),
            "{}",
            String::from_utf8_lossy(&bye)
        );
    }

    /// RFC 3261 §25.1 asks for UTF-8, but Latin-1 display names are common: the message is
    /// accepted with the name read as Latin-1, and the body stays byte-exact.
    #[test]
    fn latin1_display_name_is_accepted_and_the_body_kept() {
        let mut raw = INVITE
            .replace("Alice <sip:alice", "\"Jos\u{1}\" <sip:alice")
            .replace("Content-Length: 4", "Content-Length: 5")
            .into_bytes();
        let at = raw.iter().position(|&b| b == 1).unwrap();
        raw[at] = 0xe9;
        raw.pop();
        raw.extend_from_slice(b"\n\xff");
        let SipMessage::Request(r) = parse_datagram(&raw, 65535).unwrap() else {
            panic!("not a request");
        };
        assert_eq!(
            r.from_header().unwrap().value(),
            "\"José\" <sip:alice@example.com>;tag=1928301774"
        );
        assert_eq!(r.body, b"v=0\n\xff");
    }
}
