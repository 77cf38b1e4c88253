//! In-dialog requests the engine sends (RFC 3261 §12.2.1.1), written as bytes directly like the
//! responses in `build`. Always emits Content-Length; strips CR/LF from values.

use bytes::Bytes;

use crate::sip::message::build::{push_header, push_tail};

/// In-dialog request the engine sends (e.g. BYE). Unset Via/From/To/Call-ID are omitted.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    method: rsip::Method,
    uri: String,
    via: Option<String>,
    from: Option<String>,
    to: Option<String>,
    call_id: Option<String>,
    cseq: u32,
    max_forwards: u8,
    contact: Option<String>,
    extra: Vec<(String, String)>,
    body: Option<(String, Bytes)>,
}

impl RequestBuilder {
    pub fn new(method: rsip::Method, request_uri: &str) -> RequestBuilder {
        RequestBuilder {
            method,
            uri: request_uri.to_string(),
            via: None,
            from: None,
            to: None,
            call_id: None,
            cseq: 1,
            max_forwards: 70,
            contact: None,
            extra: Vec::new(),
            body: None,
        }
    }

    /// `Via: SIP/2.0/{transport} {sent_by};branch={branch}`.
    pub fn via(mut self, sent_by: &str, transport: &str, branch: &str) -> RequestBuilder {
        self.via = Some(format!("SIP/2.0/{transport} {sent_by};branch={branch}"));
        self
    }

    /// `From: {addr};tag={tag}` where `addr` is e.g. `"A" <sip:a@h>`.
    pub fn from_addr(mut self, addr: &str, tag: &str) -> RequestBuilder {
        self.from = Some(format!("{addr};tag={tag}"));
        self
    }

    /// `To: {addr}[;tag={tag}]`.
    pub fn to_addr(mut self, addr: &str, tag: Option<&str>) -> RequestBuilder {
        self.to = Some(match tag {
            Some(t) => format!("{addr};tag={t}"),
            None => addr.to_string(),
        });
        self
    }

    pub fn call_id(mut self, call_id: &str) -> RequestBuilder {
        self.call_id = Some(call_id.to_string());
        self
    }

    pub fn cseq(mut self, seq: u32) -> RequestBuilder {
        self.cseq = seq;
        self
    }

    pub fn max_forwards(mut self, hops: u8) -> RequestBuilder {
        self.max_forwards = hops;
        self
    }

    pub fn contact(mut self, contact: &str) -> RequestBuilder {
        self.contact = Some(contact.to_string());
        self
    }

    /// Extra header (e.g. Route, Reason), emitted in call order after Contact.
    pub fn header(mut self, name: &str, value: &str) -> RequestBuilder {
        self.extra.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> RequestBuilder {
        self.body = Some((content_type.to_string(), body.into()));
        self
    }

    pub fn build(&self) -> Bytes {
        let body_len = self.body.as_ref().map_or(0, |(_, b)| b.len());
        let mut out = Vec::with_capacity(384usize.saturating_add(body_len));
        let uri: String = crate::sip::message::ipv6::unmask(&self.uri)
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        out.extend_from_slice(format!("{} {} SIP/2.0\r\n", self.method, uri).as_bytes());
        let optional = [
            ("Via", &self.via),
            ("From", &self.from),
            ("To", &self.to),
            ("Call-ID", &self.call_id),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                push_header(&mut out, name, v);
            }
        }
        push_header(&mut out, "CSeq", &format!("{} {}", self.cseq, self.method));
        push_header(&mut out, "Max-Forwards", &self.max_forwards.to_string());
        if let Some(c) = &self.contact {
            push_header(&mut out, "Contact", c);
        }
        push_tail(&mut out, &self.extra, self.body.as_ref());
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{new_branch, parse_datagram};
    use rsip::prelude::*;
    use rsip::SipMessage;

    #[test]
    fn bye_request_parses() {
        let branch = new_branch();
        let bytes = RequestBuilder::new(rsip::Method::Bye, "sip:alice@10.0.0.1")
            .via("10.0.0.2:5060", "UDP", &branch)
            .from_addr("<sip:bob@example.com>", "totag1")
            .to_addr("Alice <sip:alice@example.com>", Some("1928301774"))
            .call_id("a84b4c76e66710@pc33")
            .cseq(2)
            .contact("<sip:engine@10.0.0.2>")
            .header("Reason", "Q.850;cause=16")
            .build();
        let SipMessage::Request(req) = parse_datagram(&bytes, 4096).unwrap() else {
            panic!("not a request");
        };
        assert_eq!(req.method, rsip::Method::Bye);
        let key = crate::sip::message::TransactionKey::from_request(&req).unwrap();
        assert_eq!(key.branch(), branch);
        assert_eq!(req.cseq_header().unwrap().value(), "2 BYE");
        assert_eq!(req.max_forwards_header().unwrap().value(), "70");
    }
}
