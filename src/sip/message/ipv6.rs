//! IPv6 references in SIP URIs and Via (`[2001:db8::1]`, RFC 3261 §25.1, RFC 5118) over rsip
//! 0.4, which splits host and port at the first colon and so cannot parse them. Before rsip
//! parses, each IPv6 reference is masked as a colon-free host name in the reserved `.invalid`
//! domain (`2001-db8--1.ipv6.invalid`, RFC 2606); the builders unmask every value they write,
//! so the masked form never leaves the process. [`host_ip`] reads either form.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv6Addr};

/// Suffix of a masked IPv6 reference.
const SUFFIX: &str = ".ipv6.invalid";

/// Masks every `[IPv6]` reference in `head`; `None` when there is none.
pub(crate) fn mask(head: &[u8]) -> Option<Vec<u8>> {
    if !head.contains(&b'[') {
        return None;
    }
    let mut out = Vec::with_capacity(head.len() + 32);
    let mut rest = head;
    let mut changed = false;
    while let Some(open) = rest.iter().position(|&b| b == b'[') {
        let (before, from_open) = rest.split_at(open);
        out.extend_from_slice(before);
        let inner_end = from_open.iter().position(|&b| b == b']');
        let literal = inner_end
            .and_then(|end| from_open.get(1..end))
            .and_then(|inner| std::str::from_utf8(inner).ok())
            .filter(|inner| inner.parse::<Ipv6Addr>().is_ok());
        match (literal, inner_end) {
            (Some(inner), Some(end)) => {
                out.extend(inner.bytes().map(|b| if b == b':' { b'-' } else { b }));
                out.extend_from_slice(SUFFIX.as_bytes());
                rest = from_open.get(end + 1..).unwrap_or_default();
                changed = true;
            }
            _ => {
                out.push(b'[');
                rest = from_open.get(1..).unwrap_or_default();
            }
        }
    }
    out.extend_from_slice(rest);
    changed.then_some(out)
}

/// Restores every masked IPv6 reference in `value` to `[IPv6]` form.
pub fn unmask(value: &str) -> Cow<'_, str> {
    if !value.contains(SUFFIX) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find(SUFFIX) {
        let before = rest.get(..at).unwrap_or_default();
        let start = before
            .rfind(|c: char| !(c.is_ascii_hexdigit() || c == '-' || c == '.'))
            .map_or(0, |i| i + 1);
        let token = before.get(start..).unwrap_or_default();
        let literal = token.replace('-', ":");
        out.push_str(before.get(..start).unwrap_or_default());
        if literal.parse::<Ipv6Addr>().is_ok() {
            out.push('[');
            out.push_str(&literal);
            out.push(']');
        } else {
            out.push_str(token);
            out.push_str(SUFFIX);
        }
        rest = rest.get(at + SUFFIX.len()..).unwrap_or_default();
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The IP address of a URI or Via host as the engine sees it after parsing: a literal IPv4
/// address, a `[IPv6]` reference, a bare IPv6 address (rsip's `Display`) or its masked form.
/// `None` for a host name.
pub fn host_ip(host: &str) -> Option<IpAddr> {
    let host = host.trim();
    if let Some(masked) = host.strip_suffix(SUFFIX) {
        return masked
            .replace('-', ":")
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6);
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_unmasks_only_ipv6_references() {
        let head = b"INVITE sip:alice@[2001:db8::1]:5060 SIP/2.0\r\n\
            Via: SIP/2.0/UDP [::ffff:192.0.2.1];branch=z9hG4bK1\r\nX: [not-ip] [1:2\r\n";
        let masked = String::from_utf8(mask(head).unwrap()).unwrap();
        assert_eq!(
            masked,
            "INVITE sip:alice@2001-db8--1.ipv6.invalid:5060 SIP/2.0\r\n\
            Via: SIP/2.0/UDP --ffff-192.0.2.1.ipv6.invalid;branch=z9hG4bK1\r\nX: [not-ip] [1:2\r\n"
        );
        assert_eq!(unmask(&masked), String::from_utf8_lossy(head));
        assert!(mask(b"BYE sip:a@h SIP/2.0\r\nX: [x]\r\n").is_none());
        assert!(matches!(unmask("sip:a@h"), Cow::Borrowed(_)));
        assert_eq!(unmask("zz.ipv6.invalid"), "zz.ipv6.invalid");
    }

    #[test]
    fn host_ip_reads_every_form() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        for host in ["2001-db8--1.ipv6.invalid", "[2001:db8::1]", "2001:db8::1"] {
            assert_eq!(host_ip(host), Some(v6), "{host}");
        }
        assert_eq!(host_ip("192.0.2.1"), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(host_ip("example.com"), None);
    }
}
