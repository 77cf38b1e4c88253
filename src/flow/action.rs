//! The typed view of an action (`ActionKind`). Turns a raw `option` into
//! typed fields; must not check jump targets against a list (validate.rs)
//! or execute anything.

use std::collections::BTreeMap;

use serde_json::Value;

use super::call_action::CallAction;
use super::call_condition::{ConditionCallDigits, ConditionCallStatus};
use super::condition::{ConditionDatetime, ConditionVariable};
use super::error::FlowError;
use super::hangup::HangupReason;
use super::id::ActionId;
use super::integration::{Fetch, WebhookSend};
use super::media::{self, DigitsReceive, DigitsSend, Echo, Play, RecordingStart, Talk};
use super::options::{parse_action_id, path, Opt};
use super::outbound::{Connect, MessageSend, Transfer};
use super::types::{NOT_YET_SUPPORTED_TYPES, SUPPORTED_TYPES};
use super::variables::CALL_DIGITS;

/// An action's type together with its typed option.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionKind {
    Answer,
    Hangup {
        reason: HangupReason,
    },
    Sleep {
        duration_ms: u64,
    },
    Stop,
    Goto {
        target_id: ActionId,
        loop_count: u32,
    },
    Branch {
        variable: String,
        target_ids: BTreeMap<String, ActionId>,
        default_target_id: Option<ActionId>,
    },
    ConditionVariable(ConditionVariable),
    ConditionDatetime(ConditionDatetime),
    /// VoIPBIN's deprecated digit test on `call.digits`.
    ConditionCallDigits(ConditionCallDigits),
    /// VoIPBIN's deprecated test of `call.status`.
    ConditionCallStatus(ConditionCallStatus),
    /// Does nothing; the cursor moves on (VoIPBIN's `empty`).
    Empty,
    VariableSet {
        key: String,
        value: String,
    },
    Talk(Talk),
    Play(Play),
    Beep {
        duration_ms: u32,
    },
    DigitsReceive(DigitsReceive),
    DigitsSend(DigitsSend),
    Echo(Echo),
    RecordingStart(RecordingStart),
    RecordingStop,
    /// Waits for `POST /v1/activeflows/{id}/continue`.
    Block,
    /// Asks an HTTP server for actions and pushes them as a sub-stack.
    Fetch(Fetch),
    WebhookSend(WebhookSend),
    /// Calls the destinations and bridges the first to answer with the caller.
    Connect(Connect),
    /// Sends a SIP MESSAGE to each destination.
    MessageSend(MessageSend),
    /// Transfers the caller elsewhere by REFER (blind transfer, RFC 3515).
    Transfer(Transfer),
    /// Answering-machine detection on the call's received audio.
    Amd(super::amd::Amd),
    /// Waits in a queue (`/v1/queues`) until an agent answers and is bridged.
    QueueJoin {
        /// The queue's id (or a `${...}` reference resolved when the action runs).
        queue_id: String,
    },
    /// Places new outbound calls, each running its own flow; moves on at once.
    Call(CallAction),
    /// Joins a conference room until kicked, the room is deleted or the call ends.
    ConferenceJoin(super::conference::ConferenceJoin),
    /// VoIPBIN's `confbridge_join`: the same join (option `confbridge_id`).
    ConfbridgeJoin(super::conference::ConferenceJoin),
    /// Pushes a registered flow's actions as a sub-stack.
    FetchFlow {
        /// The flow's id (or a `${...}` reference resolved when the action runs).
        flow_id: String,
    },
    /// Streams the call's audio to an external host and plays what it sends back.
    ExternalMediaStart(super::stream::ExternalMediaStart),
    ExternalMediaStop,
    Mute(super::stream::Direction),
    Unmute(super::stream::Direction),
    /// `echo` under VoIPBIN's other name (180 s by default).
    StreamEcho(Echo),
}

