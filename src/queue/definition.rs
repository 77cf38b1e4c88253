//! A queue's definition as `POST /v1/queues` gives it: name, agents (addresses as `connect`
//! dials them), strategy, `wait_timeout` (ms, as VoIPBIN's queue), agent `ring_timeout`, and
//! `wait_actions` (talk/play/beep/sleep, played to waiting callers in a loop). Parses and
//! validates only: every error names its field (`agents[1].type`, `wait_actions[0].type`).
//! Must not hold live state (see `machine`) or do I/O.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::flow::outbound::{address, Address, AddressType};
use crate::flow::{ActionKind, FlowError};
use crate::media::{AudioSource, MediaRequest};

/// Agents one queue may have at most.
pub const MAX_AGENTS: usize = 64;
/// Wait actions one queue may have at most.
pub const MAX_WAIT_ACTIONS: usize = 16;
/// Longest name (bytes).
pub const MAX_NAME: usize = 200;
/// Default and largest `wait_timeout` (ms): VoIPBIN's unit.
pub const DEFAULT_WAIT_TIMEOUT_MS: u64 = 300_000;
pub const MAX_WAIT_TIMEOUT_MS: u64 = 86_400_000;
/// Default and largest agent `ring_timeout` (ms).
pub const DEFAULT_RING_TIMEOUT_MS: u64 = 20_000;
pub const MAX_RING_TIMEOUT_MS: u64 = 300_000;
/// The media action types a queue plays while callers wait.
pub const WAIT_ACTION_TYPES: &[&str] = &["talk", "play", "beep", "sleep"];

/// A queue's id (uuid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub Uuid);

impl QueueId {
    pub fn new() -> Self {
        QueueId(Uuid::new_v4())
    }
}

impl Default for QueueId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for QueueId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(QueueId)
    }
}

/// Which free agent(s) a waiting caller rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Every free agent at once; the first to answer takes the caller.
    RingAll,
    /// The next free agent after the one rung last, in list order.
    RoundRobin,
    /// The free agent that has been idle longest.
    LongestIdle,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RingAll => "ringall",
            Strategy::RoundRobin => "roundrobin",
            Strategy::LongestIdle => "longest_idle",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "ringall" => Some(Strategy::RingAll),
            "roundrobin" => Some(Strategy::RoundRobin),
            "longest_idle" => Some(Strategy::LongestIdle),
            _ => None,
        }
    }
}

/// One step of the waiting loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldItem {
    Media(MediaRequest),
    Sleep(Duration),
}

/// Why a queue definition was refused (400), naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct QueueSpecError {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> QueueSpecError {
    QueueSpecError {
        field: field.into(),
        message: message.into(),
    }
}

/// A validated queue definition.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    pub name: String,
    pub detail: String,
    pub agents: Vec<Address>,
    pub strategy: Strategy,
    pub wait_timeout_ms: u64,
    pub ring_timeout_ms: u64,
    /// The trunk agent legs go through (by name); none: as `connect` picks one.
    pub trunk: Option<String>,
    /// `wait_actions` as given (shown back by the API).
    pub wait_actions: Vec<Value>,
    /// `wait_actions` as the caller's media requests.
    pub hold: Vec<HoldItem>,
}

