//! The JSON a stored record reads back as, from its columns: the in-memory record's shape
//! (`engine::record`, `call::CallInfo`), VoIPBIN's fields included. Shared by the backends so
//! they answer alike; what a row does not hold (rows written before SQLite's migration 3) reads
//! as VoIPBIN's "none". A shared store (PostgreSQL) adds the writing node's `node_id`.

use serde_json::{json, Value};

/// VoIPBIN's "none" id and start-marker id (as `engine::record` writes them; storage may not
/// import the engine).
const NIL_ID: &str = "00000000-0000-0000-0000-000000000000";
const START_ACTION_ID: &str = "00000000-0000-0000-0000-000000000001";

/// An activeflow row's columns, without its executed actions.
pub(super) struct ActiveflowColumns {
    pub(super) id: String,
    pub(super) flow_id: String,
    pub(super) status: String,
    pub(super) end_reason: Option<String>,
    pub(super) reference_type: String,
    pub(super) reference_id: String,
    pub(super) current_action: Option<String>,
    pub(super) tm_create: String,
    pub(super) tm_update: String,
    pub(super) tm_end: Option<String>,
    pub(super) reference_activeflow_id: Option<String>,
    pub(super) tm_delete: Option<String>,
    pub(super) on_complete_flow_id: Option<String>,
    pub(super) forward_action_id: Option<String>,
    pub(super) webhook_uri: Option<String>,
    pub(super) webhook_method: Option<String>,
    pub(super) node_id: Option<String>,
}

/// The activeflow's JSON with an empty `executed_actions`.
pub(super) fn activeflow(c: ActiveflowColumns) -> Value {
    let current = c
        .current_action
        .and_then(|c| serde_json::from_str::<Value>(&c).ok());
    let current = match current {
        Some(Value::Object(mut action)) => {
            action.entry("next_id").or_insert_with(|| NIL_ID.into());
            Value::Object(action)
        }
        _ => json!({"id": START_ACTION_ID, "next_id": NIL_ID, "type": "", "option": {}}),
    };
    let mut v = json!({
        "id": c.id,
        "flow_id": c.flow_id,
        "status": c.status,
        "end_reason": c.end_reason,
        "reference_type": c.reference_type,
        "reference_id": c.reference_id,
        "reference_activeflow_id": c.reference_activeflow_id.unwrap_or_else(|| NIL_ID.into()),
        "on_complete_flow_id": c.on_complete_flow_id.unwrap_or_else(|| NIL_ID.into()),
        "webhook_uri": c.webhook_uri.unwrap_or_default(),
        "webhook_method": c.webhook_method.unwrap_or_default(),
        "current_action": current,
        "forward_action_id": c.forward_action_id.unwrap_or_else(|| NIL_ID.into()),
        "executed_actions": [],
        "tm_create": c.tm_create,
        "tm_update": c.tm_update,
        "tm_end": c.tm_end,
        "tm_delete": c.tm_delete,
    });
    if let Some(node) = c.node_id {
        v["node_id"] = node.into();
    }
    v
}

/// A call row's columns.
pub(super) struct CallColumns {
    pub(super) id: String,
    pub(super) sip_call_id: String,
    pub(super) direction: String,
    pub(super) source: String,
    pub(super) destination: String,
    pub(super) peer: String,
    pub(super) status: String,
    pub(super) end_cause: Option<String>,
    pub(super) tm_create: String,
    pub(super) tm_answer: Option<String>,
    pub(super) tm_end: Option<String>,
    pub(super) end_code: Option<u16>,
    pub(super) codec: Option<String>,
    pub(super) node_id: Option<String>,
}

pub(super) fn call(c: CallColumns) -> Value {
    let mut v = json!({
        "id": c.id,
        "sip_call_id": c.sip_call_id,
        "direction": c.direction,
        "source": c.source,
        "destination": c.destination,
        "peer": c.peer,
        "status": c.status,
        "end_cause": c.end_cause,
        "tm_create": c.tm_create,
        "tm_answer": c.tm_answer,
        "tm_end": c.tm_end,
        "end_code": c.end_code,
        "codec": c.codec,
    });
    if let Some(node) = c.node_id {
        v["node_id"] = node.into();
    }
    v
}
