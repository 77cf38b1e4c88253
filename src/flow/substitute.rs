//! `${name}` expansion inside one option string, aware of what the string is, so that values a
//! caller controls (`call.source.target`, digits, anything a flow copied from them) stay data:
//!
//! - `Text`: the value as it is (speech, keys, numbers).
//! - `Url` (RFC 3986): values are percent-encoded (all but the §2.3 unreserved characters), so
//!   `x/../admin?y=` becomes one path segment and never a new path, query or fragment; the
//!   parts the flow author wrote stay as written. A placeholder that opens the field supplies
//!   scheme and authority and is inserted as written (the author took the whole URL from a
//!   variable; the `[http]` destination policy still applies). A value made only of dots is
//!   refused in the path: `%2E%2E` is still a dot segment to WHATWG URL parsers.
//! - `Json` (RFC 8259): inside a string literal a value is escaped (§7), so a `"` cannot close
//!   the string and add keys; outside one it goes in as written only when it is a number,
//!   `true`, `false` or `null`, else as a quoted string.
//! - `Form` (an `application/x-www-form-urlencoded` body, WHATWG URL §5): values are
//!   percent-encoded as in a URL, so `1&admin=true` stays one value and adds no parameter.
//! - `SipUri` (the `target` of a `sip` address in `connect`/`message_send`): like `Url`, values
//!   are escaped (RFC 3261 §19.1.2 `escaped`; `+` stays for E.164 numbers), so `x@evil:5060;`
//!   cannot move the request to another host, port or transport. Only a placeholder that is
//!   the entire target (`"${uri}"`) is inserted as written (the whole URI); a leading one in
//!   `"${x}@pbx"` is the user part and is escaped like any other.
//!
//! Every value inserted counts against a byte budget (`engine.max_variables_bytes` per action):
//! `"${x}${x}..."` can neither allocate without bound. Pure: no I/O.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use super::variables::{pieces, Piece, Variables};

/// What an option string is, for how values are written into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Url,
    Json,
    /// A `webhook_send` `data` sent as `application/x-www-form-urlencoded`.
    Form,
    /// The `target` of a `sip` address.
    SipUri,
    /// The `destinations` or `source` of `connect`/`message_send`: address objects, whose
    /// `target` is a `SipUri` when their `type` is `sip` (a `tel` target is checked to be a
    /// number after substitution).
    Address,
    /// Names a variable, maybe as a template (`condition_variable` `variable`): left as
    /// written, its reader expands it once. Expanding it here too would expand values a
    /// second time (a caller's `${x}${x}...` would become lookups).
    Name,
}

/// Why an option could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstituteError {
    #[error(
        "{field}: the values substituted into it would be over engine.max_variables_bytes {limit}"
    )]
    TooLarge { field: String, limit: usize },
    #[error("{field}: variable {name} is {value:?}, which would be a dot segment in the URL path")]
    DotSegment {
        field: String,
        name: String,
        value: String,
    },
}

impl SubstituteError {
    /// The `[engine]` key of the cap this broke, if it was one.
    pub fn limit(&self) -> Option<&'static str> {
        match self {
            SubstituteError::TooLarge { .. } => Some("max_variables_bytes"),
            SubstituteError::DotSegment { .. } => None,
        }
    }
}

/// Expands strings against `vars`, counting the bytes values add against one budget.
pub struct Expander<'a> {
    vars: &'a Variables,
    /// Bytes values may still add.
    left: usize,
    limit: usize,
}

impl<'a> Expander<'a> {
    /// An expander whose values may add at most `limit` bytes in all.
    pub fn new(vars: &'a Variables, limit: usize) -> Self {
        Expander {
            vars,
            left: limit,
            limit,
        }
    }

