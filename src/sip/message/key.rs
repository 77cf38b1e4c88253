//! Transaction matching keys: server side RFC 3261 §17.2.3 (branch + sent-by + method,
//! ACK → INVITE) with an RFC 2543 fallback, client side §17.1.3 (branch + CSeq method).
//! Reads only the raw top Via / CSeq / Call-ID / From values; must not panic.

use std::fmt;
use std::hash::{Hash, Hasher};

use rsip::prelude::*;
use rsip::{Header, Method};

use crate::sip::message::MessageError;

const MAGIC_COOKIE: &str = "z9hG4bK";

/// Key identifying a transaction. Client keys (see [`TransactionKey::client`]) have an
/// empty `sent_by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionKey {
    branch: String,
    method: Method,
    sent_by: String,
}

impl Hash for TransactionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.branch.hash(state);
        method_id(self.method).hash(state);
        self.sent_by.hash(state);
    }
}

impl fmt::Display for TransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.branch, self.method, self.sent_by)
    }
}

impl TransactionKey {
    /// Server-side key for an incoming request (§17.2.3). ACK maps to INVITE.
    pub fn from_request(req: &rsip::Request) -> Result<TransactionKey, MessageError> {
        let via = top_via(&req.headers)?;
        let (sent_by, branch) = parse_via(via)?;
        let method = match req.method {
            Method::Ack => Method::Invite,
            m => m,
        };
        let branch = match branch {
            Some(b) if b.starts_with(MAGIC_COOKIE) => b.to_string(),
            _ => legacy_branch(req, via)?,
        };
        Ok(TransactionKey {
            branch,
            method,
            sent_by: sent_by.to_ascii_lowercase(),
        })
    }

    /// Client-side key for an incoming response (§17.1.3): top Via branch + CSeq method.
    pub fn for_response(resp: &rsip::Response) -> Result<TransactionKey, MessageError> {
        let via = top_via(&resp.headers)?;
        let (_, branch) = parse_via(via)?;
        let branch = branch.ok_or(MessageError::InvalidHeader("Via"))?;
        let cseq = find(&resp.headers, |h| match h {
            Header::CSeq(c) => Some(c.value()),
            _ => None,
        })
        .ok_or(MessageError::MissingHeader("CSeq"))?;
        let method = cseq
            .split_whitespace()
            .nth(1)
            .and_then(|m| m.parse::<Method>().ok())
            .ok_or(MessageError::InvalidHeader("CSeq"))?;
        Ok(TransactionKey::client(branch, method))
    }

    /// Client-side key for a request we sent with `branch`.
    pub fn client(branch: &str, method: Method) -> TransactionKey {
        TransactionKey {
            branch: branch.to_string(),
            method,
            sent_by: String::new(),
        }
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    pub fn method(&self) -> Method {
        self.method
    }

    pub fn sent_by(&self) -> &str {
        &self.sent_by
    }
}

fn find<'a>(
    headers: &'a rsip::Headers,
    f: impl Fn(&'a Header) -> Option<&'a str>,
) -> Option<&'a str> {
    headers.iter().find_map(f)
}

/// Top Via value, cut at the first comma in case the message was not normalized.
fn top_via(headers: &rsip::Headers) -> Result<&str, MessageError> {
    let via = find(headers, |h| match h {
        Header::Via(v) => Some(v.value()),
        _ => None,
    })
    .ok_or(MessageError::MissingHeader("Via"))?;
    Ok(via.split(',').next().unwrap_or(via))
}

/// Returns `(sent-by, branch)` from a single Via value `SIP/2.0/UDP host:port;params`.
fn parse_via(via: &str) -> Result<(&str, Option<&str>), MessageError> {
    let mut parts = via.split(';');
    let proto_and_host = parts.next().unwrap_or_default();
    let sent_by = proto_and_host
        .split_whitespace()
        .last()
        .filter(|s| !s.contains('/'))
        .ok_or(MessageError::InvalidHeader("Via"))?;
    let branch = parts.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("branch")
            .then(|| value.trim())
            .filter(|v| !v.is_empty())
    });
    Ok((sent_by, branch))
}

