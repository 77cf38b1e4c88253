//! Turns engine data into storage rows: an activeflow's header as it stands with its executed
//! actions from a given index on, and flows. Pure conversion; when to write is the caller's.

use super::{ActiveflowRecord, EndReason};
use crate::flow::{Flow, Variables};
use crate::storage::{ActionRow, ActiveflowRow, FlowRow, FlowSource, Write};

/// A flow as storage keeps it.
pub fn flow_row(flow: &Flow, source: FlowSource) -> FlowRow {
    FlowRow {
        id: flow.id.to_string(),
        name: flow.name.clone(),
        source,
        body: json(flow),
        tm_update: crate::clock::timestamp(),
    }
}

/// How an activeflow ends, for [`ended_write`].
pub(crate) struct End<'a> {
    pub reason: EndReason,
    pub now: &'a str,
    pub variables: &'a Variables,
}

/// The record's header and every executed action from index `from` on (counting those dropped
/// from memory: rows keep their index in the activeflow, whatever memory still holds).
pub(crate) fn write(record: &ActiveflowRecord, from: usize) -> Write {
    build(record, from, None)
}

/// [`write`] of the record as it will be once ended with `end`, without cloning it (the end
/// is shown in memory only once this write is committed).
pub(crate) fn ended_write(record: &ActiveflowRecord, from: usize, end: End<'_>) -> Write {
    build(record, from, Some(end))
}

fn build(record: &ActiveflowRecord, from: usize, end: Option<End<'_>>) -> Write {
    let dropped = record.executed_actions_dropped;
    let actions = record
        .executed_actions
        .iter()
        .enumerate()
        .skip(from.saturating_sub(dropped))
        .map(|(i, a)| ActionRow {
            index: dropped + i,
            body: json(a),
        })
        .collect();
    let end_reason = end.as_ref().map(|e| e.reason).or(record.end_reason);
    let variables = match &end {
        Some(e) => Some(json(e.variables)),
        None => record.end_reason.map(|_| json(&record.variables)),
    };
    let (tm_update, tm_end) = match &end {
        Some(e) => (e.now.to_string(), Some(e.now.to_string())),
        None => (record.tm_update.clone(), record.tm_end.clone()),
    };
    Write::Activeflow {
        row: ActiveflowRow {
            id: record.id.to_string(),
            sequence: record.sequence,
            flow_id: record.flow_id.to_string(),
            status: if end_reason.is_some() {
                "ended"
            } else {
                "running"
            },
            end_reason: end_reason.map(|r| r.as_str()),
            reference_type: record.reference_type.as_str(),
            reference_id: record.reference_id.clone(),
            reference_activeflow_id: record.reference_activeflow_id.map(|id| id.to_string()),
            on_complete_flow_id: record.on_complete_flow_id.map(|id| id.to_string()),
            forward_action_id: record.forward_action_id.map(|id| id.to_string()),
            webhook_uri: record.webhook_uri.clone(),
            webhook_method: record.webhook_method.map(|m| m.as_str()),
            current_action: record.current_action.as_ref().map(json),
            variables,
            tm_create: record.tm_create.clone(),
            tm_update,
            tm_end,
        },
        actions,
    }
}

/// JSON text of a record's part; these types always serialize.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ActiveflowId, EndReason, ExecutedAction, ReferenceType, Status};
    use crate::flow::{Action, FlowId, Variables};
    use crate::storage::{SqliteStore, Store};

    /// What the store serves for an ended record is exactly what memory serves.
    #[test]
    fn stored_json_equals_the_in_memory_json() {
        let mut variables = Variables::new();
        variables.set("call.digits", "12");
        let action = Action::new("sleep", serde_json::json!({"duration": 5}));
        let record = ActiveflowRecord {
            id: ActiveflowId::new(),
            flow_id: FlowId::new(),
            status: Status::Ended,
            end_reason: Some(EndReason::OperatorStop),
            reference_type: ReferenceType::Call,
            reference_id: "c".into(),
            reference_activeflow_id: None,
            on_complete_flow_id: Some(FlowId::new()),
            webhook_uri: Some("https://hooks.example/af".into()),
            webhook_method: Some(crate::flow::webhook::WebhookMethod::Put),
            current_action: Some(action.clone()),
            forward_action_id: Some(action.id),
            executed_actions: vec![ExecutedAction {
                action,
                tm_execute: crate::clock::timestamp(),
                result: Some(serde_json::json!({"digits": "1"})),
            }]
            .into(),
            executed_actions_dropped: 0,
            tm_create: crate::clock::timestamp(),
            tm_update: crate::clock::timestamp(),
            tm_end: Some(crate::clock::timestamp()),
            tm_delete: None,
            variables,
            sequence: 7,
        };
        let path = std::env::temp_dir().join(format!(
            "activeflow-persist-test-{}/t.db",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let store = SqliteStore::open(&path).unwrap();
        store.apply(&[write(&record, 0)]).unwrap();
        let stored = store.activeflow(&record.id.to_string()).unwrap().unwrap();
        assert_eq!(stored.sequence, 7);
        assert_eq!(stored.json, serde_json::to_value(&record).unwrap());
        let vars = store.activeflow_variables(&record.id.to_string()).unwrap();
        assert_eq!(vars.unwrap()["call.digits"], "12");

        // The end written without a clone is the write of the ended record.
        let mut running = record.clone();
        running.status = Status::Running;
        running.end_reason = None;
        running.tm_end = None;
        running.variables = Variables::new();
        running.tm_update = "2000-01-01T00:00:00.000000Z".into();
        let mut ended = record.clone();
        ended.tm_update = record.tm_end.clone().unwrap();
        let end = End {
            reason: EndReason::OperatorStop,
            now: record.tm_end.as_deref().unwrap(),
            variables: &record.variables,
        };
        let (Write::Activeflow { row: a, actions: x }, Write::Activeflow { row: b, actions: y }) =
            (ended_write(&running, 0, end), write(&ended, 0))
        else {
            panic!("activeflow writes");
        };
        assert_eq!((a, x), (b, y));
    }
}
