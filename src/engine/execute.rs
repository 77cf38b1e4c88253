//! What one action does, as a pure function of the action and the activeflow's state: the next
//! cursor step, the call request to make, and the `result` recorded in `executed_actions`.
//! No actors, no I/O, no clocks beyond the `now` it is given — so every action is unit-testable.
//! VoIPBIN semantics (bin-flow-manager `executeAction`/`verifyActionType`): a call action in an
//! activeflow without a call is skipped, not an error; a media action on an unanswered inbound
//! call answers it first (Asterisk's playback does; VoIPBIN flows rely on it).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::flow::media::{DigitsReceive, EndOfKey, RecordingStart, DTMF_DIGITS, MAX_DURATION_MS};
use crate::flow::{
    ActionId, ActionKind, DigitsHandle, HangupReason, VariableError, VariableLimits, Variables,
};
use crate::media::{AudioSource, MediaRequest, RecordingId, RecordingRequest};

/// The variable holding the id of the recording a flow started last.
pub const RECORDING_ID: &str = "recording.id";

/// Where the cursor goes after an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The action's `next_id`, or the next element.
    Next,
    /// A jump taken by a control action.
    Jump(ActionId),
    /// Wait this long, then `Next`.
    Wait(Duration),
    /// Wait for the call's media request to finish, then `Next`.
    AwaitMedia,
    /// Collect digits until the length, a terminating key or the timeout, then `Next`.
    AwaitDigits(DigitsReceive),
    /// Wait for an operator's `continue`, then `Next`.
    Block,
    /// Push the actions of the flow with this id (or name) as a sub-stack.
    PushFlow(String),
    /// Ask an HTTP server for actions and push them as a sub-stack.
    Fetch(crate::flow::integration::Fetch),
    /// Send a webhook (waiting for the answer when `sync`), then `Next`.
    Webhook(crate::flow::integration::WebhookSend),
    /// Call the destinations, bridge the first to answer with the caller until one side hangs
    /// up, then `Next` (or the end, when the caller hung up).
    Connect(crate::flow::outbound::Connect),
    /// Send a SIP MESSAGE to each destination; `Next` once every one has its final status.
    MessageSend(crate::flow::outbound::MessageSend),
    /// REFER the caller to the destination; the end once it is transferred, else `Next`.
    Transfer(crate::flow::outbound::Transfer),
    /// Answering-machine detection asked of the call: wait for its verdict, or go on at once
    /// with `async`.
    Amd(crate::flow::amd::Amd),
    /// Wait in the queue with this id until an agent is bridged and hangs up, or the wait
    /// times out, then `Next` (`queue.result` tells which).
    QueueJoin(String),
    /// Place new outbound calls, each with its own activeflow, then `Next` at once.
    Call(crate::flow::call_action::CallAction),
    /// Join this conference room (the id after substitution) and stay until the room lets
    /// the call go (kick, delete), then `Next`; the call's end ends the activeflow.
    ConferenceJoin(String),
    /// The activeflow ends.
    End(crate::engine::EndReason),
}

/// A request to the call that the activeflow holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallRequest {
    Answer,
    Hangup(HangupReason),
    /// The activeflow ends `node_lost` (never from a flow): the call ends `node_lost` too.
    HangupNodeLost,
    Media(MediaRequest),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub step: Step,
    /// Answer the (inbound, unanswered) call before `call` and `step`: the 200 OK goes out
    /// before any media, as VoIPBIN's `talk`/`play`/... do on a ringing call.
    pub answer_first: bool,
    pub call: Option<CallRequest>,
    pub result: Option<Value>,
}

/// The `result` of a call action skipped because the activeflow has no call.
pub const SKIPPED_NO_CALL: &str = "no call";

impl Outcome {
    fn step(step: Step) -> Self {
        Outcome {
            step,
            answer_first: false,
            call: None,
            result: None,
        }
    }

    /// A call action in an activeflow without a call: recorded as skipped, the cursor goes on
    /// (VoIPBIN `verifyActionType` moves to the next action; it never errors).
    pub fn skipped_no_call() -> Self {
        Outcome::step(Step::Next).with_result(json!({ "skipped": SKIPPED_NO_CALL }))
    }

    fn with_result(mut self, result: Value) -> Self {
        self.result = Some(result);
        self
    }
}

