//! `activeflow_deleted`: published when `DELETE /v1/activeflows/{id}` removed an activeflow
//! (VoIPBIN's flow-manager publishes it from its delete, bin-flow-manager/pkg/activeflowhandler
//! /db.go). Built from the activeflow's JSON as the API returned it, so a stored activeflow that
//! no actor holds any more is reported the same way as a live one.

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{ActiveflowFacts, Event, EventBody, EventBus, FlowHook, SNAPSHOT_EXECUTED_ACTIONS};
use crate::flow::{Flow, FlowId, FlowStore, WebhookMethod};

impl EventBus {
    /// Publishes `activeflow_deleted` for `activeflow` (the API's JSON of it) to the stream, the
    /// global webhook and the activeflow's own webhook: its JSON's `webhook_uri` and
    /// `webhook_method` (its flow's, or those `POST /v1/activeflows` gave it), in its flow's
    /// `webhook_format` (looked up in `flows`), else `events.webhook_format` when the flow is
    /// gone. Does nothing for JSON without an activeflow `id`.
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
        let hook = self.record_hook(activeflow, id, flows.get(&flow_id).as_deref());
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
        };
        let event = Event::now(id, EventBody::ActiveflowDeleted(facts));
        self.publish_with(event, hook, record);
    }

    /// The webhook named by an activeflow's JSON (`webhook_uri`, `webhook_method`), in `flow`'s
    /// format; `None` without a URI or when this bus sends no webhooks.
    fn record_hook(
        &self,
        activeflow: &Value,
        id: Uuid,
        flow: Option<&Flow>,
    ) -> Option<Arc<FlowHook>> {
        self.inner.webhooks.as_ref()?;
        let uri = activeflow["webhook_uri"]
            .as_str()
            .filter(|u| !u.is_empty())?;
        let method = activeflow["webhook_method"]
            .as_str()
            .and_then(WebhookMethod::parse)
            .unwrap_or_default();
        let format = flow
            .and_then(|f| f.webhook_format)
            .unwrap_or(self.inner.default_format);
        Some(Arc::new(FlowHook {
            uri: Arc::from(uri),
            method,
            format,
            activeflow: id,
        }))
    }
}

/// The activeflow's JSON with `tm_delete` (VoIPBIN's deleted activeflow has one) set to now
/// when the API's JSON has none, and only the newest [`SNAPSHOT_EXECUTED_ACTIONS`] executed
/// actions (the others counted in `executed_actions_dropped`).
fn snapshot(activeflow: &Value) -> Arc<str> {
    let mut data = activeflow.clone();
    if let Some(m) = data.as_object_mut() {
        if m.get("tm_delete").is_none_or(Value::is_null) {
            let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
            m.insert("tm_delete".into(), Value::String(now));
        }
        let over = m
            .get_mut("executed_actions")
            .and_then(Value::as_array_mut)
            .map_or(0, |list| {
                let over = list.len().saturating_sub(SNAPSHOT_EXECUTED_ACTIONS);
                list.drain(..over);
                over
            });
        if over > 0 {
            let dropped = m
                .get("executed_actions_dropped")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            m.insert(
                "executed_actions_dropped".into(),
                Value::from(dropped + over as u64),
            );
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
        // Bounded: the newest SNAPSHOT_EXECUTED_ACTIONS, the rest counted as dropped.
        let many: Vec<Value> = (0..SNAPSHOT_EXECUTED_ACTIONS + 5)
            .map(|n| json!(n))
            .collect();
        let v: Value = serde_json::from_str(&snapshot(
            &json!({"executed_actions": many, "executed_actions_dropped": 2}),
        ))
        .unwrap();
        let kept = v["executed_actions"].as_array().unwrap();
        assert_eq!(kept.len(), SNAPSHOT_EXECUTED_ACTIONS);
        assert_eq!(kept[0], 5);
        assert_eq!(v["executed_actions_dropped"], 7);
    }

    #[test]
    fn the_hook_is_the_activeflows_own_webhook_in_its_flows_format() {
        let feed = crate::events::webhook::detached(None);
        let bus = EventBus::build(
            8,
            Duration::from_secs(1),
            Some((feed, crate::flow::WebhookFormat::Native)),
            crate::events::ReaderLimits::default(),
        );
        let id = Uuid::from_u128(1);
        let json = json!({"id": id, "webhook_uri": "http://own/x", "webhook_method": "PUT"});
        let hook = bus.record_hook(&json, id, None).unwrap();
        assert_eq!(
            (&*hook.uri, hook.method, hook.format, hook.activeflow),
            (
                "http://own/x",
                WebhookMethod::Put,
                crate::flow::WebhookFormat::Native,
                id
            )
        );
        let flow = Flow::from_json(
            br#"{"webhook_uri":"http://flow/y","webhook_format":"voipbin",
                "actions":[{"type":"answer"}]}"#,
        )
        .unwrap();
        let hook = bus.record_hook(&json, id, Some(&flow)).unwrap();
        assert_eq!(
            (&*hook.uri, hook.format),
            ("http://own/x", crate::flow::WebhookFormat::Voipbin)
        );
        assert!(bus
            .record_hook(&json!({"webhook_uri": ""}), id, Some(&flow))
            .is_none());
        let none = EventBus::without_webhooks(8, Duration::from_secs(1));
        assert!(none.record_hook(&json, id, None).is_none());
    }
}