impl QueueSpec {
    /// Parses and validates a `POST`/`PUT /v1/queues` body.
    pub fn from_json(body: &Value) -> Result<Self, QueueSpecError> {
        let Some(o) = body.as_object() else {
            return Err(invalid("body", "must be a JSON object"));
        };
        let text = |name: &str| -> Result<Option<String>, QueueSpecError> {
            match o.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(invalid(name, "must be a string")),
            }
        };
        let name = text("name")?.unwrap_or_default();
        if name.trim().is_empty() || name.len() > MAX_NAME {
            return Err(invalid(
                "name",
                format!("must be a non-empty string of at most {MAX_NAME} bytes"),
            ));
        }
        let detail = text("detail")?.unwrap_or_default();
        if detail.len() > 4 * MAX_NAME {
            return Err(invalid("detail", "is longer than 800 bytes"));
        }
        let strategy = match text("strategy")? {
            None => Strategy::RingAll,
            Some(s) => Strategy::parse(&s).ok_or_else(|| {
                invalid(
                    "strategy",
                    r#"must be "ringall", "roundrobin" or "longest_idle""#,
                )
            })?,
        };
        let ms = |name: &str, default: u64, max: u64| -> Result<u64, QueueSpecError> {
            match o.get(name) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => match v.as_u64() {
                    Some(n) if (1..=max).contains(&n) => Ok(n),
                    _ => Err(invalid(name, format!("must be 1..={max} (milliseconds)"))),
                },
            }
        };
        Ok(QueueSpec {
            name,
            detail,
            agents: agents(o.get("agents"))?,
            strategy,
            wait_timeout_ms: ms("wait_timeout", DEFAULT_WAIT_TIMEOUT_MS, MAX_WAIT_TIMEOUT_MS)?,
            ring_timeout_ms: ms("ring_timeout", DEFAULT_RING_TIMEOUT_MS, MAX_RING_TIMEOUT_MS)?,
            trunk: text("trunk")?,
            wait_actions: o
                .get("wait_actions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            hold: hold(o.get("wait_actions"))?,
        })
    }

    /// The definition as the API shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "detail": self.detail,
            "agents": self.agents.iter().map(address_json).collect::<Vec<_>>(),
            "strategy": self.strategy.as_str(),
            "wait_timeout": self.wait_timeout_ms,
            "ring_timeout": self.ring_timeout_ms,
            "trunk": self.trunk,
            "wait_actions": self.wait_actions,
        })
    }
}

/// `{"type", "target"}` of an address.
pub fn address_json(a: &Address) -> Value {
    let kind = match a.kind {
        AddressType::Tel => "tel",
        AddressType::Sip => "sip",
        AddressType::Extension => "extension",
    };
    json!({ "type": kind, "target": a.target })
}

fn agents(v: Option<&Value>) -> Result<Vec<Address>, QueueSpecError> {
    let list = match v {
        Some(Value::Array(list)) if !list.is_empty() => list,
        _ => return Err(invalid("agents", "must be a non-empty list of addresses")),
    };
    if list.len() > MAX_AGENTS {
        return Err(invalid(
            "agents",
            format!("names more than {MAX_AGENTS} agents"),
        ));
    }
    let mut out: Vec<Address> = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let field = format!("agents[{i}]");
        let a = address(v, &field, true).map_err(flow_error)?;
        if a.target.contains("${") {
            return Err(invalid(
                format!("{field}.target"),
                "must not hold a variable",
            ));
        }
        if out.contains(&a) {
            return Err(invalid(field, "is listed twice"));
        }
        out.push(a);
    }
    Ok(out)
}

fn hold(v: Option<&Value>) -> Result<Vec<HoldItem>, QueueSpecError> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid("wait_actions", "must be a list of actions")),
    };
    if list.len() > MAX_WAIT_ACTIONS {
        return Err(invalid(
            "wait_actions",
            format!("holds more than {MAX_WAIT_ACTIONS} actions"),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, v)| hold_item(i, v))
        .collect()
}

/// The shortest `sleep` or `beep` in `wait_actions`.
pub const MIN_HOLD_ITEM_MS: u64 = 100;

