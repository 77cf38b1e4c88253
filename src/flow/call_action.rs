//! Typed options of the `call` action (VoIPBIN bin-flow-manager option.go `OptionCall`): new
//! outbound calls, one per destination, each running its own flow (`flow_id`, or the inline
//! `actions`) once answered. The same shape is `POST /v1/calls`'s body, so both are parsed
//! here. Checks shapes only: whether `flow_id` names a registered flow is the engine's.

use serde_json::Value;

use super::error::FlowError;
use super::model::Action;
use super::options::{path, Opt};
use super::outbound::{self, Address, Anonymity, DEFAULT_RING_TIMEOUT_MS, MAX_RING_TIMEOUT_MS};
use super::validate::validate_actions;

/// An address with VoIPBIN's optional display name (`target_name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub address: Address,
    pub name: String,
}

/// The flow the new calls run: a registered one, or an inline list.
#[derive(Debug, Clone, PartialEq)]
pub enum CallFlow {
    /// A flow id (or a `${...}` reference resolved when the action runs).
    Id(String),
    Actions(Vec<Action>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CallAction {
    /// Our From user (and `call.source.*` of the new calls); `None`: the placing call's caller.
    pub source: Option<Party>,
    pub destinations: Vec<Party>,
    pub flow: CallFlow,
    /// End the new calls (CANCEL before answer, BYE after) when the placing call ends.
    pub chained: bool,
    /// Run the new call's flow from placement instead of from the answer.
    pub early_execution: bool,
    pub anonymous: Anonymity,
    pub trunk: Option<String>,
    pub ring_timeout_ms: u64,
}

// JSON values hold no NaN (serde_json refuses it), so equality is total: `Step` needs `Eq`.
impl Eq for CallFlow {}
impl Eq for CallAction {}

impl CallAction {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        let ring_timeout_ms = o.u64("ring_timeout")?.unwrap_or(DEFAULT_RING_TIMEOUT_MS);
        if ring_timeout_ms == 0 || ring_timeout_ms > MAX_RING_TIMEOUT_MS {
            return Err(FlowError::field(
                path("ring_timeout"),
                format!("must be 1..={MAX_RING_TIMEOUT_MS} ms"),
            ));
        }
        let source = match (outbound::source(o)?, o.raw("source")) {
            (Some(address), Some(raw)) => Some(Party {
                address,
                name: target_name(raw, &path("source"))?,
            }),
            _ => None,
        };
        let addresses = outbound::destinations(o, false)?;
        let raw = o.raw("destinations").and_then(Value::as_array);
        let mut destinations = Vec::with_capacity(addresses.len());
        for (i, address) in addresses.into_iter().enumerate() {
            let field = format!("{}[{i}]", path("destinations"));
            let name = match raw.and_then(|r| r.get(i)) {
                Some(v) => target_name(v, &field)?,
                None => String::new(),
            };
            destinations.push(Party { address, name });
        }
        Ok(CallAction {
            source,
            destinations,
            flow: call_flow(o)?,
            chained: outbound::flag(o, "chained")?,
            early_execution: outbound::flag(o, "early_execution")?,
            anonymous: outbound::anonymous(o)?,
            trunk: o.str("trunk")?.map(str::to_owned),
            ring_timeout_ms,
        })
    }
}

/// `POST /v1/calls`'s body: the same fields at its top level; errors name the body's field
/// (`destinations[1].target`, not `option.destinations[1].target`).
pub fn from_body(body: &Value) -> Result<CallAction, FlowError> {
    if !body.is_object() {
        return Err(FlowError::field("body", "must be a JSON object"));
    }
    let o = Opt::new(body)?;
    CallAction::from_opt(&o).map_err(|e| match e {
        FlowError::Field { field, message } => FlowError::Field {
            field: field
                .strip_prefix("option.")
                .map_or(field.clone(), str::to_owned),
            message,
        },
        other => other,
    })
}

/// `target_name` of an address object: an optional string.
fn target_name(v: &Value, field: &str) -> Result<String, FlowError> {
    match v.get("target_name") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(FlowError::field(
            format!("{field}.target_name"),
            "must be a string",
        )),
    }
}

/// Exactly one of `flow_id` and `actions`; the inline list validated as a flow's, its errors
/// placed under `option.actions[i]`.
fn call_flow(o: &Opt<'_>) -> Result<CallFlow, FlowError> {
    let flow_id = o.str("flow_id")?.filter(|f| !f.is_empty());
    let actions = o.raw("actions");
    match (flow_id, actions) {
        (Some(_), Some(_)) => Err(FlowError::field(
            path("actions"),
            "give flow_id or actions, not both",
        )),
        (None, None) => Err(FlowError::field(
            path("flow_id"),
            "give flow_id (a flow id) or actions (a non-empty action list)",
        )),
        (Some(id), None) => {
            if !id.contains("${") && id.parse::<super::FlowId>().is_err() {
                return Err(FlowError::field(
                    path("flow_id"),
                    "must be a flow id (uuid)",
                ));
            }
            Ok(CallFlow::Id(id.to_owned()))
        }
        (None, Some(raw)) => Ok(CallFlow::Actions(inline_actions(raw, &path("actions"))?)),
    }
}

