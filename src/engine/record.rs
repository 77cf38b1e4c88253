//! The activeflow record operators see (DESIGN §5/§6): status, end reason, the cursor's current
//! action and every executed action with `tm_execute` and `result`. Plain data, shared between
//! the activeflow actor (writer) and the API (reader) behind a mutex.

use serde::Serialize;
use serde_json::Value;

use super::ActiveflowId;
use crate::flow::{Action, FlowId, Variables};

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

/// One executed action: the action after substitution, when, and what came of it.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutedAction {
    #[serde(flatten)]
    pub action: Action,
    pub tm_execute: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActiveflowRecord {
    pub id: ActiveflowId,
    pub flow_id: FlowId,
    pub status: Status,
    pub end_reason: Option<EndReason>,
    pub reference_type: ReferenceType,
    pub reference_id: String,
    /// The activeflow whose `on_complete_flow_id` started this one.
    pub reference_activeflow_id: Option<ActiveflowId>,
    pub current_action: Option<Action>,
    pub executed_actions: Vec<ExecutedAction>,
    pub tm_create: String,
    pub tm_update: String,
    pub tm_end: Option<String>,
    /// The final variables once ended (while running they live in the actor only); served by
    /// their own endpoint.
    #[serde(skip)]
    pub variables: Variables,
    /// Creation order, for newest-first listing and page tokens.
    #[serde(skip)]
    pub sequence: u64,
}

pub use crate::clock::timestamp;

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
}
