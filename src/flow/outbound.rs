//! Typed options of the actions that place SIP requests: `connect` (a B2BUA leg per
//! destination), `message_send` (SIP MESSAGE) and `transfer` (REFER to the caller).
//! Addresses are VoIPBIN's `{"type": "tel" | "sip", "target": ...}` (bin-common-handler
//! models/address); a `sip` target may be written `user@domain[:port]` as VoIPBIN does and is
//! dialled as `sip:user@domain[:port]`. `connect` also takes `{"type": "extension", "target":
//! "alice"}`, a `[[users]]` phone rung at its registered contacts. VoIPBIN's other address
//! types are refused by name. Checks what can be checked before substitution;
//! routing through trunks is the call layer's.

use serde_json::Value;

use super::error::FlowError;
use super::options::{path, Opt};

/// Destinations one action may name at most.
pub const MAX_DESTINATIONS: usize = 16;
/// Default and largest `ring_timeout` (ms).
pub const DEFAULT_RING_TIMEOUT_MS: u64 = 30_000;
pub const MAX_RING_TIMEOUT_MS: u64 = 300_000;
/// Longest `message_send` text (bytes): RFC 3428 §7 keeps page-mode messages small (UDP).
pub const MAX_MESSAGE_TEXT: usize = 1300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressType {
    Tel,
    Sip,
    /// A `[[users]]` name: every contact it registered (connect destinations only).
    Extension,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub kind: AddressType,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The caller id shown to the callee; `None`: the caller's own number.
    pub source: Option<Address>,
    pub destinations: Vec<Address>,
    pub ring_timeout_ms: u64,
    /// The trunk to route through (by name).
    pub trunk: Option<String>,
    /// Relay a callee's early media (SDP in 180/183) to the caller before anyone answers
    /// (RFC 3960 gateway model): an unanswered caller gets 183 with our SDP.
    pub early_media: bool,
    /// Whether to hide the caller: From `Anonymous`, the real identity in
    /// P-Asserted-Identity with `Privacy: id` (RFC 3325 §9.1, RFC 3323).
    pub anonymous: Anonymity,
    /// Let the bridged parties transfer each other by REFER (RFC 3515); off by default: a
    /// REFER could dial anything on the operator's trunks.
    pub transfer: bool,
}

/// `connect`'s `anonymous`: VoIPBIN's tri-state (bin-flow-manager option.go OptionConnect,
/// bin-call-manager models/call/call.go `AnonymousOption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Anonymity {
    /// `"no"`, `""`, `false`, absent: the callee sees the caller.
    #[default]
    Never,
    /// `"yes"`, `true`: the caller is always hidden.
    Always,
    /// `"auto"`: hidden when the caller asked for privacy (its INVITE's Privacy header or an
    /// anonymous From; the `call.source.privacy` variable).
    Auto,
}

impl Anonymity {
    /// Whether to hide the caller, `caller_private` telling whether it asked for privacy.
    pub fn hides(self, caller_private: bool) -> bool {
        match self {
            Anonymity::Never => false,
            Anonymity::Always => true,
            Anonymity::Auto => caller_private,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSend {
    pub source: Option<Address>,
    pub destinations: Vec<Address>,
    pub text: String,
    pub trunk: Option<String>,
}

/// `transfer`: a blind transfer of the caller to `destination` by REFER (RFC 3515).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub destination: Address,
    /// The trunk whose outbound proxy a `tel` destination's Refer-To URI names.
    pub trunk: Option<String>,
}

impl Transfer {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        let field = path("destination");
        let destination = match o.raw("destination") {
            // A phone is no REFER target (yet): `extension` is refused here.
            Some(v) => address(v, &field, false)?,
            None => return Err(FlowError::field(field, "is required (an address)")),
        };
        Ok(Transfer {
            destination,
            trunk: o.str("trunk")?.map(str::to_owned),
        })
    }
}

impl Connect {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        let ring_timeout_ms = o.u64("ring_timeout")?.unwrap_or(DEFAULT_RING_TIMEOUT_MS);
        if ring_timeout_ms == 0 || ring_timeout_ms > MAX_RING_TIMEOUT_MS {
            return Err(FlowError::field(
                path("ring_timeout"),
                format!("must be 1..={MAX_RING_TIMEOUT_MS} ms"),
            ));
        }
        Ok(Connect {
            source: source(o)?,
            destinations: destinations(o, true)?,
            ring_timeout_ms,
            trunk: o.str("trunk")?.map(str::to_owned),
            early_media: flag(o, "early_media")?,
            anonymous: anonymous(o)?,
            transfer: flag(o, "transfer")?,
        })
    }
}