/// The mutable state actions may read and change.
pub struct ExecState<'a> {
    pub variables: &'a mut Variables,
    /// How many times each `goto` has jumped.
    pub goto_counts: &'a mut HashMap<ActionId, u32>,
    /// Whether this activeflow holds a call.
    pub has_call: bool,
    /// Whether its call was answered (or an answer was asked for): false only for an inbound
    /// call still ringing, which a media action answers first.
    pub answered: bool,
    pub now: chrono::DateTime<chrono::Utc>,
    /// Caps on what actions may write into `variables`.
    pub limits: VariableLimits,
}

/// Why an action could not run. Every one ends the activeflow with `error` (the flow cannot
/// go on as written), the message in the action's `result`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ActionError {
    /// A variable write over `engine.max_variable_bytes` / `engine.max_variables_bytes`: a
    /// flow growing its variables (`x = "${x}${x}"` in a loop) ends here, not in the
    /// process running out of memory.
    #[error(transparent)]
    Variable(#[from] VariableError),
    /// A `condition_variable` template expanding past `engine.max_variables_bytes`.
    #[error(transparent)]
    Substitute(#[from] crate::flow::SubstituteError),
}

impl ActionError {
    /// The `[engine]` key of the size cap this broke, if it was one.
    pub fn limit(&self) -> Option<&'static str> {
        match self {
            ActionError::Variable(e) => Some(e.limit()),
            ActionError::Substitute(e) => e.limit(),
        }
    }
}

