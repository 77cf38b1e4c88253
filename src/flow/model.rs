//! The flow document (`Flow`, `Action`) and its VoIPBIN-compatible JSON form.
//! Owns parsing (assigning missing ids), serialization and per-action
//! helpers; must not hold registry state or execute actions.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::action::ActionKind;
use super::error::FlowError;
use super::id::{ActionId, FlowId};
use super::substitute::{self, SubstituteError};
use super::variables::Variables;
use super::webhook::{WebhookFormat, WebhookMethod};

/// A registered list of actions plus metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawFlow")]
pub struct Flow {
    pub id: FlowId,
    pub name: String,
    pub detail: String,
    pub actions: Vec<Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_complete_flow_id: Option<FlowId>,
    /// Gets this flow's activeflow events (and their calls') as JSON POSTs; http(s) only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_uri: Option<String>,
    /// How `webhook_uri` is called (VoIPBIN's `webhook_method`; `None` = POST).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_method: Option<WebhookMethod>,
    /// The body shape `webhook_uri` gets (`None` = `events.webhook_format`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_format: Option<WebhookFormat>,
}

/// One step of a flow. `option` stays raw JSON so unknown fields survive a
/// round trip; `typed()` gives the checked view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawAction")]
pub struct Action {
    pub id: ActionId,
    /// Explicit jump; `None` falls through to the next element.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_id: Option<ActionId>,
    #[serde(rename = "type")]
    pub kind: String,
    /// Shared: a running activeflow's record (current and executed actions) holds the flow's
    /// own option wherever substitution changed nothing, not a copy per activeflow.
    pub option: Arc<Value>,
}

/// Wire form of `Flow`: everything optional so VoIPBIN documents that omit
/// fields (or send `null`) still load.
#[derive(Deserialize)]
struct RawFlow {
    #[serde(default)]
    id: Option<FlowId>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    actions: Option<Vec<Action>>,
    #[serde(default)]
    on_complete_flow_id: Option<FlowId>,
    #[serde(default)]
    webhook_uri: Option<String>,
    #[serde(default)]
    webhook_method: Option<WebhookMethod>,
    #[serde(default)]
    webhook_format: Option<WebhookFormat>,
}

impl From<RawFlow> for Flow {
    fn from(r: RawFlow) -> Self {
        Self {
            // Missing and nil ids both mean "not assigned yet"; Default is random.
            id: r.id.filter(|id| !id.is_nil()).unwrap_or_default(),
            name: r.name.unwrap_or_default(),
            detail: r.detail.unwrap_or_default(),
            actions: r.actions.unwrap_or_default(),
            on_complete_flow_id: r.on_complete_flow_id.filter(|id| !id.is_nil()),
            // VoIPBIN-style documents may send "" for "none".
            webhook_uri: r.webhook_uri.filter(|u| !u.is_empty()),
            webhook_method: r.webhook_method,
            webhook_format: r.webhook_format,
        }
    }
}

#[derive(Deserialize)]
struct RawAction {
    #[serde(default)]
    id: Option<ActionId>,
    #[serde(default)]
    next_id: Option<ActionId>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    option: Option<Value>,
}

impl From<RawAction> for Action {
    fn from(r: RawAction) -> Self {
        Self {
            id: r.id.filter(|id| !id.is_nil()).unwrap_or_default(),
            // VoIPBIN writes the nil uuid for "no explicit next".
            next_id: r.next_id.filter(|id| !id.is_nil()),
            kind: r.kind,
            option: Arc::new(match r.option {
                None | Some(Value::Null) => Value::Object(Default::default()),
                Some(v) => v,
            }),
        }
    }
}

impl Flow {
    /// A flow with a fresh id and the given actions (not validated).
    pub fn new(name: impl Into<String>, actions: Vec<Action>) -> Self {
        Self {
            id: FlowId::new(),
            name: name.into(),
            detail: String::new(),
            actions,
            on_complete_flow_id: None,
            webhook_uri: None,
            webhook_method: None,
            webhook_format: None,
        }
    }

