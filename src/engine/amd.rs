//! The `amd` action's pure parts: the analysis parameters a flow's overrides make, the outcome
//! that asks the call's media session to detect, and what a verdict does (the `amd.result` and
//! `amd.reason` variables; hang up on a machine when asked). No actors, no I/O.

use serde_json::{json, Value};

use super::execute::{CallRequest, Outcome, Step};
use crate::flow::amd::{Amd, AmdOverrides, MachineHandle};
use crate::media::amd::AmdParams;
use crate::media::MediaRequest;

/// The variable holding `human`, `machine` or `notsure`.
pub const AMD_RESULT: &str = "amd.result";
/// The variable holding why (`humanspeech`, `longgreeting`, `maxwords`, `initialsilence`, ...).
pub const AMD_REASON: &str = "amd.reason";

/// The engine's defaults with the flow's overrides.
pub fn params(o: &AmdOverrides) -> AmdParams {
    let d = AmdParams::default();
    AmdParams {
        initial_silence_ms: o.initial_silence.unwrap_or(d.initial_silence_ms),
        greeting_ms: o.greeting.unwrap_or(d.greeting_ms),
        after_greeting_silence_ms: o
            .after_greeting_silence
            .unwrap_or(d.after_greeting_silence_ms),
        total_analysis_time_ms: o.total_analysis_time.unwrap_or(d.total_analysis_time_ms),
        min_word_length_ms: o.min_word_length.unwrap_or(d.min_word_length_ms),
        between_words_silence_ms: o
            .between_words_silence
            .unwrap_or(d.between_words_silence_ms),
        maximum_number_of_words: o
            .maximum_number_of_words
            .unwrap_or(d.maximum_number_of_words),
        maximum_word_length_ms: o.maximum_word_length.unwrap_or(d.maximum_word_length_ms),
        silence_threshold: o.silence_threshold.unwrap_or(d.silence_threshold),
    }
}

/// The action's outcome: detection asked of the call; the activeflow waits for the verdict
/// or, with `async`, goes on at once.
pub fn outcome(a: &Amd) -> Outcome {
    let p = params(&a.overrides);
    let mut result = json!({
        "async": a.run_async,
        "machine_handle": match a.machine_handle {
            MachineHandle::Continue => "continue",
            MachineHandle::Hangup => "hangup",
        },
    });
    if a.run_async {
        result["parameters"] = parameters_json(&p);
    }
    Outcome {
        step: Step::Amd(*a),
        answer_first: false,
        call: Some(CallRequest::Media(MediaRequest::Amd(p))),
        result: Some(result),
    }
}

fn parameters_json(p: &AmdParams) -> Value {
    json!({
        "initial_silence": p.initial_silence_ms,
        "greeting": p.greeting_ms,
        "after_greeting_silence": p.after_greeting_silence_ms,
        "total_analysis_time": p.total_analysis_time_ms,
        "min_word_length": p.min_word_length_ms,
        "between_words_silence": p.between_words_silence_ms,
        "maximum_number_of_words": p.maximum_number_of_words,
        "maximum_word_length": p.maximum_word_length_ms,
        "silence_threshold": p.silence_threshold,
    })
}

/// What a finished detection does to the activeflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `amd.result`: `human`, `machine`, `notsure`; `notsure` when detection failed.
    pub result: String,
    /// `amd.reason`; for a failed detection, `error`.
    pub reason: String,
    /// Hang up now (a machine, with `machine_handle: hangup`).
    pub hangup: bool,
}

/// Reads the media session's answer (`{"result": ..., "reason": ..., timings}`, or an error).
pub fn verdict(answer: &Result<Value, String>, handle: MachineHandle) -> Verdict {
    match answer {
        Ok(v) => {
            let field = |k: &str| v[k].as_str().unwrap_or("notsure").to_owned();
            let result = field("result");
            Verdict {
                hangup: result == "machine" && handle == MachineHandle::Hangup,
                reason: v["reason"].as_str().unwrap_or("error").to_owned(),
                result,
            }
        }
        Err(_) => Verdict {
            result: "notsure".into(),
            reason: "error".into(),
            hangup: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_defaults_one_by_one() {
        let p = params(&AmdOverrides {
            greeting: Some(2000),
            maximum_number_of_words: Some(5),
            ..AmdOverrides::default()
        });
        assert_eq!(
            p,
            AmdParams {
                greeting_ms: 2000,
                maximum_number_of_words: 5,
                ..AmdParams::default()
            }
        );
    }

    #[test]
    fn machine_hangs_up_only_when_asked() {
        let machine = Ok(json!({"result": "machine", "reason": "longgreeting"}));
        let v = verdict(&machine, MachineHandle::Hangup);
        assert_eq!(
            (v.result.as_str(), v.reason.as_str(), v.hangup),
            ("machine", "longgreeting", true)
        );
        assert!(!verdict(&machine, MachineHandle::Continue).hangup);
        let human = Ok(json!({"result": "human", "reason": "humanspeech"}));
        assert!(!verdict(&human, MachineHandle::Hangup).hangup);
        let failed = verdict(&Err("the call ended".into()), MachineHandle::Hangup);
        assert_eq!((failed.result.as_str(), failed.hangup), ("notsure", false));
    }

    /// Through `execute`: skipped without a call (VoIPBIN verifyActionType), and a ringing
    /// inbound call is answered first (detection listens after answer).
    #[test]
    fn execute_skips_it_without_a_call_and_answers_first() {
        use crate::engine::execute::{execute, ExecState};
        use crate::flow::{ActionId, ActionKind, VariableLimits, Variables};
        let kind = ActionKind::parse("amd", &json!({"async": true})).unwrap();
        let (mut variables, mut goto_counts) = (Variables::new(), Default::default());
        let mut state = ExecState {
            variables: &mut variables,
            goto_counts: &mut goto_counts,
            has_call: false,
            answered: false,
            now: chrono::Utc::now(),
            limits: VariableLimits::default(),
        };
        let skipped = execute(ActionId::new(), &kind, &mut state).unwrap();
        assert_eq!(skipped, Outcome::skipped_no_call());
        state.has_call = true;
        let o = execute(ActionId::new(), &kind, &mut state).unwrap();
        assert!(o.answer_first);
        assert!(matches!(
            o.step,
            Step::Amd(Amd {
                run_async: true,
                ..
            })
        ));
    }

    #[test]
    fn the_outcome_asks_the_call() {
        let a = Amd {
            machine_handle: MachineHandle::Hangup,
            run_async: true,
            overrides: AmdOverrides::default(),
        };
        let o = outcome(&a);
        assert_eq!(o.step, Step::Amd(a));
        assert_eq!(
            o.call,
            Some(CallRequest::Media(MediaRequest::Amd(AmdParams::default())))
        );
        assert_eq!(o.result.unwrap()["parameters"]["greeting"], 1500);
    }
}
