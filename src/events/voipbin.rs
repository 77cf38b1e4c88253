//! VoIPBIN's webhook shape for an event: `{"type": ..., "data": {...}}` as flow-manager and
//! call-manager publish through webhook-manager (bin-flow-manager/models/activeflow/event.go,
//! bin-call-manager/models/call/event.go, bin-webhook-manager/models/webhook/webhook.go).
//! Activeflow events carry the activeflow (the bounded snapshot taken at publish time); call
//! events carry what the event knows of the call. Rendering only, on the webhook's task.

use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{CallFacts, Event, EventBody};

/// VoIPBIN's event type for `event`. VoIPBIN has no `activeflow_ended` (an ended activeflow is
/// an `activeflow_updated` with `status` `ended`) and no `call_answered` (an answered call is
/// `call_progressing`); our `call_ended` is its `call_hangup`.
pub fn event_type(event: &Event) -> &'static str {
    match &event.body {
        EventBody::ActiveflowCreated(_) => "activeflow_created",
        EventBody::ActiveflowUpdated(..) | EventBody::ActiveflowEnded(..) => "activeflow_updated",
        EventBody::ActiveflowDeleted(_) => "activeflow_deleted",
        EventBody::CallCreated(_) => "call_created",
        EventBody::CallAnswered(_) => "call_progressing",
        EventBody::CallEnded(_) => "call_hangup",
        EventBody::ConferenceJoined(_) => "conference_joined",
        EventBody::ConferenceLeft(_) => "conference_left",
    }
}

/// The body a VoIPBIN-format webhook gets; `activeflow` is the activeflow a call event's call is
/// driven by, when known (VoIPBIN's `activeflow_id` on a call); `snapshot` the activeflow's JSON
/// an activeflow event was published with (its `data`).
pub fn to_json(event: &Event, activeflow: Option<Uuid>, snapshot: Option<&str>) -> Vec<u8> {
    let kind = event_type(event);
    match &event.body {
        EventBody::ActiveflowCreated(a)
        | EventBody::ActiveflowUpdated(a, _)
        | EventBody::ActiveflowEnded(a, _)
        | EventBody::ActiveflowDeleted(a) => match snapshot {
            // The snapshot is already the JSON of the activeflow: spliced in, not re-parsed.
            Some(record) => {
                let mut out = Vec::with_capacity(record.len() + 48);
                out.extend_from_slice(br#"{"type":""#);
                out.extend_from_slice(kind.as_bytes());
                out.extend_from_slice(br#"","data":"#);
                out.extend_from_slice(record.as_bytes());
                out.push(b'}');
                out
            }
            // Published without a snapshot (no VoIPBIN webhook was configured when it was):
            // what the event itself knows.
            None => envelope(
                kind,
                &json!({
                    "id": event.subject,
                    "flow_id": a.flow_id,
                    "status": if matches!(event.body, EventBody::ActiveflowCreated(_)
                        | EventBody::ActiveflowUpdated(..)) { "running" } else { "ended" },
                    "reference_type": a.reference_type,
                    "reference_id": a.reference_id,
                }),
            ),
        },
        EventBody::CallCreated(c) | EventBody::CallAnswered(c) | EventBody::CallEnded(c) => {
            envelope(kind, &call(event, c, activeflow))
        }
        EventBody::ConferenceJoined(c) | EventBody::ConferenceLeft(c) => envelope(
            kind,
            &json!({
                "activeflow_id": event.subject,
                "conference_id": c.conference_id,
                "call_id": c.call_id,
                "ended_by": c.ended_by,
            }),
        ),
    }
}

fn envelope(kind: &str, data: &Value) -> Vec<u8> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        data: &'a Value,
    }
    serde_json::to_vec(&Envelope { kind, data }).unwrap_or_default()
}

/// A call in VoIPBIN's call `WebhookMessage` field names (bin-call-manager/models/call/
/// webhook.go), from the event's facts: statuses `ringing`, `progressing`, `hangup`; on hangup
/// `hangup_by` and `hangup_reason`, and `tm_hangup`.
fn call(event: &Event, c: &CallFacts, activeflow: Option<Uuid>) -> Value {
    let status = match c.status {
        "answered" => "progressing",
        "ended" => "hangup",
        other => other,
    };
    let mut data = json!({
        "id": event.subject,
        "direction": c.direction,
        "source": address(&c.source),
        "destination": address(&c.destination),
        "status": status,
    });
    if let Some(af) = activeflow {
        data["activeflow_id"] = json!(af);
    }
    let tm = event.tm.to_rfc3339_opts(SecondsFormat::Micros, true);
    match &event.body {
        EventBody::CallCreated(_) => data["tm_create"] = json!(tm),
        EventBody::CallAnswered(_) => data["tm_progressing"] = json!(tm),
        _ => {
            data["tm_hangup"] = json!(tm);
            if let Some(cause) = c.end_cause {
                let (by, reason) = hangup(cause, c.direction);
                data["hangup_by"] = json!(by);
                data["hangup_reason"] = json!(reason);
            }
        }
    }
    data
}

/// VoIPBIN's address object: a `tel` number (digits, an optional leading `+`), else `sip`.
fn address(target: &str) -> Value {
    let digits = target.strip_prefix('+').unwrap_or(target);
    let kind = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        "tel"
    } else {
        "sip"
    };
    json!({"type": kind, "target": target})
}

