//! The table of action type names: which run here and which are known from
//! VoIPBIN but refused for now. Names only; must not parse options.

/// Action types this engine executes.
pub const SUPPORTED_TYPES: &[&str] = &[
    "answer",
    "hangup",
    "sleep",
    "stop",
    "goto",
    "branch",
    "condition_variable",
    "condition_datetime",
    "variable_set",
    "talk",
    "play",
    "beep",
    "digits_receive",
    "digits_send",
    "echo",
    "recording_start",
    "recording_stop",
    "block",
    "fetch_flow",
    "fetch",
    "webhook_send",
    "connect",
    "message_send",
    "transfer",
];

/// VoIPBIN action types recognised but not implemented yet. Enabling one
/// means deleting it here and adding its arm to `ActionKind::parse`.
pub const NOT_YET_SUPPORTED_TYPES: &[&str] = &[
    "conference_join",
    "queue_join",
    "external_media_start",
    "external_media_stop",
    "transcribe_start",
    "transcribe_stop",
    "transcribe_recording",
    "amd",
    "call",
    "chatbot_talk",
    "confbridge_join",
    "email_send",
    "mute",
    "stream_echo",
];
