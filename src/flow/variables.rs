//! Per-activeflow variables (`Variables`) and `${name}` substitution.
//! Owns key aliasing (`voipbin.` prefix), the seeded key names and the byte count the size caps
//! (`limits`) are checked against; must not evaluate conditions or know about actions.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::limits::{VariableError, VariableLimits};

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
/// Seeded when the caller authenticated as a `[[users]]` phone: its user name.
pub const CALL_SOURCE_USER: &str = "call.source.user";
/// Seeded: the called address.
pub const CALL_DESTINATION_TARGET: &str = "call.destination.target";
/// Seeded: `incoming` or `outgoing`.
pub const CALL_DIRECTION: &str = "call.direction";
/// Digits received from the caller; the default `branch` variable.
pub const CALL_DIGITS: &str = "call.digits";
/// The call's status, as VoIPBIN names it (bin-call-manager models/call/call.go): `dialing`
/// (created, dialling the destination), `ringing` (the destination rings), `progressing`
/// (answered, both ends talking), `terminating` (being torn down), `canceling` (the
/// originator cancels before answer), `hangup` (ended). Read by `condition_call_status`.
pub const CALL_STATUS: &str = "call.status";
/// Seeded: the caller's VoIPBIN address type (`tel`, `sip` or `extension`).
pub const CALL_SOURCE_TYPE: &str = "call.source.type";
/// Seeded: the caller's display name ("" without one).
pub const CALL_SOURCE_NAME: &str = "call.source.name";
/// Seeded for an incoming call: `yes` when the caller asked not to be identified (its INVITE
/// had `Privacy: id`, `header`, `user` or `critical`, RFC 3323/3325, or an anonymous From,
/// RFC 3323 §4.1.1.3), else `no`. A `connect` with `"anonymous": "auto"` hides the caller
/// when it is `yes` (absent counts as `no`).
pub const CALL_SOURCE_PRIVACY: &str = "call.source.privacy";
/// Seeded: the callee's VoIPBIN address type (`tel`, `sip` or `extension`).
pub const CALL_DESTINATION_TYPE: &str = "call.destination.type";
/// Seeded: the callee's display name (the `To` header's; "" without one).
pub const CALL_DESTINATION_NAME: &str = "call.destination.name";
/// Seeded: the activeflow whose `on_complete_flow_id` started this one (the nil UUID if none).
pub const ACTIVEFLOW_REFERENCE_ACTIVEFLOW_ID: &str = "activeflow.reference_activeflow_id";
/// Seeded: how many `on_complete_flow_id` hops led to this activeflow ("0" for the first).
pub const ACTIVEFLOW_COMPLETE_COUNT: &str = "activeflow.complete_count";

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
pub struct Variables {
    map: HashMap<Box<str>, Box<str>>,
    /// Bytes of every key and value, kept up to date by every write (the caps are checked
    /// against it without a walk).
    #[serde(skip)]
    bytes: usize,
}