    /// Parses a JSON document (assigning missing ids) and validates it.
    pub fn from_json(bytes: &[u8]) -> Result<Flow, FlowError> {
        let flow: Flow =
            serde_json::from_slice(bytes).map_err(|e| FlowError::Json(e.to_string()))?;
        flow.validate()?;
        Ok(flow)
    }

    /// Pretty JSON in the VoIPBIN shape.
    pub fn to_json(&self) -> Result<String, FlowError> {
        serde_json::to_string_pretty(self).map_err(|e| FlowError::Json(e.to_string()))
    }

    /// Position of the action with `id`.
    pub fn find_action(&self, id: &ActionId) -> Option<usize> {
        find_action(&self.actions, id)
    }
}

impl Action {
    /// An action with a fresh id and no explicit next.
    pub fn new(kind: impl Into<String>, option: Value) -> Self {
        Self {
            id: ActionId::new(),
            next_id: None,
            kind: kind.into(),
            option: Arc::new(option),
        }
    }

    /// The checked, typed view of this action. Errors are
    /// `FlowError::Field` (e.g. `option.duration`); use
    /// `FlowError::at_index` to place them in a list.
    pub fn typed(&self) -> Result<ActionKind, FlowError> {
        ActionKind::parse(&self.kind, &self.option)
    }

    /// A copy whose option has `${name}` expanded in every string value, recursively; object
    /// keys, ids and the type are left alone. Expansion is field-aware (see `substitute`): URL
    /// options (`fetch` `event_url`, `webhook_send` `uri`, `play` `stream_urls`) get
    /// percent-encoded values, a JSON `webhook_send` `data` gets JSON-escaped ones, and the
    /// values inserted into the whole option may add at most `limit` bytes. An option without
    /// `${` is shared, not copied.
    pub fn substituted(&self, vars: &Variables, limit: usize) -> Result<Action, SubstituteError> {
        let option = if substitute::has_placeholder(&self.option) {
            Arc::new(substitute::option(&self.kind, &self.option, vars, limit)?)
        } else {
            Arc::clone(&self.option)
        };
        Ok(Action {
            option,
            ..self.clone()
        })
    }
}