/// A non-empty, valid action list; errors name `field[i].<field>`.
pub fn inline_actions(raw: &Value, field: &str) -> Result<Vec<Action>, FlowError> {
    let actions: Vec<Action> = serde_json::from_value(raw.clone())
        .map_err(|e| FlowError::field(field, format!("must be an action list: {e}")))?;
    if actions.is_empty() {
        return Err(FlowError::field(field, "must hold at least one action"));
    }
    validate_actions(&actions).map_err(|e| match e {
        FlowError::Action {
            index,
            field: inner,
            message,
        } => FlowError::field(format!("{field}[{index}].{inner}"), message),
        FlowError::Flow { message, .. } => FlowError::field(field, message),
        other => other,
    })?;
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<CallAction, FlowError> {
        CallAction::from_opt(&Opt::new(&v).unwrap())
    }

    fn field(e: FlowError) -> String {
        match e {
            FlowError::Field { field, .. } => field,
            e => panic!("{e}"),
        }
    }

    const DEST: &str = r#"[{"type": "sip", "target": "bob@127.0.0.1:5070", "target_name": "Bob"}]"#;

    fn dest() -> Value {
        serde_json::from_str(DEST).unwrap()
    }

    #[test]
    fn reads_voipbins_options() {
        let c = parse(json!({
            "source": {"type": "tel", "target": "+15550100", "target_name": "Desk"},
            "destinations": dest(),
            "actions": [{"type": "talk", "option": {"text": "hi"}}],
            "chained": true, "early_execution": true, "anonymous": "auto",
        }))
        .unwrap();
        let source = c.source.unwrap();
        assert_eq!(
            (source.address.target.as_str(), source.name.as_str()),
            ("+15550100", "Desk")
        );
        assert_eq!(c.destinations[0].address.target, "sip:bob@127.0.0.1:5070");
        assert_eq!(c.destinations[0].name, "Bob");
        assert!(c.chained && c.early_execution);
        assert_eq!(c.anonymous, Anonymity::Auto);
        assert!(matches!(c.flow, CallFlow::Actions(ref a) if a.len() == 1));
        assert_eq!(c.ring_timeout_ms, DEFAULT_RING_TIMEOUT_MS);
        let id = "33333333-3333-4333-8333-333333333333";
        let c = parse(json!({"destinations": dest(), "flow_id": id})).unwrap();
        assert_eq!(c.flow, CallFlow::Id(id.into()));
        assert!(!c.chained && !c.early_execution && c.source.is_none());
    }

    #[test]
    fn errors_name_the_field() {
        let a = json!([{"type": "answer"}]);
        let e = parse(json!({"destinations": dest()})).unwrap_err();
        assert_eq!(field(e), "option.flow_id");
        let both = json!({"destinations": dest(), "actions": a, "flow_id": "x"});
        assert_eq!(field(parse(both).unwrap_err()), "option.actions");
        let bad_id = json!({"destinations": dest(), "flow_id": "menu"});
        assert_eq!(field(parse(bad_id).unwrap_err()), "option.flow_id");
        let e = parse(json!({"destinations": [], "actions": a})).unwrap_err();
        assert_eq!(field(e), "option.destinations");
        let two = json!([{"type": "tel", "target": "1"}, {"type": "tel", "target": "x"}]);
        let e = parse(json!({"destinations": two, "actions": a})).unwrap_err();
        assert_eq!(field(e), "option.destinations[1].target");
        let named = json!([{"type": "tel", "target": "1", "target_name": 5}]);
        let e = parse(json!({"destinations": named, "actions": a})).unwrap_err();
        assert_eq!(field(e), "option.destinations[0].target_name");
        let e = parse(json!({"destinations": dest(), "actions": []})).unwrap_err();
        assert_eq!(field(e), "option.actions");
        let inner = json!([{"type": "answer"}, {"type": "talk", "option": {}}]);
        let e = parse(json!({"destinations": dest(), "actions": inner})).unwrap_err();
        assert_eq!(field(e), "option.actions[1].option.text");
        let e = parse(json!({"destinations": dest(), "actions": a, "chained": "yes"})).unwrap_err();
        assert_eq!(field(e), "option.chained");
        let e = parse(json!({"destinations": dest(), "actions": a, "early_execution": 1}));
        assert_eq!(field(e.unwrap_err()), "option.early_execution");
        let e = parse(json!({"destinations": dest(), "actions": a, "anonymous": "maybe"}));
        assert_eq!(field(e.unwrap_err()), "option.anonymous");
        let ext = json!([{"type": "extension", "target": "alice"}]);
        let e = parse(json!({"destinations": ext, "actions": a})).unwrap_err();
        assert_eq!(field(e), "option.destinations[0].type");
    }
}