    /// `text` with every placeholder replaced as `kind` says; `field` names it in errors.
    pub fn expand(
        &mut self,
        text: &str,
        kind: FieldKind,
        field: &str,
    ) -> Result<String, SubstituteError> {
        let mut out = String::with_capacity(text.len());
        let mut json = JsonScan::default();
        let mut in_path = true;
        // The placeholder is the entire string (`"${uri}"`): the author took the whole value
        // from a variable.
        let whole = {
            let mut all = pieces(text);
            matches!((all.next(), all.next()), (Some(Piece::Name(_)), None))
        };
        for (i, piece) in pieces(text).enumerate() {
            match piece {
                Piece::Text(t) => {
                    out.push_str(t);
                    match kind {
                        FieldKind::Json => json.literal(t),
                        FieldKind::Url => in_path &= !t.contains(['?', '#']),
                        FieldKind::Text
                        | FieldKind::Name
                        | FieldKind::Form
                        | FieldKind::SipUri
                        | FieldKind::Address => {}
                    }
                }
                Piece::Name(name) => {
                    let value = self.vars.get(name).unwrap_or("");
                    let before = out.len();
                    match kind {
                        FieldKind::Text | FieldKind::Name | FieldKind::Address => {
                            out.push_str(value)
                        }
                        // Only a placeholder that is the whole target is the whole URI: a
                        // leading one in `${x}@pbx` is just the user part and is escaped.
                        FieldKind::SipUri if whole => out.push_str(value),
                        FieldKind::SipUri => {
                            percent_encode(value, NOT_UNRESERVED_OR_PLUS, &mut out)
                        }
                        FieldKind::Form => percent_encode(value, NOT_UNRESERVED, &mut out),
                        FieldKind::Url if i == 0 => {
                            out.push_str(value);
                            in_path &= !value.contains(['?', '#']);
                        }
                        FieldKind::Url => {
                            if in_path && !value.is_empty() && value.bytes().all(|b| b == b'.') {
                                return Err(SubstituteError::DotSegment {
                                    field: field.to_owned(),
                                    name: name.to_owned(),
                                    value: value.to_owned(),
                                });
                            }
                            percent_encode(value, NOT_UNRESERVED, &mut out);
                        }
                        FieldKind::Json => json.value(value, &mut out),
                    }
                    let added = out.len() - before;
                    self.left =
                        self.left
                            .checked_sub(added)
                            .ok_or_else(|| SubstituteError::TooLarge {
                                field: field.to_owned(),
                                limit: self.limit,
                            })?;
                }
            }
        }
        Ok(out)
    }
}

/// `option` (of an action of type `kind`) with every string value expanded, recursively, each
/// as its field is (`field_kind`); object keys are left alone. Values may add at most `limit`
/// bytes in all.
pub fn option(
    kind: &str,
    option: &Value,
    vars: &Variables,
    limit: usize,
) -> Result<Value, SubstituteError> {
    let mut expander = Expander::new(vars, limit);
    // A webhook's `data_type` is expanded first (it says how `data` is), and only once.
    let (mut data_type, data_kind) = match option.get("data_type") {
        Some(Value::String(raw)) if kind == "webhook_send" => {
            let expanded = expander.expand(raw, FieldKind::Text, "option.data_type")?;
            let data_kind = data_kind(&expanded);
            (Some(expanded), data_kind)
        }
        _ => (None, FieldKind::Json),
    };
    Ok(match option {
        Value::Object(m) => {
            let mut out = serde_json::Map::with_capacity(m.len());
            for (k, v) in m {
                if k == "data_type" {
                    if let Some(expanded) = data_type.take() {
                        out.insert(k.clone(), Value::String(expanded));
                        continue;
                    }
                }
                let field_kind = field_kind(kind, k, data_kind);
                let field = format!("option.{k}");
                out.insert(
                    k.clone(),
                    substitute_value(v, field_kind, &field, &mut expander)?,
                );
            }
            Value::Object(out)
        }
        other => substitute_value(other, FieldKind::Text, "option", &mut expander)?,
    })
}