/// Executes one action (already substituted) of identity `id`.
pub fn execute(
    id: ActionId,
    kind: &ActionKind,
    state: &mut ExecState<'_>,
) -> Result<Outcome, ActionError> {
    use crate::engine::EndReason;
    if needs_call(kind) && !state.has_call {
        return Ok(Outcome::skipped_no_call());
    }
    let mut outcome = match kind {
        ActionKind::Answer => Outcome {
            call: Some(CallRequest::Answer),
            ..Outcome::step(Step::Next)
        },
        ActionKind::Hangup { reason } => Outcome {
            call: Some(CallRequest::Hangup(reason.clone())),
            result: Some(json!({ "reason": reason.as_str() })),
            ..Outcome::step(Step::End(EndReason::Completed))
        },
        ActionKind::Sleep { duration_ms } => {
            Outcome::step(Step::Wait(Duration::from_millis(*duration_ms)))
        }
        ActionKind::Stop => Outcome::step(Step::End(EndReason::StopAction)),
        ActionKind::Goto {
            target_id,
            loop_count,
        } => {
            let count = state.goto_counts.entry(id).or_insert(0);
            if *count < *loop_count {
                *count += 1;
                Outcome::step(Step::Jump(*target_id))
                    .with_result(json!({ "target_id": target_id, "jumped": *count }))
            } else {
                Outcome::step(Step::Next)
                    .with_result(json!({ "target_id": null, "jumped": *count }))
            }
        }
        ActionKind::Branch {
            variable,
            target_ids,
            default_target_id,
        } => {
            // The branch consumes its variable, so a loop back to digits_receive starts fresh.
            let value = state.variables.remove(variable).unwrap_or_default();
            let target = target_ids
                .get(&value)
                .or(default_target_id.as_ref())
                .copied();
            let result = json!({ "variable": variable, "value": value, "target_id": target });
            match target {
                Some(t) => Outcome::step(Step::Jump(t)).with_result(result),
                None => Outcome::step(Step::Next).with_result(result),
            }
        }
        ActionKind::ConditionVariable(c) => {
            let actual = c.actual_value(state.variables, state.limits.max_total_bytes)?;
            let holds = c.holds(&actual);
            let result = json!({ "value": actual, "result": holds });
            condition_outcome(holds, c.false_target_id, result)
        }
        ActionKind::ConditionDatetime(c) => {
            let holds = c.evaluate(state.now);
            let result = json!({ "now": state.now.to_rfc3339(), "result": holds });
            condition_outcome(holds, c.false_target_id, result)
        }
        ActionKind::ConditionCallDigits(c) => {
            let digits = state
                .variables
                .get(crate::flow::CALL_DIGITS)
                .unwrap_or_default();
            let holds = c.holds(digits);
            let result = json!({ "value": digits, "result": holds });
            condition_outcome(holds, c.false_target_id, result)
        }
        ActionKind::ConditionCallStatus(c) => {
            let status = state
                .variables
                .get(crate::flow::CALL_STATUS)
                .unwrap_or_default();
            let holds = c.holds(status);
            let result = json!({ "value": status, "result": holds });
            condition_outcome(holds, c.false_target_id, result)
        }
        ActionKind::Empty => Outcome::step(Step::Next),
        ActionKind::VariableSet { key, value } => {
            state
                .variables
                .try_set(key.clone(), value.clone(), &state.limits)?;
            Outcome::step(Step::Next)
        }
        ActionKind::DigitsReceive(d) => Outcome::step(Step::AwaitDigits(d.clone())),
        ActionKind::Talk(t) => media(play(
            vec![AudioSource::Speech {
                text: t.text.clone(),
                language: t.language.clone(),
            }],
            t.digits_handle,
        )),
        ActionKind::Play(p) => media(play(
            p.stream_urls
                .iter()
                .map(|u| AudioSource::Prompt(u.clone()))
                .collect(),
            p.digits_handle,
        )),
        ActionKind::Beep { duration_ms } => media(play(
            vec![AudioSource::Beep {
                duration_ms: *duration_ms,
            }],
            DigitsHandle::Keep,
        )),
        ActionKind::DigitsSend(d) => media(MediaRequest::SendDigits {
            digits: d.digits.clone(),
            duration_ms: d.duration_ms,
            interval_ms: d.interval_ms,
        }),
        ActionKind::Echo(e) => media(MediaRequest::Echo {
            duration: Duration::from_millis(e.duration_ms),
            dtmf: e.dtmf,
        }),
        ActionKind::RecordingStart(r) => {
            let request = recording_request(r, state)?;
            let result = json!({ "recording_id": request.id.to_string() });
            media(MediaRequest::StartRecording(request)).with_result(result)
        }
        ActionKind::RecordingStop => media(MediaRequest::StopRecording),
        ActionKind::Block => Outcome::step(Step::Block),
        ActionKind::FetchFlow { flow_id } => Outcome::step(Step::PushFlow(flow_id.clone())),
        ActionKind::Fetch(f) => Outcome::step(Step::Fetch(f.clone())),
        ActionKind::WebhookSend(w) => Outcome::step(Step::Webhook(w.clone())),
        ActionKind::Connect(c) => Outcome::step(Step::Connect(c.clone())),
        ActionKind::MessageSend(m) => Outcome::step(Step::MessageSend(m.clone())),
        ActionKind::Transfer(t) => Outcome::step(Step::Transfer(t.clone())),
        ActionKind::Amd(a) => super::amd::outcome(a),
        ActionKind::QueueJoin { queue_id } => Outcome::step(Step::QueueJoin(queue_id.clone())),
        ActionKind::Call(c) => Outcome::step(Step::Call(c.clone())),
        ActionKind::ExternalMediaStart(s) => media(super::stream::external_media_start(
            s,
            state.variables,
            &state.limits,
        )?),
        ActionKind::ExternalMediaStop => media(MediaRequest::ExternalMediaStop),
        ActionKind::Mute(d) => media(super::stream::mute(*d, true)),
        ActionKind::Unmute(d) => media(super::stream::mute(*d, false)),
        ActionKind::StreamEcho(e) => media(MediaRequest::Echo {
            duration: Duration::from_millis(e.duration_ms),
            dtmf: e.dtmf,
        }),
        ActionKind::ConferenceJoin(c) | ActionKind::ConfbridgeJoin(c) => {
            Outcome::step(Step::ConferenceJoin(c.conference_id.clone()))
        }
    };
    outcome.answer_first = answers_first(kind) && !state.answered;
    Ok(outcome)
}

