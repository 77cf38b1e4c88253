//! Typed reads of single fields from an action's JSON `option` object.
//! Owns the wording of field-level errors (`option.<name>: ...`); must not
//! know which action types need which fields.

use serde_json::{Map, Value};

use super::error::FlowError;
use super::id::ActionId;

/// Read-only view over an `option` object that reports errors with the
/// exact field path, so validation messages point at what to fix.
pub(crate) struct Opt<'a> {
    map: Option<&'a Map<String, Value>>,
}

impl<'a> Opt<'a> {
    /// `null` is accepted as an empty option because VoIPBIN emits it for
    /// actions that take no options.
    pub(crate) fn new(option: &'a Value) -> Result<Self, FlowError> {
        match option {
            Value::Object(m) => Ok(Self { map: Some(m) }),
            Value::Null => Ok(Self { map: None }),
            _ => Err(FlowError::field("option", "must be a JSON object")),
        }
    }

    /// The raw value; `null` counts as absent, like a missing key.
    pub(crate) fn raw(&self, name: &str) -> Option<&'a Value> {
        self.map?.get(name).filter(|v| !v.is_null())
    }

    pub(crate) fn str(&self, name: &str) -> Result<Option<&'a str>, FlowError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(wrong(name, "a string")),
        }
    }

    pub(crate) fn str_req(&self, name: &str) -> Result<&'a str, FlowError> {
        match self.str(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(FlowError::field(path(name), "must not be empty")),
            None => Err(missing(name)),
        }
    }

    pub(crate) fn u64(&self, name: &str) -> Result<Option<u64>, FlowError> {
        match self.raw(name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| wrong(name, "a non-negative integer")),
        }
    }

    pub(crate) fn u64_req(&self, name: &str) -> Result<u64, FlowError> {
        self.u64(name)?.ok_or_else(|| missing(name))
    }

    pub(crate) fn u32(&self, name: &str) -> Result<Option<u32>, FlowError> {
        match self.u64(name)? {
            None => Ok(None),
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| FlowError::field(path(name), "is too large")),
        }
    }

    pub(crate) fn i64(&self, name: &str) -> Result<Option<i64>, FlowError> {
        match self.raw(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| wrong(name, "an integer")),
        }
    }

    pub(crate) fn f64(&self, name: &str) -> Result<Option<f64>, FlowError> {
        match self.raw(name) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| wrong(name, "a number")),
        }
    }

    /// An optional jump target; the nil uuid means "not set" as in VoIPBIN.
    pub(crate) fn action_id(&self, name: &str) -> Result<Option<ActionId>, FlowError> {
        match self.str(name)? {
            None | Some("") => Ok(None),
            Some(s) => parse_action_id(&path(name), s),
        }
    }

    pub(crate) fn action_id_req(&self, name: &str) -> Result<ActionId, FlowError> {
        self.action_id(name)?.ok_or_else(|| missing(name))
    }
}

/// Parses a uuid string for `field`; nil yields `None`.
pub(crate) fn parse_action_id(field: &str, s: &str) -> Result<Option<ActionId>, FlowError> {
    match s.parse::<ActionId>() {
        Ok(id) if id.is_nil() => Ok(None),
        Ok(id) => Ok(Some(id)),
        Err(e) => Err(FlowError::field(field, format!("invalid uuid: {e}"))),
    }
}

pub(crate) fn path(name: &str) -> String {
    format!("option.{name}")
}

fn missing(name: &str) -> FlowError {
    FlowError::field(path(name), "missing required field")
}

fn wrong(name: &str, expected: &str) -> FlowError {
    FlowError::field(path(name), format!("must be {expected}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_and_errors() {
        let v = json!({"s": "x", "n": 5, "neg": -1, "f": 1.5, "z": null, "e": ""});
        let o = Opt::new(&v).unwrap();
        assert_eq!(o.str("s").unwrap(), Some("x"));
        assert_eq!(o.str("z").unwrap(), None);
        assert_eq!(o.u64_req("n").unwrap(), 5);
        assert_eq!(o.i64("neg").unwrap(), Some(-1));
        assert_eq!(o.f64("n").unwrap(), Some(5.0));
        assert_eq!(
            o.u64("neg").unwrap_err(),
            FlowError::field("option.neg", "must be a non-negative integer")
        );
        assert_eq!(
            o.str_req("missing").unwrap_err(),
            FlowError::field("option.missing", "missing required field")
        );
        assert_eq!(
            o.str_req("e").unwrap_err(),
            FlowError::field("option.e", "must not be empty")
        );
        assert!(o.action_id("s").is_err());
        assert_eq!(
            Opt::new(&json!([1])).err().unwrap(),
            FlowError::field("option", "must be a JSON object")
        );
        assert!(Opt::new(&Value::Null).unwrap().str("a").unwrap().is_none());
    }
}
