//! Typed options and evaluation of `condition_variable` and
//! `condition_datetime`. Pure functions of (option, variables, clock value);
//! must not read the clock itself or decide where the cursor jumps.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::error::FlowError;
use super::id::ActionId;
use super::options::{path, Opt};
use super::substitute::{Expander, FieldKind, SubstituteError};
use super::variables::{pieces, Piece, Variables};

/// Comparison operator, spelled in JSON as `==`, `!=`, `>`, `>=`, `<`, `<=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
}

impl Comparison {
    /// Parses the JSON spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "==" => Self::Eq,
            "!=" => Self::Ne,
            ">" => Self::Gt,
            ">=" => Self::Ge,
            "<" => Self::Lt,
            "<=" => Self::Le,
            _ => return None,
        })
    }

    /// The JSON spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
        }
    }

    /// `actual <op> expected`.
    pub fn holds<T: PartialOrd + ?Sized>(&self, actual: &T, expected: &T) -> bool {
        match self {
            Self::Eq => actual == expected,
            Self::Ne => actual != expected,
            Self::Gt => actual > expected,
            Self::Ge => actual >= expected,
            Self::Lt => actual < expected,
            Self::Le => actual <= expected,
        }
    }

    fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        let s = o.str_req("condition")?;
        Self::parse(s).ok_or_else(|| {
            FlowError::field(
                path("condition"),
                format!(r#"unknown comparison "{s}" (expected ==, !=, >, >=, <, <=)"#),
            )
        })
    }
}

/// How `condition_variable` interprets the variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    #[default]
    String,
    Number,
    Length,
}

/// Option of `condition_variable`: compares one variable with a constant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionVariable {
    pub condition: Comparison,
    pub variable: String,
    pub value_type: ValueType,
    pub value_string: String,
    pub value_number: f64,
    pub value_length: i64,
    pub false_target_id: Option<ActionId>,
}

impl ConditionVariable {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        let value_type = match o.str("value_type")? {
            None | Some("") | Some("string") => ValueType::String,
            Some("number") => ValueType::Number,
            Some("length") => ValueType::Length,
            Some(other) => {
                return Err(FlowError::field(
                    path("value_type"),
                    format!(r#"unknown value type "{other}" (expected string, number, length)"#),
                ))
            }
        };
        Ok(Self {
            condition: Comparison::from_opt(o)?,
            variable: o.str_req("variable")?.to_owned(),
            value_type,
            value_string: o.str("value_string")?.unwrap_or_default().to_owned(),
            value_number: o.f64("value_number")?.unwrap_or(0.0),
            value_length: o.i64("value_length")?.unwrap_or(0),
            false_target_id: o.action_id("false_target_id")?,
        })
    }

    /// Current value of the tested variable. VoIPBIN flows write the variable as a
    /// placeholder (`${voipbin.call.digits}`, bin-api-manager flow_struct_action.rst), others
    /// as a bare name; both read the named variable (either spelling of the `voipbin.` alias).
    /// Anything else holding `${...}` (`${a}${b}`, `prefix ${x}`) is a template. Unset reads
    /// as "". A template is expanded here, once (the action's substitution leaves this field
    /// alone, so a value holding `${...}` is never expanded again), and may insert at most
    /// `limit` bytes.
    pub fn actual_value(&self, vars: &Variables, limit: usize) -> Result<String, SubstituteError> {
        if let Some(name) = lone_placeholder(&self.variable) {
            let value = vars.get(name).unwrap_or_default();
            if value.len() > limit {
                return Err(SubstituteError::TooLarge {
                    field: "option.variable".to_owned(),
                    limit,
                });
            }
            Ok(value.to_owned())
        } else if self.variable.contains("${") {
            Expander::new(vars, limit).expand(&self.variable, FieldKind::Text, "option.variable")
        } else {
            Ok(vars
                .get(self.variable.trim())
                .unwrap_or_default()
                .to_owned())
        }
    }

    /// True when `actual <condition> value` holds.
    pub fn holds(&self, actual: &str) -> bool {
        match self.value_type {
            ValueType::String => self.condition.holds(actual, self.value_string.as_str()),
            ValueType::Number => match actual.trim().parse::<f64>() {
                // "NaN"/"inf" parse as f64 but are not numbers a caller typed.
                Ok(n) if n.is_finite() => self.condition.holds(&n, &self.value_number),
                _ => false,
            },
            ValueType::Length => {
                let len = i64::try_from(actual.chars().count()).unwrap_or(i64::MAX);
                self.condition.holds(&len, &self.value_length)
            }
        }
    }
}

