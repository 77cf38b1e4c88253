//! A SIP dialog as either side needs it (RFC 3261 §12): URIs, tags, remote target, route set
//! and our CSeq; the in-dialog requests built from them (BYE, the ACK for a 2xx), where they go
//! (§12.2.1.1 with §8.1.2: the first loose route, else the remote target), and target refresh.
//! Pure data: no sockets, no clocks.

use std::net::{IpAddr, SocketAddr};

use rsip::prelude::*;

use crate::sip::message::{new_branch, RequestBuilder};
use crate::sip::transport::TransportKind;

/// The default SIP port (RFC 3261 §19.1.2).
const SIP_PORT: u16 = 5060;
/// The default port of a `sips:` URI (RFC 3261 §19.1.2).
const SIPS_PORT: u16 = 5061;

/// What in-dialog requests need once the INVITE itself is gone.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub local_uri: String,
    pub local_tag: String,
    pub remote_uri: String,
    pub remote_tag: Option<String>,
    /// Request-URI of our in-dialog requests: the peer's Contact (§12.1.1, §12.1.2).
    pub remote_target: String,
    /// `Route` values in the order our requests carry them.
    pub route_set: Vec<String>,
    pub local_cseq: u32,
    /// The highest CSeq seen on the peer's requests (§12.2.2: lower ones are out of order).
    pub remote_cseq: Option<u32>,
    pub call_id: String,
}

impl Dialog {
    /// RFC 3261 §12.1.1: the UAS's view, from the INVITE it answers with `local_tag`. The
    /// route set is the Record-Route list in order.
    pub fn as_uas(invite: &rsip::Request, local_tag: &str) -> Dialog {
        let header = |h: Result<&str, _>| h.map(str::to_string).unwrap_or_default();
        let local_uri = header(invite.to_header().map(|h| h.value()));
        let remote_uri = header(invite.from_header().map(|h| h.value()));
        let remote_tag = invite
            .from_header()
            .ok()
            .and_then(|f| f.tag().ok().flatten())
            .map(|t| t.value().to_string());
        let remote_target = invite
            .contact_header()
            .ok()
            .and_then(|c| uri_of(c.value()))
            .or_else(|| uri_of(&remote_uri))
            .unwrap_or_else(|| invite.uri.to_string());
        Dialog {
            local_uri: strip_tag(&local_uri),
            local_tag: local_tag.to_string(),
            remote_uri: strip_tag(&remote_uri),
            remote_tag,
            remote_target,
            route_set: record_routes(&invite.headers),
            local_cseq: 0,
            remote_cseq: cseq_of(&invite.headers),
            call_id: header(invite.call_id_header().map(|h| h.value())),
        }
    }

    /// RFC 3261 §12.1.2: the UAC's view, from the 2xx to the INVITE we sent from `local_uri`
    /// with `local_tag` and `cseq`. The route set is the Record-Route list reversed.
    pub fn as_uac(
        resp: &rsip::Response,
        local_uri: &str,
        local_tag: &str,
        cseq: u32,
        fallback_target: &str,
    ) -> Dialog {
        let to = resp
            .to_header()
            .map(|t| t.value().to_string())
            .unwrap_or_default();
        let remote_tag = resp
            .to_header()
            .ok()
            .and_then(|t| t.tag().ok().flatten())
            .map(|t| t.value().to_string());
        let remote_target = resp
            .contact_header()
            .ok()
            .and_then(|c| uri_of(c.value()))
            .unwrap_or_else(|| fallback_target.to_string());
        let mut route_set = record_routes(&resp.headers);
        route_set.reverse();
        Dialog {
            local_uri: local_uri.to_string(),
            local_tag: local_tag.to_string(),
            remote_uri: strip_tag(&to),
            remote_tag,
            remote_target,
            route_set,
            local_cseq: cseq,
            remote_cseq: None,
            call_id: resp
                .call_id_header()
                .map(|h| h.value().to_string())
                .unwrap_or_default(),
        }
    }

    /// An in-dialog request with a new branch; `cseq` is the caller's choice (a new one for
    /// BYE, the INVITE's for its ACK).
    pub fn request(
        &self,
        method: rsip::Method,
        cseq: u32,
        sent_by: &str,
        transport: &str,
    ) -> RequestBuilder {
        self.request_on_branch(method, cseq, sent_by, transport, &new_branch())
    }