/// `anonymous`: a JSON bool, or VoIPBIN's tri-state string (bin-flow-manager option.go
/// OptionConnect, `validAnonymousValues`): "yes" always hides the caller; "no" and "" never
/// do; "auto" hides it when it asked for privacy (resolved when the `connect` runs).
pub(crate) fn anonymous(o: &Opt<'_>) -> Result<Anonymity, FlowError> {
    match o.raw("anonymous") {
        None => Ok(Anonymity::Never),
        Some(Value::Bool(true)) => Ok(Anonymity::Always),
        Some(Value::Bool(false)) => Ok(Anonymity::Never),
        Some(Value::String(s)) if s == "yes" => Ok(Anonymity::Always),
        Some(Value::String(s)) if s == "auto" => Ok(Anonymity::Auto),
        Some(Value::String(s)) if matches!(s.as_str(), "no" | "") => Ok(Anonymity::Never),
        Some(_) => Err(FlowError::field(
            path("anonymous"),
            r#"must be true, false, "yes", "no" or "auto""#,
        )),
    }
}

/// An optional JSON bool, false when absent (a string is refused, not read as true).
pub(crate) fn flag(o: &Opt<'_>, name: &str) -> Result<bool, FlowError> {
    match o.raw(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(FlowError::field(path(name), "must be true or false")),
    }
}

impl MessageSend {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        let text = o.str_req("text")?;
        if text.len() > MAX_MESSAGE_TEXT {
            return Err(FlowError::field(
                path("text"),
                format!("is longer than {MAX_MESSAGE_TEXT} bytes"),
            ));
        }
        Ok(MessageSend {
            source: source(o)?,
            destinations: destinations(o, false)?,
            text: text.to_owned(),
            trunk: o.str("trunk")?.map(str::to_owned),
        })
    }
}

pub(crate) fn source(o: &Opt<'_>) -> Result<Option<Address>, FlowError> {
    o.raw("source")
        .map(|v| address(v, &path("source"), false))
        .transpose()
}

/// `extensions`: whether `extension` addresses are allowed (a call rings phones; a MESSAGE
/// to a phone is not supported).
pub(crate) fn destinations(o: &Opt<'_>, extensions: bool) -> Result<Vec<Address>, FlowError> {
    let field = path("destinations");
    let list = match o.raw("destinations") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        _ => {
            return Err(FlowError::field(
                field,
                "must be a non-empty list of addresses",
            ))
        }
    };
    if list.len() > MAX_DESTINATIONS {
        return Err(FlowError::field(
            field,
            format!("names more than {MAX_DESTINATIONS} destinations"),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, v)| address(v, &format!("{field}[{i}]"), extensions))
        .collect()
}

/// VoIPBIN address types (bin-common-handler models/address/main.go) this engine cannot dial
/// the way VoIPBIN does: their targets are VoIPBIN resource ids or other media.
pub const UNSUPPORTED_ADDRESS_TYPES: &[&str] = &[
    "agent",
    "ai",
    "ai_team",
    "conference",
    "email",
    "line",
    "webchat",
    "web_session",
    "whatsapp",
];

