//! Finds the SDP in a SIP body: the body itself when it is `application/sdp`, or the
//! `application/sdp` part of a `multipart/*` body (RFC 2046 §5.1), as SIP-I/SIP-T trunks send
//! beside a binary ISUP part (RFC 3204). Works on bytes and borrows; parses no SDP.

/// Nested multiparts are legal; a bound keeps a hostile body from recursing without end.
const MAX_DEPTH: usize = 4;

/// The SDP carried by a body of this `Content-Type`, or `None` when it carries none.
pub fn sdp_of<'a>(content_type: &str, body: &'a [u8]) -> Option<&'a [u8]> {
    find(content_type, body, 0)
}

fn find<'a>(content_type: &str, body: &'a [u8], depth: usize) -> Option<&'a [u8]> {
    let (mime, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    let mime = mime.trim();
    if mime.eq_ignore_ascii_case("application/sdp") {
        return (!body.is_empty()).then_some(body);
    }
    let is_multipart = mime
        .get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case("multipart/"));
    if !is_multipart || depth >= MAX_DEPTH {
        return None;
    }
    let boundary = boundary(params)?;
    parts(body, boundary).into_iter().find_map(|part| {
        let (headers, content) = split_headers(part);
        // RFC 2046 §5.1: a part without Content-Type is text/plain.
        let part_type = content_type_of(headers).unwrap_or("text/plain");
        find(part_type, content, depth + 1)
    })
}

/// The `boundary` parameter, quoted or not (RFC 2045 §5.1; boundaries never contain `;`).
fn boundary(params: &str) -> Option<&str> {
    params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        let value = value.trim().trim_matches('"');
        (name.trim().eq_ignore_ascii_case("boundary") && !value.is_empty()).then_some(value)
    })
}

/// The parts between `--boundary` lines, each without the line break that belongs to the
/// next delimiter (RFC 2046 §5.1.1). Stops at the close delimiter `--boundary--`.
fn parts<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    // Delimiters start a line: at the body's start or after a line feed.
    let mut starts = Vec::new();
    let mut from = 0;
    while let Some(pos) = position(&body[from..], delimiter) {
        let at = from + pos;
        if at == 0 || body[at - 1] == b'\n' {
            starts.push(at);
        }
        from = at + delimiter.len();
    }
    let mut parts = Vec::new();
    for pair in starts.windows(2) {
        let after = pair[0] + delimiter.len();
        if body[after..].starts_with(b"--") {
            break;
        }
        // Skip transport padding to the end of the delimiter line.
        let Some(line_end) = position(&body[after..pair[1]], b"\n") else {
            continue;
        };
        let mut end = pair[1] - 1;
        if end > after && body[end - 1] == b'\r' {
            end -= 1;
        }
        let start = after + line_end + 1;
        parts.push(&body[start..end.max(start)]);
    }
    parts
}

/// Splits a part into its header block and its content at the first empty line.
fn split_headers(part: &[u8]) -> (&[u8], &[u8]) {
    for (blank, skip) in [(&b"\r\n"[..], 2), (&b"\n"[..], 1)] {
        if part.starts_with(blank) {
            return (&[], &part[skip..]);
        }
    }
    let crlf = position(part, b"\r\n\r\n").map(|p| (p, 4));
    let lf = position(part, b"\n\n").map(|p| (p, 2));
    match [crlf, lf].into_iter().flatten().min() {
        Some((at, len)) => (&part[..at], &part[at + len..]),
        None => (part, &[]),
    }
}

fn content_type_of(headers: &[u8]) -> Option<&str> {
    let headers = std::str::from_utf8(headers).ok()?;
    headers.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-type")
            .then_some(value.trim())
    })
}

fn position(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
