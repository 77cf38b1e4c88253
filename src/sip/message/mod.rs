//! SIP message layer: byte-level pre-pass (normalize), TCP framing, datagram/stream
//! parsing with sanity checks, fast response/request builders and transaction keys.
//! Owns `MessageError` and the small byte helpers shared by those files.
//! Must not do I/O, keep state, or panic on any input: everything here reads network bytes.

pub mod build;
pub mod framing;
pub mod ipv6;
pub mod key;
pub mod normalize;
pub mod parse;
pub mod request;
pub mod unknown_method;
mod via;

#[cfg(test)]
mod fuzz_tests;

pub use build::{new_branch, new_tag, reason_phrase, ResponseBuilder};
pub use framing::{frame, Frame, FramingError};
pub use ipv6::{host_ip, unmask};
pub use key::TransactionKey;
pub use normalize::normalize;
pub use parse::{parse_datagram, parse_stream_message};
pub use request::RequestBuilder;

/// Header fields (lines of the header section, the start line included) a message may have:
/// rsip makes an allocation per header, so a 64 KB message of tiny headers would cost ~13,000.
/// Real messages carry 10–40; long Via and Record-Route chains of big proxies stay far below.
pub const MAX_HEADERS: usize = 256;

/// The method's wire token, without allocating (rsip's `Display` builds a `String`).
pub fn method_name(method: &rsip::Method) -> &'static str {
    use rsip::Method as M;
    match method {
        M::Ack => "ACK",
        M::Bye => "BYE",
        M::Cancel => "CANCEL",
        M::Info => "INFO",
        M::Invite => "INVITE",
        M::Message => "MESSAGE",
        M::Notify => "NOTIFY",
        M::Options => "OPTIONS",
        M::PRack => "PRACK",
        M::Publish => "PUBLISH",
        M::Refer => "REFER",
        M::Register => "REGISTER",
        M::Subscribe => "SUBSCRIBE",
        M::Update => "UPDATE",
    }
}

/// Why a request that was parsed far enough to be answered is still invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRequestReason {
    #[error("invalid {0} header")]
    InvalidHeader(&'static str),
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMethodMismatch { cseq: String, method: String },
    #[error("body shorter than Content-Length (declared {declared}, got {actual})")]
    BodyTruncated { declared: usize, actual: usize },
    #[error("invalid Content-Length")]
    InvalidContentLength,
}

/// Every error of the message layer. Only [`MessageError::BadRequest`] is addressable
/// (the caller may answer 400 using the carried request); everything else means "drop".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("empty message")]
    Empty,
    #[error("message of {size} bytes exceeds limit of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("more than {max} header lines")]
    TooManyHeaders { max: usize },
    #[error("no end of header section (CRLFCRLF)")]
    NoHeaderEnd,
    #[error("body shorter than Content-Length (declared {declared}, got {actual})")]
    BodyTruncated { declared: usize, actual: usize },
    #[error("invalid Content-Length")]
    InvalidContentLength,
    #[error("unparseable SIP message: {0}")]
    Unparseable(String),
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("invalid {0} header")]
    InvalidHeader(&'static str),
    #[error("bad request: {reason}")]
    BadRequest {
        reason: BadRequestReason,
        request: Box<rsip::Request>,
    },
}

impl MessageError {
    /// True when enough of a request was parsed to address a 400 response.
    pub fn is_addressable(&self) -> bool {
        matches!(self, MessageError::BadRequest { .. })
    }

    /// The parsed request to answer with 400, if addressable.
    pub fn request(&self) -> Option<&rsip::Request> {
        match self {
            MessageError::BadRequest { request, .. } => Some(request),
            _ => None,
        }
    }
}

/// Header section boundaries: `head_len` excludes the blank line, `body_start` follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderEnd {
    pub(crate) head_len: usize,
    pub(crate) body_start: usize,
}

/// Finds the first empty line (CRLF or bare LF). `None` when the section is not finished.
pub(crate) fn find_header_end(buf: &[u8]) -> Option<HeaderEnd> {
    let mut line_start = 0usize;
    for (i, &b) in buf.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        let line = buf.get(line_start..i).unwrap_or_default();
        if (line.is_empty() || line == b"\r") && line_start > 0 {
            return Some(HeaderEnd {
                head_len: line_start,
                body_start: i + 1,
            });
        }
        line_start = i + 1;
    }
    None
}

