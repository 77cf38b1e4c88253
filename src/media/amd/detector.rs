//! The AMD state machine (Asterisk app_amd's algorithm): each frame is voice or silence by its
//! mean absolute amplitude; runs of voice make words, runs of silence separate them, and the
//! first rule to fire decides. Pure: frames in, verdict out; no clock but the audio itself.
//!
//! ```text
//!  initial silence ──voice ≥ min_word_length──▶ greeting ──silence ≥ after_greeting──▶ human
//!        │                                        │ words > max, voice ≥ greeting,
//!        └─silence ≥ initial_silence─▶ machine    └─ one word ≥ max_word_length ─▶ machine
//!  (any state) analysed ≥ total_analysis_time ─▶ notsure
//! ```
//!
//! Two departures from app_amd: frames are high-passed (2nd order at 250 Hz, below the 300 Hz
//! edge of the telephone band, G.712) before their energy is taken, so hum and rumble do not
//! count as voice; and the silence threshold follows the line's noise floor (the lowest recent
//! frame energy, rising slowly), so hiss above `silence_threshold` is not taken for one endless
//! word. The threshold is never below `silence_threshold`.

use super::{AmdParams, AmdReason, AmdVerdict, SAMPLES_PER_MS};

/// A frame is voice when its energy exceeds the noise floor by this factor (about 6 dB).
const NOISE_MARGIN: u32 = 2;
/// The noise floor rises by 1/this of itself per frame while the line is louder (doubling in
/// about 0.9 s of 20 ms frames), and drops at once to a quieter frame.
const FLOOR_RISE: u32 = 64;
/// The first frame sets the floor, but at most this many times `silence_threshold`: a greeting
/// spoken from the very first frame must not be taken for the line's noise.
const INITIAL_FLOOR_CAP: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    InWord,
    InSilence,
}

/// One analysis; create a new one per `amd` action.
#[derive(Debug, Clone)]
pub struct Detector {
    params: AmdParams,
    /// All durations in samples (8 per ms), so frames of any length add up exactly.
    total: u32,
    /// Silence since the last voice frame.
    silence: u32,
    /// Voice since the last silence frame.
    consecutive_voice: u32,
    /// Voice heard in all.
    voice: u32,
    words: u32,
    state: State,
    in_initial_silence: bool,
    in_greeting: bool,
    initial_silence: Option<u32>,
    /// Lowest recent frame energy; `None` before the first frame.
    noise_floor: Option<u32>,
    verdict: Option<AmdVerdict>,
    high_pass: HighPass,
}

impl Detector {
    pub fn new(params: AmdParams) -> Self {
        Detector {
            params,
            total: 0,
            silence: 0,
            consecutive_voice: 0,
            voice: 0,
            words: 0,
            // As in app_amd: the first word is counted after the first silence run.
            state: State::InWord,
            in_initial_silence: true,
            in_greeting: false,
            initial_silence: None,
            noise_floor: None,
            verdict: None,
            high_pass: HighPass::default(),
        }
    }

    /// The verdict, once there is one.
    pub fn verdict(&self) -> Option<AmdVerdict> {
        self.verdict
    }

    /// Audio analysed so far (ms).
    pub fn analysed_ms(&self) -> u32 {
        self.total / SAMPLES_PER_MS
    }

    /// Feeds one frame of 8 kHz PCM (normally 160 samples, 20 ms); returns the verdict once one
    /// is reached (and the same verdict for any later frame).
    pub fn on_frame(&mut self, pcm: &[i16]) -> Option<AmdVerdict> {
        if self.verdict.is_some() || pcm.is_empty() {
            return self.verdict;
        }
        let energy = self.high_pass.mean_abs(pcm);
        let silent = energy <= self.threshold(energy);
        self.feed(pcm.len() as u32, silent);
        self.verdict
    }

    /// Feeds `samples` of silence (a frame that never arrived: lost packets, a held line).
    pub fn on_missing(&mut self, samples: u32) -> Option<AmdVerdict> {
        if self.verdict.is_none() && samples > 0 {
            self.feed(samples, true);
        }
        self.verdict
    }