/// Position of the action with `id` in `actions`.
pub fn find_action(actions: &[Action], id: &ActionId) -> Option<usize> {
    actions.iter().position(|a| a.id == *id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A1: &str = "11111111-1111-4111-8111-111111111111";
    const A2: &str = "22222222-2222-4222-8222-222222222222";
    const NIL: &str = "00000000-0000-0000-0000-000000000000";

    #[test]
    fn webhook_method_and_format_parse_or_name_the_field() {
        let flow = Flow::from_json(
            br#"{"webhook_uri":"http://h/x","webhook_method":"PUT","webhook_format":"voipbin",
                "actions":[{"type":"answer"}]}"#,
        )
        .unwrap();
        assert_eq!(flow.webhook_method, Some(WebhookMethod::Put));
        assert_eq!(flow.webhook_format, Some(WebhookFormat::Voipbin));
        let e = Flow::from_json(br#"{"webhook_method":"PATCH","actions":[{"type":"answer"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("webhook_method") && e.contains("PATCH"), "{e}");
        let e = Flow::from_json(br#"{"webhook_format":"xml","actions":[{"type":"answer"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("xml"), "{e}");
    }

    #[test]
    fn parse_assigns_missing_ids_and_defaults() {
        let flow = Flow::from_json(
            br#"{"actions":[{"type":"answer"},{"id":null,"type":"hangup","option":null}]}"#,
        )
        .unwrap();
        assert!(!flow.id.is_nil());
        assert_eq!(flow.name, "");
        assert_eq!(flow.detail, "");
        assert_eq!(flow.on_complete_flow_id, None);
        assert_eq!(flow.actions.len(), 2);
        assert_ne!(flow.actions[0].id, flow.actions[1].id);
        assert_eq!(flow.actions[0].option, Arc::new(json!({})));
        assert_eq!(flow.actions[1].option, Arc::new(json!({})));
        assert_eq!(flow.actions[0].next_id, None);
    }

    #[test]
    fn nil_and_null_next_id_fall_through() {
        let doc = json!({"id": NIL, "name": "n", "on_complete_flow_id": NIL, "actions": [
            {"id": A1, "next_id": NIL, "type": "answer"},
            {"id": A2, "next_id": null, "type": "stop"},
            {"id": NIL, "type": "stop"}
        ]});
        let flow = Flow::from_json(doc.to_string().as_bytes()).unwrap();
        assert!(!flow.id.is_nil());
        assert_eq!(flow.on_complete_flow_id, None);
        assert!(flow.actions.iter().all(|a| a.next_id.is_none()));
        assert!(!flow.actions[2].id.is_nil());
        assert_eq!(flow.find_action(&A2.parse().unwrap()), Some(1));
        assert_eq!(find_action(&flow.actions, &ActionId::new()), None);
    }

    #[test]
    fn serialization_round_trip() {
        let doc = json!({
            "id": "33333333-3333-4333-8333-333333333333",
            "name": "main-ivr", "detail": "d",
            "on_complete_flow_id": "44444444-4444-4444-8444-444444444444",
            "customer_id": "ignored",
            "actions": [
                {"id": A1, "next_id": A2, "type": "sleep", "option": {"duration": 5, "extra": [1]}},
                {"id": A2, "type": "hangup", "option": {"reason": "busy"}}
            ]
        });
        let flow = Flow::from_json(doc.to_string().as_bytes()).unwrap();
        let out = serde_json::to_value(&flow).unwrap();
        assert_eq!(out["actions"][0], doc["actions"][0]);
        assert_eq!(out["actions"][1], doc["actions"][1]);
        assert!(out["actions"][1].get("next_id").is_none());
        assert_eq!(out["on_complete_flow_id"], doc["on_complete_flow_id"]);
        assert!(out.get("customer_id").is_none());
        let back = Flow::from_json(flow.to_json().unwrap().as_bytes()).unwrap();
        assert_eq!(back, flow);

        let mut plain = Flow::new("x", vec![Action::new("answer", json!({}))]);
        plain.on_complete_flow_id = None;
        assert!(serde_json::to_value(&plain)
            .unwrap()
            .get("on_complete_flow_id")
            .is_none());
    }

    #[test]
    fn json_errors() {
        let e = Flow::from_json(b"{").unwrap_err();
        assert!(matches!(e, FlowError::Json(_)), "{e}");
        assert!(e.to_string().starts_with("invalid flow JSON: "));
        let e = Flow::from_json(br#"{"actions":[{"option":{}}]}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `type`"), "{e}");
        let e = Flow::from_json(br#"{"actions":[{"type":"answer","next_id":"bad"}]}"#).unwrap_err();
        assert!(matches!(e, FlowError::Json(_)));
    }

    #[test]
    fn typed_view() {
        let a = Action::new("sleep", json!({"duration": 250}));
        assert_eq!(a.typed().unwrap(), ActionKind::Sleep { duration_ms: 250 });
        let e = Action::new("sleep", json!({})).typed().unwrap_err();
        assert_eq!(
            e,
            FlowError::field("option.duration", "missing required field")
        );
    }

    #[test]
    fn substituted_shares_an_option_without_placeholders() {
        let vars: Variables = [("who", "x")].into_iter().collect();
        let plain = Action::new("sleep", json!({"duration": 600000, "note": "$ {who}"}));
        assert!(Arc::ptr_eq(
            &plain.substituted(&vars, 1 << 20).unwrap().option,
            &plain.option
        ));
        let templated = Action::new("talk", json!({"text": ["hi ${who}"]}));
        let s = templated.substituted(&vars, 1 << 20).unwrap();
        assert!(!Arc::ptr_eq(&s.option, &templated.option));
        assert_eq!(*s.option, json!({"text": ["hi x"]}));
    }

    #[test]
    fn substituted_walks_all_strings() {
        let vars: Variables = [("call.digits", "42"), ("who", "é")].into_iter().collect();
        let a = Action {
            id: A1.parse().unwrap(),
            next_id: Some(A2.parse().unwrap()),
            kind: "variable_set".into(),
            option: Arc::new(json!({
                "key": "k${who}",
                "${who}": "v=${voipbin.call.digits}",
                "list": ["${who}", 1, {"deep": "${nope}x"}],
                "n": 3, "b": true, "z": null
            })),
        };
        let s = a.substituted(&vars, 1 << 20).unwrap();
        assert_eq!(s.id, a.id);
        assert_eq!(s.next_id, a.next_id);
        assert_eq!(s.kind, a.kind);
        assert_eq!(
            *s.option,
            json!({
                "key": "ké",
                "${who}": "v=42",
                "list": ["é", 1, {"deep": "x"}],
                "n": 3, "b": true, "z": null
            })
        );
    }

    #[test]
    fn substitution_is_field_aware() {
        let vars: Variables = [("who", "1/admin?x="), ("q", r#"a"b"#)]
            .into_iter()
            .collect();
        let run = |kind: &str, option: Value| {
            (*Action::new(kind, option)
                .substituted(&vars, 1 << 20)
                .unwrap()
                .option)
                .clone()
        };
        let f = run(
            "fetch",
            json!({"event_url": "http://h/u/${who}?a=${who}", "note": "${who}"}),
        );
        assert_eq!(
            f["event_url"],
            "http://h/u/1%2Fadmin%3Fx%3D?a=1%2Fadmin%3Fx%3D"
        );
        assert_eq!(f["note"], "1/admin?x=");
        let p = run("play", json!({"stream_urls": ["http://h/${who}.wav"]}));
        assert_eq!(p["stream_urls"][0], "http://h/1%2Fadmin%3Fx%3D.wav");
        let w = run(
            "webhook_send",
            json!({"uri": "http://h/${who}", "data": r#"{"q": "${q}"}"#}),
        );
        assert_eq!(w["uri"], "http://h/1%2Fadmin%3Fx%3D");
        assert_eq!(w["data"], r#"{"q": "a\"b"}"#);
        let w = run(
            "webhook_send",
            json!({"uri": "http://h/", "data_type": "text/plain", "data": "q=${q}"}),
        );
        assert_eq!(w["data"], r#"q=a"b"#);
        let w = run(
            "webhook_send",
            json!({"uri": "http://h/", "data_type": "application/vnd.x+json; charset=utf-8", "data": "${q}"}),
        );
        assert_eq!(w["data"], r#""a\"b""#);
        // Talk text and other fields: as is.
        assert_eq!(run("talk", json!({"text": "${who}"}))["text"], "1/admin?x=");
    }

    #[test]
    fn substitution_stops_at_its_budget() {
        let vars: Variables = [("x", "y".repeat(1000))].into_iter().collect();
        let a = Action::new("talk", json!({"text": "${x}".repeat(3), "more": ["${x}"]}));
        assert!(a.substituted(&vars, 4000).is_ok());
        let e = a.substituted(&vars, 3500).unwrap_err();
        assert!(
            e.to_string()
                .contains("over engine.max_variables_bytes 3500"),
            "{e}"
        );
    }

    #[test]
    fn sip_address_targets_are_escaped_tel_ones_checked() {
        let vars: Variables = [("who", "bob@evil.example:5060;"), ("num", "+1555")]
            .into_iter()
            .collect();
        let a = Action::new(
            "message_send",
            json!({"text": "hi ${who}",
                   "source": {"type": "sip", "target": "sip:${who}@pbx"},
                   "destinations": [{"type": "sip", "target": "sip:${who}@pbx"},
                                    {"type": "tel", "target": "${num}"}]}),
        );
        let s = a.substituted(&vars, 1 << 20).unwrap();
        let escaped = "sip:bob%40evil.example%3A5060%3B@pbx";
        assert_eq!(s.option["source"]["target"], escaped);
        assert_eq!(s.option["destinations"][0]["target"], escaped);
        assert_eq!(s.option["destinations"][1]["target"], "+1555");
        assert_eq!(s.option["text"], "hi bob@evil.example:5060;");
        assert!(s.typed().is_ok());
        // A tel target is checked to be a number once substituted.
        let bad: Variables = [("num", "1@evil")].into_iter().collect();
        let s = a.substituted(&bad, 1 << 20).unwrap();
        assert!(s.typed().is_err());
    }
}
