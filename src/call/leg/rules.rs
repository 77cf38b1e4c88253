//! The small rules of RFC 3261 a leg applies to a request before its dialog sees it: which
//! methods and option tags we support (§8.2.1, §8.2.2.3), DTMF in INFO bodies (RFC 6086), tags.

use rsip::prelude::*;

/// Option tags we support (RFC 3261 §8.2.2.3): none yet, so any `Require` gets 420.
pub(crate) const SUPPORTED: &[&str] = &[];

/// INFO bodies we take DTMF from (RFC 6086 legacy INFO usage).
pub(super) const INFO_ACCEPT: &str = "application/dtmf-relay, application/dtmf";

/// Methods we know but do not support (405 rather than 501), in or out of a dialog.
/// Exhaustive, so a method rsip learns must be placed here.
pub(crate) fn is_unsupported(method: &rsip::Method) -> bool {
    use rsip::Method as M;
    match method {
        M::Register | M::Subscribe | M::Publish | M::Message | M::Update | M::PRack => true,
        M::Ack | M::Bye | M::Cancel | M::Info | M::Invite | M::Options | M::Refer | M::Notify => {
            false
        }
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