/// One `{"type", "target"}` object; the target's shape is checked unless it holds `${...}`.
pub(crate) fn address(v: &Value, field: &str, extensions: bool) -> Result<Address, FlowError> {
    let o = Opt::new(v).map_err(|_| FlowError::field(field, "must be an address object"))?;
    let at = |name: &str| format!("{field}.{name}");
    let kind = match o
        .str("type")
        .map_err(|_| FlowError::field(at("type"), "must be a string"))?
    {
        Some("tel") => AddressType::Tel,
        Some("sip") => AddressType::Sip,
        Some("extension") if extensions => AddressType::Extension,
        Some("agent") => {
            return Err(FlowError::field(
                at("type"),
                "agent destinations are not supported by this engine yet",
            ))
        }
        Some(t) if UNSUPPORTED_ADDRESS_TYPES.contains(&t) => {
            return Err(FlowError::field(
                at("type"),
                format!(r#"address type "{t}" is not supported by this engine yet"#),
            ))
        }
        _ if extensions => {
            return Err(FlowError::field(
                at("type"),
                r#"must be "tel", "sip" or "extension""#,
            ))
        }
        _ => return Err(FlowError::field(at("type"), r#"must be "tel" or "sip""#)),
    };
    let mut target = match o.str("target") {
        Ok(Some(t)) if !t.trim().is_empty() => t.trim().to_owned(),
        _ => return Err(FlowError::field(at("target"), "must be a non-empty string")),
    };
    if kind == AddressType::Sip
        && !target.contains("${")
        && target.contains('@')
        && !has_scheme(&target)
    {
        // VoIPBIN writes sip targets as `user@domain[:port]` (address/validate.go).
        target.insert_str(0, "sip:");
    }
    if !target.contains("${") {
        let ok = match kind {
            AddressType::Tel => target
                .chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_digit() || (i == 0 && c == '+') || "*#".contains(c)),
            AddressType::Sip => sip_uri_ok(&target),
            AddressType::Extension => target
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-_.!~*'".contains(c)),
        };
        if !ok {
            let want = match kind {
                AddressType::Tel => "must be a number (digits, an optional leading +, * or #)",
                AddressType::Sip => "must be a sip: URI or user@domain[:port]",
                AddressType::Extension => "must be a user name of [[users]]",
            };
            return Err(FlowError::field(at("target"), want));
        }
    }
    Ok(Address { kind, target })
}

/// True when `target` starts with a URI scheme (`sip:`, `sips:`, `tel:`, ...) before any `@`.
fn has_scheme(target: &str) -> bool {
    let Some((scheme, _)) = target.split_once(':') else {
        return false;
    };
    !scheme.is_empty()
        && !scheme.contains('@')
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

/// A `sip:` URI with a host: `sip:host`, `sip:user@host[:port][;params]`.
fn sip_uri_ok(target: &str) -> bool {
    let Some(rest) = target.strip_prefix("sip:") else {
        return false;
    };
    let host = rest
        .rsplit_once('@')
        .map_or(rest, |(user, host)| if user.is_empty() { "" } else { host });
    !host.is_empty() && !host.starts_with([':', ';', '?'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn connect(v: Value) -> Result<Connect, FlowError> {
        Connect::from_opt(&Opt::new(&v).unwrap())
    }

    fn field(e: FlowError) -> String {
        match e {
            FlowError::Field { field, .. } => field,
            e => panic!("{e}"),
        }
    }

    #[test]
    fn connect_reads_addresses_and_defaults() {
        let c = connect(json!({
            "source": {"type": "tel", "target": "+15550100"},
            "destinations": [{"type": "sip", "target": "sip:bob@127.0.0.1:5062"},
                             {"type": "tel", "target": "${number}"}],
        }))
        .unwrap();
        assert_eq!(c.ring_timeout_ms, DEFAULT_RING_TIMEOUT_MS);
        assert_eq!(c.destinations.len(), 2);
        assert_eq!(c.destinations[0].kind, AddressType::Sip);
        assert_eq!(c.source.unwrap().target, "+15550100");
        assert!(!c.early_media, "off unless asked");
        let ok = json!([{"type": "tel", "target": "1"}]);
        let c = connect(json!({"destinations": ok, "early_media": true})).unwrap();
        assert!(c.early_media);
        let e = connect(json!({"destinations": ok, "early_media": "yes"})).unwrap_err();
        assert_eq!(field(e), "option.early_media");
    }

    /// RFC 3515 §5: taking REFERs from the bridged parties is the flow's explicit choice.
    #[test]
    fn connect_transfer_is_an_opt_in_boolean() {
        let ok = json!([{"type": "tel", "target": "1"}]);
        assert!(!connect(json!({"destinations": ok})).unwrap().transfer);
        let c = connect(json!({"destinations": ok, "transfer": true})).unwrap();
        assert!(c.transfer);
        let e = connect(json!({"destinations": ok, "transfer": "true"})).unwrap_err();
        assert_eq!(field(e), "option.transfer");
    }

    #[test]
    fn bad_options_name_their_field() {
        let e = connect(json!({"destinations": []})).unwrap_err();
        assert_eq!(field(e), "option.destinations");
        let e = connect(json!({"destinations": [{"type": "fax", "target": "1"}]})).unwrap_err();
        assert_eq!(field(e), "option.destinations[0].type");
        let e = connect(json!({"destinations": [{"type": "tel", "target": "12ab"}]})).unwrap_err();
        assert_eq!(field(e), "option.destinations[0].target");
        let e = connect(json!({"destinations": [{"type": "sip", "target": "bob"}]})).unwrap_err();
        assert_eq!(field(e), "option.destinations[0].target");
        let ok = json!([{"type": "tel", "target": "1"}]);
        let e = connect(json!({"destinations": ok, "ring_timeout": 0})).unwrap_err();
        assert_eq!(field(e), "option.ring_timeout");
        let e = connect(json!({"destinations": ok, "source": "x"})).unwrap_err();
        assert_eq!(field(e), "option.source");
        let m = MessageSend::from_opt(&Opt::new(&json!({"destinations": ok})).unwrap());
        assert_eq!(field(m.unwrap_err()), "option.text");
    }

    /// RFC 3325 §9.1 / RFC 3323: `anonymous` hides the caller; a JSON boolean or VoIPBIN's
    /// tri-state string (option.go OptionConnect), "no" by default.
    #[test]
    fn connect_anonymous_is_a_tri_state() {
        let ok = json!([{"type": "tel", "target": "1"}]);
        let parsed = |v: Value| {
            connect(json!({"destinations": ok, "anonymous": v}))
                .unwrap()
                .anonymous
        };
        assert_eq!(
            connect(json!({"destinations": ok})).unwrap().anonymous,
            Anonymity::Never
        );
        assert_eq!(parsed(json!(true)), Anonymity::Always);
        assert_eq!(parsed(json!(false)), Anonymity::Never);
        for (v, want) in [
            ("yes", Anonymity::Always),
            ("no", Anonymity::Never),
            ("auto", Anonymity::Auto),
            ("", Anonymity::Never),
        ] {
            assert_eq!(parsed(json!(v)), want, "{v}");
        }
        for bad in [json!("true"), json!(1), json!("Auto")] {
            let e = connect(json!({"destinations": ok, "anonymous": bad})).unwrap_err();
            assert_eq!(field(e), "option.anonymous");
        }
    }

    /// bin-call-manager call.go AnonymousOption: "auto" follows the caller's privacy request,
    /// "yes"/"no" ignore it.
    #[test]
    fn anonymity_resolves_against_the_callers_privacy() {
        for private in [false, true] {
            assert!(!Anonymity::Never.hides(private));
            assert!(Anonymity::Always.hides(private));
            assert_eq!(Anonymity::Auto.hides(private), private);
        }
    }

    /// `extension` destinations are accepted in `connect` only (not as a source, nor in
    /// `message_send`); the user need not exist when the flow is saved (users change), the
    /// call layer answers `not_registered` at run time.
    #[test]
    fn extension_destinations_are_for_connect() {
        let c =
            connect(json!({"destinations": [{"type": "extension", "target": "alice"}]})).unwrap();
        assert_eq!(c.destinations[0].kind, AddressType::Extension);
        let e =
            connect(json!({"destinations": [{"type": "extension", "target": "a@b"}]})).unwrap_err();
        assert_eq!(field(e), "option.destinations[0].target");
        let ext = json!([{"type": "tel", "target": "1"}]);
        let e = connect(
            json!({"destinations": ext, "source": {"type": "extension", "target": "alice"}}),
        )
        .unwrap_err();
        assert_eq!(field(e), "option.source.type");
        let m = json!({"text": "hi", "destinations": [{"type": "extension", "target": "alice"}]});
        let e = MessageSend::from_opt(&Opt::new(&m).unwrap()).unwrap_err();
        assert_eq!(field(e), "option.destinations[0].type");
    }

    fn transfer(v: Value) -> Result<Transfer, FlowError> {
        Transfer::from_opt(&Opt::new(&v).unwrap())
    }

    #[test]
    fn transfer_needs_one_address() {
        let t = transfer(json!({"destination": {"type": "sip", "target": "sip:carol@h"}}));
        assert_eq!(t.unwrap().destination.target, "sip:carol@h");
        let t = transfer(json!({"destination": {"type": "tel", "target": "+1555"}, "trunk": "c"}));
        assert_eq!(t.unwrap().trunk.as_deref(), Some("c"));
        assert_eq!(
            field(transfer(json!({})).unwrap_err()),
            "option.destination"
        );
        let e = transfer(json!({"destination": {"type": "sip", "target": "carol@"}})).unwrap_err();
        assert_eq!(field(e), "option.destination.target");
        let e = transfer(json!({"destination": [{"type": "tel", "target": "1"}]})).unwrap_err();
        assert_eq!(field(e), "option.destination");
        let e = transfer(json!({"destination": {"type": "tel", "target": "1"}, "trunk": 3}));
        assert_eq!(field(e.unwrap_err()), "option.trunk");
    }

    /// bin-common-handler models/address/validate.go: VoIPBIN's sip target is `user@domain`;
    /// it is dialled as `sip:user@domain[:port]`. A `sip:` URI stays as written.
    #[test]
    fn sip_targets_without_a_scheme_get_one() {
        let dests = json!([
            {"type": "sip", "target": "bob@example.com"},
            {"type": "sip", "target": " bob@127.0.0.1:5062 "},
            {"type": "sip", "target": "sip:carol@h:5070"},
            {"type": "sip", "target": "${who}@h"},
        ]);
        let c = connect(json!({ "destinations": dests })).unwrap();
        let targets: Vec<&str> = c.destinations.iter().map(|d| d.target.as_str()).collect();
        assert_eq!(
            targets,
            [
                "sip:bob@example.com",
                "sip:bob@127.0.0.1:5062",
                "sip:carol@h:5070",
                "${who}@h"
            ]
        );
        let t = transfer(json!({"destination": {"type": "sip", "target": "dave@h"}})).unwrap();
        assert_eq!(t.destination.target, "sip:dave@h");
        for bad in [
            "bob",
            "@h",
            "bob@",
            "sip:",
            "sip:@h",
            "tel:+1555",
            "sips:bob@h",
        ] {
            let e = connect(json!({"destinations": [{"type": "sip", "target": bad}]}));
            assert_eq!(
                field(e.unwrap_err()),
                "option.destinations[0].target",
                "{bad}"
            );
        }
    }

    /// bin-common-handler models/address/main.go: types with no dialable target here are
    /// refused by name; `agent` with its own message.
    #[test]
    fn voipbin_address_types_we_cannot_dial_are_refused_by_name() {
        let e = connect(json!({"destinations": [{"type": "agent", "target": "a"}]})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "option.destinations[0].type: agent destinations are not supported by this engine yet"
        );
        for t in UNSUPPORTED_ADDRESS_TYPES.iter().filter(|t| **t != "agent") {
            let e = connect(json!({"destinations": [{"type": t, "target": "x"}]})).unwrap_err();
            let want = format!(
                r#"option.destinations[0].type: address type "{t}" is not supported by this engine yet"#
            );
            assert_eq!(e.to_string(), want);
            let m = json!({"text": "hi", "destinations": [{"type": "tel", "target": "1"}],
                           "source": {"type": t, "target": "x"}});
            let e = MessageSend::from_opt(&Opt::new(&m).unwrap()).unwrap_err();
            assert_eq!(field(e), "option.source.type");
        }
        let e = transfer(json!({"destination": {"type": "agent", "target": "a"}})).unwrap_err();
        assert_eq!(field(e), "option.destination.type");
        let e = connect(json!({"destinations": [{"target": "1"}]})).unwrap_err();
        assert_eq!(field(e), "option.destinations[0].type");
    }
}
