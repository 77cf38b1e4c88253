//! The `auth-param` list of a `Digest` challenge or credentials header (RFC 3261 §25.1
//! `challenge`/`credentials`, RFC 7616 §3.3–3.4): `Digest name=value, name="quoted, value"`.
//! Names are case-insensitive; quoted strings may hold commas and `\"` escapes.

/// One header value's scheme and parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AuthParams {
    pub(super) scheme: String,
    params: Vec<(String, String)>,
}

/// Not `<scheme> name=value, ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed authentication header: {0}")]
pub struct ParamsError(pub &'static str);

impl AuthParams {
    pub(super) fn parse(value: &str) -> Result<AuthParams, ParamsError> {
        let value = value.trim();
        let (scheme, mut rest) = match value.find(|c: char| c.is_ascii_whitespace()) {
            Some(i) => (&value[..i], value[i..].trim_start()),
            None => return Err(ParamsError("no parameters after the scheme")),
        };
        let mut params = Vec::new();
        while !rest.is_empty() {
            let eq = rest
                .find('=')
                .ok_or(ParamsError("a parameter without '='"))?;
            let name = rest[..eq].trim().to_ascii_lowercase();
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(ParamsError("a parameter name that is not a token"));
            }
            let after = rest[eq + 1..].trim_start();
            let (val, tail) = if let Some(quoted) = after.strip_prefix('"') {
                unquote(quoted)?
            } else {
                let end = after
                    .find(|c: char| c == ',' || c.is_ascii_whitespace())
                    .unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            };
            params.push((name, val));
            let tail = tail.trim_start();
            rest = match tail.strip_prefix(',') {
                Some(t) => t.trim_start(),
                None if tail.is_empty() => tail,
                None => return Err(ParamsError("parameters not separated by ','")),
            };
        }
        Ok(AuthParams {
            scheme: scheme.to_string(),
            params,
        })
    }

    /// The value of `name` (lower case), the first if repeated.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` appears more than once (RFC 7616 §3.4: each directive at most once).
    pub(super) fn has_duplicates(&self) -> bool {
        self.params
            .iter()
            .enumerate()
            .any(|(i, (n, _))| self.params[..i].iter().any(|(m, _)| m == n))
    }
}

/// The rest of a quoted string after its opening quote: its value and what follows the
/// closing quote.
fn unquote(s: &str) -> Result<(String, &str), ParamsError> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, escaped)) => out.push(escaped),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(ParamsError("an unterminated quoted string"))
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// `value` as a quoted string, escaping `"` and `\`.
pub(super) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_keep_commas_and_escapes() {
        let p = AuthParams::parse(
            r#"Digest realm="a, \"b\"", qop="auth,auth-int", algorithm=MD5 ,stale=TRUE"#,
        )
        .expect("parses");
        assert_eq!(p.scheme, "Digest");
        assert_eq!(p.get("realm"), Some(r#"a, "b""#));
        assert_eq!(p.get("qop"), Some("auth,auth-int"));
        assert_eq!(p.get("algorithm"), Some("MD5"));
        assert_eq!(p.get("stale"), Some("TRUE"));
        assert!(!p.has_duplicates());
    }

    #[test]
    fn names_are_case_insensitive_and_duplicates_are_seen() {
        let p = AuthParams::parse("Digest Realm=x, realm=y").expect("parses");
        assert_eq!(p.get("realm"), Some("x"));
        assert!(p.has_duplicates());
    }

    #[test]
    fn malformed_lists_are_errors() {
        for bad in [
            "Digest",
            "Digest realm",
            r#"Digest realm="open"#,
            "Digest realm=a nonce=b",
            "Digest =a",
            r#"Digest realm="a"x"#,
        ] {
            assert!(AuthParams::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quote_round_trips() {
        let q = quote(r#"a"b\c"#);
        let p = AuthParams::parse(&format!("Digest x={q}")).expect("parses");
        assert_eq!(p.get("x"), Some(r#"a"b\c"#));
    }
}