/// Our `end_cause` as VoIPBIN's `hangup_by` (`remote` | `local`) and `hangup_reason`, after
/// bin-call-manager/models/call/call.go `CalculateHangupReason`: an incoming call ends `normal`
/// unless busy, unanswered or past the max call duration (a caller's CANCEL included); `cancel`
/// only for an outgoing call its originator cancelled (ours never are: they ring out),
/// `timeout` only for the max call duration, `dialout` for an outgoing call our ring timeout
/// ended. Our media and SIP timers (ack, rtp, session timer) have no VoIPBIN reason: `normal`.
fn hangup(cause: &str, direction: &str) -> (&'static str, &'static str) {
    let outgoing = direction == "outgoing";
    match cause {
        "remote_bye" | "transferred" => ("remote", "normal"),
        // bin-call-manager: an incoming call's last status ringing, any cause → normal.
        "cancelled" => ("remote", "normal"),
        // Our outbound INVITE's final response; its code is not in the event: busy.
        "rejected" => ("remote", "busy"),
        "no_answer" => ("local", "dialout"),
        "max_duration" => ("local", "timeout"),
        "failed" if outgoing => ("local", "failed"),
        _ => ("local", "normal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ActiveflowFacts;
    use crate::flow::FlowId;

    fn facts() -> ActiveflowFacts {
        ActiveflowFacts {
            flow_id: FlowId::nil(),
            reference_type: "call",
            reference_id: "c".into(),
            execute_count: 1,
        }
    }

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn an_activeflow_event_carries_the_snapshot_as_data() {
        let record = r#"{"id":"x","executed_actions":[{"type":"answer"}],"status":"ended"}"#;
        let ended = Event::now(
            Uuid::nil(),
            EventBody::ActiveflowEnded(facts(), "completed"),
        );
        let v = parse(&to_json(&ended, None, Some(record)));
        // bin-flow-manager/models/activeflow/event.go: no activeflow_ended; an ended
        // activeflow is published as activeflow_updated.
        assert_eq!(v["type"], "activeflow_updated");
        assert_eq!(v["data"], parse(record.as_bytes()));
        assert_eq!(v.as_object().unwrap().len(), 2);
        let deleted = Event::now(Uuid::nil(), EventBody::ActiveflowDeleted(facts()));
        assert_eq!(
            parse(&to_json(&deleted, None, Some("{}")))["type"],
            "activeflow_deleted"
        );
    }

    #[test]
    fn without_a_snapshot_the_event_facts_are_the_data() {
        let e = Event::now(Uuid::from_u128(5), EventBody::ActiveflowCreated(facts()));
        let v = parse(&to_json(&e, None, None));
        assert_eq!(v["type"], "activeflow_created");
        assert_eq!(v["data"]["id"], json!(Uuid::from_u128(5)));
        assert_eq!(v["data"]["status"], "running");
        assert_eq!(v["data"]["reference_type"], "call");
    }

    #[test]
    fn call_events_use_voipbin_names_statuses_and_hangup_reasons() {
        let facts = |status, end_cause| CallFacts {
            direction: "incoming",
            source: "+15550100".into(),
            destination: "alice".into(),
            status,
            end_cause,
        };
        let af = Uuid::from_u128(9);
        let answered = Event::now(
            Uuid::nil(),
            EventBody::CallAnswered(facts("answered", None)),
        );
        let v = parse(&to_json(&answered, Some(af), None));
        assert_eq!(v["type"], "call_progressing");
        assert_eq!(v["data"]["status"], "progressing");
        assert_eq!(v["data"]["activeflow_id"], json!(af));
        assert_eq!(
            v["data"]["source"],
            json!({"type": "tel", "target": "+15550100"})
        );
        assert_eq!(
            v["data"]["destination"],
            json!({"type": "sip", "target": "alice"})
        );
        let ended = Event::now(
            Uuid::nil(),
            EventBody::CallEnded(facts("ended", Some("cancelled"))),
        );
        let v = parse(&to_json(&ended, None, None));
        assert_eq!(v["type"], "call_hangup");
        assert_eq!(v["data"]["status"], "hangup");
        // bin-call-manager CalculateHangupReason: a caller's CANCEL of an incoming call is normal.
        assert_eq!(
            (&v["data"]["hangup_by"], &v["data"]["hangup_reason"]),
            (&json!("remote"), &json!("normal"))
        );
        assert!(v["data"].get("activeflow_id").is_none());
        assert!(v["data"]["tm_hangup"].as_str().unwrap().ends_with('Z'));
        let created = Event::now(Uuid::nil(), EventBody::CallCreated(facts("ringing", None)));
        assert_eq!(
            parse(&to_json(&created, None, None))["type"],
            "call_created"
        );
    }

    /// bin-call-manager/models/call/call.go CalculateHangupReason (incoming and outgoing tables).
    #[test]
    fn hangup_reasons_follow_voipbins_calculate_hangup_reason() {
        let cases = [
            ("remote_bye", "incoming", ("remote", "normal")),
            ("cancelled", "incoming", ("remote", "normal")),
            ("max_duration", "incoming", ("local", "timeout")),
            ("rtp_timeout", "incoming", ("local", "normal")),
            ("ack_timeout", "incoming", ("local", "normal")),
            ("session_expired", "incoming", ("local", "normal")),
            ("failed", "incoming", ("local", "normal")),
            ("failed", "outgoing", ("local", "failed")),
            ("rejected", "outgoing", ("remote", "busy")),
            ("no_answer", "outgoing", ("local", "dialout")),
            ("local", "incoming", ("local", "normal")),
            ("transferred", "incoming", ("remote", "normal")),
        ];
        for (cause, direction, want) in cases {
            assert_eq!(hangup(cause, direction), want, "{cause} {direction}");
        }
    }
}
