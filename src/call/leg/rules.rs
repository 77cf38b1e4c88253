//! The small rules of RFC 3261 a leg applies to a request before its dialog sees it: which
//! methods and option tags we support (§8.2.1, §8.2.2.3), DTMF in INFO bodies (RFC 6086), tags.

use rsip::prelude::*;

/// Option tags we support (RFC 3261 §8.2.2.3); any other `Require` gets 420.
pub(crate) const SUPPORTED: &[&str] = &[super::reliable::TAG];

/// INFO bodies we take DTMF from (RFC 6086 legacy INFO usage).
pub(super) const INFO_ACCEPT: &str = "application/dtmf-relay, application/dtmf";

/// Methods we know but do not support (405 rather than 501), in or out of a dialog.
/// Exhaustive, so a method rsip learns must be placed here.
pub(crate) fn is_unsupported(method: &rsip::Method) -> bool {
    use rsip::Method as M;
    match method {
        M::Register | M::Subscribe | M::Publish | M::Message | M::Update => true,
        M::Ack
        | M::Bye
        | M::Cancel
        | M::Info
        | M::Invite
        | M::Options
        | M::PRack
        | M::Refer
        | M::Notify => false,
    }
}

/// The option tags of `Require` we do not support (§8.2.2.3), comma-joined; `None` if all
/// are supported.
pub(crate) fn unsupported_requirements(headers: &rsip::Headers) -> Option<String> {
    let missing: Vec<String> = headers
        .iter()
        .filter_map(|h| match h {
            rsip::Header::Require(r) => Some(r.value().to_string()),
            rsip::Header::Other(name, value) if name.eq_ignore_ascii_case("require") => {
                Some(value.clone())
            }
            _ => None,
        })
        .flat_map(|v| {
            v.split(',')
                .map(|t| t.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty() && !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

pub(super) enum InfoBody {
    Empty,
    Digit(char),
    Invalid,
    Unsupported,
}

/// Reads a DTMF digit from an INFO request's body.
pub(super) fn info_dtmf(req: &rsip::Request) -> InfoBody {
    if req.body.is_empty() {
        return InfoBody::Empty;
    }
    let content_type = req
        .headers
        .iter()
        .find_map(|h| match h {
            rsip::Header::ContentType(c) => Some(c.value().to_string()),
            _ => None,
        })
        .unwrap_or_default();
    match crate::media::dtmf::info_digit(&content_type, &req.body) {
        Ok(d) => InfoBody::Digit(d),
        Err(crate::media::dtmf::InfoDtmfError::UnsupportedContentType(_)) => InfoBody::Unsupported,
        Err(_) => InfoBody::Invalid,
    }
}

pub(super) fn to_tag(req: &rsip::Request) -> Option<String> {
    tag_of(req.to_header().ok().map(|h| h.value()))
}

/// The `tag` parameter of a From or To value.
pub(crate) fn tag_of(value: Option<&str>) -> Option<String> {
    crate::sip::message::key::tag_param(value?).map(str::to_string)
}

/// A request's Max-Forwards, when it has a readable one.
pub(crate) fn max_forwards(headers: &rsip::Headers) -> Option<u32> {
    headers.iter().find_map(|h| match h {
        rsip::Header::MaxForwards(m) => m.value().trim().parse().ok(),
        _ => None,
    })
}

/// The SDP a message carries: its `application/sdp` body, or the SDP part of a
/// `multipart/mixed` one (SIP-I/SIP-T trunks add an ISUP part, RFC 3204); `None` when it
/// carries none (a body of another type is no offer).
pub(super) fn sdp_in<'a>(headers: &rsip::Headers, body: &'a [u8]) -> Option<&'a [u8]> {
    if body.is_empty() {
        return None;
    }
    let content_type = headers
        .iter()
        .find_map(|h| match h {
            rsip::Header::ContentType(c) => Some(c.value().to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "application/sdp".to_string());
    crate::media::sdp::sdp_of(&content_type, body)
}

/// The INVITE headers its responses copy (RFC 3261 §8.2.6.2: Via, From, To, Call-ID, CSeq) and
/// its dialog is made of (§12.1.1: Contact, Record-Route).
pub(super) fn kept_for_answer(h: &rsip::Header) -> bool {
    use rsip::Header;
    matches!(
        h,
        Header::Via(_)
            | Header::From(_)
            | Header::To(_)
            | Header::CallId(_)
            | Header::CSeq(_)
            | Header::Contact(_)
            | Header::RecordRoute(_)
    )
}

/// A digest of an SDP body without its `o=` line (what changed apart from the version).
pub(super) fn digest_without_origin(sdp: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for line in sdp.lines().filter(|l| !l.starts_with("o=")) {
        line.hash(&mut h);
    }
    h.finish().max(1)
}

/// Diversion values (RFC 5806) a leg carries on: at most this many, each at most this long.
const MAX_DIVERSIONS: usize = 8;
const MAX_DIVERSION_LEN: usize = 256;

/// The request's Diversion header values in order (comma-joined ones split), bounded: a
/// caller's list is copied onto the legs we place, not an amplifier.
pub(crate) fn diversion(headers: &rsip::Headers) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| match h {
            rsip::Header::Other(name, value) if name.eq_ignore_ascii_case("diversion") => {
                Some(value)
            }
            _ => None,
        })
        .flat_map(|v| split_outside_quotes(v))
        .filter(|v| !v.is_empty() && v.len() <= MAX_DIVERSION_LEN)
        .take(MAX_DIVERSIONS)
        .collect()
}

/// Splits a header value on commas outside quotes and angle brackets.
fn split_outside_quotes(value: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                parts.push(value[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim().to_string());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5806: each Diversion value in order, comma-joined ones split outside quotes and
    /// angle brackets, at most [`MAX_DIVERSIONS`].
    #[test]
    fn diversion_values_in_order_and_bounded() {
        let mut headers = rsip::Headers::default();
        headers.push(rsip::Header::Other(
            "Diversion".into(),
            "<sip:100@a;x=1,2>;reason=busy, \"Bob, Jr\" <sip:200@b>".into(),
        ));
        headers.push(rsip::Header::Other(
            "diversion".into(),
            "<sip:300@c>".into(),
        ));
        assert_eq!(
            diversion(&headers),
            [
                "<sip:100@a;x=1,2>;reason=busy",
                "\"Bob, Jr\" <sip:200@b>",
                "<sip:300@c>"
            ]
        );
        let mut many = rsip::Headers::default();
        for n in 0..20 {
            many.push(rsip::Header::Other(
                "Diversion".into(),
                format!("<sip:{n}@h>"),
            ));
        }
        many.push(rsip::Header::Other("Diversion".into(), "x".repeat(300)));
        assert_eq!(diversion(&many).len(), MAX_DIVERSIONS);
        assert!(diversion(&rsip::Headers::default()).is_empty());
    }
}