/// How the option `key` of an action of type `kind` is expanded.
fn field_kind(kind: &str, key: &str, data_kind: FieldKind) -> FieldKind {
    match (kind, key) {
        ("fetch", "event_url") | ("webhook_send", "uri") | ("play", "stream_urls") => {
            FieldKind::Url
        }
        ("webhook_send", "data") => data_kind,
        ("condition_variable", "variable") => FieldKind::Name,
        ("connect" | "message_send", "destinations" | "source") => FieldKind::Address,
        ("transfer", "destination") => FieldKind::Address,
        ("call", "destinations" | "source") => FieldKind::Address,
        // The new calls' own flow: expanded when it runs there, against their variables.
        ("call", "actions") => FieldKind::Name,
        _ => FieldKind::Text,
    }
}

/// How a `webhook_send`'s `data` is expanded, from its `data_type` (expanded): `Json` for
/// `application/json`, `*+json` or none (the default is JSON), `Form` for
/// `application/x-www-form-urlencoded`, else `Text`.
fn data_kind(data_type: &str) -> FieldKind {
    let essence = data_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence.is_empty() || essence == "application/json" || essence.ends_with("+json") {
        FieldKind::Json
    } else if essence == "application/x-www-form-urlencoded" {
        FieldKind::Form
    } else {
        FieldKind::Text
    }
}

/// Whether any string value in `v` may name a variable.
pub fn has_placeholder(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("${"),
        Value::Array(items) => items.iter().any(has_placeholder),
        Value::Object(m) => m.values().any(has_placeholder),
        _ => false,
    }
}

