//! A call party's VoIPBIN address facts (`call.source.type`/`.name`,
//! `call.destination.type`/`.name`): the address type from the SIP URI user and whether it is
//! a phone of ours, and the display name from its header; and whether the caller asked not to
//! be identified (`call.source.privacy`: RFC 3323 Privacy header, RFC 3323 §4.1.1.3 anonymous
//! From). Pure: reads one request, no registry; must not decide what a leg sends.

/// VoIPBIN's address types (bin-common-handler `address.Type`) that a SIP party can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressType {
    /// A telephone number (`+15550100`, `1002`, `*97`).
    Tel,
    /// Any other SIP URI (`sip:alice@example.com`).
    #[default]
    Sip,
    /// A `[[users]]` phone of this engine (authenticated caller, or registered callee).
    Extension,
}

impl AddressType {
    /// The spelling VoIPBIN uses.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressType::Tel => "tel",
            AddressType::Sip => "sip",
            AddressType::Extension => "extension",
        }
    }

    /// The type of a party whose URI user part is `user`; `phone` when it is one of our
    /// `[[users]]` phones.
    pub fn classify(user: &str, phone: bool) -> Self {
        if phone {
            AddressType::Extension
        } else if is_telephone_number(user) {
            AddressType::Tel
        } else {
            AddressType::Sip
        }
    }
}

/// A `+`, then digits (with `*`/`#` for service codes and RFC 3966 visual separators).
fn is_telephone_number(user: &str) -> bool {
    let digits = user.strip_prefix('+').unwrap_or(user);
    digits.chars().any(|c| c.is_ascii_digit())
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | '-' | '.' | '(' | ')'))
}

/// One party's type and display name ("" when its header has none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Party {
    pub kind: AddressType,
    pub name: String,
}

/// Source and destination of an incoming call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parties {
    pub source: Party,
    pub destination: Party,
    /// The caller asked not to be identified (see `privacy_requested`): a `connect` with
    /// `"anonymous": "auto"` hides it from the callee.
    pub source_privacy: bool,
}

impl Parties {
    /// From the INVITE: the source from `From` (an extension when the caller authenticated as
    /// a phone), the destination from the Request-URI user (an extension when `registered`
    /// says it is a registered phone) with the `To` display name.
    pub fn of_invite(
        req: &rsip::Request,
        caller_is_phone: bool,
        registered: impl Fn(&str) -> bool,
    ) -> Self {
        use rsip::prelude::*;
        let from = req.from_header().ok().and_then(|h| h.typed().ok());
        let to = req.to_header().ok().and_then(|h| h.typed().ok());
        let source_user = from
            .as_ref()
            .and_then(|f| f.uri.user().map(str::to_owned))
            .unwrap_or_default();
        let destination_user = req.uri.user().unwrap_or_default();
        let privacy = req.headers.iter().filter_map(|h| match h {
            rsip::Header::Other(name, value) if name.eq_ignore_ascii_case("privacy") => {
                Some(value.as_str())
            }
            _ => None,
        });
        let source_privacy = privacy_requested(privacy)
            || from.as_ref().is_some_and(|f| {
                anonymous_from(
                    &source_user,
                    &f.uri.host_with_port.host.to_string(),
                    &display(f.display_name.clone()),
                )
            });
        Parties {
            source_privacy,
            source: Party {
                kind: AddressType::classify(&source_user, caller_is_phone),
                name: display(from.and_then(|f| f.display_name)),
            },
            destination: Party {
                kind: AddressType::classify(
                    destination_user,
                    !destination_user.is_empty() && registered(destination_user),
                ),
                name: display(to.and_then(|t| t.display_name)),
            },
        }
    }
}