    /// An in-dialog request on `branch` (the ACK for a non-2xx to our re-INVITE reuses the
    /// re-INVITE's, RFC 3261 §17.1.1.3).
    pub fn request_on_branch(
        &self,
        method: rsip::Method,
        cseq: u32,
        sent_by: &str,
        transport: &str,
        branch: &str,
    ) -> RequestBuilder {
        let mut b = RequestBuilder::new(method, &self.remote_target)
            .via(sent_by, transport, branch)
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
    pub fn bye(&mut self, sent_by: &str, transport: &str) -> bytes::Bytes {
        self.local_cseq += 1;
        self.request(rsip::Method::Bye, self.local_cseq, sent_by, transport)
            .build()
    }

    /// Where our in-dialog requests go (§12.2.1.1, §8.1.2): the first route when it is a loose
    /// router, else the remote target. `None` when that URI's host is a name (the caller falls
    /// back to the address the dialog's messages come from).
    pub fn next_hop(&self) -> Option<(SocketAddr, Option<TransportKind>)> {
        let first = self
            .route_set
            .first()
            .and_then(|r| uri_of(r))
            .filter(|u| has_param(u, "lr"));
        uri_address(first.as_deref().unwrap_or(&self.remote_target))
    }

    /// Target refresh (§12.2.2): a re-INVITE's Contact becomes the remote target.
    pub fn refresh_target(&mut self, req: &rsip::Request) {
        if let Some(uri) = req.contact_header().ok().and_then(|c| uri_of(c.value())) {
            self.remote_target = uri;
        }
    }

    /// §12.2.2: a request whose CSeq is lower than the last one seen is out of order (500);
    /// otherwise it becomes the last one.
    pub fn accept_remote_cseq(&mut self, headers: &rsip::Headers) -> bool {
        let Some(cseq) = cseq_of(headers) else {
            return true;
        };
        match self.remote_cseq {
            Some(last) if cseq < last => false,
            _ => {
                self.remote_cseq = Some(cseq);
                true
            }
        }
    }
}

fn cseq_of(headers: &rsip::Headers) -> Option<u32> {
    headers.iter().find_map(|h| match h {
        rsip::Header::CSeq(c) => c.value().split_whitespace().next()?.parse().ok(),
        _ => None,
    })
}

/// The Record-Route values of a message, in the order they appear (a comma-joined header
/// line counts as its elements).
pub fn record_routes(headers: &rsip::Headers) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| match h {
            rsip::Header::RecordRoute(r) => Some(r.value().to_string()),
            _ => None,
        })
        .flat_map(|v| split_name_addrs(&v))
        .collect()
}

/// Splits `<a>, <b;lr>` into its name-addrs (commas inside `<>` or quotes stay).
fn split_name_addrs(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth <= 0 => {
                out.push(value[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim().to_string());
    out.retain(|s| !s.is_empty());
    out
}

/// The URI inside a name-addr (`"Bob" <sip:bob@h>;tag=x`) or an addr-spec (`sip:bob@h;tag=x`).
pub fn uri_of(value: &str) -> Option<String> {
    let value = value.trim();
    if let (Some(start), Some(end)) = (value.find('<'), value.rfind('>')) {
        return value.get(start + 1..end).map(str::to_string);
    }
    value.split(';').next().map(|s| s.trim().to_string())
}

/// True when the URI carries the parameter `name` (`;lr`, `;lr=on`).
fn has_param(uri: &str, name: &str) -> bool {
    let params = uri.split('?').next().unwrap_or(uri);
    params.split(';').skip(1).any(|p| {
        p.split('=')
            .next()
            .is_some_and(|k| k.trim().eq_ignore_ascii_case(name))
    })
}

/// A SIP URI's address when its host is an IP literal (IPv6 in brackets), with the transport
/// its `;transport=` parameter names; a `sips:` URI is reached over TLS (RFC 3261 §26.2.2,
/// default port 5061).
pub fn uri_address(uri: &str) -> Option<(SocketAddr, Option<TransportKind>)> {
    let (rest, sips) = match uri.get(..5) {
        Some(s) if s.eq_ignore_ascii_case("sips:") => (&uri[5..], true),
        _ => (
            uri.get(4..)
                .filter(|_| uri[..4].eq_ignore_ascii_case("sip:"))?,
            false,
        ),
    };
    let (hostport, params) = match rest.find(';') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest.split('?').next().unwrap_or(rest), ""),
    };
    let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
    let (ip, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let end = v6.find(']')?;
        let port = v6[end + 1..].strip_prefix(':');
        (v6[..end].parse::<IpAddr>().ok()?, port)
    } else {
        // A name here may be an IPv6 reference as the parser masks it for rsip.
        let mut parts = hostport.splitn(2, ':');
        (crate::sip::message::host_ip(parts.next()?)?, parts.next())
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None if sips => SIPS_PORT,
        None => SIP_PORT,
    };
    if sips {
        return Some((SocketAddr::new(ip, port), Some(TransportKind::Tls)));
    }
    let transport = params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("transport") {
            return None;
        }
        match v.trim().to_ascii_lowercase().as_str() {
            "tcp" => Some(TransportKind::Tcp),
            "udp" => Some(TransportKind::Udp),
            "tls" => Some(TransportKind::Tls),
            _ => None,
        }
    });
    Some((SocketAddr::new(ip, port), transport))
}

/// Drops a `;tag=` parameter so the builder can add the tag it is given.
pub fn strip_tag(value: &str) -> String {
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
pub fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

#[cfg(test)]
mod tests;