impl Variables {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Value of `key` (either spelling).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(canonical(key)).map(|v| &**v)
    }

    /// Sets `key` (either spelling) to `value`, unchecked: for values the engine bounds itself
    /// (ids, seeds checked as a whole with [`Variables::check`]). Flow- and caller-given
    /// values go through [`Variables::try_set`].
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let key: Box<str> = match key.strip_prefix(ALIAS_PREFIX) {
            Some(rest) => rest.into(),
            None => key.into_boxed_str(),
        };
        let value = value.into().into_boxed_str();
        self.bytes += key.len() + value.len();
        if let Some(old) = self.map.insert(key.clone(), value) {
            self.bytes -= key.len() + old.len();
        }
    }

    /// Sets `key` to `value` unless that would break a cap of `limits`; then nothing changes.
    pub fn try_set(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
        limits: &VariableLimits,
    ) -> Result<(), VariableError> {
        let (key, value) = (key.into(), value.into());
        let bytes = self.bytes_after(canonical(&key), value.len());
        check_one(canonical(&key), value.len(), bytes, limits)?;
        self.set(key, value);
        Ok(())
    }

    /// Removes `key` (either spelling), returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let (k, v) = self.map.remove_entry(canonical(key))?;
        self.bytes -= k.len() + v.len();
        Some(String::from(v))
    }

    /// True when `key` (either spelling) is set.
    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(canonical(key))
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no variable is set.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes of every key and value (what `engine.max_variables_bytes` caps).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// All `(key, value)` pairs in canonical form, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Copies every entry of `other` in; `other` wins on conflicts. Unchecked, like `set`.
    pub fn merge(&mut self, other: Variables) {
        for (k, v) in other.map {
            self.set(k, v);
        }
    }

    /// [`Variables::merge`] unless the result would break a cap; then nothing changes.
    pub fn try_merge(
        &mut self,
        other: Variables,
        limits: &VariableLimits,
    ) -> Result<(), VariableError> {
        let mut bytes = self.bytes;
        for (k, v) in other.iter() {
            check_one(k, v.len(), 0, limits)?;
            let old = self.map.get(k).map_or(0, |old| k.len() + old.len());
            bytes = bytes + k.len() + v.len() - old;
        }
        total_within(&other, bytes, limits)?;
        self.merge(other);
        Ok(())
    }

    /// Whether this whole set is within `limits` (seeded variables, an API start's set).
    pub fn check(&self, limits: &VariableLimits) -> Result<(), VariableError> {
        for (k, v) in self.iter() {
            check_one(k, v.len(), 0, limits)?;
        }
        total_within(self, self.bytes, limits)
    }

    /// The byte count once `key` (canonical) holds a value of `value_len` bytes.
    fn bytes_after(&self, key: &str, value_len: usize) -> usize {
        let old = self.map.get(key).map_or(0, |v| key.len() + v.len());
        self.bytes - old + key.len() + value_len
    }
}

/// A checked write: `value_len` within the value cap and `bytes` (0: not checked here) within
/// the total cap.
fn check_one(
    key: &str,
    value_len: usize,
    bytes: usize,
    limits: &VariableLimits,
) -> Result<(), VariableError> {
    if value_len > limits.max_value_bytes {
        return Err(VariableError::ValueTooLarge {
            key: VariableError::shown_key(key),
            bytes: value_len,
            limit: limits.max_value_bytes,
        });
    }
    if bytes > limits.max_total_bytes {
        return Err(VariableError::TotalTooLarge {
            key: VariableError::shown_key(key),
            bytes,
            limit: limits.max_total_bytes,
        });
    }
    Ok(())
}

/// `bytes` within the total cap; the error names the largest entry of `written`.
fn total_within(
    written: &Variables,
    bytes: usize,
    limits: &VariableLimits,
) -> Result<(), VariableError> {
    if bytes <= limits.max_total_bytes {
        return Ok(());
    }
    let key = written
        .iter()
        .max_by_key(|(k, v)| k.len() + v.len())
        .map_or("", |(k, _)| k);
    Err(VariableError::TotalTooLarge {
        key: VariableError::shown_key(key),
        bytes,
        limit: limits.max_total_bytes,
    })
}

