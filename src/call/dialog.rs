//! A SIP dialog as either side of it needs it after the INVITE (RFC 3261 §12): the URIs, tags,
//! remote target, route set and our CSeq, and the in-dialog requests built from them (BYE, and
//! the ACK for a 2xx on legs we place). Also the small URI helpers both sides share.

use rsip::prelude::*;

use crate::sip::message::{new_branch, RequestBuilder};

/// What an in-dialog request needs once the INVITE itself is gone.
pub(crate) struct Dialog {
    pub(crate) local_uri: String,
    pub(crate) local_tag: String,
    pub(crate) remote_uri: String,
    pub(crate) remote_tag: Option<String>,
    pub(crate) remote_target: String,
    pub(crate) route_set: Vec<String>,
    pub(crate) local_cseq: u32,
    pub(crate) call_id: String,
}

impl Dialog {
    /// An in-dialog request with a new branch; `cseq` is the caller's choice (a new one for
    /// BYE, the INVITE's for its ACK).
    pub(crate) fn request(
        &self,
        method: rsip::Method,
        cseq: u32,
        sent_by: &str,
        transport: &str,
    ) -> RequestBuilder {
        let mut b = RequestBuilder::new(method, &self.remote_target)
            .via(sent_by, transport, &new_branch())
            .from_addr(&self.local_uri, &self.local_tag)
            .to_addr(&self.remote_uri, self.remote_tag.as_deref())
            .call_id(&self.call_id)
            .cseq(cseq)
            .max_forwards(70);
        for route in &self.route_set {
            b = b.header("Route", route);
        }
        b
    }

    /// A BYE with the next CSeq.
    pub(crate) fn bye(&mut self, sent_by: &str, transport: &str) -> bytes::Bytes {
        self.local_cseq += 1;
        self.request(rsip::Method::Bye, self.local_cseq, sent_by, transport)
            .build()
    }
}

/// The Record-Route values of a message, in the order they appear.
pub(crate) fn record_routes(headers: &rsip::Headers) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| match h {
            rsip::Header::RecordRoute(r) => Some(r.value().to_string()),
            _ => None,
        })
        .collect()
}

/// The URI inside a name-addr (`"Bob" <sip:bob@h>;tag=x`) or an addr-spec (`sip:bob@h;tag=x`).
pub(crate) fn uri_of(value: &str) -> Option<String> {
    let value = value.trim();
    if let (Some(start), Some(end)) = (value.find('<'), value.find('>')) {
        return value.get(start + 1..end).map(str::to_string);
    }
    value.split(';').next().map(|s| s.trim().to_string())
}

/// Drops a `;tag=` parameter so the builder can add the tag it is given.
pub(crate) fn strip_tag(value: &str) -> String {
    let lower = value.to_ascii_lowercase();
    let search_from = lower.rfind('>').unwrap_or(0);
    match lower.get(search_from..).and_then(|s| s.find(";tag=")) {
        Some(pos) => {
            let start = search_from + pos;
            let rest = value.get(start + 5..).unwrap_or("");
            let end = rest.find(';').map(|e| start + 5 + e).unwrap_or(value.len());
            format!("{}{}", &value[..start], &value[end..])
        }
        None => value.to_string(),
    }
}

/// An IP as it appears in a URI host (IPv6 in brackets).
pub(crate) fn host(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_and_tag_helpers() {
        assert_eq!(
            uri_of("\"A\" <sip:a@h:5060>;tag=1").as_deref(),
            Some("sip:a@h:5060")
        );
        assert_eq!(uri_of("sip:a@h;tag=1").as_deref(), Some("sip:a@h"));
        assert_eq!(strip_tag("<sip:a@h>;tag=abc;x=y"), "<sip:a@h>;x=y");
        assert_eq!(strip_tag("<sip:a@h;tag=in-uri>"), "<sip:a@h;tag=in-uri>");
        assert_eq!(strip_tag("sip:a@h;TAG=abc"), "sip:a@h");
    }

    #[test]
    fn bye_carries_the_dialog_and_the_next_cseq() {
        let mut d = Dialog {
            local_uri: "<sip:a@h>".into(),
            local_tag: "lt".into(),
            remote_uri: "<sip:b@h>".into(),
            remote_tag: Some("rt".into()),
            remote_target: "sip:b@10.0.0.2:5062".into(),
            route_set: vec!["<sip:p1;lr>".into()],
            local_cseq: 1,
            call_id: "c1".into(),
        };
        let bye = String::from_utf8(d.bye("10.0.0.1:5060", "UDP").to_vec()).unwrap();
        assert!(
            bye.starts_with("BYE sip:b@10.0.0.2:5062 SIP/2.0\r\n"),
            "{bye}"
        );
        for part in [
            "From: <sip:a@h>;tag=lt",
            "To: <sip:b@h>;tag=rt",
            "Call-ID: c1",
            "CSeq: 2 BYE",
            "Route: <sip:p1;lr>",
        ] {
            assert!(bye.contains(part), "{part} missing in {bye}");
        }
    }
}
