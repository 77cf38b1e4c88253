//! Options of VoIPBIN's deprecated-but-documented call conditions, `condition_call_digits` and
//! `condition_call_status` (bin-flow-manager models/action/option.go, actionhandle.go), read
//! from the `call.digits` and `call.status` variables. Parses and evaluates; must not read
//! the call itself (the engine keeps those variables up to date).

use serde::{Deserialize, Serialize};

use super::error::FlowError;
use super::id::ActionId;
use super::options::{path, Opt};

/// `condition_call_digits`: true when the received digits are at least `length` long, or
/// contain `key` (either test; neither given → false, as in VoIPBIN).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionCallDigits {
    /// 0: not tested.
    pub length: u32,
    /// "": not tested.
    pub key: String,
    pub false_target_id: Option<ActionId>,
}

impl ConditionCallDigits {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        Ok(Self {
            length: o.u32("length")?.unwrap_or(0),
            key: o.str("key")?.unwrap_or_default().to_owned(),
            false_target_id: o.action_id("false_target_id")?,
        })
    }

    /// Whether `digits` (the `call.digits` variable) passes. Length counts characters.
    pub fn holds(&self, digits: &str) -> bool {
        let long_enough = self.length != 0
            && usize::try_from(self.length).is_ok_and(|n| digits.chars().count() >= n);
        let has_key = !self.key.is_empty() && digits.contains(self.key.as_str());
        long_enough || has_key
    }
}

/// VoIPBIN's call statuses (bin-call-manager models/call/call.go), the values
/// `condition_call_status` accepts and the `call.status` variable takes.
pub const CALL_STATUSES: &[&str] = &[
    "dialing",
    "ringing",
    "progressing",
    "terminating",
    "canceling",
    "hangup",
];

/// `condition_call_status`: true when the call's status (`call.status`) equals `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionCallStatus {
    pub status: String,
    pub false_target_id: Option<ActionId>,
}

impl ConditionCallStatus {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        let status = o.str_req("status")?;
        // A `${...}` is checked once substituted, when the action runs.
        if !status.contains("${") && !CALL_STATUSES.contains(&status) {
            return Err(FlowError::field(
                path("status"),
                format!(
                    r#"unknown call status "{status}" (expected one of {})"#,
                    CALL_STATUSES.join(", ")
                ),
            ));
        }
        Ok(Self {
            status: status.to_owned(),
            false_target_id: o.action_id("false_target_id")?,
        })
    }

    /// Whether `status` (the `call.status` variable; "" when unset) is the one asked for.
    pub fn holds(&self, status: &str) -> bool {
        status == self.status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn digits(v: serde_json::Value) -> Result<ConditionCallDigits, FlowError> {
        ConditionCallDigits::from_opt(&Opt::new(&v)?)
    }

    fn status(v: serde_json::Value) -> Result<ConditionCallStatus, FlowError> {
        ConditionCallStatus::from_opt(&Opt::new(&v)?)
    }

    fn field(e: FlowError) -> String {
        match e {
            FlowError::Field { field, .. } => field,
            e => panic!("{e}"),
        }
    }

    /// actionhandle.go actionHandleConditionCallDigits: `len(digits) >= length` (when
    /// length != 0), else `strings.Contains(digits, key)` (when key != "").
    #[test]
    fn call_digits_length_or_key() {
        let c = digits(json!({"length": 3})).unwrap();
        assert!(c.holds("123") && c.holds("1234"));
        assert!(!c.holds("12") && !c.holds(""));
        let c = digits(json!({"key": "#"})).unwrap();
        assert!(c.holds("12#") && !c.holds("123"));
        let c = digits(json!({"length": 4, "key": "*"})).unwrap();
        assert!(c.holds("1*") && c.holds("1234") && !c.holds("123"));
        let c = digits(json!({})).unwrap();
        assert!(!c.holds("") && !c.holds("123"), "nothing to test: false");
        let c =
            digits(json!({"length": 2, "false_target_id": "11111111-1111-4111-8111-111111111111"}))
                .unwrap();
        assert!(c.false_target_id.is_some());
    }

    #[test]
    fn call_digits_errors_name_the_field() {
        assert_eq!(
            field(digits(json!({"length": -1})).unwrap_err()),
            "option.length"
        );
        assert_eq!(
            field(digits(json!({"length": "3"})).unwrap_err()),
            "option.length"
        );
        assert_eq!(field(digits(json!({"key": 1})).unwrap_err()), "option.key");
        let e = digits(json!({"false_target_id": "x"})).unwrap_err();
        assert_eq!(field(e), "option.false_target_id");
    }

    #[test]
    fn call_status_equals() {
        for s in CALL_STATUSES {
            let c = status(json!({ "status": s })).unwrap();
            assert!(c.holds(s));
            assert!(!c.holds(""));
        }
        let c = status(json!({"status": "progressing"})).unwrap();
        assert!(!c.holds("ringing"));
    }

    #[test]
    fn call_status_must_be_a_voipbin_status() {
        let e = status(json!({"status": "answered"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"option.status: unknown call status "answered" (expected one of dialing, ringing, progressing, terminating, canceling, hangup)"#
        );
        assert_eq!(field(status(json!({})).unwrap_err()), "option.status");
        assert!(status(json!({"status": "${wanted}"})).is_ok());
        assert_eq!(
            field(status(json!({"status": 1})).unwrap_err()),
            "option.status"
        );
    }
}