fn substitute_value(
    v: &Value,
    kind: FieldKind,
    field: &str,
    expander: &mut Expander<'_>,
) -> Result<Value, SubstituteError> {
    Ok(match v {
        _ if kind == FieldKind::Name => v.clone(),
        Value::Object(m) if kind == FieldKind::Address => {
            let sip = m.get("type").and_then(Value::as_str) == Some("sip");
            let mut out = serde_json::Map::with_capacity(m.len());
            for (k, item) in m {
                let item_kind = match k.as_str() {
                    "target" if sip => FieldKind::SipUri,
                    _ => FieldKind::Text,
                };
                let value = substitute_value(item, item_kind, &format!("{field}.{k}"), expander)?;
                out.insert(k.clone(), value);
            }
            Value::Object(out)
        }
        Value::String(s) if s.contains("${") => Value::String(expander.expand(s, kind, field)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| substitute_value(item, kind, &format!("{field}.{i}"), expander))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => {
            let mut out = serde_json::Map::with_capacity(m.len());
            for (k, item) in m {
                let value = substitute_value(item, kind, &format!("{field}.{k}"), expander)?;
                out.insert(k.clone(), value);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// All but RFC 3986 §2.3's unreserved characters (ALPHA / DIGIT / "-" / "." / "_" / "~").
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// As [`NOT_UNRESERVED`], keeping `+` (an E.164 number's, in a SIP URI user part).
const NOT_UNRESERVED_OR_PLUS: &AsciiSet = &NOT_UNRESERVED.remove(b'+');

/// Appends `value` percent-encoded (upper-case hex): every byte in `set`, and every non-ASCII
/// byte.
fn percent_encode(value: &str, set: &'static AsciiSet, out: &mut String) {
    out.extend(utf8_percent_encode(value, set));
}

/// Where a JSON template's literal text has left off: inside a string literal or not.
#[derive(Default)]
struct JsonScan {
    in_string: bool,
    /// The last literal character was a backslash inside a string.
    escaped: bool,
}

impl JsonScan {
    fn literal(&mut self, text: &str) {
        for c in text.chars() {
            if self.escaped {
                self.escaped = false;
            } else if self.in_string && c == '\\' {
                self.escaped = true;
            } else if c == '"' {
                self.in_string = !self.in_string;
            }
        }
    }

    fn value(&mut self, value: &str, out: &mut String) {
        if self.in_string {
            if self.escaped {
                // The template's backslash would escape the value's first character (a `"` it
                // escaped would end the string): make it a backslash of its own.
                out.push('\\');
                self.escaped = false;
            }
            let quoted = serde_json::Value::from(value).to_string();
            out.push_str(&quoted[1..quoted.len() - 1]);
        } else if is_json_scalar(value) {
            out.push_str(value);
        } else {
            out.push_str(&serde_json::Value::from(value).to_string());
        }
    }
}

/// A JSON number, `true`, `false` or `null`, exactly (no spaces around).
fn is_json_scalar(value: &str) -> bool {
    if value.is_empty() || value.trim() != value {
        return false;
    }
    matches!(
        serde_json::from_str::<serde_json::Value>(value),
        Ok(serde_json::Value::Number(_) | serde_json::Value::Bool(_) | serde_json::Value::Null)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Variables {
        [
            ("call.source.target", "x/../admin?y="),
            ("n", "42"),
            ("dots", ".."),
            ("quote", r#"a", "admin": true, "b": ""#),
            ("base", "https://hooks.example:8443/api?k=v"),
            ("uni", "é €"),
        ]
        .into_iter()
        .collect()
    }

    fn expand(text: &str, kind: FieldKind) -> Result<String, SubstituteError> {
        Expander::new(&vars(), 1 << 20).expand(text, kind, "option.f")
    }

    #[test]
    fn url_values_cannot_add_a_path_query_or_fragment() {
        let out = expand(
            "https://h/v1/${call.source.target}/x?q=${call.source.target}#${n}",
            FieldKind::Url,
        )
        .unwrap();
        assert_eq!(
            out,
            "https://h/v1/x%2F..%2Fadmin%3Fy%3D/x?q=x%2F..%2Fadmin%3Fy%3D#42"
        );
        let url = url::Url::parse(&out).unwrap();
        assert_eq!(url.path(), "/v1/x%2F..%2Fadmin%3Fy%3D/x");
        assert_eq!(url.query_pairs().count(), 1);
        assert_eq!(
            expand("http://h/${uni}", FieldKind::Url).unwrap(),
            "http://h/%C3%A9%20%E2%82%AC"
        );
        // The literal parts stay as the author wrote them.
        assert_eq!(
            expand("http://h/a b?x=1&y=2", FieldKind::Url).unwrap(),
            "http://h/a b?x=1&y=2"
        );
    }

    #[test]
    fn a_leading_placeholder_supplies_the_whole_prefix() {
        let out = expand("${base}&id=${call.source.target}", FieldKind::Url).unwrap();
        assert_eq!(
            out,
            "https://hooks.example:8443/api?k=v&id=x%2F..%2Fadmin%3Fy%3D"
        );
        assert_eq!(
            expand("x${base}", FieldKind::Url).unwrap(),
            "xhttps%3A%2F%2Fhooks.example%3A8443%2Fapi%3Fk%3Dv"
        );
    }

    #[test]
    fn dot_values_are_refused_in_the_path_only() {
        let e = expand("http://h/a/${dots}/b", FieldKind::Url).unwrap_err();
        assert!(matches!(e, SubstituteError::DotSegment { .. }), "{e}");
        assert!(e.to_string().contains("option.f: variable dots"), "{e}");
        assert_eq!(
            expand("http://h/a?p=${dots}", FieldKind::Url).unwrap(),
            "http://h/a?p=.."
        );
    }

    #[test]
    fn json_values_stay_data() {
        let t = r#"{"from": "${quote}", "n": ${n}, "m": ${quote}, "u": ${unset}}"#;
        let out = expand(t, FieldKind::Json).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 4, "{out}");
        assert_eq!(v["from"], r#"a", "admin": true, "b": ""#);
        assert_eq!(v["n"], 42);
        assert_eq!(v["m"], r#"a", "admin": true, "b": ""#);
        assert_eq!(v["u"], "");
        // An escaped quote in the template does not end the string.
        let out = expand(r#"{"a": "say \"${quote}\""}"#, FieldKind::Json).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1, "{out}");
        // A template backslash right before a value cannot escape the value's quote.
        let out = expand(r#"{"a": "\${quote}"}"#, FieldKind::Json).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1, "{out}");
        assert!(!is_json_scalar(" 1") && !is_json_scalar("1,2") && is_json_scalar("-1.5e3"));
    }

    #[test]
    fn text_is_as_is_and_the_budget_counts_every_value() {
        assert_eq!(
            expand("${call.source.target}", FieldKind::Text).unwrap(),
            "x/../admin?y="
        );
        let mut big = Variables::new();
        big.set("x", "y".repeat(1000));
        let mut e = Expander::new(&big, 2500);
        assert_eq!(
            e.expand("${x}${x}", FieldKind::Text, "a").unwrap().len(),
            2000
        );
        let err = e.expand("${x}", FieldKind::Text, "option.b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "option.b: the values substituted into it would be over engine.max_variables_bytes 2500"
        );
        // Many placeholders cannot allocate past the budget.
        let many = "${x}".repeat(100_000);
        assert!(Expander::new(&big, 1 << 20)
            .expand(&many, FieldKind::Text, "c")
            .is_err());
    }

    #[test]
    fn form_values_cannot_add_parameters_and_data_type_is_charged_once() {
        assert_eq!(
            expand("a=${n}&b=${call.source.target}", FieldKind::Form).unwrap(),
            "a=42&b=x%2F..%2Fadmin%3Fy%3D"
        );
        let mut v = Variables::new();
        v.set(
            "t",
            format!("application/x-www-form-urlencoded;{}", " ".repeat(600)),
        );
        v.set("who", "1&admin=true");
        let o = serde_json::json!({"uri": "http://h/", "data_type": "${t}", "data": "who=${who}"});
        let out = option("webhook_send", &o, &v, 1000).unwrap();
        assert_eq!(out["data"], "who=1%26admin%3Dtrue");
        assert_eq!(out["data_type"], v.get("t").unwrap());
        let text = serde_json::json!({"data_type": "text/plain", "data": "who=${who}"});
        let out = option("webhook_send", &text, &v, 1000).unwrap();
        assert_eq!(out["data"], "who=1&admin=true");
    }

    /// The cases `Variables::substitute` had: `Text` expansion is that, with the budget.
    fn variables() -> Variables {
        [("call.digits", "123"), ("name", "Ünïcødé"), ("empty", "")]
            .into_iter()
            .collect()
    }

    fn as_text(v: &Variables, text: &str) -> String {
        Expander::new(v, 1 << 20)
            .expand(text, FieldKind::Text, "option.f")
            .unwrap()
    }

    #[test]
    fn text_basic_and_alias() {
        let v = variables();
        assert_eq!(as_text(&v, "d=${call.digits}!"), "d=123!");
        assert_eq!(as_text(&v, "${voipbin.call.digits}"), "123");
        assert_eq!(as_text(&v, "${ call.digits }"), "123");
        assert_eq!(as_text(&v, "${a}${call.digits}${b}"), "123");
    }

    #[test]
    fn text_edge_cases() {
        let v = variables();
        assert_eq!(as_text(&v, ""), "");
        assert_eq!(as_text(&v, "$"), "$");
        assert_eq!(as_text(&v, "cost $5 {x}"), "cost $5 {x}");
        assert_eq!(as_text(&v, "a ${unknown} b"), "a  b");
        assert_eq!(as_text(&v, "${}"), "");
        assert_eq!(as_text(&v, "x ${call.digits"), "x ${call.digits");
        assert_eq!(as_text(&v, "${call.digits} ${"), "123 ${");
        assert_eq!(as_text(&v, "$${call.digits}"), "$123");
        assert_eq!(as_text(&v, "}${empty}{"), "}{");
    }

    #[test]
    fn text_does_not_reexpand_values() {
        let mut v = Variables::new();
        v.set("a", "${b}");
        v.set("b", "secret");
        assert_eq!(as_text(&v, "${a}"), "${b}");
    }

    #[test]
    fn text_multibyte() {
        let v = variables();
        assert_eq!(as_text(&v, "héllo ${name} 日本"), "héllo Ünïcødé 日本");
        assert_eq!(as_text(&v, "${日本}é"), "é");
        assert_eq!(as_text(&v, "€${é"), "€${é");
        assert_eq!(as_text(&v, "🎉$🎉${🎉"), "🎉$🎉${🎉");
    }

    #[test]
    fn text_large_input_is_fast() {
        let text = "${".repeat(100_000) + &"x}".repeat(100_000);
        let vars = variables();
        let out = as_text(&vars, &text);
        assert!(out.len() < text.len());
        let text = "$".repeat(200_000);
        assert_eq!(as_text(&vars, &text), text);
    }

    /// The crate's encoding is the hand-rolled one it replaced: unreserved characters (and `+`
    /// for SIP) kept, every other byte `%XX` in upper-case hex.
    #[test]
    fn percent_encoding_keeps_unreserved_only() {
        let all: String = (0u8..=127).map(char::from).chain("é€".chars()).collect();
        for (set, keep) in [(NOT_UNRESERVED, ""), (NOT_UNRESERVED_OR_PLUS, "+")] {
            let mut want = String::new();
            for b in all.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.as_bytes().contains(&b)
                {
                    want.push(char::from(b));
                } else {
                    want.push_str(&format!("%{b:02X}"));
                }
            }
            let mut out = String::new();
            percent_encode(&all, set, &mut out);
            assert_eq!(out, want);
        }
    }

    #[test]
    fn sip_targets_cannot_move_the_request() {
        let out = expand("sip:${call.source.target}@pbx.example", FieldKind::SipUri).unwrap();
        assert_eq!(out, "sip:x%2F..%2Fadmin%3Fy%3D@pbx.example");
        let mut v = Variables::new();
        v.set("who", "bob@evil.example:5060;transport=tcp");
        v.set("num", "+15550100");
        let mut e = Expander::new(&v, 1 << 20);
        assert_eq!(
            e.expand("sip:${who}@pbx", FieldKind::SipUri, "t").unwrap(),
            "sip:bob%40evil.example%3A5060%3Btransport%3Dtcp@pbx"
        );
        assert_eq!(
            e.expand("sip:${num}@pbx", FieldKind::SipUri, "t").unwrap(),
            "sip:+15550100@pbx"
        );
        v.set("uri", "sip:alice@host;transport=tcp");
        let mut e = Expander::new(&v, 1 << 20);
        assert_eq!(
            e.expand("${uri}", FieldKind::SipUri, "t").unwrap(),
            "sip:alice@host;transport=tcp"
        );
    }

    /// The scheme-less `"${x}@h"`: the leading placeholder is only the user part, so `;`, `@`
    /// and `:` in it are escaped and the target still dials `h`.
    #[test]
    fn a_leading_placeholder_before_at_is_only_the_user() {
        let mut v = Variables::new();
        v.set("x", "asterisk-internal;x");
        v.set("y", "a@evil");
        v.set("z", "evil:5060");
        let mut e = Expander::new(&v, 1 << 20);
        let mut go = |t: &str| e.expand(t, FieldKind::SipUri, "t").unwrap();
        assert_eq!(go("${x}@h"), "asterisk-internal%3Bx@h");
        assert_eq!(go("${y}@h"), "a%40evil@h");
        assert_eq!(go("${z}@h:5070"), "evil%3A5060@h:5070");
        assert_eq!(go(" ${y}"), " a%40evil");
        assert_eq!(go("${y}"), "a@evil");
    }
}
