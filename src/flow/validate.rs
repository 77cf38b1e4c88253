//! Static checks of a flow or an inline action list before it may run.
//! Owns the rules (types supported, options well-typed, ids unique, jump
//! targets present, size limits); must not execute or mutate anything.

use std::collections::HashMap;

use super::error::FlowError;
use super::id::ActionId;
use super::model::{Action, Flow};

/// Upper bound on actions per list; keeps a single document from costing
/// unbounded memory/CPU in the engine.
pub const MAX_ACTIONS: usize = 1000;

impl Flow {
    /// Checks the whole flow: at least one action, then `validate_actions`.
    pub fn validate(&self) -> Result<(), FlowError> {
        if self.actions.is_empty() {
            return Err(FlowError::Flow {
                field: "actions".into(),
                message: "a flow needs at least one action".into(),
            });
        }
        if let Some(uri) = &self.webhook_uri {
            let http = url::Url::parse(uri)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !http {
                return Err(FlowError::Flow {
                    field: "webhook_uri".into(),
                    message: format!("{uri:?} is not an http(s) URL"),
                });
            }
        }
        validate_actions(&self.actions)
    }
}

/// Checks an action list on its own: size limit, every type known and
/// supported, every option well-typed, ids unique, and every jump target
/// (`next_id` and option targets) present in this same list. An empty list
/// passes here (inline lists may be empty); `Flow::validate` refuses it.
pub fn validate_actions(actions: &[Action]) -> Result<(), FlowError> {
    if actions.len() > MAX_ACTIONS {
        return Err(FlowError::Flow {
            field: "actions".into(),
            message: format!(
                "{} actions exceed the limit of {MAX_ACTIONS}",
                actions.len()
            ),
        });
    }

    // Ids first, so target checks below can rely on a unique index.
    let mut index: HashMap<ActionId, usize> = HashMap::with_capacity(actions.len());
    for (i, a) in actions.iter().enumerate() {
        if let Some(first) = index.insert(a.id, i) {
            return Err(FlowError::Action {
                index: i,
                field: "id".into(),
                message: format!("duplicate action id {} (also actions[{first}])", a.id),
            });
        }
    }

    let check_target = |i: usize, field: String, target: ActionId| {
        if index.contains_key(&target) {
            Ok(())
        } else {
            Err(FlowError::Action {
                index: i,
                field,
                message: format!("jump target {target} is not an action of this list"),
            })
        }
    };

    for (i, a) in actions.iter().enumerate() {
        let kind = a.typed().map_err(|e| e.at_index(i))?;
        if let Some(next) = a.next_id {
            check_target(i, "next_id".into(), next)?;
        }
        for (field, target) in kind.jump_targets() {
            check_target(i, field, target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const A1: &str = "11111111-1111-4111-8111-111111111111";
    const A2: &str = "22222222-2222-4222-8222-222222222222";
    const MISSING: &str = "99999999-9999-4999-8999-999999999999";

    /// Parses a flow document without validating, so each test can assert
    /// exactly the error `validate` returns.
    fn flow(actions: Value) -> Flow {
        serde_json::from_value(json!({"name": "t", "actions": actions})).unwrap()
    }

    /// (index, field, message) of an Action error.
    fn action_err(actions: Value) -> (usize, String, String) {
        match flow(actions).validate().unwrap_err() {
            FlowError::Action {
                index,
                field,
                message,
            } => (index, field, message),
            e => panic!("unexpected {e}"),
        }
    }

    fn field(actions: Value) -> String {
        action_err(actions).1
    }

    #[test]
    fn valid_flow_passes() {
        let actions = json!([
            {"id": A1, "type": "answer", "next_id": A2},
            {"id": A2, "type": "goto", "option": {"target_id": A1, "loop_count": 2}},
        ]);
        flow(actions.clone()).validate().unwrap();
        let list: Vec<Action> = serde_json::from_value(actions).unwrap();
        validate_actions(&list).unwrap();
        validate_actions(&[]).unwrap();
    }

    #[test]
    fn webhook_uri_must_be_http() {
        let mut f = flow(json!([{"type": "answer"}]));
        f.webhook_uri = Some("https://hooks.example/flow".into());
        f.validate().unwrap();
        for bad in [
            "ftp://hooks.example/",
            "hooks.example/x",
            "http://",
            "mailto:a@b",
        ] {
            f.webhook_uri = Some(bad.into());
            let e = f.validate().unwrap_err();
            assert!(
                matches!(e, FlowError::Flow { ref field, .. } if field == "webhook_uri"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn empty_and_too_many() {
        let e = flow(json!([])).validate().unwrap_err();
        assert_eq!(e.to_string(), "actions: a flow needs at least one action");
        let e = Flow::from_json(br#"{"name":"x"}"#).unwrap_err();
        assert!(matches!(e, FlowError::Flow { ref field, .. } if field == "actions"));

        let many: Vec<Value> = (0..=MAX_ACTIONS)
            .map(|_| json!({"type": "answer"}))
            .collect();
        let e = flow(Value::Array(many.clone())).validate().unwrap_err();
        assert_eq!(
            e,
            FlowError::Flow {
                field: "actions".into(),
                message: "1001 actions exceed the limit of 1000".into()
            }
        );
        flow(Value::Array(many[..MAX_ACTIONS].to_vec()))
            .validate()
            .unwrap();
    }

    #[test]
    fn type_errors() {
        let (i, f, m) = action_err(json!([{"type": "answer"}, {"type": "transcribe_start"}]));
        assert_eq!((i, f.as_str()), (1, "type"));
        assert_eq!(
            m,
            r#"action type "transcribe_start" is not supported by this engine yet"#
        );
        let e = flow(json!([{"type": "foo"}])).validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"actions[0].type: unknown action type "foo""#
        );
    }

    /// VoIPBIN-only types and addresses are refused naming the action's index and field.
    #[test]
    fn voipbin_refusals_name_action_and_field() {
        let (i, f, m) = action_err(json!([{"type": "answer"}, {"type": "ai_talk"}]));
        assert_eq!((i, f.as_str()), (1, "type"));
        assert_eq!(
            m,
            r#"action type "ai_talk" is not supported by this engine yet"#
        );
        let agent = json!({"destinations": [{"type": "tel", "target": "1"},
                                            {"type": "agent", "target": "a"}]});
        let e = flow(json!([{"type": "answer"}, {"type": "connect", "option": agent}]))
            .validate()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "actions[1].option.destinations[1].type: agent destinations are not supported by this engine yet"
        );
        let status = json!({"status": "answered"});
        let (i, f, _) = action_err(json!([{"type": "condition_call_status", "option": status}]));
        assert_eq!((i, f.as_str()), (0, "option.status"));
    }

    #[test]
    fn option_errors() {
        assert_eq!(field(json!([{"type": "sleep"}])), "option.duration");
        assert_eq!(
            field(json!([{"type": "sleep", "option": {"duration": "x"}}])),
            "option.duration"
        );
        assert_eq!(field(json!([{"type": "answer", "option": 5}])), "option");
        assert_eq!(field(json!([{"type": "goto"}])), "option.target_id");
        assert_eq!(
            field(json!([{"type": "condition_variable", "option": {"variable": "x"}}])),
            "option.condition"
        );
    }

    #[test]
    fn duplicate_ids() {
        let (i, f, m) = action_err(json!([
            {"id": A1, "type": "answer"}, {"id": A2, "type": "answer"}, {"id": A1, "type": "stop"}
        ]));
        assert_eq!((i, f.as_str()), (2, "id"));
        assert_eq!(m, format!("duplicate action id {A1} (also actions[0])"));
    }

    #[test]
    fn jump_targets_must_exist() {
        let (i, f, m) =
            action_err(json!([{"type": "answer"}, {"type": "answer", "next_id": MISSING}]));
        assert_eq!((i, f.as_str()), (1, "next_id"));
        assert_eq!(
            m,
            format!("jump target {MISSING} is not an action of this list")
        );
        assert_eq!(
            field(json!([{"type": "goto", "option": {"target_id": MISSING}}])),
            "option.target_id"
        );
        assert_eq!(
            field(
                json!([{"id": A1, "type": "branch", "option": {"target_ids": {"1": A1, "2": MISSING}}}])
            ),
            "option.target_ids.2"
        );
        assert_eq!(
            field(json!([{"type": "branch", "option": {"default_target_id": MISSING}}])),
            "option.default_target_id"
        );
        assert_eq!(
            field(json!([{"type": "condition_variable",
                "option": {"condition": "==", "variable": "x", "false_target_id": MISSING}}])),
            "option.false_target_id"
        );
        assert_eq!(
            field(json!([{"type": "condition_datetime",
                "option": {"condition": "==", "false_target_id": MISSING}}])),
            "option.false_target_id"
        );
    }

    #[test]
    fn inline_list_targets_checked_against_itself() {
        let list: Vec<Action> =
            serde_json::from_value(json!([{"type": "goto", "option": {"target_id": A1}}])).unwrap();
        let e = validate_actions(&list).unwrap_err();
        assert!(
            e.to_string().starts_with("actions[0].option.target_id: "),
            "{e}"
        );
    }
}
