//! DTMF carried in SIP INFO bodies (the de facto `application/dtmf-relay` and `application/dtmf`
//! formats; RFC 6086 only frames the INFO). Reads one body; knows nothing of SIP messages or
//! transactions, which the call session handles.

use super::{digit_to_event, event_to_digit};

/// Why a SIP INFO body did not yield a DTMF digit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InfoDtmfError {
    #[error(
        "unsupported INFO content type {0:?} (expected application/dtmf-relay or application/dtmf)"
    )]
    UnsupportedContentType(String),
    #[error("INFO body is not UTF-8 text")]
    NotText,
    #[error("INFO body has no Signal")]
    MissingSignal,
    #[error("INFO Signal {0:?} is not a DTMF digit")]
    InvalidSignal(String),
}

/// A SIP INFO body carrying one DTMF digit: `application/dtmf-relay` ("Signal=5\r\nDuration=160",
/// keys case-insensitive, whitespace tolerant, LF or CRLF) or `application/dtmf` ("5").
/// Content-type comparison ignores case and parameters (";charset=..."). Signal may also be
/// given as an event number 10..=15 for `*`, `#`, `A`-`D` (some gateways do that). Letters are
/// returned uppercase.
pub fn info_digit(content_type: &str, body: &[u8]) -> Result<char, InfoDtmfError> {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    let relay = if media_type.eq_ignore_ascii_case("application/dtmf-relay") {
        true
    } else if media_type.eq_ignore_ascii_case("application/dtmf") {
        false
    } else {
        return Err(InfoDtmfError::UnsupportedContentType(media_type.to_owned()));
    };
    let text = std::str::from_utf8(body).map_err(|_| InfoDtmfError::NotText)?;
    let signal = if relay {
        text.lines()
            .filter_map(|line| line.split_once('='))
            .find(|(key, _)| key.trim().eq_ignore_ascii_case("signal"))
            .map(|(_, value)| value.trim())
    } else {
        Some(text.trim())
    };
    match signal {
        None | Some("") => Err(InfoDtmfError::MissingSignal),
        Some(signal) => {
            signal_digit(signal).ok_or_else(|| InfoDtmfError::InvalidSignal(signal.to_owned()))
        }
    }
}

/// One digit character, or an event number 0..=15 written in decimal.
fn signal_digit(signal: &str) -> Option<char> {
    let mut chars = signal.chars();
    if let (Some(digit), None) = (chars.next(), chars.next()) {
        return digit_to_event(digit).and_then(event_to_digit);
    }
    signal.parse::<u8>().ok().and_then(event_to_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_dtmf_relay_bodies() {
        let relay = "application/dtmf-relay";
        assert_eq!(info_digit(relay, b"Signal=5\r\nDuration=160\r\n"), Ok('5'));
        assert_eq!(info_digit(relay, b"signal = # \nduration=250"), Ok('#'));
        assert_eq!(info_digit(relay, b"Duration=160\nSIGNAL=\t*\n"), Ok('*'));
        assert_eq!(info_digit(relay, b"Signal=10\r\nDuration=160"), Ok('*'));
        assert_eq!(info_digit(relay, b"Signal=11"), Ok('#'));
        assert_eq!(info_digit(relay, b"Signal=d"), Ok('D'));
        assert_eq!(
            info_digit("Application/DTMF-Relay; charset=utf-8", b"Signal=1"),
            Ok('1')
        );
        assert_eq!(
            info_digit(relay, b"Duration=160"),
            Err(InfoDtmfError::MissingSignal)
        );
        assert_eq!(
            info_digit(relay, b"Signal=\r\n"),
            Err(InfoDtmfError::MissingSignal)
        );
        assert_eq!(info_digit(relay, b""), Err(InfoDtmfError::MissingSignal));
        assert_eq!(
            info_digit(relay, b"Signal=16"),
            Err(InfoDtmfError::InvalidSignal("16".into()))
        );
        assert_eq!(
            info_digit(relay, b"Signal=x"),
            Err(InfoDtmfError::InvalidSignal("x".into()))
        );
        assert_eq!(
            info_digit(relay, &[0xFF, 0xFE]),
            Err(InfoDtmfError::NotText)
        );
    }

    #[test]
    fn info_dtmf_bodies_and_content_types() {
        assert_eq!(info_digit("application/dtmf", b"5"), Ok('5'));
        assert_eq!(info_digit(" APPLICATION/DTMF ;x=y", b" 9\r\n"), Ok('9'));
        assert_eq!(info_digit("application/dtmf", b"11"), Ok('#'));
        assert_eq!(
            info_digit("application/dtmf", b"  "),
            Err(InfoDtmfError::MissingSignal)
        );
        assert_eq!(
            info_digit("application/dtmf", b"55"),
            Err(InfoDtmfError::InvalidSignal("55".into()))
        );
        assert_eq!(
            info_digit("application/media_control+xml; a=b", b"<x/>"),
            Err(InfoDtmfError::UnsupportedContentType(
                "application/media_control+xml".into()
            ))
        );
        let message = InfoDtmfError::UnsupportedContentType("text/plain".into()).to_string();
        assert!(message.contains("text/plain"), "{message}");
    }
}
