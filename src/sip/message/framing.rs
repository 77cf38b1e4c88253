//! Stream (TCP) framing by Content-Length (RFC 3261 §18.3) and RFC 5626 CRLF keep-alives.
//! Only finds message boundaries in a byte buffer; must not parse, allocate or panic.

use crate::sip::message::{content_length, find_header_end, ContentLengthError};

/// Result of looking at the front of a stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Total length in bytes of the first complete message in the buffer.
    Message(usize),
    /// Number of leading CR/LF bytes to skip (RFC 5626 keep-alive ping/pong).
    KeepAlive(usize),
    /// Need more bytes.
    Incomplete,
}

/// Unrecoverable stream errors: the caller should close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("header section exceeds {max} bytes without CRLFCRLF")]
    HeadersTooLarge { max: usize },
    #[error("Content-Length missing (required on streams)")]
    MissingContentLength,
    #[error("unparseable Content-Length")]
    InvalidContentLength,
    #[error("conflicting Content-Length headers")]
    ConflictingContentLength,
    #[error("message of {size} bytes exceeds limit of {max}")]
    TooLarge { size: usize, max: usize },
}

/// Frames the first message of `buf`. Header names match case-insensitively; `l:` counts.
pub fn frame(buf: &[u8], max_size: usize) -> Result<Frame, FramingError> {
    let crlf = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if crlf > 0 {
        return Ok(Frame::KeepAlive(crlf));
    }
    if buf.is_empty() {
        return Ok(Frame::Incomplete);
    }
    let Some(end) = find_header_end(buf) else {
        if buf.len() > max_size {
            return Err(FramingError::HeadersTooLarge { max: max_size });
        }
        return Ok(Frame::Incomplete);
    };
    let head = buf.get(..end.head_len).unwrap_or_default();
    let cl = match content_length(head) {
        Ok(Some(n)) => n,
        Ok(None) => return Err(FramingError::MissingContentLength),
        Err(ContentLengthError::Invalid) => return Err(FramingError::InvalidContentLength),
        Err(ContentLengthError::Conflicting) => return Err(FramingError::ConflictingContentLength),
    };
    let total = end
        .body_start
        .checked_add(cl)
        .ok_or(FramingError::InvalidContentLength)?;
    if total > max_size {
        return Err(FramingError::TooLarge {
            size: total,
            max: max_size,
        });
    }
    if buf.len() < total {
        return Ok(Frame::Incomplete);
    }
    Ok(Frame::Message(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BYE: &[u8] = b"BYE sip:a SIP/2.0\r\nCall-ID: x\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn frames_two_messages_back_to_back() {
        let mut buf = BYE.to_vec();
        buf.extend_from_slice(BYE);
        assert_eq!(frame(&buf, 4096), Ok(Frame::Message(BYE.len())));
        let rest = &buf[BYE.len()..];
        assert_eq!(frame(rest, 4096), Ok(Frame::Message(BYE.len())));
    }

    #[test]
    fn incomplete_until_body_complete() {
        for cut in 0..BYE.len() {
            assert_eq!(frame(&BYE[..cut], 4096), Ok(Frame::Incomplete), "cut {cut}");
        }
    }

    #[test]
    fn keepalive_crlf() {
        assert_eq!(frame(b"\r\n\r\nBYE", 4096), Ok(Frame::KeepAlive(4)));
        assert_eq!(frame(b"\r\n", 4096), Ok(Frame::KeepAlive(2)));
    }

    #[test]
    fn compact_and_case_insensitive_length() {
        let m = b"BYE sip:a SIP/2.0\r\nl: 2\r\n\r\nok";
        assert_eq!(frame(m, 4096), Ok(Frame::Message(m.len())));
        let m = b"BYE sip:a SIP/2.0\r\ncontent-LENGTH:0\r\n\r\n";
        assert_eq!(frame(m, 4096), Ok(Frame::Message(m.len())));
    }

    #[test]
    fn errors() {
        let no_cl = b"BYE sip:a SIP/2.0\r\nCall-ID: x\r\n\r\n";
        assert_eq!(frame(no_cl, 4096), Err(FramingError::MissingContentLength));
        let bad = b"BYE sip:a SIP/2.0\r\nContent-Length: x\r\n\r\n";
        assert_eq!(frame(bad, 4096), Err(FramingError::InvalidContentLength));
        let dup = b"BYE sip:a SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\n";
        assert_eq!(
            frame(dup, 4096),
            Err(FramingError::ConflictingContentLength)
        );
        let big = b"BYE sip:a SIP/2.0\r\nContent-Length: 5000\r\n\r\n";
        assert!(matches!(
            frame(big, 4096),
            Err(FramingError::TooLarge { .. })
        ));
        let endless = vec![b'a'; 5000];
        assert_eq!(
            frame(&endless, 4096),
            Err(FramingError::HeadersTooLarge { max: 4096 })
        );
    }
}
