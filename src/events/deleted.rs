//! `activeflow_deleted`: published when `DELETE /v1/activeflows/{id}` removed an activeflow
//! (VoIPBIN's flow-manager publishes it from its delete, bin-flow-manager/pkg/activeflowhandler
//! /db.go). Built from the activeflow's JSON as the API returned it, so a stored activeflow that
//! no actor holds any more is reported the same way as a live one.

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{ActiveflowFacts, Event, EventBody, EventBus};
use crate::flow::{FlowId, FlowStore};

impl EventBus {
    /// Publishes `activeflow_deleted` for `activeflow` (the API's JSON of it) to the stream, the
    /// global webhook and its flow's webhook (looked up in `flows`; gone with a deleted flow).
    /// Does nothing for JSON without an activeflow `id`.
    pub fn publish_deleted(&self, activeflow: &Value, flows: &FlowStore) {
        let Some(id) = activeflow["id"]
            .as_str()
            .and_then(|s| s.parse::<Uuid>().ok())
        else {
            return;
        };
        let flow_id = activeflow["flow_id"]
            .as_str()
            .and_then(|s| s.parse::<FlowId>().ok())
            .unwrap_or(FlowId::nil());
        let hook = flows
            .get(&flow_id)
            .and_then(|flow| self.flow_hook(&flow, id));
        let record = self
            .wants_snapshot(hook.as_deref())
            .then(|| snapshot(activeflow));
        let facts = ActiveflowFacts {
            flow_id,
            reference_type: match activeflow["reference_type"].as_str() {
                Some("call") => "call",
                _ => "api",
            },
            reference_id: activeflow["reference_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            execute_count: executed_count(activeflow),
            record,
        };
        self.publish(Event::now(id, EventBody::ActiveflowDeleted(facts)), hook);
    }
}

/// The activeflow's JSON with `tm_delete` (VoIPBIN's deleted activeflow has one) set to now
/// when the API's JSON has none.
fn snapshot(activeflow: &Value) -> Arc<str> {
    let mut data = activeflow.clone();
    if let Some(m) = data.as_object_mut() {
        if m.get("tm_delete").is_none_or(Value::is_null) {
            let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
            m.insert("tm_delete".into(), Value::String(now));
        }
    }
    Arc::from(data.to_string())
}

/// Actions executed, those dropped from memory included (as `ActiveflowRecord` counts them).
fn executed_count(activeflow: &Value) -> usize {
    let kept = activeflow["executed_actions"]
        .as_array()
        .map_or(0, Vec::len);
    let dropped = activeflow["executed_actions_dropped"].as_u64().unwrap_or(0);
    kept + dropped as usize
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::events::Batch;

    #[tokio::test]
    async fn a_deleted_activeflow_is_published_with_its_facts() {
        let bus = EventBus::without_webhooks(16, Duration::from_secs(15));
        let mut sub = bus.subscribe(None);
        let id = Uuid::from_u128(3);
        let flow = FlowId(Uuid::from_u128(4));
        let json = json!({"id": id, "flow_id": flow, "status": "ended", "reference_type": "call",
            "reference_id": "c1", "executed_actions": [{}, {}], "executed_actions_dropped": 5});
        bus.publish_deleted(&json, &FlowStore::new());
        bus.publish_deleted(&json!({"flow_id": flow}), &FlowStore::new());
        let Some(Batch::Events(got)) = sub.try_next(10) else {
            panic!("no event");
        };
        assert_eq!(got.len(), 1, "JSON without an id publishes nothing");
        let event = &got[0].event;
        assert_eq!(event.subject, id);
        let EventBody::ActiveflowDeleted(facts) = &event.body else {
            panic!("{event:?}");
        };
        assert_eq!(
            (facts.flow_id, facts.reference_type, facts.execute_count),
            (flow, "call", 7)
        );
        // No webhook wants VoIPBIN's shape: no snapshot was taken.
        assert!(facts.record.is_none());
        let v: Value = serde_json::from_slice(&event.to_json(got[0].id)).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["status"].as_str()),
            (Some("activeflow_deleted"), Some("ended"))
        );
    }

    #[test]
    fn the_snapshot_gets_a_tm_delete_and_keeps_one_it_has() {
        let v: Value =
            serde_json::from_str(&snapshot(&json!({"id": "x", "tm_delete": null}))).unwrap();
        assert!(v["tm_delete"].as_str().unwrap().ends_with('Z'));
        let v: Value =
            serde_json::from_str(&snapshot(&json!({"id": "x", "tm_delete": "t"}))).unwrap();
        assert_eq!(v["tm_delete"], "t");
    }
}
