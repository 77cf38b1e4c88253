//! The activeflow record operators see (ARCHITECTURE §8/§9): status, end reason, the cursor's current
//! action and the newest executed actions with `tm_execute` and `result` (at most
//! `engine.max_executed_actions`; older ones are in storage only, and counted). Plain data,
//! shared between the activeflow actor (writer) and the API (reader) behind a mutex. Its JSON is
//! VoIPBIN's activeflow shape (bin-flow-manager `models/activeflow/webhook.go`) plus this
//! engine's fields: absent ids are the nil UUID string, and before the first action runs
//! `current_action` is VoIPBIN's start marker (`models/action/action.go` `IDStart`).

use std::collections::VecDeque;
use std::sync::Arc;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;

use super::ActiveflowId;
use crate::flow::webhook::WebhookMethod;
use crate::flow::{Action, ActionId, FlowId, Variables};

/// VoIPBIN's "not set" id (`uuid.Nil`), which its JSON shows instead of null.
pub const NIL_ID: &str = "00000000-0000-0000-0000-000000000000";
/// VoIPBIN's reserved id of the start marker: the current action before the first one runs.
pub const START_ACTION_ID: &str = "00000000-0000-0000-0000-000000000001";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Ended,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Ended => "ended",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "running" => Some(Status::Running),
            "ended" => Some(Status::Ended),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    Completed,
    StopAction,
    OperatorStop,
    Hangup,
    AckTimeout,
    /// No RTP from an answered call for `media.rtp_timeout_seconds` (its BYE was lost).
    RtpTimeout,
    /// Its call reached `engine.max_call_seconds`.
    MaxDuration,
    /// Its call's RFC 4028 session expired unrefreshed.
    SessionExpired,
    LoopLimit,
    Error,
    Shutdown,
    EngineRestart,
    /// The call the engine placed for it ended unanswered (busy, no answer, failed).
    NotAnswered,
    /// Its node stopped answering the cluster (heartbeat expired): a surviving node ended it,
    /// or the node itself on finding it was declared lost (issue 20).
    NodeLost,
}

impl EndReason {
    /// The spelling used in JSON and as the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Completed => "completed",
            EndReason::StopAction => "stop_action",
            EndReason::OperatorStop => "operator_stop",
            EndReason::Hangup => "hangup",
            EndReason::AckTimeout => "ack_timeout",
            EndReason::RtpTimeout => "rtp_timeout",
            EndReason::MaxDuration => "max_duration",
            EndReason::SessionExpired => "session_expired",
            EndReason::LoopLimit => "loop_limit",
            EndReason::Error => "error",
            EndReason::Shutdown => "shutdown",
            EndReason::EngineRestart => "engine_restart",
            EndReason::NotAnswered => "not_answered",
            EndReason::NodeLost => "node_lost",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceType {
    Call,
    Api,
}

impl ReferenceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ReferenceType::Call => "call",
            ReferenceType::Api => "api",
        }
    }
}

/// One executed action: the action after substitution, when, and what came of it. Its JSON is
/// the action's (`next_id` the nil UUID when it has none, as VoIPBIN shows it) plus
/// `tm_execute` and, when there is one, `result`.
#[derive(Debug, Clone)]
pub struct ExecutedAction {
    pub action: Action,
    pub tm_execute: String,
    pub result: Option<Value>,
}

impl Serialize for ExecutedAction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        action_entries(&mut m, &self.action)?;
        m.serialize_entry("tm_execute", &self.tm_execute)?;
        if let Some(result) = &self.result {
            m.serialize_entry("result", result)?;
        }
        m.end()
    }
}

/// An action's fields, `next_id` spelled as VoIPBIN does when absent.
fn action_entries<M: SerializeMap>(m: &mut M, action: &Action) -> Result<(), M::Error> {
    m.serialize_entry("id", &action.id)?;
    match &action.next_id {
        Some(next) => m.serialize_entry("next_id", next)?,
        None => m.serialize_entry("next_id", NIL_ID)?,
    }
    m.serialize_entry("type", &action.kind)?;
    m.serialize_entry("option", &*action.option)
}

