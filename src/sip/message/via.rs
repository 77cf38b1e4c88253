//! The top Via of a response we send: `received` and `rport` from the request's source address
//! (RFC 3261 §18.2.1, RFC 3581 §4), so the response goes back the way the request came through
//! NATs. Pure string work on one Via value; used by `ResponseBuilder::received_from`.

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

use crate::sip::message::ipv6::host_ip;

/// `via` with `received=<source IP>` when the sent-by host is not that IP (§18.2.1) or the
/// request asked for `rport`, and `rport=<source port>` filling an `rport` without a value
/// (RFC 3581 §4). Any `received` already present is replaced; other parameters keep their order.
pub(crate) fn with_received(via: &str, source: SocketAddr) -> String {
    let source_ip = canonical(source.ip());
    let mut parts = via.split(';');
    let sent_by_part = parts.next().unwrap_or_default();
    let params: Vec<&str> = parts.collect();
    let is = |p: &str, name: &str| {
        let key = p.split('=').next().unwrap_or_default().trim();
        key.eq_ignore_ascii_case(name)
    };
    let wants_rport = params.iter().any(|p| is(p, "rport"));
    let sent_by_ip = sent_by_host(sent_by_part).and_then(host_ip).map(canonical);
    let add_received = wants_rport || sent_by_ip != Some(source_ip);
    let mut out = String::with_capacity(via.len() + 40);
    out.push_str(sent_by_part);
    for p in params.iter().filter(|p| !is(p, "received")) {
        out.push(';');
        if is(p, "rport") {
            let _ = write!(out, "rport={}", source.port());
        } else {
            out.push_str(p);
        }
    }
    if add_received {
        // RFC 3261 §20.42 grammar: the address without brackets.
        let _ = write!(out, ";received={source_ip}");
    }
    out
}

/// The host of `SIP/2.0/UDP host[:port]` (brackets kept for an IPv6 reference).
fn sent_by_host(sent_by_part: &str) -> Option<&str> {
    let sent_by = sent_by_part.split_whitespace().nth(1)?;
    if sent_by.starts_with('[') {
        let end = sent_by.find(']')?;
        return sent_by.get(..=end);
    }
    Some(sent_by.split(':').next().unwrap_or(sent_by))
}

/// IPv4-mapped IPv6 (a dual-stack socket's view of an IPv4 peer) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{parse_datagram, ResponseBuilder};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// RFC 3261 §18.2.1: `received` only when the sent-by host differs from the source.
    #[test]
    fn received_only_when_sent_by_differs() {
        let via = "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1";
        assert_eq!(with_received(via, addr("10.0.0.1:5060")), via);
        assert_eq!(
            with_received(via, addr("192.0.2.7:40000")),
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;received=192.0.2.7"
        );
        assert_eq!(
            with_received(
                "SIP/2.0/TCP pbx.example.com;branch=z9hG4bK1;received=1.1.1.1",
                addr("192.0.2.7:5060")
            ),
            "SIP/2.0/TCP pbx.example.com;branch=z9hG4bK1;received=192.0.2.7"
        );
        assert_eq!(
            with_received(
                "SIP/2.0/UDP [2001:db8::2]:5070;branch=z9hG4bK1",
                addr("[2001:db8::2]:1")
            ),
            "SIP/2.0/UDP [2001:db8::2]:5070;branch=z9hG4bK1"
        );
        assert_eq!(
            with_received(
                "SIP/2.0/UDP 10.0.0.1;branch=b",
                addr("[::ffff:10.0.0.1]:5060")
            ),
            "SIP/2.0/UDP 10.0.0.1;branch=b"
        );
    }

    /// RFC 3581 §4: with `rport`, fill in the source port and always add `received`.
    #[test]
    fn rport_is_filled_and_forces_received() {
        assert_eq!(
            with_received(
                "SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK1",
                addr("10.0.0.1:40000")
            ),
            "SIP/2.0/UDP 10.0.0.1:5060;rport=40000;branch=z9hG4bK1;received=10.0.0.1"
        );
    }

    #[test]
    fn the_builder_rewrites_only_the_top_via() {
        let raw = "OPTIONS sip:e@h SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;rport;branch=z9hG4bKa\r\n\
            Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKb\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:e@h>\r\n\
            Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let rsip::SipMessage::Request(req) = parse_datagram(raw.as_bytes(), 4096).unwrap() else {
            panic!("not a request");
        };
        let bytes = ResponseBuilder::new(&req, 200, "OK")
            .received_from(addr("192.0.2.7:40000"))
            .build();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(
            text.contains(
                "Via: SIP/2.0/UDP 10.0.0.1;rport=40000;branch=z9hG4bKa;received=192.0.2.7\r\n\
             Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKb\r\n"
            ),
            "{text}"
        );
    }

    /// Issue 13 (no amplification): a stateless reply to a request with 60 Via headers, a
    /// Record-Route and a body carries the first 10 Vias in order (RFC 3261 §8.2.6.2: proxies
    /// in front route it back by them), no Record-Route and no body.
    #[test]
    fn a_stateless_reply_is_bounded() {
        let vias: String = (0..60)
            .map(|i| format!("Via: SIP/2.0/UDP 10.0.0.{i};branch=z9hG4bK{i}\r\n"))
            .collect();
        let raw = format!(
            "INVITE sip:e@h SIP/2.0\r\n{vias}Record-Route: <sip:p;lr>\r\nFrom: <sip:a@h>;tag=1\r\n\
             To: <sip:e@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 3\r\n\r\nv=0"
        );
        let rsip::SipMessage::Request(req) = parse_datagram(raw.as_bytes(), 65535).unwrap() else {
            panic!("not a request");
        };
        let bytes = ResponseBuilder::stateless(&req, 403, "Forbidden")
            .record_route()
            .header("Warning", &"w".repeat(5000))
            .body("application/sdp", &b"v=0"[..])
            .build();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert_eq!(text.matches("Via:").count(), 10, "{text}");
        assert!(text
            .contains("Via: SIP/2.0/UDP 10.0.0.0;branch=z9hG4bK0\r\nVia: SIP/2.0/UDP 10.0.0.1;"));
        assert!(text.contains("10.0.0.9;branch=z9hG4bK9\r\n") && !text.contains("10.0.0.10;"));
        assert!(!text.contains("Record-Route"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
        assert!(
            bytes.len() < 900 && bytes.len() * 3 < raw.len(),
            "{} bytes",
            bytes.len()
        );
    }
}
