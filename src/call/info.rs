//! The operator's view of a call (`/v1/calls`): who, where, status and times. Written by the
//! call session at each phase change, read by the API as snapshots.

use serde::Serialize;

use super::CallId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Ringing,
    Answered,
    Ended,
}

impl CallStatus {
    pub fn parse(s: &str) -> Option<CallStatus> {
        match s {
            "ringing" => Some(CallStatus::Ringing),
            "answered" => Some(CallStatus::Answered),
            "ended" => Some(CallStatus::Ended),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CallInfo {
    pub id: CallId,
    /// The SIP Call-ID header.
    pub sip_call_id: String,
    pub direction: &'static str,
    pub source: String,
    pub destination: String,
    /// Signalling peer, `ip:port/transport`.
    pub peer: String,
    pub status: CallStatus,
    /// Why it ended: `remote_bye`, `cancelled`, `ack_timeout`, `local`, `failed`.
    pub end_cause: Option<&'static str>,
    pub tm_create: String,
    pub tm_answer: Option<String>,
    pub tm_end: Option<String>,
    /// Creation order, for newest-first listing and page tokens.
    #[serde(skip)]
    pub sequence: u64,
}