fn hold_item(i: usize, v: &Value) -> Result<HoldItem, QueueSpecError> {
    let at = |f: &str| format!("wait_actions[{i}].{f}");
    let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
    if !WAIT_ACTION_TYPES.contains(&kind) {
        return Err(invalid(
            at("type"),
            format!(r#"must be one of talk, play, beep, sleep (got "{kind}")"#),
        ));
    }
    let option = v.get("option").cloned().unwrap_or_else(|| json!({}));
    let parsed = ActionKind::parse(kind, &option).map_err(|e| match e {
        FlowError::Field { field, message } => invalid(at(&field), message),
        other => invalid(at("option"), other.to_string()),
    })?;
    // A waiting caller's keys never stop hold audio (`digits_handle` is not applied).
    let play = |sources: Vec<AudioSource>| {
        HoldItem::Media(MediaRequest::Play {
            sources,
            stop_on_digit: false,
        })
    };
    Ok(match parsed {
        ActionKind::Talk(t) => play(vec![AudioSource::Speech {
            text: t.text,
            language: t.language,
        }]),
        ActionKind::Play(p) => play(p.stream_urls.into_iter().map(AudioSource::Prompt).collect()),
        ActionKind::Beep { duration_ms } if u64::from(duration_ms) < MIN_HOLD_ITEM_MS => {
            return Err(too_short(at("option.duration")));
        }
        ActionKind::Sleep { duration_ms } if duration_ms < MIN_HOLD_ITEM_MS => {
            // The list repeats for the whole wait: a 0 ms item would spin a timer (or a media
            // job) per waiting caller.
            return Err(too_short(at("option.duration")));
        }
        ActionKind::Beep { duration_ms } => play(vec![AudioSource::Beep { duration_ms }]),
        ActionKind::Sleep { duration_ms } => HoldItem::Sleep(Duration::from_millis(duration_ms)),
        _ => return Err(invalid(at("type"), "is not a wait action")),
    })
}

fn too_short(field: String) -> QueueSpecError {
    invalid(
        field,
        format!("must be at least {MIN_HOLD_ITEM_MS} ms in wait_actions"),
    )
}

/// A flow error about one address, as a queue field error.
fn flow_error(e: FlowError) -> QueueSpecError {
    match e {
        FlowError::Field { field, message } => invalid(field, message),
        other => invalid("agents", other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(body: Value) -> String {
        QueueSpec::from_json(&body).unwrap_err().field
    }

    /// A 0 ms (or 99 ms) `sleep` or `beep` would loop for the whole wait: refused by name.
    #[test]
    fn a_too_short_hold_item_is_refused() {
        for (kind, ms) in [("sleep", 0), ("sleep", 99), ("beep", 0)] {
            let body = json!({"name": "q", "agents": [{"type": "sip", "target": "sip:a@h"}],
                              "wait_actions": [
                {"type": "talk", "option": {"text": "hold"}},
                {"type": kind, "option": {"duration": ms}}]});
            assert_eq!(
                field(body),
                "wait_actions[1].option.duration",
                "{kind} {ms}"
            );
        }
        let ok = json!({"name": "q", "agents": [{"type": "sip", "target": "sip:a@h"}],
                        "wait_actions": [{"type": "sleep", "option": {"duration": 100}}]});
        assert!(QueueSpec::from_json(&ok).is_ok());
    }

    #[test]
    fn a_full_definition_parses() {
        let q = QueueSpec::from_json(&json!({
            "name": "support", "strategy": "roundrobin", "wait_timeout": 5000,
            "agents": [{"type": "sip", "target": "sip:a@127.0.0.1:5070"},
                       {"type": "tel", "target": "+15550100"},
                       {"type": "extension", "target": "alice"}],
            "wait_actions": [{"type": "talk", "option": {"text": "please hold"}},
                             {"type": "sleep", "option": {"duration": 500}},
                             {"type": "beep"}]
        }))
        .unwrap();
        assert_eq!(q.strategy, Strategy::RoundRobin);
        assert_eq!(q.wait_timeout_ms, 5000);
        assert_eq!(q.agents.len(), 3);
        assert_eq!(q.hold.len(), 3);
        assert_eq!(q.hold[1], HoldItem::Sleep(Duration::from_millis(500)));
        assert_eq!(q.to_json()["agents"][2]["type"], "extension");
    }

    #[test]
    fn errors_name_the_field() {
        let agent = json!([{"type": "sip", "target": "sip:a@h"}]);
        assert_eq!(field(json!({"agents": agent})), "name");
        assert_eq!(field(json!({"name": "q"})), "agents");
        assert_eq!(field(json!({"name": "q", "agents": []})), "agents");
        assert_eq!(
            field(
                json!({"name": "q", "agents": [{"type": "sip", "target": "sip:a@h"}, {"type": "fax", "target": "x"}]})
            ),
            "agents[1].type"
        );
        assert_eq!(
            field(json!({"name": "q", "agents": agent, "strategy": "random"})),
            "strategy"
        );
        assert_eq!(
            field(json!({"name": "q", "agents": agent, "wait_timeout": 0})),
            "wait_timeout"
        );
        assert_eq!(
            field(
                json!({"name": "q", "agents": agent, "wait_actions": [{"type": "beep"}, {"type": "connect", "option": {}}]})
            ),
            "wait_actions[1].type"
        );
        assert_eq!(
            field(
                json!({"name": "q", "agents": agent, "wait_actions": [{"type": "talk", "option": {}}]})
            ),
            "wait_actions[0].option.text"
        );
        let many: Vec<Value> = (0..=MAX_AGENTS)
            .map(|i| json!({"type": "tel", "target": format!("+1555{i:04}")}))
            .collect();
        assert_eq!(field(json!({"name": "q", "agents": many})), "agents");
    }
}
