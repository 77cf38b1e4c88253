//! A call party's VoIPBIN address facts (`call.source.type`/`.name`,
//! `call.destination.type`/`.name`): the address type from the SIP URI user and whether it is
//! a phone of ours, and the display name from its header. Pure: reads one request, no registry.

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
        Parties {
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

/// A display name without the quotes of its quoted-string form (RFC 3261 §25.1).
fn display(name: Option<String>) -> String {
    let name = name.unwrap_or_default();
    let trimmed = name.trim();
    trimmed
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(trimmed)
        .replace("\\\"", "\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(from: &str, to: &str, ruri: &str) -> rsip::Request {
        let text = format!(
            "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             From: {from};tag=a\r\nTo: {to}\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        rsip::Request::try_from(text.as_bytes()).unwrap()
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
}