/// Actions that act on the activeflow's call: skipped in one without a call (VoIPBIN
/// `MapRequiredMediasByType`: the `rtc` actions). `hangup` included: VoIPBIN moves past it
/// in an `api` activeflow rather than ending it. `sleep` is not (a wait needs no call),
/// unlike VoIPBIN.
pub fn needs_call(kind: &ActionKind) -> bool {
    matches!(
        kind,
        ActionKind::Answer
            | ActionKind::Hangup { .. }
            | ActionKind::DigitsReceive(_)
            | ActionKind::Talk(_)
            | ActionKind::Play(_)
            | ActionKind::Beep { .. }
            | ActionKind::DigitsSend(_)
            | ActionKind::Echo(_)
            | ActionKind::RecordingStart(_)
            | ActionKind::RecordingStop
            | ActionKind::Connect(_)
            | ActionKind::Transfer(_)
            | ActionKind::Amd(_)
            | ActionKind::QueueJoin { .. }
            | ActionKind::ExternalMediaStart(_)
            | ActionKind::ExternalMediaStop
            | ActionKind::Mute(_)
            | ActionKind::Unmute(_)
            | ActionKind::StreamEcho(_)
            | ActionKind::ConferenceJoin(_)
            | ActionKind::ConfbridgeJoin(_)
            // VoIPBIN's action.go maps both to MediaTypeRealTimeCommunication.
            | ActionKind::ConditionCallDigits(_)
            | ActionKind::ConditionCallStatus(_)
    )
}

/// Actions that answer a ringing inbound call before they run (VoIPBIN: media on a call
/// answers it).
fn answers_first(kind: &ActionKind) -> bool {
    matches!(
        kind,
        ActionKind::Talk(_)
            | ActionKind::Play(_)
            | ActionKind::Beep { .. }
            | ActionKind::DigitsReceive(_)
            | ActionKind::Echo(_)
            | ActionKind::Amd(_)
            | ActionKind::QueueJoin { .. }
            | ActionKind::StreamEcho(_)
            | ActionKind::ExternalMediaStart(_)
            | ActionKind::ConferenceJoin(_)
            | ActionKind::ConfbridgeJoin(_)
    )
}

fn play(sources: Vec<AudioSource>, handle: DigitsHandle) -> MediaRequest {
    MediaRequest::Play {
        sources,
        stop_on_digit: handle == DigitsHandle::Next,
    }
}

/// A call-media action: ask the call, then wait for it to finish.
fn media(request: MediaRequest) -> Outcome {
    Outcome {
        call: Some(CallRequest::Media(request)),
        ..Outcome::step(Step::AwaitMedia)
    }
}

/// A new recording's request; its id goes in the `recording.id` variable.
fn recording_request(
    r: &RecordingStart,
    state: &mut ExecState<'_>,
) -> Result<RecordingRequest, VariableError> {
    let id = RecordingId::new();
    state
        .variables
        .try_set(RECORDING_ID, id.to_string(), &state.limits)?;
    let max_s = match r.duration_s {
        0 => MAX_DURATION_MS / 1000,
        s => u64::from(s),
    };
    let end_keys = match r.end_of_key {
        EndOfKey::None => String::new(),
        EndOfKey::Any => DTMF_DIGITS.to_owned(),
        EndOfKey::Key(k) => k.to_string(),
    };
    Ok(RecordingRequest {
        id,
        activeflow_id: state
            .variables
            .get(crate::flow::ACTIVEFLOW_ID)
            .unwrap_or_default()
            .to_owned(),
        max_duration: Duration::from_secs(max_s),
        end_of_silence: (r.end_of_silence_s > 0)
            .then(|| Duration::from_secs(u64::from(r.end_of_silence_s))),
        end_keys,
        beep_start: r.beep_start,
    })
}