/// `current_action`: the action, or VoIPBIN's start marker before the first one.
fn current_or_start<S: Serializer>(action: &Option<Action>, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(None)?;
    match action {
        Some(action) => action_entries(&mut m, action)?,
        None => {
            m.serialize_entry("id", START_ACTION_ID)?;
            m.serialize_entry("next_id", NIL_ID)?;
            m.serialize_entry("type", "")?;
            m.serialize_entry("option", &serde_json::Map::new())?;
        }
    }
    m.end()
}

/// An optional id as VoIPBIN writes it: the nil UUID when absent, never null.
fn nil_if_none<S: Serializer, T: std::fmt::Display>(
    id: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.collect_str(id),
        None => s.serialize_str(NIL_ID),
    }
}

/// An optional string as VoIPBIN writes it: `""` when absent.
fn empty_if_none<S: Serializer, T: Serialize>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => v.serialize(s),
        None => s.serialize_str(""),
    }
}

/// Largest `option` or `result` (JSON bytes, about) one executed action keeps; a larger one is
/// kept as a [`truncated`] marker. Options are small (a prompt, a URL, a few keys; a long
/// `talk` text is a few KiB): 8 KiB keeps every ordinary one whole while `max_executed_actions`
/// entries of a flow that substitutes 1 MiB of variables into each option stay near 16 MiB
/// (option and result) instead of 1 GiB, in memory and in each stored row.
pub const MAX_RECORDED_JSON_BYTES: usize = 8 * 1024;
/// How much of a truncated option or result its marker shows.
const TRUNCATED_HEAD_BYTES: usize = 1024;

impl ExecutedAction {
    /// The entry for `action`, its option and result capped at [`MAX_RECORDED_JSON_BYTES`].
    pub fn new(action: Action, tm_execute: String, result: Option<Value>) -> Self {
        let option = cap(action.option);
        ExecutedAction {
            action: Action { option, ..action },
            tm_execute,
            result: result.map(|r| Arc::unwrap_or_clone(cap(Arc::new(r)))),
        }
    }

    /// Caps `result` again (after fields were merged into it).
    pub(crate) fn cap_result(&mut self) {
        if let Some(r) = self.result.take() {
            self.result = Some(Arc::unwrap_or_clone(cap(Arc::new(r))));
        }
    }
}

/// `value` itself when small enough (a shared option stays shared), else its marker.
fn cap(value: Arc<Value>) -> Arc<Value> {
    match json_bytes_over(&value, MAX_RECORDED_JSON_BYTES) {
        None => value,
        Some(bytes) => Arc::new(truncated(&value, bytes)),
    }
}

