//! One REGISTER of an authenticated user against the location service (RFC 3261 §10.3):
//! the AoR must be the user's own (403), `Expires` (header or Contact parameter) below the
//! minimum gets 423 with `Min-Expires` (step 7), above the maximum is shortened, `0` and `*`
//! remove, a refresh with the same Call-ID must have a higher CSeq (500 otherwise), and the
//! 200 lists every current binding with its remaining seconds (step 8). All-or-nothing: a
//! refused request changes nothing.

use std::time::Instant;

use rsip::prelude::*;

use super::{secs, Binding, LocationService, MAX_CONTACTS_PER_USER};
use crate::sip::transport::Peer;

/// The response to send: a status and its extra headers (`Contact`, `Min-Expires`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterReply {
    pub code: u16,
    pub headers: Vec<(&'static str, String)>,
    /// Live bindings over all users after the request (for `activeflow_registrations_active`).
    pub active: Option<usize>,
    /// When the last of this user's bindings from this source expires (`None`: it has none
    /// left): a TCP connection is kept open until then (RFC 5626-lite).
    pub source_until: Option<Instant>,
}

impl RegisterReply {
    fn refuse(code: u16) -> Self {
        RegisterReply {
            code,
            headers: Vec::new(),
            active: None,
            source_until: None,
        }
    }
}

/// One Contact of the request.
#[derive(Debug, PartialEq, Eq)]
enum ContactSpec {
    /// `*`: every binding.
    Wildcard,
    Uri {
        uri: String,
        expires: Option<u32>,
    },
}

/// Handles `req`, a REGISTER authenticated as `user`, received from `source` at `now`.
pub fn process(
    location: &LocationService,
    req: &rsip::Request,
    user: &str,
    source: Peer,
    now: Instant,
) -> RegisterReply {
    // §10.3 step 5: a user registers its own address-of-record only.
    let aor_user = req
        .to_header()
        .ok()
        .and_then(|t| t.uri().ok())
        .and_then(|u| u.user().map(str::to_string));
    if aor_user.as_deref() != Some(user) {
        return RegisterReply::refuse(403);
    }
    let (Ok(call_id), Some(cseq)) = (
        req.call_id_header().map(|h| h.value().to_string()),
        req.cseq_header()
            .ok()
            .and_then(|c| c.typed().ok())
            .map(|c| c.seq),
    ) else {
        return RegisterReply::refuse(400);
    };
    let mut header_expires = None;
    let mut contacts = Vec::new();
    for header in req.headers.iter() {
        match header {
            rsip::Header::Expires(h) => match h.value().trim().parse::<u32>() {
                Ok(v) => header_expires = Some(v),
                Err(_) => return RegisterReply::refuse(400),
            },
            rsip::Header::Contact(h) => {
                for value in split_top_level(h.value()) {
                    match parse_contact(value) {
                        Some(c) => contacts.push(c),
                        None => return RegisterReply::refuse(400),
                    }
                }
            }
            _ => {}
        }
    }
    let limits = location.limits();
    let wildcard = contacts.contains(&ContactSpec::Wildcard);
    // §10.3 step 6: `*` only alone and with Expires: 0.
    if wildcard && (contacts.len() != 1 || header_expires != Some(0)) {
        return RegisterReply::refuse(400);
    }
    let mut wanted = Vec::new();
    for c in &contacts {
        if let ContactSpec::Uri { uri, expires } = c {
            let expires = expires.or(header_expires).unwrap_or(limits.max);
            if expires != 0 && expires < limits.min {
                return RegisterReply {
                    code: 423,
                    headers: vec![("Min-Expires", limits.min.to_string())],
                    active: None,
                    source_until: None,
                };
            }
            wanted.push((uri.clone(), expires.min(limits.max)));
        }
    }
    let result = location.update(user, now, |list| {
        let mut next = list.clone();
        // §10.3 step 7: the same Call-ID must come with a higher CSeq, else abort.
        let stale = |b: &Binding| b.call_id == call_id && cseq <= b.cseq;
        if wildcard {
            if next.iter().any(stale) {
                return Err(500);
            }
            next.clear();
        }
        for (uri, expires) in &wanted {
            let existing = next
                .iter()
                .position(|b| b.contact.eq_ignore_ascii_case(uri));
            if existing.is_some_and(|i| next.get(i).is_some_and(stale)) {
                return Err(500);
            }
            if let Some(i) = existing {
                next.remove(i);
            }
            if *expires > 0 {
                next.push(Binding {
                    contact: uri.clone(),
                    source,
                    expires_at: now + secs(*expires),
                    call_id: call_id.clone(),
                    cseq,
                });
            }
        }
        if next.len() > MAX_CONTACTS_PER_USER {
            return Err(403);
        }
        *list = next;
        let until = list
            .iter()
            .filter(|b| b.source == source)
            .map(|b| b.expires_at)
            .max();
        let headers = list
            .iter()
            .map(|b| {
                (
                    "Contact",
                    format!("<{}>;expires={}", b.contact, b.remaining(now)),
                )
            })
            .collect::<Vec<_>>();
        Ok((headers, until))
    });
    match result {
        Some((Ok((headers, source_until)), active)) => RegisterReply {
            code: 200,
            headers,
            active: Some(active),
            source_until,
        },
        Some((Err(code), _)) => RegisterReply::refuse(code),
        None => RegisterReply::refuse(500),
    }
}

/// Splits a header value at commas outside `<...>` and quotes (RFC 3261 §7.3.1).
fn split_top_level(value: &str) -> Vec<&str> {
    let (mut out, mut start, mut angle, mut quoted) = (Vec::new(), 0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            '"' if !angle => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !angle && !quoted => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|v| !v.is_empty());
    out
}

/// `*`, `"name" <uri>;params`, `<uri>;params` or `uri;params` (then the parameters are the
/// header's, RFC 3261 §20.10). None for anything else, or a URI that is not `sip:`.
fn parse_contact(value: &str) -> Option<ContactSpec> {
    let value = value.trim();
    if value == "*" {
        return Some(ContactSpec::Wildcard);
    }
    let (uri, params) = match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => {
            (value.get(open + 1..close)?, value.get(close + 1..)?)
        }
        (None, None) => value.split_once(';').unwrap_or((value, "")),
        _ => return None,
    };
    let uri = uri.trim();
    let scheme_ok = uri.len() > 4 && uri.get(..4)?.eq_ignore_ascii_case("sip:");
    if !scheme_ok || rsip::Uri::try_from(uri).is_err() {
        return None;
    }
    let mut expires = None;
    for param in params.split(';') {
        let (name, v) = param.split_once('=').unwrap_or((param, ""));
        if name.trim().eq_ignore_ascii_case("expires") {
            expires = Some(v.trim().trim_matches('"').parse().ok()?);
        }
    }
    Some(ContactSpec::Uri {
        uri: uri.to_string(),
        expires,
    })
}