fn condition_outcome(holds: bool, false_target: Option<ActionId>, result: Value) -> Outcome {
    match (holds, false_target) {
        (false, Some(t)) => Outcome::step(Step::Jump(t)).with_result(result),
        _ => Outcome::step(Step::Next).with_result(result),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EndReason;
    use crate::flow::Action;
    use chrono::TimeZone;

    struct Fixture {
        vars: Variables,
        gotos: HashMap<ActionId, u32>,
        has_call: bool,
        answered: bool,
        limits: VariableLimits,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                vars: Variables::new(),
                gotos: HashMap::new(),
                has_call: true,
                answered: true,
                limits: VariableLimits::default(),
            }
        }

        fn run(&mut self, action: &Action) -> Result<Outcome, ActionError> {
            let resolved = action
                .substituted(&self.vars, self.limits.max_total_bytes)
                .expect("substituted");
            let kind = resolved.typed().expect("valid action");
            let mut state = ExecState {
                variables: &mut self.vars,
                goto_counts: &mut self.gotos,
                has_call: self.has_call,
                answered: self.answered,
                now: chrono::Utc
                    .with_ymd_and_hms(2026, 11, 26, 10, 30, 0)
                    .unwrap(),
                limits: self.limits,
            };
            execute(resolved.id, &kind, &mut state)
        }
    }

    fn action(kind: &str, option: Value) -> Action {
        Action::new(kind, option)
    }

    #[test]
    fn answer_asks_the_call() {
        let mut f = Fixture::new();
        let out = f.run(&action("answer", json!({}))).unwrap();
        assert_eq!(
            (out.step, out.call, out.answer_first),
            (Step::Next, Some(CallRequest::Answer), false)
        );
    }

    #[test]
    fn hangup_ends_completed_with_reason() {
        let mut f = Fixture::new();
        let out = f.run(&action("hangup", json!({"reason": "busy"}))).unwrap();
        assert_eq!(out.step, Step::End(EndReason::Completed));
        assert_eq!(out.call, Some(CallRequest::Hangup(HangupReason::Busy)));
    }

    /// Every call action in an activeflow without a call (VoIPBIN `verifyActionType`):
    /// recorded as skipped, the cursor goes on; `hangup` too (it does not end the activeflow).
    fn call_actions() -> Vec<Action> {
        vec![
            action("answer", json!({})),
            action("hangup", json!({"reason": "busy"})),
            action("talk", json!({"text": "hi"})),
            action("play", json!({"stream_urls": ["a.wav"]})),
            action("beep", json!({})),
            action("digits_receive", json!({"duration": 1000, "length": 1})),
            action("digits_send", json!({"digits": "1"})),
            action("echo", json!({"duration": 1000})),
            action("recording_start", json!({})),
            action("recording_stop", json!({})),
            action(
                "connect",
                json!({"destinations": [{"type": "tel", "target": "+15550100"}]}),
            ),
            action(
                "transfer",
                json!({"destination": {"type": "sip", "target": "sip:bob@example.com"}}),
            ),
        ]
    }

    #[test]
    fn verify_action_type_skips_call_actions_without_a_call() {
        let mut f = Fixture::new();
        f.has_call = false;
        for a in call_actions() {
            let out = f.run(&a).unwrap_or_else(|e| panic!("{}: {e}", a.kind));
            assert_eq!(out, Outcome::skipped_no_call(), "{}", a.kind);
            assert_eq!(out.result, Some(json!({"skipped": "no call"})));
        }
        assert_eq!(f.vars.get(RECORDING_ID), None, "nothing ran");
        // Actions that need no call still run.
        let out = f.run(&action("sleep", json!({"duration": 5}))).unwrap();
        assert_eq!(out.step, Step::Wait(Duration::from_millis(5)));
        let out = f.run(&action("stop", json!({}))).unwrap();
        assert_eq!(out.step, Step::End(EndReason::StopAction));
    }

    #[test]
    fn call_actions_run_with_a_call() {
        let mut f = Fixture::new();
        for a in call_actions() {
            let out = f.run(&a).unwrap();
            assert_ne!(out, Outcome::skipped_no_call(), "{}", a.kind);
        }
    }

    #[test]
    fn media_actions_answer_a_ringing_call_first() {
        let mut f = Fixture::new();
        f.answered = false;
        for kind in ["talk", "play", "beep", "digits_receive", "echo"] {
            let a = call_actions().into_iter().find(|a| a.kind == kind).unwrap();
            let out = f.run(&a).unwrap();
            assert!(out.answer_first, "{kind} answers first");
            assert_ne!(out.call, Some(CallRequest::Answer), "{kind}");
        }
        for kind in [
            "answer",
            "hangup",
            "digits_send",
            "recording_start",
            "connect",
        ] {
            let a = call_actions().into_iter().find(|a| a.kind == kind).unwrap();
            assert!(!f.run(&a).unwrap().answer_first, "{kind} does not");
        }
        f.answered = true;
        let a = action("talk", json!({"text": "hi"}));
        assert!(!f.run(&a).unwrap().answer_first, "answered already");
    }

    #[test]
    fn sleep_and_stop() {
        let mut f = Fixture::new();
        let out = f.run(&action("sleep", json!({"duration": 300}))).unwrap();
        assert_eq!(out.step, Step::Wait(Duration::from_millis(300)));
        let out = f.run(&action("stop", json!({}))).unwrap();
        assert_eq!(out.step, Step::End(EndReason::StopAction));
    }

    #[test]
    fn goto_jumps_loop_count_times_then_falls_through() {
        let mut f = Fixture::new();
        let target = ActionId::new();
        let g = action(
            "goto",
            json!({"target_id": target.to_string(), "loop_count": 2}),
        );
        assert_eq!(f.run(&g).unwrap().step, Step::Jump(target));
        assert_eq!(f.run(&g).unwrap().step, Step::Jump(target));
        assert_eq!(f.run(&g).unwrap().step, Step::Next);
    }

    #[test]
    fn branch_takes_target_default_or_next_and_consumes_variable() {
        let mut f = Fixture::new();
        let (one, other) = (ActionId::new(), ActionId::new());
        let b = action(
            "branch",
            json!({"target_ids": {"1": one.to_string()}, "default_target_id": other.to_string()}),
        );
        f.vars.set("call.digits", "1");
        let out = f.run(&b).unwrap();
        assert_eq!(out.step, Step::Jump(one));
        assert_eq!(out.result.unwrap()["value"], "1");
        assert_eq!(f.vars.get("call.digits"), None);
        assert_eq!(f.run(&b).unwrap().step, Step::Jump(other));
        let plain = action(
            "branch",
            json!({"variable": "x", "target_ids": {"a": one.to_string()}}),
        );
        assert_eq!(f.run(&plain).unwrap().step, Step::Next);
        f.vars.set("voipbin.x", "a");
        assert_eq!(f.run(&plain).unwrap().step, Step::Jump(one));
    }

    #[test]
    fn condition_variable_jumps_on_false() {
        let mut f = Fixture::new();
        let no = ActionId::new();
        let c = action(
            "condition_variable",
            json!({"condition": ">=", "variable": "n", "value_type": "number",
                   "value_number": 10, "false_target_id": no.to_string()}),
        );
        f.vars.set("n", "12");
        assert_eq!(f.run(&c).unwrap().step, Step::Next);
        f.vars.set("n", "3");
        assert_eq!(f.run(&c).unwrap().step, Step::Jump(no));
    }

    #[test]
    fn condition_datetime_uses_given_now() {
        let mut f = Fixture::new();
        let no = ActionId::new();
        let c = action(
            "condition_datetime",
            json!({"condition": ">=", "hour": 9, "false_target_id": no.to_string()}),
        );
        assert_eq!(f.run(&c).unwrap().step, Step::Next);
        let late = action(
            "condition_datetime",
            json!({"condition": ">=", "hour": 18, "false_target_id": no.to_string()}),
        );
        assert_eq!(f.run(&late).unwrap().step, Step::Jump(no));
    }

    #[test]
    fn variable_set_substitutes() {
        let mut f = Fixture::new();
        f.vars.set("call.source.target", "+1555");
        f.run(&action(
            "variable_set",
            json!({"key": "who", "value": "from ${call.source.target}"}),
        ))
        .unwrap();
        assert_eq!(f.vars.get("who"), Some("from +1555"));
    }

    #[test]
    fn variable_set_over_a_cap_is_an_error_naming_it() {
        let mut f = Fixture::new();
        f.limits = VariableLimits {
            max_value_bytes: 8,
            max_total_bytes: 20,
        };
        f.vars.set("x", "abcd");
        let double = action("variable_set", json!({"key": "x", "value": "${x}${x}"}));
        f.run(&double).unwrap();
        assert_eq!(f.vars.get("x"), Some("abcdabcd"));
        let e = f.run(&double).unwrap_err();
        assert_eq!(
            e.to_string(),
            "variable x would be 16 bytes, over engine.max_variable_bytes 8"
        );
        assert_eq!(f.vars.get("x"), Some("abcdabcd"), "nothing written");
        f.run(&action(
            "variable_set",
            json!({"key": "y", "value": "12345678"}),
        ))
        .unwrap();
        let e = f
            .run(&action("variable_set", json!({"key": "z", "value": "12"})))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "variable z would bring the variables to 21 bytes, over engine.max_variables_bytes 20"
        );
    }

    #[test]
    fn a_condition_template_is_expanded_once() {
        let mut f = Fixture::new();
        let no = ActionId::new();
        let c = action(
            "condition_variable",
            json!({"condition": ">=", "variable": "${n}", "value_type": "number",
                   "value_number": 10, "false_target_id": no.to_string()}),
        );
        f.vars.set("n", "12");
        let out = f.run(&c).unwrap();
        assert_eq!(out.step, Step::Next, "{:?}", out.result);
        assert_eq!(out.result.unwrap()["value"], "12");
        // A value naming other variables is data: compared as written, never looked up.
        f.vars.set("who", "${n}${n}");
        f.vars.set("one", "x");
        let c = action(
            "condition_variable",
            json!({"condition": "==", "variable": "${who}", "value_type": "string",
                   "value_string": "${n}${n}", "false_target_id": no.to_string()}),
        );
        let out = f.run(&c).unwrap();
        assert_eq!(out.result.unwrap()["value"], "${n}${n}");
        let c = action(
            "condition_variable",
            json!({"condition": "==", "variable": "${who}", "value_type": "string",
                   "value_string": "x", "false_target_id": no.to_string()}),
        );
        f.limits.max_total_bytes = 3;
        let e = f.run(&c).unwrap_err();
        assert!(
            e.to_string().contains("over engine.max_variables_bytes 3"),
            "{e}"
        );
    }

    /// bin-flow-manager actionhandle.go actionHandleConditionCallDigits: on to the next action
    /// when `call.digits` is `length` long or holds `key`, else to `false_target_id`. The
    /// digits stay (unlike `branch`). Without a call it is skipped, as VoIPBIN's
    /// verifyActionType skips it (MediaTypeRealTimeCommunication).
    #[test]
    fn condition_call_digits_reads_call_digits() {
        let mut f = Fixture::new();
        f.has_call = false;
        let skipped = f
            .run(&action("condition_call_digits", json!({"length": 1})))
            .unwrap();
        assert_eq!(skipped.result, Some(json!({"skipped": "no call"})));
        f.has_call = true;
        let no = ActionId::new();
        let c = action(
            "condition_call_digits",
            json!({"length": 3, "key": "#", "false_target_id": no.to_string()}),
        );
        assert_eq!(
            f.run(&c).unwrap().step,
            Step::Jump(no),
            "unset reads as empty"
        );
        f.vars.set("voipbin.call.digits", "12");
        let out = f.run(&c).unwrap();
        assert_eq!(out.step, Step::Jump(no));
        assert_eq!(out.result, Some(json!({"value": "12", "result": false})));
        f.vars.set("call.digits", "1#");
        assert_eq!(f.run(&c).unwrap().step, Step::Next);
        f.vars.set("call.digits", "123");
        assert_eq!(f.run(&c).unwrap().step, Step::Next);
        assert_eq!(f.vars.get("call.digits"), Some("123"));
        let no_false_target = action("condition_call_digits", json!({"length": 9}));
        assert_eq!(f.run(&no_false_target).unwrap().step, Step::Next);
    }

    /// actionHandleConditionCallStatus: on when the call's status equals `status`.
    #[test]
    fn condition_call_status_reads_call_status() {
        let mut f = Fixture::new();
        let no = ActionId::new();
        let c = action(
            "condition_call_status",
            json!({"status": "progressing", "false_target_id": no.to_string()}),
        );
        assert_eq!(
            f.run(&c).unwrap().step,
            Step::Jump(no),
            "unset is no status"
        );
        f.vars.set(crate::flow::CALL_STATUS, "ringing");
        assert_eq!(f.run(&c).unwrap().step, Step::Jump(no));
        f.vars.set(crate::flow::CALL_STATUS, "progressing");
        let out = f.run(&c).unwrap();
        assert_eq!(out.step, Step::Next);
        assert_eq!(
            out.result,
            Some(json!({"value": "progressing", "result": true}))
        );
    }

    /// VoIPBIN's `empty` moves on and asks nothing of the call.
    #[test]
    fn empty_moves_on() {
        let mut f = Fixture::new();
        f.has_call = false;
        let out = f.run(&action("empty", json!({}))).unwrap();
        assert_eq!((out.step, out.call, out.result), (Step::Next, None, None));
    }
}