/// `{"truncated": true, "bytes": N, "head": "<the first KiB of its JSON text>"}`: what a record
/// keeps of an option or result over [`MAX_RECORDED_JSON_BYTES`].
pub fn truncated(value: &Value, bytes: usize) -> Value {
    let mut text = serde_json::to_string(value).unwrap_or_default();
    if text.len() > TRUNCATED_HEAD_BYTES {
        let mut end = TRUNCATED_HEAD_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    serde_json::json!({ "truncated": true, "bytes": bytes, "head": text })
}

/// The JSON size of `value` when it is over `limit`, else `None`: a cheap check for every
/// executed action.
fn json_bytes_over(value: &Value, limit: usize) -> Option<usize> {
    let total = json_bytes_up_to(value, limit);
    (total > limit).then_some(total)
}

/// The JSON size of `value` (strings and keys counted by their bytes plus quotes, other tokens
/// by a few bytes), or a count past `limit` once it is over (the walk stops there).
pub(crate) fn json_bytes_up_to(value: &Value, limit: usize) -> usize {
    fn walk(v: &Value, total: &mut usize, limit: usize) {
        if *total > limit {
            return;
        }
        match v {
            Value::String(s) => *total += s.len() + 2,
            Value::Array(items) => {
                *total += 2;
                for item in items {
                    *total += 1;
                    walk(item, total, limit);
                }
            }
            Value::Object(m) => {
                *total += 2;
                for (k, item) in m {
                    *total += k.len() + 4;
                    walk(item, total, limit);
                }
            }
            Value::Number(_) => *total += 8,
            Value::Bool(_) | Value::Null => *total += 5,
        }
    }
    let mut total = 0;
    walk(value, &mut total, limit);
    total
}

#[derive(Debug, Clone, Serialize)]
pub struct ActiveflowRecord {
    pub id: ActiveflowId,
    pub flow_id: FlowId,
    pub status: Status,
    pub end_reason: Option<EndReason>,
    pub reference_type: ReferenceType,
    pub reference_id: String,
    /// The activeflow whose `on_complete_flow_id` started this one (the engine's chain sets
    /// it; nil UUID in JSON when none).
    #[serde(serialize_with = "nil_if_none")]
    pub reference_activeflow_id: Option<ActiveflowId>,
    /// The flow started when this one completes (its flow's `on_complete_flow_id`).
    #[serde(serialize_with = "nil_if_none")]
    pub on_complete_flow_id: Option<FlowId>,
    /// Where the activeflow's webhook events go (`POST /v1/activeflows` `webhook_uri`, else its
    /// flow's); `""` in JSON when none.
    #[serde(serialize_with = "empty_if_none")]
    pub webhook_uri: Option<String>,
    #[serde(serialize_with = "empty_if_none")]
    pub webhook_method: Option<WebhookMethod>,
    /// `None` (JSON: VoIPBIN's start marker) until the first action runs.
    #[serde(serialize_with = "current_or_start")]
    pub current_action: Option<Action>,
    /// VoIPBIN's `forward_action_id`: the action a jump moves the cursor to next, when the
    /// engine has one pending (set with [`ActiveflowRecord::set_forward_action`]).
    #[serde(serialize_with = "nil_if_none")]
    pub forward_action_id: Option<ActionId>,
    /// The newest executed actions, at most `engine.max_executed_actions`.
    pub executed_actions: VecDeque<ExecutedAction>,
    /// How many older executed actions left memory (storage has them): the first entry of
    /// `executed_actions` is the activeflow's action number `executed_actions_dropped`.
    #[serde(skip_serializing_if = "is_zero")]
    pub executed_actions_dropped: usize,
    pub tm_create: String,
    pub tm_update: String,
    pub tm_end: Option<String>,
    /// When `DELETE /v1/activeflows/{id}` soft-deleted it; null until then.
    pub tm_delete: Option<String>,
    /// The final variables once ended (while running they live in the actor only); served by
    /// their own endpoint.
    #[serde(skip)]
    pub variables: Variables,
    /// Creation order, for newest-first listing and page tokens.
    #[serde(skip)]
    pub sequence: u64,
}

impl ActiveflowRecord {
    /// Actions executed so far, those dropped from memory included.
    pub fn executed_count(&self) -> usize {
        self.executed_actions_dropped + self.executed_actions.len()
    }

    /// Records the jump target the cursor moves to next (`None` once it moved): VoIPBIN's
    /// `forward_action_id`. For the engine's cursor code to call.
    pub fn set_forward_action(&mut self, target: Option<ActionId>) {
        self.forward_action_id = target;
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

pub use crate::clock::timestamp;

#[cfg(test)]
impl ActiveflowRecord {
    /// A running API activeflow with nothing executed (unit-test fixture).
    pub(crate) fn bare_for_tests() -> ActiveflowRecord {
        ActiveflowRecord {
            id: ActiveflowId::new(),
            flow_id: FlowId::new(),
            status: Status::Running,
            end_reason: None,
            reference_type: ReferenceType::Api,
            reference_id: String::new(),
            reference_activeflow_id: None,
            on_complete_flow_id: None,
            webhook_uri: None,
            webhook_method: None,
            current_action: None,
            forward_action_id: None,
            executed_actions: VecDeque::new(),
            executed_actions_dropped: 0,
            tm_create: timestamp(),
            tm_update: timestamp(),
            tm_end: None,
            tm_delete: None,
            variables: Variables::new(),
            sequence: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_microseconds_and_z() {
        let t = timestamp();
        assert!(t.ends_with('Z'), "{t}");
        let frac = t.split('.').nth(1).unwrap();
        assert_eq!(frac.len(), 7, "{t}");
    }

    /// bin-api-manager/docsdev/source/activeflow_struct_activeflow.rst: absent ids are the nil
    /// UUID, and the cursor starts on the start marker.
    #[test]
    fn json_has_voipbins_fields_with_nil_ids_and_the_start_marker() {
        let mut r = ActiveflowRecord::bare_for_tests();
        let v = serde_json::to_value(&r).unwrap();
        for key in [
            "reference_activeflow_id",
            "on_complete_flow_id",
            "forward_action_id",
        ] {
            assert_eq!(v[key], NIL_ID, "{key}");
        }
        assert_eq!(
            (&v["webhook_uri"], &v["webhook_method"]),
            (&"".into(), &"".into())
        );
        assert!(v["tm_delete"].is_null() && v.get("tm_delete").is_some());
        assert_eq!(v["current_action"]["id"], START_ACTION_ID);
        assert_eq!(v["current_action"]["next_id"], NIL_ID);

        let action = Action::new("answer", serde_json::json!({}));
        r.current_action = Some(action.clone());
        r.executed_actions
            .push_back(ExecutedAction::new(action.clone(), timestamp(), None));
        r.webhook_method = Some(WebhookMethod::Put);
        r.webhook_uri = Some("https://h/x".into());
        r.set_forward_action(Some(action.id));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["current_action"]["id"], action.id.to_string());
        assert_eq!(v["current_action"]["type"], "answer");
        assert_eq!(v["executed_actions"][0]["next_id"], NIL_ID);
        assert_eq!(v["executed_actions"][0]["type"], "answer");
        assert!(v["executed_actions"][0].get("result").is_none());
        assert_eq!(
            (&v["webhook_uri"], &v["webhook_method"]),
            (&"https://h/x".into(), &"PUT".into())
        );
        assert_eq!(v["forward_action_id"], action.id.to_string());
    }

    #[test]
    fn end_reasons_serialize_as_their_label() {
        for r in [
            EndReason::OperatorStop,
            EndReason::AckTimeout,
            EndReason::RtpTimeout,
            EndReason::MaxDuration,
            EndReason::SessionExpired,
            EndReason::LoopLimit,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }

    #[test]
    fn large_options_and_results_are_kept_as_a_marker() {
        let small = Action::new("talk", serde_json::json!({"text": "hello"}));
        let kept = ExecutedAction::new(small.clone(), timestamp(), None);
        assert!(
            Arc::ptr_eq(&kept.action.option, &small.option),
            "shared, not copied"
        );

        let text = "é".repeat(MAX_RECORDED_JSON_BYTES);
        let big = Action::new("talk", serde_json::json!({ "text": text }));
        let result = serde_json::json!({ "error": "x".repeat(MAX_RECORDED_JSON_BYTES) });
        let e = ExecutedAction::new(big.clone(), timestamp(), Some(result));
        let option = &*e.action.option;
        assert_eq!(option["truncated"], true);
        assert!(option["bytes"].as_u64().unwrap() > 2 * MAX_RECORDED_JSON_BYTES as u64);
        let head = option["head"].as_str().unwrap();
        assert!(
            head.starts_with(r#"{"text":"éé"#) && head.len() <= 1024,
            "{head}"
        );
        assert_eq!((e.action.id, e.action.kind.as_str()), (big.id, "talk"));
        assert_eq!(e.result.as_ref().unwrap()["truncated"], true);
        assert!(serde_json::to_string(&e).unwrap().len() < 3 * 1024);

        let mut merged = ExecutedAction::new(small, timestamp(), Some(serde_json::json!({})));
        merged.result = Some(serde_json::json!({ "body": "y".repeat(20_000) }));
        merged.cap_result();
        assert_eq!(merged.result.unwrap()["truncated"], true);
    }
}
