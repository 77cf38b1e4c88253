//! Byte-level pre-pass run before rsip: bare LF → CRLF, unfolding of continuation lines,
//! compact header names → full names, comma-joined Via → one Via per value, bytes that are not
//! UTF-8 (a Latin-1 display name) → their Latin-1 characters, `[IPv6]` → a masked host rsip
//! can parse (see `ipv6`). Touches only the header section (up to the first empty line); body
//! bytes are copied as is. Must stay cheap (borrowed fast path when nothing changes), never panic.

use std::borrow::Cow;

use crate::sip::message::{expand_compact, find_header_end, ipv6, trim, MessageError};

/// Normalizes the header section of `raw` (see module doc). Returns `Cow::Borrowed` when
/// nothing needs to change. A missing blank line is tolerated (whole input is headers).
pub fn normalize(raw: &[u8]) -> Result<Cow<'_, [u8]>, MessageError> {
    if raw.is_empty() {
        return Err(MessageError::Empty);
    }
    // Head includes the terminating blank line, so its ending (LF vs CRLF) is checked too.
    let (head, body_start) = match find_header_end(raw) {
        Some(end) => (raw.get(..end.body_start).unwrap_or(raw), end.body_start),
        None => (raw, raw.len()),
    };
    let mut head = Cow::Borrowed(head);
    if needs_rewrite(&head) {
        let mut out = Vec::with_capacity(raw.len() + 64);
        rewrite(&head, &mut out);
        head = Cow::Owned(out);
    }
    if let Some(text) = latin1_to_utf8(&head) {
        head = Cow::Owned(text);
    }
    if let Some(masked) = ipv6::mask(&head) {
        head = Cow::Owned(masked);
    }
    let Cow::Owned(mut out) = head else {
        return Ok(Cow::Borrowed(raw));
    };
    out.extend_from_slice(raw.get(body_start..).unwrap_or_default());
    Ok(Cow::Owned(out))
}

/// Bytes that are not UTF-8 (RFC 3261 §25.1 says header text is UTF-8, but PBXes send Latin-1
/// display names) → their Latin-1 code points as UTF-8, so rsip accepts the message and a name
/// like `Jos\xe9` reads `José`. Valid UTF-8 is kept. `None` when there is nothing to change.
fn latin1_to_utf8(head: &[u8]) -> Option<Vec<u8>> {
    if head.is_ascii() || std::str::from_utf8(head).is_ok() {
        return None;
    }
    let mut out = String::with_capacity(head.len() + 16);
    for chunk in head.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(chunk.invalid().iter().map(|&b| char::from(b)));
    }
    Some(out.into_bytes())
}

/// A physical line without its terminator, plus whether it had one.
fn lines(head: &[u8]) -> impl Iterator<Item = (&[u8], bool)> {
    let mut rest = Some(head);
    std::iter::from_fn(move || {
        let cur = rest?;
        match cur.iter().position(|&b| b == b'\n') {
            Some(i) => {
                rest = cur.get(i + 1..).filter(|r| !r.is_empty());
                let line = cur.get(..i).unwrap_or_default();
                Some((line.strip_suffix(b"\r").unwrap_or(line), true))
            }
            None => {
                rest = None;
                Some((cur, false))
            }
        }
    })
}

fn is_continuation(line: &[u8]) -> bool {
    matches!(line.first(), Some(b' ' | b'\t'))
}

fn split_name(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&b| b == b':')?;
    Some((trim(line.get(..colon)?), line.get(colon + 1..)?))
}

fn is_via(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"via") || name.eq_ignore_ascii_case(b"v")
}

/// Cheap scan: any bare LF, fold, compact name or multi-value Via?
fn needs_rewrite(head: &[u8]) -> bool {
    for (i, &b) in head.iter().enumerate() {
        if b == b'\n' && (i == 0 || head.get(i - 1) != Some(&b'\r')) {
            return true;
        }
    }
    for (idx, (line, _)) in lines(head).enumerate() {
        if idx == 0 {
            continue;
        }
        if is_continuation(line) {
            return true;
        }
        if let Some((name, value)) = split_name(line) {
            if expand_compact(name).is_some()
                || (is_via(name) && split_values(value).nth(1).is_some())
            {
                return true;
            }
        }
    }
    false
}

