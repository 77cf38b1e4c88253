//! What a call's media session is asked to do and what it reports back: the vocabulary shared by
//! the call session (which forwards) and the activeflow (which asks). Plain data; no I/O.

use std::time::Duration;

use serde_json::Value;

use super::recording::RecordingId;

/// Identifies one request so its completion can be matched (the activeflow numbers them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MediaJob(pub u64);

/// Audio to play, resolved to 8 kHz PCM by the audio library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioSource {
    /// A `play` URL: a file under `media.prompts_dir`, or http(s).
    Prompt(String),
    /// `talk`: text-to-speech.
    Speech { text: String, language: String },
    /// `beep`: the 1 kHz tone.
    Beep { duration_ms: u32 },
    /// In-band ringback (`media.ringback_tone`), its cadence repeated for at least
    /// `duration_ms` (`connect` stops it when a callee answers).
    Ringback { duration_ms: u32 },
}

/// Where and how to record the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRequest {
    pub id: RecordingId,
    /// The activeflow that asked (for the recording's record).
    pub activeflow_id: String,
    /// Hard stop after this long.
    pub max_duration: Duration,
    /// Stop after this much continuous silence.
    pub end_of_silence: Option<Duration>,
    /// DTMF keys that stop the recording ("" = none).
    pub end_keys: String,
    /// Play a beep first; the recording starts when it ends.
    pub beep_start: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaRequest {
    /// Play the sources one after another; `stop_on_digit` ends it at the first DTMF key.
    Play {
        sources: Vec<AudioSource>,
        stop_on_digit: bool,
    },
    /// RFC 4733 events, one digit after another.
    SendDigits {
        digits: String,
        duration_ms: u32,
        interval_ms: u32,
    },
    /// Return the caller's audio (and DTMF when asked) for `duration`.
    Echo { duration: Duration, dtmf: bool },
    /// Start recording; done when recording has started (after the beep).
    StartRecording(RecordingRequest),
    /// Stop the recording in progress, if any; done at once.
    StopRecording,
    /// Relay this leg's media to and from another leg (`connect`) until stopped or the other
    /// leg's media ends.
    Relay(super::relay::RelayLink),
    /// Answering-machine detection on the received audio; done with the verdict.
    Amd(super::amd::AmdParams),
    /// Stream the caller's audio to an external host and play what it sends back, in the
    /// background; done once the stream is up (or could not start).
    ExternalMediaStart(super::external::ExternalMediaRequest),
    /// Stop the external media stream, if any; done at once with its counts.
    ExternalMediaStop,
    /// Mute (`on`) or unmute the caller's audio (`incoming`: passed on to nothing) and/or
    /// what is sent to the caller (`outgoing`: silence); done at once.
    Mute {
        incoming: bool,
        outgoing: bool,
        on: bool,
    },
    /// Mix this leg into a conference room until the room lets it go (kick, delete) or the
    /// request is stopped (`conference_join`).
    Conference(crate::conference::ParticipantLink),
}

/// Why a media request failed; recorded in the action's `result`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("the call is not answered, so it has no media session")]
    NotAnswered,
    #[error("the call ended")]
    CallEnded,
    #[error("{0}")]
    Audio(String),
    #[error("recording failed: {0}")]
    Recording(String),
}

/// How a request finished: its `result` JSON, or why it failed.
pub type MediaResult = Result<Value, MediaError>;

/// Where a DTMF digit came from (the `source` label of `activeflow_dtmf_received_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigitSource {
    Rfc4733,
    SipInfo,
}

impl DigitSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DigitSource::Rfc4733 => "rfc4733",
            DigitSource::SipInfo => "sip_info",
        }
    }
}

/// What a media session tells its call session.
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum MediaEvent {
    Digit(char),
    Done {
        job: MediaJob,
        result: MediaResult,
    },
    /// No RTP from the peer for `media.rtp_timeout_seconds` (sent once per silence; the call
    /// layer hangs up with end reason `rtp_timeout`).
    RtpTimeout,
}
