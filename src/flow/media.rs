//! Typed options of the call-media actions (`talk`, `play`, `beep`, `digits_receive`,
//! `digits_send`, `echo`, `recording_start`). Parses and bounds them (VoIPBIN field names and
//! units); must not load audio or touch a call.

use super::error::FlowError;
use super::options::{path, Opt};

/// The DTMF characters RFC 4733 events 0–15 stand for.
pub const DTMF_DIGITS: &str = "0123456789*#ABCD";

/// Longest text `talk` accepts (characters), so one action cannot run the synthesiser for minutes.
pub const MAX_TALK_TEXT: usize = 4096;
/// Most URLs one `play` takes.
pub const MAX_STREAM_URLS: usize = 32;
/// Longest tone, wait, echo or digit timeout an action may ask for (one hour, in ms).
pub const MAX_DURATION_MS: u64 = 3_600_000;
/// Most digits `digits_receive` waits for and `digits_send` sends.
pub const MAX_DIGITS: usize = 64;

/// What a playing prompt does when the caller presses a key (`digits_handle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DigitsHandle {
    /// Keep playing; the digit is still collected in `call.digits`.
    #[default]
    Keep,
    /// Stop playing at the first digit and go on to the next action.
    Next,
}

impl DigitsHandle {
    fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        match o.str("digits_handle")? {
            None | Some("") => Ok(Self::Keep),
            Some("next") => Ok(Self::Next),
            Some(other) => Err(FlowError::field(
                path("digits_handle"),
                format!(r#"must be "next" or empty, not "{other}""#),
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Talk {
    pub text: String,
    /// A voice/language name for the synthesiser, e.g. `en-US`; empty means `en`.
    pub language: String,
    pub digits_handle: DigitsHandle,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Play {
    pub stream_urls: Vec<String>,
    pub digits_handle: DigitsHandle,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigitsReceive {
    /// How long to wait for the digits (ms).
    pub duration_ms: u64,
    /// Keys that end the input (not included in the digits).
    pub key: String,
    /// Finish once this many digits are in `call.digits`; 0 means only key or timeout.
    pub length: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigitsSend {
    pub digits: String,
    /// Tone length of each digit (ms).
    pub duration_ms: u32,
    /// Pause between digits (ms).
    pub interval_ms: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echo {
    pub duration_ms: u64,
    /// Also send the caller's DTMF events back.
    pub dtmf: bool,
}

/// Which DTMF key ends a recording (`end_of_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndOfKey {
    None,
    Any,
    Key(char),
}

impl EndOfKey {
    pub fn matches(self, digit: char) -> bool {
        match self {
            Self::None => false,
            Self::Any => true,
            Self::Key(k) => k == digit,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingStart {
    /// Longest recording (s); 0 = up to the engine's limit.
    pub duration_s: u32,
    /// Stop after this much continuous silence (s); 0 = never.
    pub end_of_silence_s: u32,
    pub end_of_key: EndOfKey,
    pub beep_start: bool,
}

impl Talk {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        let text = o.str_req("text")?;
        if text.chars().count() > MAX_TALK_TEXT {
            return Err(FlowError::field(
                path("text"),
                format!("is longer than {MAX_TALK_TEXT} characters"),
            ));
        }
        let language = o.str("language")?.unwrap_or_default();
        let valid = is_variable(language)
            || (language.len() <= 32
                && language
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_+".contains(c)));
        if !valid {
            return Err(FlowError::field(
                path("language"),
                "must be a language/voice name such as en-US (letters, digits, - _ +)",
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            language: language.to_owned(),
            digits_handle: DigitsHandle::from_opt(o)?,
        })
    }
}

impl Play {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        let field = path("stream_urls");
        let list = match o.raw("stream_urls") {
            Some(serde_json::Value::Array(items)) => items,
            Some(_) => return Err(FlowError::field(&field, "must be an array of strings")),
            None => return Err(FlowError::field(&field, "missing required field")),
        };
        if list.is_empty() || list.len() > MAX_STREAM_URLS {
            return Err(FlowError::field(
                &field,
                format!("must hold 1 to {MAX_STREAM_URLS} URLs"),
            ));
        }
        let mut stream_urls = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            match item.as_str() {
                Some(s) if !s.trim().is_empty() => stream_urls.push(s.trim().to_owned()),
                _ => {
                    return Err(FlowError::field(
                        format!("{field}.{i}"),
                        "must be a non-empty string",
                    ))
                }
            }
        }
        Ok(Self {
            stream_urls,
            digits_handle: DigitsHandle::from_opt(o)?,
        })
    }
}

impl DigitsReceive {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        let duration_ms = duration(o, "duration", None)?;
        let key = o.str("key")?.unwrap_or_default();
        check_digits("key", key)?;
        let length = o.u32("length")?.unwrap_or(0);
        if length as usize > MAX_DIGITS {
            return Err(FlowError::field(
                path("length"),
                format!("must be at most {MAX_DIGITS}"),
            ));
        }
        if length == 0 && key.is_empty() && duration_ms == 0 {
            return Err(FlowError::field(
                path("duration"),
                "must be set when neither length nor key is",
            ));
        }
        Ok(Self {
            duration_ms,
            key: key.to_ascii_uppercase(),
            length,
        })
    }
}

impl DigitsSend {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        let digits = o.str_req("digits")?;
        check_digits("digits", digits)?;
        let duration_ms = bounded_u32(o, "duration", 100, 40, 5000)?;
        let interval_ms = bounded_u32(o, "interval", 100, 0, 5000)?;
        Ok(Self {
            digits: digits.to_ascii_uppercase(),
            duration_ms,
            interval_ms,
        })
    }
}

/// `echo`'s `duration` (ms) when it is missing, 0 or negative: VoIPBIN's 180 s
/// (bin-call-manager callhandler/action.go actionExecuteEcho).
pub const DEFAULT_ECHO_MS: u64 = 180_000;

impl Echo {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        let duration_ms = match o.i64("duration")? {
            Some(ms) if ms > 0 => duration(o, "duration", None)?,
            _ => DEFAULT_ECHO_MS,
        };
        Ok(Self {
            duration_ms,
            dtmf: bool_opt(o, "dtmf")?,
        })
    }
}

impl RecordingStart {
    pub(crate) fn from_opt(o: &Opt<'_>) -> Result<Self, FlowError> {
        match o.str("format")? {
            None | Some("") | Some("wav") => {}
            Some(other) => {
                return Err(FlowError::field(
                    path("format"),
                    format!(r#"only "wav" is supported, not "{other}""#),
                ))
            }
        }
        let end_of_key = match o.str("end_of_key")? {
            None | Some("") | Some("none") => EndOfKey::None,
            Some("any") => EndOfKey::Any,
            Some(k) if k.chars().count() == 1 && DTMF_DIGITS.contains(&k.to_ascii_uppercase()) => {
                EndOfKey::Key(k.to_ascii_uppercase().chars().next().unwrap_or('#'))
            }
            Some(other) => {
                return Err(FlowError::field(
                    path("end_of_key"),
                    format!(r#"must be "none", "any" or one DTMF key, not "{other}""#),
                ))
            }
        };
        let max_s = (MAX_DURATION_MS / 1000) as u32;
        Ok(Self {
            duration_s: bounded_u32(o, "duration", 0, 0, max_s)?,
            end_of_silence_s: bounded_u32(o, "end_of_silence", 0, 0, max_s)?,
            end_of_key,
            beep_start: bool_opt(o, "beep_start")?,
        })
    }
}

/// Beep length in ms (default 500).
pub(crate) fn beep_duration(o: &Opt<'_>) -> Result<u32, FlowError> {
    bounded_u32(o, "duration", 500, 1, 60_000)
}

/// A duration in ms, at most an hour; `default` when absent (`None` = required).
fn duration(o: &Opt<'_>, name: &str, default: Option<u64>) -> Result<u64, FlowError> {
    let value = match (o.u64(name)?, default) {
        (Some(v), _) => v,
        (None, Some(d)) => d,
        (None, None) => o.u64_req(name)?,
    };
    if value > MAX_DURATION_MS {
        return Err(FlowError::field(
            path(name),
            format!("must be at most {MAX_DURATION_MS} ms"),
        ));
    }
    Ok(value)
}

fn bounded_u32(
    o: &Opt<'_>,
    name: &str,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, FlowError> {
    let value = o.u32(name)?.unwrap_or(default);
    if !(min..=max).contains(&value) {
        return Err(FlowError::field(
            path(name),
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(value)
}

fn bool_opt(o: &Opt<'_>, name: &str) -> Result<bool, FlowError> {
    match o.raw(name) {
        None => Ok(false),
        Some(serde_json::Value::Bool(b)) => Ok(*b),
        Some(_) => Err(FlowError::field(path(name), "must be true or false")),
    }
}

/// DTMF characters only (a `${...}` value is checked after substitution instead).
fn check_digits(name: &str, value: &str) -> Result<(), FlowError> {
    if is_variable(value) {
        return Ok(());
    }
    if value.chars().count() > MAX_DIGITS {
        return Err(FlowError::field(
            path(name),
            format!("must be at most {MAX_DIGITS} characters"),
        ));
    }
    match value
        .chars()
        .find(|c| !DTMF_DIGITS.contains(c.to_ascii_uppercase()))
    {
        Some(c) => Err(FlowError::field(
            path(name),
            format!("'{c}' is not a DTMF key (0-9 * # A-D)"),
        )),
        None => Ok(()),
    }
}

/// True when the value still holds a `${...}` reference (validation before substitution).
fn is_variable(value: &str) -> bool {
    value.contains("${")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opt(v: &serde_json::Value) -> Opt<'_> {
        Opt::new(v).unwrap()
    }

    fn field(e: FlowError) -> String {
        match e {
            FlowError::Field { field, .. } => field,
            e => panic!("{e}"),
        }
    }

    #[test]
    fn talk_and_play() {
        let v = json!({"text": "Hello", "language": "en-US", "digits_handle": "next"});
        let t = Talk::from_opt(&opt(&v)).unwrap();
        assert_eq!(t.language, "en-US");
        assert_eq!(t.digits_handle, DigitsHandle::Next);
        let v = json!({"text": "x", "language": "en; rm -rf"});
        assert_eq!(
            field(Talk::from_opt(&opt(&v)).unwrap_err()),
            "option.language"
        );
        let v = json!({"text": "x", "digits_handle": "stop"});
        assert_eq!(
            field(Talk::from_opt(&opt(&v)).unwrap_err()),
            "option.digits_handle"
        );
        let v = json!({"text": "x".repeat(MAX_TALK_TEXT + 1)});
        assert_eq!(field(Talk::from_opt(&opt(&v)).unwrap_err()), "option.text");

        let v = json!({"stream_urls": ["a.wav", " https://x/y.wav "]});
        let p = Play::from_opt(&opt(&v)).unwrap();
        assert_eq!(p.stream_urls, ["a.wav", "https://x/y.wav"]);
        for bad in [
            json!({}),
            json!({"stream_urls": []}),
            json!({"stream_urls": "a"}),
        ] {
            assert_eq!(
                field(Play::from_opt(&opt(&bad)).unwrap_err()),
                "option.stream_urls"
            );
        }
        let v = json!({"stream_urls": ["a", 3]});
        assert_eq!(
            field(Play::from_opt(&opt(&v)).unwrap_err()),
            "option.stream_urls.1"
        );
    }

    #[test]
    fn digits() {
        let v = json!({"duration": 5000, "key": "#", "length": 1});
        let d = DigitsReceive::from_opt(&opt(&v)).unwrap();
        assert_eq!((d.duration_ms, d.key.as_str(), d.length), (5000, "#", 1));
        let v = json!({"duration": 5000, "key": "x"});
        assert_eq!(
            field(DigitsReceive::from_opt(&opt(&v)).unwrap_err()),
            "option.key"
        );
        let v = json!({"length": 100, "duration": 1});
        assert_eq!(
            field(DigitsReceive::from_opt(&opt(&v)).unwrap_err()),
            "option.length"
        );
        let v = json!({"duration": 0});
        assert_eq!(
            field(DigitsReceive::from_opt(&opt(&v)).unwrap_err()),
            "option.duration"
        );
        let v = json!({"duration": MAX_DURATION_MS + 1, "length": 1});
        assert_eq!(
            field(DigitsReceive::from_opt(&opt(&v)).unwrap_err()),
            "option.duration"
        );

        let v = json!({"digits": "12*#ab"});
        let s = DigitsSend::from_opt(&opt(&v)).unwrap();
        assert_eq!(
            (s.digits.as_str(), s.duration_ms, s.interval_ms),
            ("12*#AB", 100, 100)
        );
        let v = json!({"digits": "${x}"});
        assert!(DigitsSend::from_opt(&opt(&v)).is_ok());
        let v = json!({"digits": "12e"});
        assert_eq!(
            field(DigitsSend::from_opt(&opt(&v)).unwrap_err()),
            "option.digits"
        );
        let v = json!({"digits": "1", "duration": 10});
        assert_eq!(
            field(DigitsSend::from_opt(&opt(&v)).unwrap_err()),
            "option.duration"
        );
    }

    #[test]
    fn echo_recording_beep() {
        let v = json!({"duration": 30000, "dtmf": true});
        assert_eq!(
            Echo::from_opt(&opt(&v)).unwrap(),
            Echo {
                duration_ms: 30000,
                dtmf: true
            }
        );
        // VoIPBIN's default: 180 s when missing, 0 or negative (flow_struct_action.rst: ms).
        for v in [json!({}), json!({"duration": 0}), json!({"duration": -5})] {
            assert_eq!(
                Echo::from_opt(&opt(&v)).unwrap().duration_ms,
                DEFAULT_ECHO_MS
            );
        }
        assert_eq!(DEFAULT_ECHO_MS, 180_000);
        let v = json!({"duration": MAX_DURATION_MS + 1});
        assert_eq!(
            field(Echo::from_opt(&opt(&v)).unwrap_err()),
            "option.duration"
        );
        let v = json!({"duration": "30"});
        assert_eq!(
            field(Echo::from_opt(&opt(&v)).unwrap_err()),
            "option.duration"
        );
        let v = json!({"format": "wav", "end_of_key": "#", "duration": 60, "beep_start": true});
        let r = RecordingStart::from_opt(&opt(&v)).unwrap();
        assert_eq!(r.end_of_key, EndOfKey::Key('#'));
        assert!(r.beep_start && r.duration_s == 60 && r.end_of_silence_s == 0);
        assert!(EndOfKey::Any.matches('5') && !EndOfKey::None.matches('5'));
        let v = json!({"format": "mp3"});
        assert_eq!(
            field(RecordingStart::from_opt(&opt(&v)).unwrap_err()),
            "option.format"
        );
        let v = json!({"end_of_key": "##"});
        assert_eq!(
            field(RecordingStart::from_opt(&opt(&v)).unwrap_err()),
            "option.end_of_key"
        );
        let v = json!({"beep_start": "yes"});
        assert_eq!(
            field(RecordingStart::from_opt(&opt(&v)).unwrap_err()),
            "option.beep_start"
        );
        assert_eq!(beep_duration(&opt(&json!({}))).unwrap(), 500);
        assert!(beep_duration(&opt(&json!({"duration": 0}))).is_err());
    }
}
