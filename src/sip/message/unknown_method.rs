//! Requests whose method rsip cannot represent (extension methods): rsip refuses to parse them,
//! but RFC 3261 §8.2.1 wants `501 Not Implemented`. This builds that stateless response from the
//! raw header lines, echoing the first Via, From, To, Call-ID and CSeq verbatim (one of each, so
//! the reply is never larger than the request). Reads bytes only.

use bytes::Bytes;

use super::normalize;

/// Headers a response must echo.
const ECHOED: &[&str] = &["via", "from", "to", "call-id", "cseq"];

/// The extension method of a raw request, if its request line names one.
pub fn extension_method(raw: &[u8]) -> Option<&str> {
    let line_end = raw.iter().position(|&b| b == b'\r' || b == b'\n')?;
    let line = std::str::from_utf8(raw.get(..line_end)?).ok()?;
    let mut parts = line.split(' ');
    let (method, _uri, version) = (parts.next()?, parts.next()?, parts.next()?);
    let is_token = !method.is_empty()
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
    // Methods rsip parses are not extensions (this path only sees messages rsip refused).
    let known = rsip::Method::all()
        .iter()
        .any(|m| super::method_name(m) == method);
    (is_token && version == "SIP/2.0" && !known).then_some(method)
}

/// `501 Not Implemented` for an extension-method request, or None when the request lacks a
/// header needed to address the response.
pub fn not_implemented(raw: &[u8]) -> Option<Bytes> {
    extension_method(raw)?;
    let norm = normalize(raw).ok()?;
    let text = std::str::from_utf8(&norm).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let mut out = String::from("SIP/2.0 501 Not Implemented\r\n");
    let mut seen = [false; 5];
    for line in head.split("\r\n").skip(1) {
        let Some((name, _)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        let Some(seen) = ECHOED
            .iter()
            .position(|h| *h == name)
            .and_then(|i| seen.get_mut(i))
        else {
            continue;
        };
        if !*seen {
            *seen = true;
            out.push_str(&super::ipv6::unmask(line));
            out.push_str("\r\n");
        }
    }
    if !seen.iter().all(|s| *s) {
        return None;
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &str = "FROBNICATE sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n\
        v: SIP/2.0/UDP b;branch=z9hG4bK2\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:x@h>\r\n\
        Call-ID: c1\r\nCSeq: 7 FROBNICATE\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn answers_extension_methods_with_501() {
        let r = not_implemented(REQ.as_bytes()).unwrap();
        let r = std::str::from_utf8(&r).unwrap();
        assert!(r.starts_with("SIP/2.0 501 Not Implemented\r\n"));
        assert!(r.contains("CSeq: 7 FROBNICATE\r\n"));
        // Stateless: the top Via only (issue 13, no amplification).
        assert_eq!(r.matches("Via:").count(), 1, "{r}");
        assert!(r.contains("Via: SIP/2.0/UDP a;branch=z9hG4bK1\r\n"));
    }

    #[test]
    fn ignores_known_methods_garbage_and_unaddressable() {
        assert!(extension_method(b"INVITE sip:x SIP/2.0\r\n").is_none());
        assert!(extension_method(b"GET / HTTP/1.1\r\n").is_none());
        assert!(extension_method(b"\xff\xfe").is_none());
        assert!(not_implemented(b"FOO sip:x SIP/2.0\r\nCall-ID: 1\r\n\r\n").is_none());
    }
}