/// Splits a header value on commas outside quoted strings and `<...>`; parts trimmed,
/// empty parts dropped.
fn split_values(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || loop {
        let cur = rest?;
        let (mut in_quotes, mut escaped, mut depth) = (false, false, 0u32);
        let mut cut = None;
        for (i, &b) in cur.iter().enumerate() {
            if in_quotes {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_quotes = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_quotes = true,
                b'<' => depth = depth.saturating_add(1),
                b'>' => depth = depth.saturating_sub(1),
                b',' if depth == 0 => {
                    cut = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let part = match cut {
            Some(i) => {
                rest = cur.get(i + 1..);
                cur.get(..i).unwrap_or_default()
            }
            None => {
                rest = None;
                cur
            }
        };
        let part = trim(part);
        if !part.is_empty() {
            return Some(part);
        }
    })
}

/// Logical line = physical line with its continuations joined by a single SP.
fn rewrite(head: &[u8], out: &mut Vec<u8>) {
    let mut logical: Vec<(Vec<u8>, bool)> = Vec::new();
    for (idx, (line, eol)) in lines(head).enumerate() {
        match logical.last_mut() {
            Some((prev, prev_eol)) if idx > 1 && is_continuation(line) && !line.is_empty() => {
                while prev.last().is_some_and(|b| matches!(b, b' ' | b'\t')) {
                    prev.pop();
                }
                prev.push(b' ');
                prev.extend_from_slice(trim(line));
                *prev_eol = eol;
            }
            _ => logical.push((line.to_vec(), eol)),
        }
    }
    for (idx, (line, eol)) in logical.iter().enumerate() {
        let split = if idx == 0 { None } else { split_name(line) };
        match split {
            Some((name, value)) if is_via(name) => {
                let mut first = true;
                for part in split_values(value) {
                    if !first {
                        out.extend_from_slice(b"\r\n");
                    }
                    first = false;
                    out.extend_from_slice(b"Via: ");
                    out.extend_from_slice(part);
                }
                if first {
                    out.extend_from_slice(b"Via:");
                }
            }
            Some((name, value)) => match expand_compact(name) {
                Some(full) => {
                    out.extend_from_slice(full.as_bytes());
                    out.push(b':');
                    out.extend_from_slice(value);
                }
                None => out.extend_from_slice(line),
            },
            None => out.extend_from_slice(line),
        }
        if *eol {
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        String::from_utf8(normalize(s.as_bytes()).unwrap().into_owned()).unwrap()
    }

    #[test]
    fn fast_path_borrows() {
        let raw =
            b"BYE sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: x\r\n\r\nv: a,b";
        assert!(matches!(normalize(raw).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn compact_names_expand() {
        let out =
            norm("INVITE sip:a SIP/2.0\r\ni: abc\r\nF: <sip:x>;tag=1\r\nl:0\r\nX-Y: 1\r\n\r\n");
        assert_eq!(
            out,
            "INVITE sip:a SIP/2.0\r\nCall-ID: abc\r\nFrom: <sip:x>;tag=1\r\nContent-Length:0\r\nX-Y: 1\r\n\r\n"
        );
    }

    #[test]
    fn bare_lf_and_folding() {
        let out = norm("BYE sip:a SIP/2.0\nSubject: hello\n   world \n\tagain\nTo: b\n\nbody\n");
        assert_eq!(
            out,
            "BYE sip:a SIP/2.0\r\nSubject: hello world again\r\nTo: b\r\n\r\nbody\n"
        );
    }

    #[test]
    fn via_split_respects_quotes_and_brackets() {
        let out = norm(
            "BYE sip:a SIP/2.0\r\nv: SIP/2.0/UDP a;x=\"p,q\" , SIP/2.0/TCP b;y=<c,d>,\r\nTo: b\r\n\r\n",
        );
        assert_eq!(
            out,
            "BYE sip:a SIP/2.0\r\nVia: SIP/2.0/UDP a;x=\"p,q\"\r\nVia: SIP/2.0/TCP b;y=<c,d>\r\nTo: b\r\n\r\n"
        );
    }

    #[test]
    fn body_untouched_and_no_blank_line() {
        let out = norm("BYE sip:a SIP/2.0\r\nl: 3\r\n\r\nv:\n");
        assert!(out.ends_with("\r\n\r\nv:\n"));
        assert_eq!(
            norm("BYE sip:a SIP/2.0\nl: 0"),
            "BYE sip:a SIP/2.0\r\nContent-Length: 0"
        );
        assert_eq!(normalize(b""), Err(MessageError::Empty));
    }

    #[test]
    fn latin1_header_bytes_become_utf8_and_the_body_stays_byte_exact() {
        let raw = b"INVITE sip:a@h SIP/2.0\r\nFrom: \"Jos\xe9 M\xfcller \xc3\xa9\" <sip:j@h>\r\nl: 2\r\n\r\n\xe9\xff";
        let out = normalize(raw).unwrap().into_owned();
        let (head, body) = out.split_at(out.len() - 2);
        assert_eq!(body, b"\xe9\xff");
        let head = std::str::from_utf8(head).unwrap();
        assert!(
            head.contains("From: \"José Müller é\" <sip:j@h>\r\n"),
            "{head}"
        );
    }

    #[test]
    fn ipv6_references_are_masked_in_every_header() {
        let out = norm("BYE sip:a@[2001:db8::1]:5060 SIP/2.0\r\nv: SIP/2.0/TCP [::1]:5070\r\n\r\n");
        assert_eq!(
            out,
            "BYE sip:a@2001-db8--1.ipv6.invalid:5060 SIP/2.0\r\nVia: SIP/2.0/TCP --1.ipv6.invalid:5070\r\n\r\n"
        );
    }
}