/// Privacy values (RFC 3323 §4.2, RFC 3325 §9.3) that ask to hide who the caller is: `id`
/// (network-asserted identity), `header`, `user` (From and other identifying headers) and
/// `critical` (privacy the caller cannot do without). `session` (media) does not hide the
/// caller id; `none` asks for no privacy. Unknown values are ignored (RFC 3323 §4.2).
const IDENTITY_PRIVACY: [&str; 4] = ["id", "header", "user", "critical"];

/// Whether the values of an INVITE's Privacy headers (each `priv-value *(";" priv-value)`,
/// RFC 3323 §4.2; names and values case-insensitive) ask to hide the caller. A value that
/// asks for privacy wins over a contradictory `none` (failing towards privacy).
pub fn privacy_requested<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    values.into_iter().flat_map(|v| v.split(';')).any(|v| {
        let v = v.trim();
        IDENTITY_PRIVACY.iter().any(|p| v.eq_ignore_ascii_case(p))
    })
}

/// Whether a From (URI user, host, unquoted display name) is anonymous: the `anonymous.invalid`
/// host or `Anonymous` display name of RFC 3323 §4.1.1.3 / RFC 3261 §8.1.1.3, or the
/// `anonymous` user many carriers send with their own host. Case-insensitive.
pub fn anonymous_from(user: &str, host: &str, display: &str) -> bool {
    host.eq_ignore_ascii_case("anonymous.invalid")
        || user.eq_ignore_ascii_case("anonymous")
        || display.trim().eq_ignore_ascii_case("anonymous")
}