    /// The threshold for this frame, after updating the noise floor with its energy.
    fn threshold(&mut self, energy: u32) -> u32 {
        let floor = match self.noise_floor {
            Some(f) if energy >= f => f + (f / FLOOR_RISE).max(1),
            Some(_) => energy,
            None => energy.min(self.params.silence_threshold * INITIAL_FLOOR_CAP),
        };
        self.noise_floor = Some(floor);
        self.params
            .silence_threshold
            .max(floor.saturating_mul(NOISE_MARGIN))
    }

    fn feed(&mut self, len: u32, silent: bool) {
        let ms = |v: u32| v * SAMPLES_PER_MS;
        let p = self.params;
        self.total += len;
        if self.total >= ms(p.total_analysis_time_ms) {
            return self.decide(AmdReason::TooLong);
        }
        if silent {
            self.silence += len;
            if self.silence >= ms(p.between_words_silence_ms) {
                self.state = State::InSilence;
                self.consecutive_voice = 0;
            }
            if self.in_initial_silence && self.silence >= ms(p.initial_silence_ms) {
                return self.decide(AmdReason::InitialSilence);
            }
            if self.in_greeting && self.silence >= ms(p.after_greeting_silence_ms) {
                return self.decide(AmdReason::HumanSpeech);
            }
            return;
        }
        self.consecutive_voice += len;
        self.voice += len;
        if self.consecutive_voice >= ms(p.min_word_length_ms) && self.state == State::InSilence {
            self.words += 1;
            self.state = State::InWord;
        }
        if self.consecutive_voice >= ms(p.maximum_word_length_ms) {
            return self.decide(AmdReason::MaxWordLength);
        }
        if self.words > p.maximum_number_of_words {
            return self.decide(AmdReason::MaxWords);
        }
        if self.in_greeting && self.voice >= ms(p.greeting_ms) {
            return self.decide(AmdReason::LongGreeting);
        }
        if self.voice >= ms(p.min_word_length_ms) {
            if self.in_initial_silence {
                // Where the first word began.
                self.initial_silence = Some((self.total - self.consecutive_voice) / SAMPLES_PER_MS);
            }
            self.silence = 0;
            self.in_initial_silence = false;
            self.in_greeting = true;
        }
    }

    fn decide(&mut self, reason: AmdReason) {
        self.verdict = Some(AmdVerdict {
            result: reason.status(),
            reason,
            analysis_ms: self.total / SAMPLES_PER_MS,
            initial_silence_ms: self.initial_silence.unwrap_or(self.total / SAMPLES_PER_MS),
            voice_ms: self.voice / SAMPLES_PER_MS,
            words: self.words,
            silence_ms: self.silence / SAMPLES_PER_MS,
        });
    }
}

/// A 2nd-order Butterworth high-pass at 250 Hz for 8 kHz audio (RBJ biquad, direct form I),
/// its state carried from frame to frame.
#[derive(Debug, Clone, Copy, Default)]
struct HighPass {
    x: [f32; 2],
    y: [f32; 2],
}

impl HighPass {
    // b0, b1, b2, a1, a2 for f0 = 250 Hz, Q = 1/sqrt(2), fs = 8000 Hz (a0 normalised to 1).
    const B: [f32; 3] = [0.870_330_8, -1.740_661_6, 0.870_330_8];
    const A: [f32; 2] = [-1.723_776_2, 0.757_546_9];

    /// Mean absolute amplitude of the filtered frame.
    fn mean_abs(&mut self, pcm: &[i16]) -> u32 {
        let mut sum = 0f64;
        for &s in pcm {
            let x = f32::from(s);
            let y = Self::B[0] * x + Self::B[1] * self.x[0] + Self::B[2] * self.x[1]
                - Self::A[0] * self.y[0]
                - Self::A[1] * self.y[1];
            self.x = [x, self.x[0]];
            self.y = [y, self.y[0]];
            sum += f64::from(y.abs());
        }
        (sum / pcm.len() as f64) as u32
    }
}

#[cfg(test)]
#[path = "detector_tests.rs"]
mod tests;
