//! One engine event as published: its type, subject, time and payload, kept as plain data so
//! publishing costs no serialisation; [`Event::to_json`] renders it when it is sent (SSE,
//! webhooks). Knows no actors: the engine and call sessions build these from their records.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;
use uuid::Uuid;

use crate::flow::{Action, FlowId};

/// Every event type, as spelled in SSE `event:` lines, JSON `type` and `?types=` filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    ActiveflowCreated,
    ActiveflowUpdated,
    ActiveflowEnded,
    CallCreated,
    CallAnswered,
    CallEnded,
    /// `DELETE /v1/activeflows/{id}` removed it (VoIPBIN's `activeflow_deleted`).
    ActiveflowDeleted,
    /// The activeflow's call joined a conference room (`conference_join`).
    ConferenceJoined,
    /// The activeflow's call left a conference room.
    ConferenceLeft,
}

impl EventType {
    pub const ALL: [EventType; 9] = [
        EventType::ActiveflowCreated,
        EventType::ActiveflowUpdated,
        EventType::ActiveflowEnded,
        EventType::ActiveflowDeleted,
        EventType::CallCreated,
        EventType::CallAnswered,
        EventType::CallEnded,
        EventType::ConferenceJoined,
        EventType::ConferenceLeft,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ActiveflowCreated => "activeflow_created",
            EventType::ActiveflowUpdated => "activeflow_updated",
            EventType::ActiveflowEnded => "activeflow_ended",
            EventType::CallCreated => "call_created",
            EventType::CallAnswered => "call_answered",
            EventType::CallEnded => "call_ended",
            EventType::ActiveflowDeleted => "activeflow_deleted",
            EventType::ConferenceJoined => "conference_joined",
            EventType::ConferenceLeft => "conference_left",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// This type's bit in an [`EventFilter`].
    fn bit(self) -> u16 {
        1 << (self as u8)
    }
}

/// A set of event types (`?types=` on `GET /v1/events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFilter(u16);

impl EventFilter {
    pub const ALL: EventFilter = EventFilter((1 << EventType::ALL.len()) - 1);

    /// Parses a comma-separated list; an unknown name is returned as the error.
    pub fn parse(list: &str) -> Result<EventFilter, String> {
        let mut bits = 0;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            bits |= EventType::parse(name).ok_or_else(|| name.to_owned())?.bit();
        }
        Ok(if bits == 0 {
            EventFilter::ALL
        } else {
            EventFilter(bits)
        })
    }

    pub fn contains(self, t: EventType) -> bool {
        self.0 & t.bit() != 0
    }
}

/// What an activeflow event says about its activeflow.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveflowFacts {
    pub flow_id: FlowId,
    /// `call` or `api`.
    pub reference_type: &'static str,
    /// The call's id for `call`; empty for `api`.
    pub reference_id: String,
    /// Actions executed so far (the cursor's position in `executed_actions`).
    pub execute_count: usize,
}

/// The action an `activeflow_updated` reports, as `executed_actions` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutedFacts {
    /// After substitution.
    pub action: Action,
    pub tm_execute: String,
    /// As far as known when it was executed (media results come later, in the record).
    pub result: Option<Value>,
}

/// What a call event says about its call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFacts {
    pub direction: &'static str,
    pub source: String,
    pub destination: String,
    /// `ringing`, `answered`, `ended`.
    pub status: &'static str,
    /// Why it ended (`call_ended` only).
    pub end_cause: Option<&'static str>,
}

/// What a conference event says: the room, the call in it, and (on leaving) why.
#[derive(Debug, Clone, PartialEq)]
pub struct ConferenceFacts {
    pub conference_id: String,
    pub call_id: String,
    /// `kicked`, `deleted`, `call_ended` (`conference_left` only).
    pub ended_by: Option<&'static str>,
}

/// The payload, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    ActiveflowCreated(ActiveflowFacts),
    ActiveflowUpdated(ActiveflowFacts, Box<ExecutedFacts>),
    ActiveflowEnded(ActiveflowFacts, &'static str),
    ActiveflowDeleted(ActiveflowFacts),
    CallCreated(CallFacts),
    CallAnswered(CallFacts),
    CallEnded(CallFacts),
    ConferenceJoined(ConferenceFacts),
    ConferenceLeft(ConferenceFacts),
}

/// One event. Its id is given when it is published (see `window`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The activeflow's or the call's id.
    pub subject: Uuid,
    pub tm: DateTime<Utc>,
    pub body: EventBody,
}

impl Event {
    /// An event about `subject` happening now.
    pub fn now(subject: Uuid, body: EventBody) -> Event {
        Event {
            subject,
            tm: Utc::now(),
            body,
        }
    }

    pub fn event_type(&self) -> EventType {
        match &self.body {
            EventBody::ActiveflowCreated(_) => EventType::ActiveflowCreated,
            EventBody::ActiveflowUpdated(..) => EventType::ActiveflowUpdated,
            EventBody::ActiveflowEnded(..) => EventType::ActiveflowEnded,
            EventBody::ActiveflowDeleted(_) => EventType::ActiveflowDeleted,
            EventBody::CallCreated(_) => EventType::CallCreated,
            EventBody::CallAnswered(_) => EventType::CallAnswered,
            EventBody::CallEnded(_) => EventType::CallEnded,
            EventBody::ConferenceJoined(_) => EventType::ConferenceJoined,
            EventBody::ConferenceLeft(_) => EventType::ConferenceLeft,
        }
    }