/// The name in `text` when `text` is exactly one `${name}` (spaces around it allowed).
fn lone_placeholder(text: &str) -> Option<&str> {
    let mut pieces = pieces(text.trim());
    match (pieces.next(), pieces.next()) {
        (Some(Piece::Name(name)), None) => Some(name),
        _ => None,
    }
}

/// Option of `condition_datetime`: compares parts of the current UTC time.
/// `None` parts (missing or -1 in JSON; for `day` and `month` also 0, VoIPBIN's "any" —
/// bin-flow-manager actionhandle.go checks them only when > 0) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionDatetime {
    pub condition: Comparison,
    pub minute: Option<i32>,
    pub hour: Option<i32>,
    pub day: Option<i32>,
    pub month: Option<i32>,
    /// 0 = Sunday .. 6 = Saturday; empty means any day.
    pub weekdays: Vec<u32>,
    pub false_target_id: Option<ActionId>,
}

impl ConditionDatetime {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        let weekdays = match o.raw("weekdays") {
            None => Vec::new(),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_u64()
                        .filter(|d| *d <= 6)
                        .and_then(|d| u32::try_from(d).ok())
                        .ok_or_else(|| {
                            FlowError::field(
                                format!("option.weekdays[{i}]"),
                                "must be an integer 0 (Sunday) .. 6 (Saturday)",
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => {
                return Err(FlowError::field(
                    path("weekdays"),
                    "must be an array of integers",
                ))
            }
        };
        Ok(Self {
            condition: Comparison::from_opt(o)?,
            minute: part(o, "minute", 0, 59)?,
            hour: part(o, "hour", 0, 23)?,
            day: part(o, "day", 1, 31)?,
            month: part(o, "month", 1, 12)?,
            weekdays,
            false_target_id: o.action_id("false_target_id")?,
        })
    }

    /// True when every given part satisfies `now.part <condition> value` and
    /// today's weekday is listed (when a list is given).
    pub fn evaluate(&self, now: DateTime<Utc>) -> bool {
        let parts = [
            (self.minute, now.minute()),
            (self.hour, now.hour()),
            (self.day, now.day()),
            (self.month, now.month()),
        ];
        let parts_hold = parts.iter().all(|(want, actual)| match want {
            None => true,
            Some(want) => {
                let actual = i64::from(*actual);
                self.condition.holds(&actual, &i64::from(*want))
            }
        });
        let weekday = now.weekday().num_days_from_sunday();
        parts_hold && (self.weekdays.is_empty() || self.weekdays.contains(&weekday))
    }
}

/// Reads one time part: missing or -1 → ignored, and 0 too for parts counted from 1 (`day`,
/// `month`: VoIPBIN's wildcard); otherwise must lie in `lo..=hi` so typos like `hour: 24`
/// are caught at registration.
fn part(o: &Opt<'_>, name: &str, lo: i64, hi: i64) -> Result<Option<i32>, FlowError> {
    match o.i64(name)? {
        None | Some(-1) => Ok(None),
        Some(0) if lo == 1 => Ok(None),
        Some(v) if (lo..=hi).contains(&v) => Ok(i32::try_from(v).ok()),
        Some(_) if lo == 1 => Err(FlowError::field(
            path(name),
            format!("must be 0 or -1 (any) or between {lo} and {hi}"),
        )),
        Some(_) => Err(FlowError::field(
            path(name),
            format!("must be -1 (any) or between {lo} and {hi}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    use crate::flow::limits::DEFAULT_MAX_VARIABLES_BYTES;

    /// What the engine does with a `condition_variable`: its actual value, then `holds`.
    fn evaluate(c: &ConditionVariable, vars: &Variables) -> bool {
        c.actual_value(vars, DEFAULT_MAX_VARIABLES_BYTES)
            .is_ok_and(|actual| c.holds(&actual))
    }

    fn cv(option: serde_json::Value) -> Result<ConditionVariable, FlowError> {
        ConditionVariable::from_opt(&Opt::new(&option)?)
    }

    fn cd(option: serde_json::Value) -> Result<ConditionDatetime, FlowError> {
        ConditionDatetime::from_opt(&Opt::new(&option)?)
    }

    fn vars(v: &str) -> Variables {
        [("x", v)].into_iter().collect()
    }

    const ALL: [&str; 6] = ["==", "!=", ">", ">=", "<", "<="];

    #[test]
    fn comparison_parse_and_holds() {
        for s in ALL {
            assert_eq!(Comparison::parse(s).unwrap().as_str(), s);
        }
        assert!(Comparison::parse("=").is_none());
        let results: Vec<bool> = ALL
            .iter()
            .map(|s| Comparison::parse(s).unwrap().holds(&2, &1))
            .collect();
        assert_eq!(results, [false, true, true, true, false, false]);
        let c: Comparison = serde_json::from_str("\">=\"").unwrap();
        assert_eq!(c, Comparison::Ge);
    }

    #[test]
    fn string_compare_each_operator() {
        let expect = [
            ("b", [false, true, true, true, false, false]),
            ("a", [true, false, false, true, false, true]),
            ("", [false, true, false, false, true, true]),
        ];
        for (actual, results) in expect {
            for (op, want) in ALL.iter().zip(results) {
                let c = cv(json!({"condition": op, "variable": "x", "value_string": "a"})).unwrap();
                assert_eq!(evaluate(&c, &vars(actual)), want, "{actual} {op} a");
            }
        }
    }

    #[test]
    fn number_compare_each_operator() {
        for (op, want) in ALL.iter().zip([false, true, true, true, false, false]) {
            let c = cv(json!({"condition": op, "variable": "x", "value_type": "number", "value_number": 10}))
                .unwrap();
            assert_eq!(evaluate(&c, &vars(" 10.5 ")), want, "10.5 {op} 10");
            assert!(!evaluate(&c, &vars("abc")), "unparseable is false for {op}");
            assert!(!evaluate(&c, &vars("NaN")));
            assert!(!evaluate(&c, &Variables::new()));
        }
    }

    #[test]
    fn length_compare_each_operator() {
        for (op, want) in ALL.iter().zip([true, false, false, true, false, true]) {
            let c = cv(json!({"condition": op, "variable": "x", "value_type": "length", "value_length": 3}))
                .unwrap();
            // Three chars, six bytes: length counts chars.
            assert_eq!(evaluate(&c, &vars("日本語")), want, "len {op} 3");
        }
    }

    #[test]
    fn variable_as_template_or_alias() {
        let c = cv(
            json!({"condition": "==", "variable": "${voipbin.call.digits}", "value_string": "1"}),
        )
        .unwrap();
        let v: Variables = [("call.digits", "1")].into_iter().collect();
        assert!(evaluate(&c, &v));
        let c =
            cv(json!({"condition": "==", "variable": "voipbin.call.digits", "value_string": "1"}))
                .unwrap();
        assert!(evaluate(&c, &v));
    }

    #[test]
    fn condition_variable_parse_errors() {
        let field = |o| match cv(o).unwrap_err() {
            FlowError::Field { field, .. } => field,
            e => panic!("{e}"),
        };
        assert_eq!(field(json!({"variable": "x"})), "option.condition");
        assert_eq!(
            field(json!({"condition": "~", "variable": "x"})),
            "option.condition"
        );
        assert_eq!(field(json!({"condition": "=="})), "option.variable");
        assert_eq!(
            field(json!({"condition": "==", "variable": "x", "value_type": "bool"})),
            "option.value_type"
        );
        assert_eq!(
            field(json!({"condition": "==", "variable": "x", "value_number": "1"})),
            "option.value_number"
        );
        assert_eq!(
            field(json!({"condition": "==", "variable": "x", "value_length": 1.5})),
            "option.value_length"
        );
        assert_eq!(
            field(json!({"condition": "==", "variable": "x", "false_target_id": "zz"})),
            "option.false_target_id"
        );
        let c = cv(json!({"condition": "==", "variable": "x"})).unwrap();
        assert_eq!(c.value_type, ValueType::String);
        assert_eq!(c.value_string, "");
        assert_eq!(c.false_target_id, None);
    }

    #[test]
    fn datetime_evaluate() {
        // 2024-03-05 is a Tuesday (weekday 2).
        let now = Utc.with_ymd_and_hms(2024, 3, 5, 14, 30, 0).unwrap();
        let c = cd(json!({"condition": ">=", "hour": 9, "minute": -1})).unwrap();
        assert_eq!(c.minute, None);
        assert!(c.evaluate(now));
        let c = cd(json!({"condition": "<", "hour": 14})).unwrap();
        assert!(!c.evaluate(now));
        let c =
            cd(json!({"condition": "==", "day": 5, "month": 3, "hour": 14, "minute": 30})).unwrap();
        assert!(c.evaluate(now));
        let c = cd(json!({"condition": "==", "day": 6})).unwrap();
        assert!(!c.evaluate(now));
        let c = cd(json!({"condition": "==", "weekdays": [1, 2, 3, 4, 5]})).unwrap();
        assert!(c.evaluate(now));
        let c = cd(json!({"condition": "==", "weekdays": [0, 6]})).unwrap();
        assert!(!c.evaluate(now));
        let c = cd(json!({"condition": "!=", "month": 3, "weekdays": [2]})).unwrap();
        assert!(!c.evaluate(now));
        let c = cd(json!({"condition": "=="})).unwrap();
        assert!(c.evaluate(now));
    }

    /// bin-flow-manager actionhandle.go actionHandleConditionDatetime: `month` and `day` are
    /// compared only when > 0, so VoIPBIN flows write 0 for "any"; -1 and missing stay "any".
    #[test]
    fn datetime_zero_month_and_day_mean_any() {
        let now = Utc.with_ymd_and_hms(2024, 3, 5, 14, 30, 0).unwrap();
        let c =
            cd(json!({"condition": "==", "month": 0, "day": 0, "hour": 14, "minute": 30})).unwrap();
        assert_eq!((c.month, c.day), (None, None));
        assert!(c.evaluate(now));
        let c = cd(json!({"condition": ">=", "month": 0, "day": -1, "hour": 15})).unwrap();
        assert!(!c.evaluate(now), "the hour is still compared");
        // 0 is a real value for hour and minute.
        let c = cd(json!({"condition": "==", "hour": 0, "minute": 0})).unwrap();
        assert_eq!((c.hour, c.minute), (Some(0), Some(0)));
        assert!(!c.evaluate(now));
    }

    /// `${name}` alone reads `name`; other text holding placeholders is a template; a bare
    /// name is a name; unset is "" in every form.
    #[test]
    fn variable_placeholder_template_and_unset() {
        let v: Variables = [("a", "1"), ("b", "2"), ("call.digits", "${b}")]
            .into_iter()
            .collect();
        let actual = |variable: &str| {
            cv(json!({"condition": "==", "variable": variable}))
                .unwrap()
                .actual_value(&v, DEFAULT_MAX_VARIABLES_BYTES)
                .unwrap()
        };
        assert_eq!(actual("${a}"), "1");
        assert_eq!(actual(" ${ voipbin.a } "), "1");
        assert_eq!(actual("${a}${b}"), "12");
        assert_eq!(actual("prefix ${a}"), "prefix 1");
        assert_eq!(actual("${a} suffix"), "1 suffix");
        // A value holding `${...}` is data, never expanded again.
        assert_eq!(actual("${voipbin.call.digits}"), "${b}");
        assert_eq!(actual("call.digits"), "${b}");
        assert_eq!(actual("${unset}"), "");
        assert_eq!(actual("voipbin.unset"), "");
        assert_eq!(actual("x ${unset}"), "x ");
    }

    #[test]
    fn datetime_parse_errors() {
        let field = |o| match cd(o).unwrap_err() {
            FlowError::Field { field, .. } => field,
            e => panic!("{e}"),
        };
        assert_eq!(field(json!({"hour": 1})), "option.condition");
        assert_eq!(field(json!({"condition": "==", "hour": 24})), "option.hour");
        assert_eq!(
            field(json!({"condition": "==", "minute": -2})),
            "option.minute"
        );
        assert_eq!(field(json!({"condition": "==", "day": 32})), "option.day");
        assert_eq!(
            field(json!({"condition": "==", "month": 13})),
            "option.month"
        );
        assert_eq!(
            field(json!({"condition": "==", "month": -2})),
            "option.month"
        );
        assert_eq!(
            field(json!({"condition": "==", "month": "1"})),
            "option.month"
        );
        assert_eq!(
            field(json!({"condition": "==", "weekdays": 1})),
            "option.weekdays"
        );
        assert_eq!(
            field(json!({"condition": "==", "weekdays": [1, 7]})),
            "option.weekdays[1]"
        );
    }
}
