//! Answering-machine detection (AMD): an energy-based speech/silence analysis of the first seconds
//! of what the far end says after answer, in the manner of Asterisk's app_amd. Sans-IO: the
//! detector is fed 8 kHz PCM frames and returns a verdict; the media session (`rtp_session`)
//! feeds it and reports. Must not know RTP, SIP or flows.

mod detector;
mod feed;

pub use detector::Detector;
pub use feed::AmdFeed;

use serde::Serialize;

/// Samples per millisecond at 8 kHz.
const SAMPLES_PER_MS: u32 = 8;

/// The analysis parameters (Asterisk amd.conf names; durations in ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdParams {
    /// Silence before any speech longer than this: `machine` (`initialsilence`).
    pub initial_silence_ms: u32,
    /// Speech in the greeting longer than this: `machine` (`longgreeting`).
    pub greeting_ms: u32,
    /// Silence after the greeting this long: `human` (`humanspeech`).
    pub after_greeting_silence_ms: u32,
    /// No verdict after this long: `notsure` (`toolong`).
    pub total_analysis_time_ms: u32,
    /// Voice this long counts as a word (shorter bursts are noise).
    pub min_word_length_ms: u32,
    /// Silence this long separates two words.
    pub between_words_silence_ms: u32,
    /// More words than this: `machine` (`maxwords`).
    pub maximum_number_of_words: u32,
    /// One word longer than this: `machine` (`maxwordlength`).
    pub maximum_word_length_ms: u32,
    /// Mean absolute amplitude (16-bit linear) below which a frame is silence; the detector
    /// raises it over a noisy line's measured floor (see `detector`).
    pub silence_threshold: u32,
}

impl Default for AmdParams {
    /// Asterisk's amd.conf defaults, but `maximum_number_of_words` 3: see docs/AMD.md for the
    /// measurement that chose it.
    fn default() -> Self {
        AmdParams {
            initial_silence_ms: 2500,
            greeting_ms: 1500,
            after_greeting_silence_ms: 800,
            total_analysis_time_ms: 5000,
            min_word_length_ms: 100,
            between_words_silence_ms: 50,
            maximum_number_of_words: 3,
            maximum_word_length_ms: 5000,
            silence_threshold: 256,
        }
    }
}

/// What the far end is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AmdStatus {
    Human,
    Machine,
    NotSure,
}

impl AmdStatus {
    /// The value of the `amd.result` variable.
    pub fn as_str(self) -> &'static str {
        match self {
            AmdStatus::Human => "human",
            AmdStatus::Machine => "machine",
            AmdStatus::NotSure => "notsure",
        }
    }
}

/// Why the detector decided (Asterisk's AMDCAUSE, lower case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AmdReason {
    /// A short greeting followed by silence.
    HumanSpeech,
    /// Nobody spoke for `initial_silence_ms`.
    InitialSilence,
    /// More than `maximum_number_of_words` words.
    MaxWords,
    /// Speech in the greeting for more than `greeting_ms`.
    LongGreeting,
    /// One word longer than `maximum_word_length_ms`.
    MaxWordLength,
    /// `total_analysis_time_ms` passed without a verdict.
    TooLong,
}

impl AmdReason {
    /// The value of the `amd.reason` variable.
    pub fn as_str(self) -> &'static str {
        match self {
            AmdReason::HumanSpeech => "humanspeech",
            AmdReason::InitialSilence => "initialsilence",
            AmdReason::MaxWords => "maxwords",
            AmdReason::LongGreeting => "longgreeting",
            AmdReason::MaxWordLength => "maxwordlength",
            AmdReason::TooLong => "toolong",
        }
    }

    pub fn status(self) -> AmdStatus {
        match self {
            AmdReason::HumanSpeech => AmdStatus::Human,
            AmdReason::TooLong => AmdStatus::NotSure,
            _ => AmdStatus::Machine,
        }
    }
}

/// The detector's decision and the timings it rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AmdVerdict {
    pub result: AmdStatus,
    pub reason: AmdReason,
    /// Audio analysed when it decided (ms).
    pub analysis_ms: u32,
    /// Silence before the first word (ms; all of it when nobody spoke).
    pub initial_silence_ms: u32,
    /// Speech heard in total (ms).
    pub voice_ms: u32,
    /// Words counted.
    pub words: u32,
    /// The silence that ended the analysis or was running when it ended (ms).
    pub silence_ms: u32,
}