/// One part of a text that may name variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Literal text, as written.
    Text(&'a str),
    /// A `${name}` placeholder's name, trimmed.
    Name(&'a str),
}

/// The literal parts and placeholders of `text`, in order. A `$` not followed by `{`, or a
/// `${` without a closing `}`, is literal.
pub(crate) fn pieces(text: &str) -> impl Iterator<Item = Piece<'_>> {
    let mut rest = text;
    let mut pending: Option<Piece<'_>> = None;
    std::iter::from_fn(move || {
        if let Some(p) = pending.take() {
            return Some(p);
        }
        if rest.is_empty() {
            return None;
        }
        // Slicing at positions found for ASCII `$`, `{`, `}` always lands on char
        // boundaries, so multibyte input cannot make this panic.
        let Some(start) = rest.find("${") else {
            return Some(Piece::Text(std::mem::take(&mut rest)));
        };
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            // Unterminated: the remainder is literal.
            return Some(Piece::Text(std::mem::take(&mut rest)));
        };
        let before = &rest[..start];
        let name = Piece::Name(after[..end].trim());
        rest = &after[end + 1..];
        if before.is_empty() {
            Some(name)
        } else {
            pending = Some(name);
            Some(Piece::Text(before))
        }
    })
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

    fn limits(value: usize, total: usize) -> VariableLimits {
        VariableLimits {
            max_value_bytes: value,
            max_total_bytes: total,
        }
    }

    #[test]
    fn bytes_follow_every_write() {
        let mut v = Variables::new();
        v.set("voipbin.ab", "xyz");
        assert_eq!(v.bytes(), 5);
        v.set("ab", "x");
        assert_eq!(v.bytes(), 3);
        v.merge([("c", "12")].into_iter().collect());
        assert_eq!(v.bytes(), 6);
        v.remove("voipbin.ab");
        assert_eq!(v.bytes(), 3);
        let back: Variables = serde_json::from_str(r#"{"voipbin.k":"vv"}"#).unwrap();
        assert_eq!(back.bytes(), 3);
    }

    #[test]
    fn try_set_refuses_over_either_cap_and_writes_nothing() {
        let caps = limits(4, 12);
        let mut v = Variables::new();
        v.try_set("a", "1234", &caps).unwrap();
        let e = v.try_set("voipbin.a", "12345", &caps).unwrap_err();
        assert_eq!(
            e.to_string(),
            "variable a would be 5 bytes, over engine.max_variable_bytes 4"
        );
        assert_eq!(v.get("a"), Some("1234"));
        v.try_set("b", "1234", &caps).unwrap();
        // Replacing a value counts only the difference.
        v.try_set("b", "12", &caps).unwrap();
        assert_eq!(v.bytes(), 8);
        let e = v.try_set("cc", "123", &caps).unwrap_err();
        assert_eq!(
            e.to_string(),
            "variable cc would bring the variables to 13 bytes, over engine.max_variables_bytes 12"
        );
        assert!(!v.contains("cc"));
        let long_key = "k".repeat(100);
        let e = v.try_set(long_key.as_str(), "", &caps).unwrap_err();
        assert!(e
            .to_string()
            .starts_with(&format!("variable {}... (100 bytes)", "k".repeat(64))));
    }

    #[test]
    fn try_merge_and_check_are_all_or_nothing() {
        let caps = limits(4, 12);
        let mut v: Variables = [("a", "1234")].into_iter().collect();
        let over_value: Variables = [("b", "1"), ("c", "12345")].into_iter().collect();
        let e = v.try_merge(over_value.clone(), &caps).unwrap_err();
        assert!(
            matches!(e, VariableError::ValueTooLarge { ref key, .. } if key == "c"),
            "{e}"
        );
        assert_eq!(v.len(), 1);
        let over_total: Variables = [("b", "1234"), ("cc", "1")].into_iter().collect();
        let e = v.try_merge(over_total.clone(), &caps).unwrap_err();
        assert!(
            matches!(e, VariableError::TotalTooLarge { bytes: 13, ref key, .. } if key == "b"),
            "{e}"
        );
        assert_eq!(v.len(), 1);
        // Replacing `a` frees its bytes.
        let replace: Variables = [("a", "1"), ("b", "1234")].into_iter().collect();
        v.try_merge(replace, &caps).unwrap();
        assert_eq!(v.bytes(), 7);
        assert!(v.check(&caps).is_ok());
        assert!(over_value.check(&caps).is_err());
        assert!(over_total.check(&limits(4, 6)).is_err());
    }

    #[test]
    fn pieces_split_text_and_names() {
        let p: Vec<Piece<'_>> = pieces("a${ b }c${d}${").collect();
        assert_eq!(
            p,
            [
                Piece::Text("a"),
                Piece::Name("b"),
                Piece::Text("c"),
                Piece::Name("d"),
                Piece::Text("${")
            ]
        );
        assert_eq!(pieces("").count(), 0);
        assert_eq!(pieces("${x}").collect::<Vec<_>>(), [Piece::Name("x")]);
    }
}
