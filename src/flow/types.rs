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
    "condition_call_digits",
    "condition_call_status",
    "empty",
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
    "amd",
    "queue_join",
    "call",
    "external_media_start",
    "external_media_stop",
    "mute",
    "unmute",
    "stream_echo",
    "conference_join",
    "confbridge_join",
];

/// VoIPBIN action types recognised but not implemented yet: every type of
/// bin-flow-manager models/action/action.go this engine does not run, plus `chatbot_talk`
/// (older flows; VoIPBIN's docs now name `ai_talk`). Enabling one means deleting it here and
/// adding its arm to `ActionKind::parse`.
pub const NOT_YET_SUPPORTED_TYPES: &[&str] = &[
    "ai_summary",
    "ai_talk",
    "ai_task",
    "case_create",
    "chatbot_talk",
    "conversation_send",
    "email_send",
    "transcribe_recording",
    "transcribe_start",
    "transcribe_stop",
];