    /// The JSON object sent as SSE `data:` and as a webhook's body.
    pub fn to_json(&self, event_id: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        let mut ser = serde_json::Serializer::new(&mut out);
        // Writing to a Vec cannot fail, and every value here serialises.
        if self.write(event_id, &mut ser).is_err() {
            out.clear();
        }
        out
    }

    fn write<W: std::io::Write>(
        &self,
        event_id: u64,
        ser: &mut serde_json::Serializer<W>,
    ) -> Result<(), serde_json::Error> {
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("type", self.event_type().as_str())?;
        m.serialize_entry("event_id", &event_id)?;
        m.serialize_entry("id", &self.subject)?;
        m.serialize_entry("tm", &self.tm.to_rfc3339_opts(SecondsFormat::Micros, true))?;
        match &self.body {
            EventBody::ActiveflowCreated(a) => activeflow(&mut m, a, "running")?,
            EventBody::ActiveflowUpdated(a, executed) => {
                activeflow(&mut m, a, "running")?;
                m.serialize_entry("current_action_id", &executed.action.id)?;
                m.serialize_entry("action", &ExecutedJson(executed))?;
            }
            EventBody::ActiveflowEnded(a, end_reason) => {
                activeflow(&mut m, a, "ended")?;
                m.serialize_entry("end_reason", end_reason)?;
            }
            // Only ended activeflows are removed (a running one is stopped first).
            EventBody::ActiveflowDeleted(a) => activeflow(&mut m, a, "ended")?,
            EventBody::CallCreated(c) | EventBody::CallAnswered(c) | EventBody::CallEnded(c) => {
                m.serialize_entry("direction", c.direction)?;
                m.serialize_entry("source", &c.source)?;
                m.serialize_entry("destination", &c.destination)?;
                m.serialize_entry("status", c.status)?;
                if let Some(cause) = c.end_cause {
                    m.serialize_entry("end_cause", cause)?;
                }
            }
            EventBody::ConferenceJoined(c) | EventBody::ConferenceLeft(c) => {
                m.serialize_entry("conference_id", &c.conference_id)?;
                m.serialize_entry("call_id", &c.call_id)?;
                if let Some(by) = c.ended_by {
                    m.serialize_entry("ended_by", by)?;
                }
            }
        }
        m.end()
    }
}

fn activeflow<M: SerializeMap>(
    m: &mut M,
    a: &ActiveflowFacts,
    status: &str,
) -> Result<(), M::Error> {
    m.serialize_entry("flow_id", &a.flow_id)?;
    m.serialize_entry("status", status)?;
    m.serialize_entry("reference_type", a.reference_type)?;
    m.serialize_entry("reference_id", &a.reference_id)?;
    m.serialize_entry("execute_count", &a.execute_count)
}

/// An executed action in the shape of an `executed_actions` entry.
struct ExecutedJson<'a>(&'a ExecutedFacts);

impl serde::Serialize for ExecutedJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &e.action.id)?;
        // As `executed_actions` shows it: VoIPBIN's nil UUID when the action has no next_id.
        let next = e.action.next_id.unwrap_or(crate::flow::ActionId::nil());
        m.serialize_entry("next_id", &next)?;
        m.serialize_entry("type", &e.action.kind)?;
        m.serialize_entry("option", &e.action.option)?;
        m.serialize_entry("tm_execute", &e.tm_execute)?;
        if let Some(result) = &e.result {
            m.serialize_entry("result", result)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_parse_and_name_unknown_types() {
        let f = EventFilter::parse("call_created, call_ended").unwrap();
        assert!(f.contains(EventType::CallCreated) && f.contains(EventType::CallEnded));
        assert!(!f.contains(EventType::ActiveflowUpdated));
        assert_eq!(EventFilter::parse("").unwrap(), EventFilter::ALL);
        assert_eq!(EventFilter::parse("call_created,nope").unwrap_err(), "nope");
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert!(EventFilter::ALL.contains(t));
        }
    }

    #[test]
    fn updated_event_json_carries_the_executed_action() {
        let action = Action::new("talk", json!({"text": "hi"}));
        let facts = ActiveflowFacts {
            flow_id: FlowId::nil(),
            reference_type: "call",
            reference_id: "c".into(),
            execute_count: 2,
        };
        let e = Event::now(
            Uuid::nil(),
            EventBody::ActiveflowUpdated(
                facts,
                Box::new(ExecutedFacts {
                    action: action.clone(),
                    tm_execute: "t".into(),
                    result: Some(json!({"digits": "1"})),
                }),
            ),
        );
        let v: Value = serde_json::from_slice(&e.to_json(7)).unwrap();
        assert_eq!(v["type"], "activeflow_updated");
        assert_eq!(v["event_id"], 7);
        assert_eq!(v["status"], "running");
        assert_eq!(v["execute_count"], 2);
        assert_eq!(v["current_action_id"], json!(action.id));
        assert_eq!(
            v["action"],
            json!({"id": action.id, "next_id": "00000000-0000-0000-0000-000000000000",
                   "type": "talk", "option": {"text": "hi"},
                   "tm_execute": "t", "result": {"digits": "1"}})
        );
        assert!(v["tm"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn call_ended_json_has_its_cause() {
        let e = Event::now(
            Uuid::nil(),
            EventBody::CallEnded(CallFacts {
                direction: "incoming",
                source: "alice".into(),
                destination: "100".into(),
                status: "ended",
                end_cause: Some("remote_bye"),
            }),
        );
        let v: Value = serde_json::from_slice(&e.to_json(1)).unwrap();
        assert_eq!(v["type"], "call_ended");
        assert_eq!(v["end_cause"], "remote_bye");
        assert_eq!(v["destination"], "100");
    }
}
