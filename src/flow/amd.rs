//! Typed options of the `amd` action (answering-machine detection): VoIPBIN's `machine_handle`
//! and `async`, plus optional overrides of the analysis parameters (Asterisk amd.conf names, in
//! ms), each bounded. Parses only; must not run a detector or touch a call.

use super::error::FlowError;
use super::options::{path, Opt};

/// What to do when the far end is a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MachineHandle {
    /// Set the variables and go on (the flow can `branch` on `amd.result`).
    #[default]
    Continue,
    /// Hang up the call (the activeflow ends, `completed`).
    Hangup,
}

/// The analysis parameters a flow may override; `None` = the engine's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AmdOverrides {
    pub initial_silence: Option<u32>,
    pub greeting: Option<u32>,
    pub after_greeting_silence: Option<u32>,
    pub total_analysis_time: Option<u32>,
    pub min_word_length: Option<u32>,
    pub between_words_silence: Option<u32>,
    pub maximum_number_of_words: Option<u32>,
    pub maximum_word_length: Option<u32>,
    pub silence_threshold: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amd {
    pub machine_handle: MachineHandle,
    /// `true`: the flow goes on at once and the variables are set when detection ends.
    pub run_async: bool,
    pub overrides: AmdOverrides,
}

/// Longest analysis a flow may ask for (ms).
pub const MAX_ANALYSIS_MS: u32 = 30_000;

impl Amd {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        let machine_handle = match o.str("machine_handle")? {
            None | Some("") | Some("continue") => MachineHandle::Continue,
            Some("hangup") => MachineHandle::Hangup,
            Some(other) => {
                return Err(FlowError::field(
                    path("machine_handle"),
                    format!(r#"must be "hangup" or "continue", not "{other}""#),
                ))
            }
        };
        let run_async = match o.raw("async") {
            None => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(_) => return Err(FlowError::field(path("async"), "must be a boolean")),
        };
        let ms = |name: &str, min: u32| bounded(o, name, min, MAX_ANALYSIS_MS);
        let overrides = AmdOverrides {
            initial_silence: ms("initial_silence", 100)?,
            greeting: ms("greeting", 100)?,
            after_greeting_silence: ms("after_greeting_silence", 100)?,
            total_analysis_time: ms("total_analysis_time", 500)?,
            min_word_length: ms("min_word_length", 20)?,
            between_words_silence: ms("between_words_silence", 20)?,
            maximum_number_of_words: bounded(o, "maximum_number_of_words", 1, 100)?,
            maximum_word_length: ms("maximum_word_length", 100)?,
            silence_threshold: bounded(o, "silence_threshold", 1, 32_767)?,
        };
        Ok(Amd {
            machine_handle,
            run_async,
            overrides,
        })
    }
}

/// An optional integer in `min..=max`.
fn bounded(o: &Opt<'_>, name: &str, min: u32, max: u32) -> Result<Option<u32>, FlowError> {
    match o.u32(name) {
        Ok(Some(v)) if (min..=max).contains(&v) => Ok(Some(v)),
        Ok(None) => Ok(None),
        Ok(Some(_)) | Err(_) => Err(FlowError::field(
            path(name),
            format!("must be an integer from {min} to {max}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<Amd, FlowError> {
        Amd::from_opt(&Opt::new(&v).unwrap())
    }

    fn field(v: serde_json::Value) -> String {
        match parse(v).unwrap_err() {
            FlowError::Field { field, .. } => field,
            e => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_and_voipbin_options() {
        let a = parse(json!({})).unwrap();
        assert_eq!(
            (a.machine_handle, a.run_async, a.overrides),
            (MachineHandle::Continue, false, AmdOverrides::default())
        );
        let a = parse(json!({"machine_handle": "hangup", "async": true})).unwrap();
        assert_eq!(
            (a.machine_handle, a.run_async),
            (MachineHandle::Hangup, true)
        );
        let a = parse(json!({"greeting": 2000, "maximum_number_of_words": 4})).unwrap();
        assert_eq!(a.overrides.greeting, Some(2000));
        assert_eq!(a.overrides.maximum_number_of_words, Some(4));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            field(json!({"machine_handle": "drop"})),
            "option.machine_handle"
        );
        assert_eq!(field(json!({"async": "yes"})), "option.async");
        assert_eq!(field(json!({"greeting": 0})), "option.greeting");
        assert_eq!(
            field(json!({"total_analysis_time": 60_000})),
            "option.total_analysis_time"
        );
        assert_eq!(
            field(json!({"initial_silence": "2500"})),
            "option.initial_silence"
        );
        assert_eq!(
            field(json!({"maximum_number_of_words": 0})),
            "option.maximum_number_of_words"
        );
        assert_eq!(
            field(json!({"silence_threshold": -1})),
            "option.silence_threshold"
        );
        assert_eq!(
            field(json!({"min_word_length": 5_000_000_000u64})),
            "option.min_word_length"
        );
    }
}