/// Iterates `(name, value)` of header lines (start line and continuation lines skipped).
/// Names and values are trimmed of SP/HTAB/CR.
pub(crate) fn header_lines(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    head.split(|&b| b == b'\n')
        .skip(1)
        .filter(|l| !l.first().is_some_and(|&b| b == b' ' || b == b'\t'))
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let name = trim(line.get(..colon)?);
            let value = trim(line.get(colon + 1..)?);
            Some((name, value))
        })
}

pub(crate) fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if matches!(first, b' ' | b'\t' | b'\r' | b'\n') {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if matches!(last, b' ' | b'\t' | b'\r' | b'\n') {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Compact form → full header name (RFC 3261 §7.3.3 and extensions).
pub(crate) fn expand_compact(name: &[u8]) -> Option<&'static str> {
    let [c] = name else { return None };
    Some(match c.to_ascii_lowercase() {
        b'i' => "Call-ID",
        b'm' => "Contact",
        b'e' => "Content-Encoding",
        b'l' => "Content-Length",
        b'c' => "Content-Type",
        b'f' => "From",
        b's' => "Subject",
        b'k' => "Supported",
        b't' => "To",
        b'v' => "Via",
        b'o' => "Event",
        b'r' => "Refer-To",
        b'u' => "Allow-Events",
        b'x' => "Session-Expires",
        _ => return None,
    })
}

/// Case-insensitive header name match that also accepts the compact form of `full`.
pub(crate) fn name_matches(name: &[u8], full: &str) -> bool {
    name.eq_ignore_ascii_case(full.as_bytes())
        || expand_compact(name).is_some_and(|n| n.eq_ignore_ascii_case(full))
}

/// First value of header `name` (case-insensitive, compact forms honoured) in the header
/// section of `raw`. Continuation lines are not joined. `None` if absent or not UTF-8.
pub fn header_value<'a>(raw: &'a [u8], name: &str) -> Option<&'a str> {
    let head = match find_header_end(raw) {
        Some(end) => raw.get(..end.head_len)?,
        None => raw,
    };
    header_lines(head)
        .find(|(n, _)| name_matches(n, name))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// Content-Length problems shared by framing and parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentLengthError {
    Invalid,
    Conflicting,
}

/// Reads Content-Length (or `l:`) from a header section. Duplicates must agree.
pub(crate) fn content_length(head: &[u8]) -> Result<Option<usize>, ContentLengthError> {
    let mut found: Option<usize> = None;
    for (name, value) in header_lines(head) {
        if !name_matches(name, "Content-Length") {
            continue;
        }
        let n = parse_decimal(value).ok_or(ContentLengthError::Invalid)?;
        match found {
            Some(prev) if prev != n => return Err(ContentLengthError::Conflicting),
            _ => found = Some(n),
        }
    }
    Ok(found)
}

fn parse_decimal(v: &[u8]) -> Option<usize> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0usize, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(usize::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_end_variants() {
        let e = find_header_end(b"A\r\nB: c\r\n\r\nbody").unwrap();
        assert_eq!((e.head_len, e.body_start), (9, 11));
        let e = find_header_end(b"A\nB: c\n\nbody").unwrap();
        assert_eq!((e.head_len, e.body_start), (7, 8));
        assert!(find_header_end(b"A\r\nB: c\r\n").is_none());
        assert!(find_header_end(b"\r\n").is_none());
    }

    #[test]
    fn content_length_rules() {
        assert_eq!(content_length(b"X\r\nl: 5\r\n"), Ok(Some(5)));
        assert_eq!(
            content_length(b"X\r\nContent-Length: 5\r\ncontent-length:5\r\n"),
            Ok(Some(5))
        );
        assert_eq!(
            content_length(b"X\r\nContent-Length: 5\r\nl: 6\r\n"),
            Err(ContentLengthError::Conflicting)
        );
        assert_eq!(
            content_length(b"X\r\nContent-Length: -1\r\n"),
            Err(ContentLengthError::Invalid)
        );
        assert_eq!(
            content_length(b"X\r\nContent-Length: 99999999999999999999\r\n"),
            Err(ContentLengthError::Invalid)
        );
        assert_eq!(content_length(b"X\r\nFoo: 1\r\n"), Ok(None));
    }

    #[test]
    fn header_value_lookup() {
        let raw = b"BYE sip:a SIP/2.0\r\ni: abc\r\nCSeq: 2 BYE\r\n\r\nl: 9";
        assert_eq!(header_value(raw, "Call-ID"), Some("abc"));
        assert_eq!(header_value(raw, "cseq"), Some("2 BYE"));
        assert_eq!(header_value(raw, "Content-Length"), None);
    }
}
