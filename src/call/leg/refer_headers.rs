//! The header rules of REFER and its NOTIFYs, as pure functions over a message: the one
//! `Refer-To` (RFC 3515 §2.1, §2.4.1), `Refer-Sub` (RFC 4488 §4), the `message/sipfrag` status
//! line (RFC 3420, RFC 3515 §2.4.5). No state; the leg's use of them is in `refer.rs`.

use rsip::prelude::*;

use crate::sip::dialog::uri_of;
use crate::sip::message::reason_phrase;

/// Why a REFER is refused with 400 before the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReferError {
    #[error("no Refer-To header")]
    Missing,
    #[error("more than one Refer-To value")]
    Several,
    #[error("Refer-To is not a sip:, sips: or tel: URI")]
    Scheme,
    #[error("Refer-To carries URI headers (attended transfer is not supported)")]
    UriHeaders,
}

/// The Refer-To URI of a REFER (RFC 3515 §2.1, §2.4.1: exactly one value).
pub(crate) fn refer_to(headers: &rsip::Headers) -> Result<String, ReferError> {
    let values = header_values(headers, &["refer-to", "r"]);
    let value = match values.as_slice() {
        [] => return Err(ReferError::Missing),
        [one] => one,
        _ => return Err(ReferError::Several),
    };
    if has_top_level_comma(value) {
        return Err(ReferError::Several);
    }
    let uri = uri_of(value).ok_or(ReferError::Scheme)?;
    let lower = uri.to_ascii_lowercase();
    let rest = ["sip:", "sips:", "tel:"]
        .iter()
        .find_map(|s| lower.strip_prefix(s))
        .ok_or(ReferError::Scheme)?;
    if rest.is_empty() || rest.chars().any(char::is_whitespace) {
        return Err(ReferError::Scheme);
    }
    if uri.contains('?') {
        return Err(ReferError::UriHeaders);
    }
    Ok(uri)
}

/// False when the REFER asks for no subscription (`Refer-Sub: false`, RFC 4488 §4).
pub(crate) fn refer_sub(headers: &rsip::Headers) -> bool {
    header_values(headers, &["refer-sub"])
        .first()
        .is_none_or(|v| !v.trim().eq_ignore_ascii_case("false"))
}

/// The body of a NOTIFY for a REFER: the status line alone (RFC 3515 §2.4.5, RFC 3420).
pub(crate) fn sipfrag(status: u16) -> String {
    format!("SIP/2.0 {status} {}\r\n", reason_phrase(status))
}

/// The status code of a `message/sipfrag` body's status line.
pub(crate) fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let mut parts = text.lines().next()?.split_whitespace();
    if !parts.next()?.eq_ignore_ascii_case("SIP/2.0") {
        return None;
    }
    let code: u16 = parts.next()?.parse().ok()?;
    (100..700).contains(&code).then_some(code)
}

/// Values of the headers named `names` (case-insensitive; rsip types few of these).
pub(super) fn header_values(headers: &rsip::Headers, names: &[&str]) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| {
            let text = h.to_string();
            let (name, value) = text.split_once(':')?;
            let name = name.trim();
            names
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
                .then(|| value.trim().to_string())
        })
        .collect()
}

/// A comma outside `<>` and quotes: a header line with several values.
fn has_top_level_comma(value: &str) -> bool {
    let (mut depth, mut quoted) = (0i32, false);
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth <= 0 => return true,
            _ => {}
        }
    }
    false
}

pub(super) fn cseq_number(req: &rsip::Request) -> u32 {
    req.cseq_header()
        .ok()
        .and_then(|c| c.value().split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[(&str, &str)]) -> rsip::Headers {
        let mut h = rsip::Headers::default();
        for (name, value) in lines {
            h.push(rsip::Header::Other((*name).into(), (*value).into()));
        }
        h
    }

    /// RFC 3515 §2.4.1: exactly one Refer-To; we take sip:, sips: and tel: URIs.
    #[test]
    fn refer_to_needs_one_usable_uri() {
        let ok = headers(&[("Refer-To", "<sip:carol@127.0.0.1:5070>")]);
        assert_eq!(refer_to(&ok).unwrap(), "sip:carol@127.0.0.1:5070");
        let compact = headers(&[("r", "tel:+15550100")]);
        assert_eq!(refer_to(&compact).unwrap(), "tel:+15550100");
        assert_eq!(refer_to(&headers(&[])), Err(ReferError::Missing));
        let two = headers(&[("Refer-To", "<sip:a@h>"), ("Refer-To", "<sip:b@h>")]);
        assert_eq!(refer_to(&two), Err(ReferError::Several));
        let joined = headers(&[("Refer-To", "<sip:a@h>, <sip:b@h>")]);
        assert_eq!(refer_to(&joined), Err(ReferError::Several));
        let http = headers(&[("Refer-To", "<http://example.com/>")]);
        assert_eq!(refer_to(&http), Err(ReferError::Scheme));
        let empty = headers(&[("Refer-To", "<sip:>")]);
        assert_eq!(refer_to(&empty), Err(ReferError::Scheme));
        let replaces = headers(&[("Refer-To", "<sip:b@h?Replaces=abc%3Bto-tag%3D1>")]);
        assert_eq!(refer_to(&replaces), Err(ReferError::UriHeaders));
    }

    /// RFC 4488 §4: `Refer-Sub: false` asks for no NOTIFY.
    #[test]
    fn refer_sub_false_is_read() {
        assert!(refer_sub(&headers(&[])));
        assert!(!refer_sub(&headers(&[("Refer-Sub", "false")])));
        assert!(refer_sub(&headers(&[("Refer-Sub", "true")])));
    }

    /// RFC 3420 / RFC 3515 §2.4.5: a sipfrag status line both ways.
    #[test]
    fn sipfrag_round_trips() {
        assert_eq!(sipfrag(100), "SIP/2.0 100 Trying\r\n");
        assert_eq!(sipfrag_status(sipfrag(486).as_bytes()), Some(486));
        assert_eq!(
            sipfrag_status(b"SIP/2.0 200 OK\r\nContact: <sip:x@h>\r\n"),
            Some(200)
        );
        assert_eq!(sipfrag_status(b"hello"), None);
        assert_eq!(sipfrag_status(b"SIP/2.0 99 Low\r\n"), None);
        assert_eq!(sipfrag_status(b""), None);
    }
}