impl ActionKind {
    /// Parses `option` for action type `kind`. Errors are `FlowError::Field`
    /// with fields like `type` or `option.duration`.
    pub fn parse(kind: &str, option: &Value) -> Result<Self, FlowError> {
        // Type first: an unsupported type should say so, not complain
        // about its option.
        if !SUPPORTED_TYPES.contains(&kind) {
            let message = if NOT_YET_SUPPORTED_TYPES.contains(&kind) {
                format!(r#"action type "{kind}" is not supported by this engine yet"#)
            } else {
                format!(r#"unknown action type "{kind}""#)
            };
            return Err(FlowError::field("type", message));
        }
        let o = Opt::new(option)?;
        Ok(match kind {
            "answer" => Self::Answer,
            "hangup" => Self::Hangup {
                reason: HangupReason::parse(o.str("reason")?.unwrap_or_default()),
            },
            "sleep" => Self::Sleep {
                duration_ms: o.u64_req("duration")?,
            },
            "stop" => Self::Stop,
            "goto" => Self::Goto {
                target_id: o.action_id_req("target_id")?,
                loop_count: o.u32("loop_count")?.unwrap_or(0),
            },
            "branch" => Self::Branch {
                variable: match o.str("variable")? {
                    None | Some("") => CALL_DIGITS.to_owned(),
                    Some(v) => v.to_owned(),
                },
                target_ids: target_ids(&o)?,
                default_target_id: o.action_id("default_target_id")?,
            },
            "condition_variable" => Self::ConditionVariable(ConditionVariable::from_opt(&o)?),
            "condition_datetime" => Self::ConditionDatetime(ConditionDatetime::from_opt(&o)?),
            "condition_call_digits" => {
                Self::ConditionCallDigits(ConditionCallDigits::from_opt(&o)?)
            }
            "condition_call_status" => {
                Self::ConditionCallStatus(ConditionCallStatus::from_opt(&o)?)
            }
            "empty" => Self::Empty,
            "variable_set" => Self::VariableSet {
                key: o.str_req("key")?.to_owned(),
                value: o.str("value")?.unwrap_or_default().to_owned(),
            },
            "talk" => Self::Talk(Talk::from_opt(&o)?),
            "play" => Self::Play(Play::from_opt(&o)?),
            "beep" => Self::Beep {
                duration_ms: media::beep_duration(&o)?,
            },
            "digits_receive" => Self::DigitsReceive(DigitsReceive::from_opt(&o)?),
            "digits_send" => Self::DigitsSend(DigitsSend::from_opt(&o)?),
            "echo" => Self::Echo(Echo::from_opt(&o)?),
            "recording_start" => Self::RecordingStart(RecordingStart::from_opt(&o)?),
            "recording_stop" => Self::RecordingStop,
            "block" => Self::Block,
            "fetch" => Self::Fetch(Fetch::from_opt(&o)?),
            "webhook_send" => Self::WebhookSend(WebhookSend::from_opt(&o)?),
            "connect" => Self::Connect(Connect::from_opt(&o)?),
            "message_send" => Self::MessageSend(MessageSend::from_opt(&o)?),
            "transfer" => Self::Transfer(Transfer::from_opt(&o)?),
            "amd" => Self::Amd(super::amd::Amd::from_opt(&o)?),
            "queue_join" => Self::QueueJoin {
                queue_id: super::queue_join::queue_id(&o)?,
            },
            "call" => Self::Call(CallAction::from_opt(&o)?),
            "external_media_start" => {
                Self::ExternalMediaStart(super::stream::ExternalMediaStart::from_opt(&o)?)
            }
            "external_media_stop" => Self::ExternalMediaStop,
            "mute" => Self::Mute(super::stream::mute_direction(&o)?),
            "unmute" => Self::Unmute(super::stream::mute_direction(&o)?),
            "stream_echo" => Self::StreamEcho(Echo::from_opt(&o)?),
            "conference_join" => Self::ConferenceJoin(super::conference::ConferenceJoin::from_opt(
                &o,
                "conference_id",
            )?),
            "confbridge_join" => Self::ConfbridgeJoin(super::conference::ConferenceJoin::from_opt(
                &o,
                "confbridge_id",
            )?),
            "fetch_flow" => {
                let flow_id = o.str_req("flow_id")?;
                if !flow_id.contains("${") && flow_id.parse::<super::FlowId>().is_err() {
                    return Err(FlowError::field(
                        path("flow_id"),
                        "must be a flow id (uuid)",
                    ));
                }
                Self::FetchFlow {
                    flow_id: flow_id.to_owned(),
                }
            }
            // Unreachable while SUPPORTED_TYPES and the arms agree; kept as
            // an error rather than a panic so a mismatch is reported.
            other => {
                return Err(FlowError::field(
                    "type",
                    format!(r#"action type "{other}" has no parser"#),
                ))
            }
        })
    }

    /// The JSON `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Answer => "answer",
            Self::Hangup { .. } => "hangup",
            Self::Sleep { .. } => "sleep",
            Self::Stop => "stop",
            Self::Goto { .. } => "goto",
            Self::Branch { .. } => "branch",
            Self::ConditionVariable(_) => "condition_variable",
            Self::ConditionDatetime(_) => "condition_datetime",
            Self::ConditionCallDigits(_) => "condition_call_digits",
            Self::ConditionCallStatus(_) => "condition_call_status",
            Self::Empty => "empty",
            Self::VariableSet { .. } => "variable_set",
            Self::Talk(_) => "talk",
            Self::Play(_) => "play",
            Self::Beep { .. } => "beep",
            Self::DigitsReceive(_) => "digits_receive",
            Self::DigitsSend(_) => "digits_send",
            Self::Echo(_) => "echo",
            Self::RecordingStart(_) => "recording_start",
            Self::RecordingStop => "recording_stop",
            Self::Block => "block",
            Self::Fetch(_) => "fetch",
            Self::WebhookSend(_) => "webhook_send",
            Self::FetchFlow { .. } => "fetch_flow",
            Self::Connect(_) => "connect",
            Self::MessageSend(_) => "message_send",
            Self::Transfer(_) => "transfer",
            Self::Amd(_) => "amd",
            Self::QueueJoin { .. } => "queue_join",
            Self::Call(_) => "call",
            Self::ExternalMediaStart(_) => "external_media_start",
            Self::ExternalMediaStop => "external_media_stop",
            Self::Mute(_) => "mute",
            Self::Unmute(_) => "unmute",
            Self::StreamEcho(_) => "stream_echo",
            Self::ConferenceJoin(_) => "conference_join",
            Self::ConfbridgeJoin(_) => "confbridge_join",
        }
    }

    /// Every jump target in the option with its field path, e.g.
    /// `("option.target_ids.1", id)`, in a stable order.
    pub fn jump_targets(&self) -> Vec<(String, ActionId)> {
        match self {
            Self::Goto { target_id, .. } => vec![(path("target_id"), *target_id)],
            Self::Branch {
                target_ids,
                default_target_id,
                ..
            } => target_ids
                .iter()
                .map(|(k, id)| (format!("option.target_ids.{k}"), *id))
                .chain(default_target_id.map(|id| (path("default_target_id"), id)))
                .collect(),
            Self::ConditionVariable(ConditionVariable {
                false_target_id, ..
            })
            | Self::ConditionDatetime(ConditionDatetime {
                false_target_id, ..
            })
            | Self::ConditionCallDigits(ConditionCallDigits {
                false_target_id, ..
            })
            | Self::ConditionCallStatus(ConditionCallStatus {
                false_target_id, ..
            }) => false_target_id
                .map(|id| (path("false_target_id"), id))
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn target_ids(o: &Opt<'_>) -> Result<BTreeMap<String, ActionId>, FlowError> {
    let map = match o.raw("target_ids") {
        None => return Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(FlowError::field(
                path("target_ids"),
                "must be an object of value → action id",
            ))
        }
    };
    let mut out = BTreeMap::new();
    for (key, v) in map {
        let field = format!("option.target_ids.{key}");
        let s = v
            .as_str()
            .ok_or_else(|| FlowError::field(&field, "must be a uuid string"))?;
        // A nil entry would jump nowhere; refuse rather than guess.
        let id = parse_action_id(&field, s)?
            .ok_or_else(|| FlowError::field(&field, "must not be the nil uuid"))?;
        out.insert(key.clone(), id);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T1: &str = "11111111-1111-4111-8111-111111111111";
    const T2: &str = "22222222-2222-4222-8222-222222222222";

    fn id(s: &str) -> ActionId {
        s.parse().unwrap()
    }

    fn field_of(kind: &str, option: Value) -> String {
        match ActionKind::parse(kind, &option).unwrap_err() {
            FlowError::Field { field, .. } => field,
            e => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn simple_kinds() {
        assert_eq!(
            ActionKind::parse("answer", &json!({})).unwrap(),
            ActionKind::Answer
        );
        assert_eq!(
            ActionKind::parse("stop", &Value::Null).unwrap(),
            ActionKind::Stop
        );
        assert_eq!(
            ActionKind::parse("sleep", &json!({"duration": 1500})).unwrap(),
            ActionKind::Sleep { duration_ms: 1500 }
        );
        assert_eq!(
            ActionKind::parse("variable_set", &json!({"key": "a", "value": "${b}"})).unwrap(),
            ActionKind::VariableSet {
                key: "a".into(),
                value: "${b}".into()
            }
        );
    }

    #[test]
    fn hangup_option() {
        let k = ActionKind::parse("hangup", &json!({"reason": "busy"})).unwrap();
        assert_eq!(
            k,
            ActionKind::Hangup {
                reason: HangupReason::Busy
            }
        );
        let k = ActionKind::parse("hangup", &json!({})).unwrap();
        assert_eq!(
            k,
            ActionKind::Hangup {
                reason: HangupReason::Normal
            }
        );
    }

    #[test]
    fn goto_and_branch() {
        let k = ActionKind::parse("goto", &json!({"target_id": T1})).unwrap();
        assert_eq!(
            k,
            ActionKind::Goto {
                target_id: id(T1),
                loop_count: 0
            }
        );
        assert_eq!(
            k.jump_targets(),
            vec![("option.target_id".to_owned(), id(T1))]
        );
        let k = ActionKind::parse("goto", &json!({"target_id": T1, "loop_count": 3})).unwrap();
        assert_eq!(
            k,
            ActionKind::Goto {
                target_id: id(T1),
                loop_count: 3
            }
        );

        let k = ActionKind::parse(
            "branch",
            &json!({"target_ids": {"1": T1, "2": T2}, "default_target_id": T2}),
        )
        .unwrap();
        let ActionKind::Branch {
            variable,
            target_ids,
            default_target_id,
        } = &k
        else {
            panic!("{k:?}")
        };
        assert_eq!(variable, "call.digits");
        assert_eq!(target_ids.get("2"), Some(&id(T2)));
        assert_eq!(*default_target_id, Some(id(T2)));
        let fields: Vec<String> = k.jump_targets().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "option.target_ids.1",
                "option.target_ids.2",
                "option.default_target_id"
            ]
        );
        let k = ActionKind::parse("branch", &json!({"variable": "x"})).unwrap();
        assert!(matches!(k, ActionKind::Branch { ref variable, .. } if variable == "x"));
        assert!(k.jump_targets().is_empty());
        assert_eq!(k.type_name(), "branch");
    }

    #[test]
    fn conditions_expose_false_target() {
        let k = ActionKind::parse(
            "condition_variable",
            &json!({"condition": "==", "variable": "x", "false_target_id": T1}),
        )
        .unwrap();
        assert_eq!(
            k.jump_targets(),
            vec![("option.false_target_id".to_owned(), id(T1))]
        );
        let k =
            ActionKind::parse("condition_datetime", &json!({"condition": ">", "hour": 8})).unwrap();
        assert!(k.jump_targets().is_empty());
        for (kind, option) in [
            (
                "condition_call_digits",
                json!({"length": 1, "false_target_id": T1}),
            ),
            (
                "condition_call_status",
                json!({"status": "ringing", "false_target_id": T1}),
            ),
        ] {
            let k = ActionKind::parse(kind, &option).unwrap();
            assert_eq!(k.type_name(), kind);
            assert_eq!(
                k.jump_targets(),
                vec![("option.false_target_id".to_owned(), id(T1))]
            );
        }
        assert_eq!(
            field_of("condition_call_status", json!({"status": "up"})),
            "option.status"
        );
    }

    /// VoIPBIN's `empty` (bin-flow-manager execute.go: "Move to the next action").
    #[test]
    fn empty_is_a_no_op_kind() {
        let k = ActionKind::parse("empty", &json!({})).unwrap();
        assert_eq!((k.type_name(), k.jump_targets()), ("empty", Vec::new()));
    }

    /// Every type of bin-flow-manager models/action/action.go is either run here or refused
    /// as "not supported by this engine yet", never "unknown".
    #[test]
    fn every_voipbin_type_is_known() {
        const VOIPBIN_TYPES: &[&str] = &[
            "amd",
            "answer",
            "ai_summary",
            "ai_talk",
            "ai_task",
            "beep",
            "block",
            "branch",
            "call",
            "case_create",
            "condition_call_digits",
            "condition_call_status",
            "condition_datetime",
            "condition_variable",
            "confbridge_join",
            "conference_join",
            "connect",
            "conversation_send",
            "digits_receive",
            "digits_send",
            "echo",
            "email_send",
            "empty",
            "external_media_start",
            "external_media_stop",
            "fetch",
            "fetch_flow",
            "goto",
            "hangup",
            "message_send",
            "mute",
            "play",
            "queue_join",
            "recording_start",
            "recording_stop",
            "sleep",
            "stop",
            "stream_echo",
            "talk",
            "transcribe_start",
            "transcribe_stop",
            "transcribe_recording",
            "variable_set",
            "webhook_send",
        ];
        for t in VOIPBIN_TYPES {
            let known = SUPPORTED_TYPES.contains(t) || NOT_YET_SUPPORTED_TYPES.contains(t);
            assert!(known, "{t}");
            if let Err(e) = ActionKind::parse(t, &json!({})) {
                assert!(!e.to_string().contains("unknown action type"), "{t}: {e}");
            }
        }
        for t in [
            "ai_talk",
            "ai_summary",
            "ai_task",
            "case_create",
            "conversation_send",
        ] {
            let e = ActionKind::parse(t, &json!({})).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(r#"type: action type "{t}" is not supported by this engine yet"#)
            );
        }
    }

    #[test]
    fn type_errors() {
        let k = ActionKind::parse("fetch_flow", &json!({"flow_id": T1})).unwrap();
        assert_eq!(k, ActionKind::FetchFlow { flow_id: T1.into() });
        assert_eq!(
            field_of("fetch_flow", json!({"flow_id": "menu"})),
            "option.flow_id"
        );
        assert_eq!(field_of("fetch_flow", json!({})), "option.flow_id");
        assert!(ActionKind::parse("fetch_flow", &json!({"flow_id": "${next}"})).is_ok());
        assert_eq!(
            ActionKind::parse("block", &Value::Null).unwrap(),
            ActionKind::Block
        );
        let e = ActionKind::parse("ai_talk", &json!({})).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"type: action type "ai_talk" is not supported by this engine yet"#
        );
        assert_eq!(
            field_of("conference_join", json!({"conference_id": "a b"})),
            "option.conference_id"
        );
        assert_eq!(
            field_of("confbridge_join", json!({})),
            "option.confbridge_id"
        );
        let e = ActionKind::parse("foo", &json!({})).unwrap_err();
        assert_eq!(e.to_string(), r#"type: unknown action type "foo""#);
        for t in NOT_YET_SUPPORTED_TYPES {
            assert!(!SUPPORTED_TYPES.contains(t));
            assert_eq!(field_of(t, json!({})), "type");
        }
    }

    #[test]
    fn option_errors_name_the_field() {
        assert_eq!(field_of("answer", json!("x")), "option");
        assert_eq!(field_of("sleep", json!({})), "option.duration");
        assert_eq!(
            field_of("sleep", json!({"duration": "5"})),
            "option.duration"
        );
        assert_eq!(
            field_of("sleep", json!({"duration": -5})),
            "option.duration"
        );
        assert_eq!(field_of("hangup", json!({"reason": 1})), "option.reason");
        assert_eq!(field_of("goto", json!({})), "option.target_id");
        assert_eq!(
            field_of("goto", json!({"target_id": "nope"})),
            "option.target_id"
        );
        assert_eq!(
            field_of(
                "goto",
                json!({"target_id": T1, "loop_count": 5_000_000_000u64})
            ),
            "option.loop_count"
        );
        assert_eq!(
            field_of("branch", json!({"variable": 1})),
            "option.variable"
        );
        assert_eq!(
            field_of("branch", json!({"target_ids": []})),
            "option.target_ids"
        );
        assert_eq!(
            field_of("branch", json!({"target_ids": {"1": 5}})),
            "option.target_ids.1"
        );
        assert_eq!(
            field_of(
                "branch",
                json!({"target_ids": {"9": "00000000-0000-0000-0000-000000000000"}})
            ),
            "option.target_ids.9"
        );
        assert_eq!(
            field_of("branch", json!({"default_target_id": "x"})),
            "option.default_target_id"
        );
        assert_eq!(
            field_of("variable_set", json!({"value": "v"})),
            "option.key"
        );
        assert_eq!(
            field_of("variable_set", json!({"key": "k", "value": 3})),
            "option.value"
        );
    }
}
