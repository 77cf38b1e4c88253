//! Per-activeflow variables (`Variables`) and `${name}` substitution.
//! Owns key aliasing (`voipbin.` prefix) and the seeded key names; must not
//! evaluate conditions or know about actions.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Seeded: the running activeflow's id.
pub const ACTIVEFLOW_ID: &str = "activeflow.id";
/// Seeded: the flow the activeflow runs.
pub const ACTIVEFLOW_FLOW_ID: &str = "activeflow.flow_id";
/// Seeded: what started the activeflow (e.g. `call`).
pub const ACTIVEFLOW_REFERENCE_TYPE: &str = "activeflow.reference_type";
/// Seeded: id of the thing that started the activeflow.
pub const ACTIVEFLOW_REFERENCE_ID: &str = "activeflow.reference_id";
/// Seeded: the call's id.
pub const CALL_ID: &str = "call.id";
/// Seeded: the caller's address.
pub const CALL_SOURCE_TARGET: &str = "call.source.target";
/// Seeded: the called address.
pub const CALL_DESTINATION_TARGET: &str = "call.destination.target";
/// Seeded: `incoming` or `outgoing`.
pub const CALL_DIRECTION: &str = "call.direction";
/// Digits received from the caller; the default `branch` variable.
pub const CALL_DIGITS: &str = "call.digits";

/// VoIPBIN flows name variables with this prefix; we accept it as an alias.
const ALIAS_PREFIX: &str = "voipbin.";

/// Maps an aliased key to its canonical (unprefixed) form.
fn canonical(key: &str) -> &str {
    key.strip_prefix(ALIAS_PREFIX).unwrap_or(key)
}

/// String variables of one activeflow. Keys are stored without the
/// `voipbin.` prefix so both spellings address the same entry. Keys and values
/// are boxed `str` (16 bytes, no spare capacity) rather than `String`: every
/// running activeflow holds a dozen seeded ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Variables(HashMap<Box<str>, Box<str>>);

impl Variables {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Value of `key` (either spelling).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(canonical(key)).map(|v| &**v)
    }

    /// Sets `key` (either spelling) to `value`.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let key: Box<str> = match key.strip_prefix(ALIAS_PREFIX) {
            Some(rest) => rest.into(),
            None => key.into_boxed_str(),
        };
        self.0.insert(key, value.into().into_boxed_str());
    }

    /// Removes `key` (either spelling), returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(canonical(key)).map(String::from)
    }

    /// True when `key` (either spelling) is set.
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(canonical(key))
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no variable is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// All `(key, value)` pairs in canonical form, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Copies every entry of `other` in; `other` wins on conflicts.
    pub fn merge(&mut self, other: Variables) {
        for (k, v) in other.0 {
            self.set(k, v);
        }
    }

    /// Replaces each `${name}` in `text` with the variable's value (empty
    /// when unset). A `$` not followed by `{`, or a `${` without a closing
    /// `}`, stays literal. Values are not re-expanded, so a caller-supplied
    /// value cannot inject further lookups. Single forward pass: linear time.
    pub fn substitute(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        // Slicing at positions found for ASCII `$`, `{`, `}` always lands on
        // char boundaries, so multibyte input cannot make this panic.
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find('}') {
                Some(end) => {
                    let name = after[..end].trim();
                    out.push_str(self.get(name).unwrap_or(""));
                    rest = &after[end + 1..];
                }
                None => {
                    // Unterminated: keep the remainder verbatim.
                    out.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }
}

impl<'de> Deserialize<'de> for Variables {
    // Deserialized through `set` so aliased keys in stored JSON are
    // canonicalised like any other write.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = HashMap::<String, String>::deserialize(d)?;
        let mut vars = Variables::new();
        for (k, v) in raw {
            vars.set(k, v);
        }
        Ok(vars)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Variables {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut vars = Variables::new();
        for (k, v) in iter {
            vars.set(k, v);
        }
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Variables {
        [("call.digits", "123"), ("name", "Ünïcødé"), ("empty", "")]
            .into_iter()
            .collect()
    }

    #[test]
    fn aliases_address_same_entry() {
        let mut v = Variables::new();
        v.set("voipbin.call.digits", "42");
        assert_eq!(v.get(CALL_DIGITS), Some("42"));
        assert_eq!(v.get("voipbin.call.digits"), Some("42"));
        assert_eq!(v.iter().next(), Some(("call.digits", "42")));
        v.set(CALL_DIGITS, "7");
        assert_eq!(v.len(), 1);
        assert_eq!(v.remove("voipbin.call.digits"), Some("7".to_owned()));
        assert!(v.is_empty());
    }

    #[test]
    fn substitute_basic_and_alias() {
        let v = vars();
        assert_eq!(v.substitute("d=${call.digits}!"), "d=123!");
        assert_eq!(v.substitute("${voipbin.call.digits}"), "123");
        assert_eq!(v.substitute("${ call.digits }"), "123");
        assert_eq!(v.substitute("${a}${call.digits}${b}"), "123");
    }

    #[test]
    fn substitute_edge_cases() {
        let v = vars();
        assert_eq!(v.substitute(""), "");
        assert_eq!(v.substitute("$"), "$");
        assert_eq!(v.substitute("cost $5 {x}"), "cost $5 {x}");
        assert_eq!(v.substitute("a ${unknown} b"), "a  b");
        assert_eq!(v.substitute("${}"), "");
        assert_eq!(v.substitute("x ${call.digits"), "x ${call.digits");
        assert_eq!(v.substitute("${call.digits} ${"), "123 ${");
        assert_eq!(v.substitute("$${call.digits}"), "$123");
        assert_eq!(v.substitute("}${empty}{"), "}{");
    }

    #[test]
    fn substitute_does_not_reexpand_values() {
        let mut v = Variables::new();
        v.set("a", "${b}");
        v.set("b", "secret");
        assert_eq!(v.substitute("${a}"), "${b}");
    }

    #[test]
    fn substitute_multibyte() {
        let v = vars();
        assert_eq!(v.substitute("héllo ${name} 日本"), "héllo Ünïcødé 日本");
        assert_eq!(v.substitute("${日本}é"), "é");
        assert_eq!(v.substitute("€${é"), "€${é");
        assert_eq!(v.substitute("🎉$🎉${🎉"), "🎉$🎉${🎉");
    }

    #[test]
    fn substitute_large_input_is_fast() {
        let text = "${".repeat(100_000) + &"x}".repeat(100_000);
        let out = vars().substitute(&text);
        assert!(out.len() < text.len());
        let text = "$".repeat(200_000);
        assert_eq!(vars().substitute(&text), text);
    }

    #[test]
    fn merge_and_serde() {
        let mut a = vars();
        let mut b = Variables::new();
        b.set("voipbin.call.digits", "9");
        b.set("new", "n");
        a.merge(b);
        assert_eq!(a.get(CALL_DIGITS), Some("9"));
        assert_eq!(a.get("new"), Some("n"));

        let v: Variables = serde_json::from_str(r#"{"voipbin.call.id":"c1","x":"y"}"#).unwrap();
        assert_eq!(v.get(CALL_ID), Some("c1"));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json, serde_json::json!({"call.id": "c1", "x": "y"}));
        assert!(serde_json::from_str::<Variables>(r#"{"x":1}"#).is_err());
    }
}