/// RFC 2543 fallback: Call-ID + CSeq number + From tag + whole top Via.
fn legacy_branch(req: &rsip::Request, via: &str) -> Result<String, MessageError> {
    let call_id = find(&req.headers, |h| match h {
        Header::CallId(c) => Some(c.value()),
        _ => None,
    })
    .ok_or(MessageError::MissingHeader("Call-ID"))?;
    let cseq = find(&req.headers, |h| match h {
        Header::CSeq(c) => Some(c.value()),
        _ => None,
    })
    .ok_or(MessageError::MissingHeader("CSeq"))?;
    let seq = cseq.split_whitespace().next().unwrap_or_default();
    let from = find(&req.headers, |h| match h {
        Header::From(f) => Some(f.value()),
        _ => None,
    })
    .ok_or(MessageError::MissingHeader("From"))?;
    let from_tag = tag_param(from).unwrap_or_default();
    Ok(format!(
        "rfc2543:{}:{}:{}:{}",
        call_id.trim(),
        seq,
        from_tag,
        via.trim()
    ))
}

/// `tag` parameter of a From/To value (params after `>` or, without `<>`, after the URI).
pub(crate) fn tag_param(value: &str) -> Option<&str> {
    let params = value.rsplit_once('>').map_or(value, |(_, p)| p);
    params.split(';').skip(1).find_map(|p| {
        let (name, v) = p.split_once('=')?;
        name.trim().eq_ignore_ascii_case("tag").then(|| v.trim())
    })
}

fn method_id(m: Method) -> u8 {
    match m {
        Method::Ack => 0,
        Method::Bye => 1,
        Method::Cancel => 2,
        Method::Info => 3,
        Method::Invite => 4,
        Method::Message => 5,
        Method::Notify => 6,
        Method::Options => 7,
        Method::PRack => 8,
        Method::Publish => 9,
        Method::Refer => 10,
        Method::Register => 11,
        Method::Subscribe => 12,
        Method::Update => 13,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::parse_datagram;

    fn request(method: &str, via: &str, cseq: &str) -> rsip::Request {
        let raw = format!(
            "{method} sip:bob@h SIP/2.0\r\nVia: {via}\r\nTo: <sip:bob@h>\r\n\
             From: <sip:a@h>;tag=ft\r\nCall-ID: cid\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
        );
        match parse_datagram(raw.as_bytes(), 4096).unwrap() {
            rsip::SipMessage::Request(r) => r,
            rsip::SipMessage::Response(_) => panic!("not a request"),
        }
    }

    #[test]
    fn ack_matches_invite_cancel_does_not() {
        let via = "SIP/2.0/UDP Host.Example:5060;branch=z9hG4bKabc;rport";
        let inv = TransactionKey::from_request(&request("INVITE", via, "1 INVITE")).unwrap();
        let ack = TransactionKey::from_request(&request("ACK", via, "1 ACK")).unwrap();
        let cancel = TransactionKey::from_request(&request("CANCEL", via, "1 CANCEL")).unwrap();
        assert_eq!(inv, ack);
        assert_ne!(inv, cancel);
        assert_eq!(inv.sent_by(), "host.example:5060");
        assert_eq!(inv.branch(), "z9hG4bKabc");
        assert_eq!(inv.to_string(), "z9hG4bKabc/INVITE/host.example:5060");
        let set: std::collections::HashSet<_> = [inv, ack, cancel].into_iter().collect();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn legacy_branch_fallback() {
        let via = "SIP/2.0/UDP h:5060;branch=old1";
        let k = TransactionKey::from_request(&request("BYE", via, "7 BYE")).unwrap();
        assert!(k.branch().starts_with("rfc2543:cid:7:ft:"), "{k}");
        let k2 = TransactionKey::from_request(&request("BYE", "SIP/2.0/UDP h", "7 BYE")).unwrap();
        assert!(k2.branch().starts_with("rfc2543:"));
    }

    #[test]
    fn response_key_matches_client_key() {
        let raw = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP me:5060;branch=z9hG4bKxyz\r\nTo: <sip:b@h>;tag=2\r\n\
            From: <sip:a@h>;tag=1\r\nCall-ID: x\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
        let rsip::SipMessage::Response(resp) = parse_datagram(raw.as_bytes(), 4096).unwrap() else {
            panic!("not a response");
        };
        let k = TransactionKey::for_response(&resp).unwrap();
        assert_eq!(k, TransactionKey::client("z9hG4bKxyz", Method::Bye));
    }

    #[test]
    fn tag_extraction() {
        assert_eq!(tag_param("<sip:a@h;tag=no>;tag=yes"), Some("yes"));
        assert_eq!(tag_param("sip:a@h;TAG=x"), Some("x"));
        assert_eq!(tag_param("<sip:a@h;tag=no>"), None);
    }
}