/// A display name without the quotes of its quoted-string form, every quoted-pair (`\\x`)
/// read as the character it escapes (RFC 3261 §25.1), and without C0 controls or DEL (a
/// flow, log or webhook never gets a raw CR, LF, NUL or escape sequence from a caller).
fn display(name: Option<String>) -> String {
    let name = name.unwrap_or_default();
    let trimmed = name.trim();
    let quoted = trimmed.strip_prefix('"').and_then(|n| n.strip_suffix('"'));
    let mut out = String::with_capacity(trimmed.len());
    match quoted {
        Some(inner) => {
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                // A `\` at the very end escapes nothing and is dropped.
                let c = if c == '\\' { chars.next() } else { Some(c) };
                out.extend(c);
            }
        }
        None => out.push_str(trimmed),
    }
    out.retain(|c| !c.is_ascii_control());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(from: &str, to: &str, ruri: &str) -> rsip::Request {
        invite_with(from, to, ruri, "")
    }

    /// An INVITE with `extra` header lines (each ending in CRLF).
    fn invite_with(from: &str, to: &str, ruri: &str, extra: &str) -> rsip::Request {
        let text = format!(
            "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             From: {from};tag=a\r\nTo: {to}\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
             {extra}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        rsip::Request::try_from(text.as_bytes()).unwrap()
    }

    /// RFC 3323 §4.2 / RFC 3325 §9.3: id, header, user and critical hide the caller; none and
    /// session do not; values are `;`-separated, case-insensitive, unknown ones ignored.
    #[test]
    fn privacy_header_values() {
        for v in [
            "id",
            "ID",
            "header",
            "user",
            "critical",
            " id ",
            "none;id",
            "session;User",
        ] {
            assert!(privacy_requested([v]), "{v}");
        }
        for v in ["none", "None", "session", "", "idx", "foo;bar", "identity"] {
            assert!(!privacy_requested([v]), "{v}");
        }
        assert!(privacy_requested(["none", "header"]));
        assert!(!privacy_requested(Vec::<&str>::new()));
    }

    /// RFC 3323 §4.1.1.3: `"Anonymous" <sip:anonymous@anonymous.invalid>`; either part is
    /// enough, and carriers' `sip:anonymous@their.host` counts too.
    #[test]
    fn anonymous_from_forms() {
        assert!(anonymous_from(
            "anonymous",
            "anonymous.invalid",
            "Anonymous"
        ));
        assert!(anonymous_from("thisis", "Anonymous.Invalid", ""));
        assert!(anonymous_from("Anonymous", "10.0.0.1", ""));
        assert!(anonymous_from("+15550100", "pbx", "anonymous"));
        assert!(!anonymous_from("+15550100", "pbx", "Alice"));
        assert!(!anonymous_from("anonymous1", "anonymous.example", "Anon"));
    }

    /// The INVITE's Privacy header(s) and From are read once, into `source_privacy`.
    #[test]
    fn privacy_of_an_invite() {
        let to = "<sip:bob@engine>";
        let ruri = "sip:bob@127.0.0.1";
        let plain = "<sip:+15550100@pbx>";
        let p = |from: &str, extra: &str| {
            Parties::of_invite(&invite_with(from, to, ruri, extra), false, |_| false).source_privacy
        };
        assert!(!p(plain, ""));
        assert!(p(plain, "Privacy: id\r\n"));
        assert!(p(plain, "privacy: none\r\nPRIVACY: Header; critical\r\n"));
        assert!(!p(plain, "Privacy: none\r\n"));
        assert!(!p(plain, "Privacy: session\r\n"));
        assert!(p("\"Anonymous\" <sip:anonymous@anonymous.invalid>", ""));
        assert!(p("<sip:anonymous@10.0.0.1>", ""));
        assert!(p("Anonymous <sip:+15550100@pbx>", ""));
    }

    #[test]
    fn address_types_follow_voipbin() {
        assert_eq!(AddressType::classify("+15550100", false), AddressType::Tel);
        assert_eq!(AddressType::classify("1002", false), AddressType::Tel);
        assert_eq!(AddressType::classify("*97", false), AddressType::Tel);
        assert_eq!(AddressType::classify("alice", false), AddressType::Sip);
        assert_eq!(AddressType::classify("", false), AddressType::Sip);
        assert_eq!(AddressType::classify("+", false), AddressType::Sip);
        assert_eq!(AddressType::classify("alice", true), AddressType::Extension);
    }

    #[test]
    fn parties_of_an_invite() {
        let req = invite(
            "\"Alice Smith\" <sip:alice@example.com>",
            "Sales <sip:+15550100@engine>",
            "sip:+15550100@127.0.0.1",
        );
        let p = Parties::of_invite(&req, false, |_| false);
        assert_eq!(
            (p.source.kind, p.source.name.as_str()),
            (AddressType::Sip, "Alice Smith")
        );
        assert_eq!(
            (p.destination.kind, p.destination.name.as_str()),
            (AddressType::Tel, "Sales")
        );
        let req = invite("<sip:1001@pbx>", "<sip:bob@engine>", "sip:bob@127.0.0.1");
        let p = Parties::of_invite(&req, true, |u| u == "bob");
        assert_eq!(
            (p.source.kind, p.source.name.as_str()),
            (AddressType::Extension, "")
        );
        assert_eq!(
            (p.destination.kind, p.destination.name.as_str()),
            (AddressType::Extension, "")
        );
    }

    /// RFC 3261 §25.1 quoted-pair: `\x` is `x` for any `x` (not only `"`); C0 controls and
    /// DEL are dropped, escaped or not.
    #[test]
    fn display_names_unescape_every_quoted_pair_and_drop_controls() {
        let d = |s: &str| display(Some(s.to_owned()));
        assert_eq!(d(r#""Alice \"A\" Smith""#), r#"Alice "A" Smith"#);
        assert_eq!(d(r#""back\\slash""#), r"back\slash");
        assert_eq!(d(r#""\a\b""#), "ab");
        assert_eq!(d("\"bell\x07 and\\\r\nnew\x7f\""), "bell andnew");
        assert_eq!(d("plain\ttab"), "plaintab");
        assert_eq!(d(r#""trailing\""#), "trailing");
        assert_eq!(d("  Bob  "), "Bob");
        assert_eq!(d(r"Unquoted\x"), r"Unquoted\x");
        assert_eq!(display(None), "");
    }
}
