//! Turns engine data into storage rows: an activeflow's header as it stands with its executed
//! actions from a given index on, and flows. Pure conversion; when to write is the caller's.

use super::ActiveflowRecord;
use crate::flow::Flow;
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

/// The record's header and every executed action from index `from` on.
pub(crate) fn write(record: &ActiveflowRecord, from: usize) -> Write {
    let actions = record
        .executed_actions
        .iter()
        .enumerate()
        .skip(from)
        .map(|(index, a)| ActionRow {
            index,
            body: json(a),
        })
        .collect();
    let ended = record.end_reason.is_some();
    Write::Activeflow {
        row: ActiveflowRow {
            id: record.id.to_string(),
            sequence: record.sequence,
            flow_id: record.flow_id.to_string(),
            status: if ended { "ended" } else { "running" },
            end_reason: record.end_reason.map(|r| r.as_str()),
            reference_type: record.reference_type.as_str(),
            reference_id: record.reference_id.clone(),
            reference_activeflow_id: record.reference_activeflow_id.map(|id| id.to_string()),
            current_action: record.current_action.as_ref().map(json),
            variables: ended.then(|| json(&record.variables)),
            tm_create: record.tm_create.clone(),
            tm_update: record.tm_update.clone(),
            tm_end: record.tm_end.clone(),
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
            current_action: Some(action.clone()),
            executed_actions: vec![ExecutedAction {
                action,
                tm_execute: crate::clock::timestamp(),
                result: Some(serde_json::json!({"digits": "1"})),
            }],
            tm_create: crate::clock::timestamp(),
            tm_update: crate::clock::timestamp(),
            tm_end: Some(crate::clock::timestamp()),
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
    }
}
