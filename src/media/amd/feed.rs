//! Feeds a [`Detector`] from a live call: the received audio cut into 20 ms frames whatever the
//! packet size, and the wall clock, so audio that never arrives (no RTP, lost packets, a held
//! line) still counts as silence and the analysis ends on time. Audio is placed on one timeline
//! by its RTP timestamp: a late packet whose time the clock already filled with silence is not
//! counted a second time, and a gap in the timestamps (lost packets) is silence. Sans-IO: the
//! caller passes the time elapsed since the analysis began.

use std::time::Duration;

use super::{AmdParams, AmdVerdict, Detector, SAMPLES_PER_MS};

/// Samples per analysis frame (20 ms).
const FRAME: usize = 160;
/// Audio may trail the clock by this much (jitter, a busy thread) before the gap is taken for
/// silence.
const MAX_LAG_MS: u64 = 200;
/// A timestamp this far (2 s) from where the timeline stands is a new stream or a jump, not
/// jitter: the timeline re-anchors on it instead of filling or discarding that much.
const RESYNC_SAMPLES: i64 = 16_000;

#[derive(Debug, Clone)]
pub struct AmdFeed {
    detector: Detector,
    /// Received samples not yet a whole frame.
    partial: Vec<i16>,
    /// Samples given to the detector (audio and filled gaps).
    fed: u64,
    /// An RTP timestamp and the timeline position (samples) it stands for.
    anchor: Option<(u32, u64)>,
}

impl AmdFeed {
    pub fn new(params: AmdParams) -> Self {
        AmdFeed {
            detector: Detector::new(params),
            partial: Vec::with_capacity(FRAME),
            fed: 0,
            anchor: None,
        }
    }

    /// Received audio with its RTP timestamp (8 kHz clock, RFC 3551 §4.5): the part the
    /// timeline already holds (filled as silence while it was late, or a duplicate) is skipped;
    /// a gap before it (lost packets) is silence.
    pub fn on_audio_at(&mut self, timestamp: u32, pcm: &[i16]) -> Option<AmdVerdict> {
        let covered = self.covered();
        let position = self.anchor.and_then(|(ts, at)| {
            let position = at as i64 + i64::from(timestamp.wrapping_sub(ts) as i32);
            ((position - covered as i64).abs() <= RESYNC_SAMPLES).then_some(position)
        });
        let position = position.unwrap_or_else(|| {
            self.anchor = Some((timestamp, covered));
            covered as i64
        });
        let mut pcm = pcm;
        if position < covered as i64 {
            let skip = (covered as i64 - position) as usize;
            pcm = pcm.get(skip..).unwrap_or_default();
        } else if position > covered as i64 {
            self.fill((position - covered as i64) as u64);
        }
        self.on_audio(pcm)
    }

    /// Received audio (8 kHz PCM, any length).
    pub fn on_audio(&mut self, mut pcm: &[i16]) -> Option<AmdVerdict> {
        while !pcm.is_empty() && self.detector.verdict().is_none() {
            let take = (FRAME - self.partial.len()).min(pcm.len());
            self.partial.extend_from_slice(&pcm[..take]);
            pcm = &pcm[take..];
            if self.partial.len() == FRAME {
                self.detector.on_frame(&self.partial);
                self.partial.clear();
                self.fed += FRAME as u64;
            }
        }
        self.detector.verdict()
    }

    /// The time since the analysis began: what the audio has not covered, beyond the allowed
    /// lag, is silence.
    pub fn on_clock(&mut self, elapsed: Duration) -> Option<AmdVerdict> {
        let due =
            (elapsed.as_millis() as u64).saturating_sub(MAX_LAG_MS) * u64::from(SAMPLES_PER_MS);
        let covered = self.covered();
        if covered < due {
            self.fill(due - covered);
        }
        self.detector.verdict()
    }

    /// The timeline so far: samples fed and those waiting for a whole frame.
    fn covered(&self) -> u64 {
        self.fed + self.partial.len() as u64
    }

    /// `samples` of silence after what was received (the partial frame goes first, short).
    fn fill(&mut self, samples: u64) {
        if !self.partial.is_empty() {
            self.detector.on_frame(&self.partial);
            self.fed += self.partial.len() as u64;
            self.partial.clear();
        }
        let mut left = samples;
        while left > 0 && self.detector.verdict().is_none() {
            let gap = left.min(FRAME as u64);
            self.detector.on_missing(gap as u32);
            self.fed += gap;
            left -= gap;
        }
    }

    pub fn verdict(&self) -> Option<AmdVerdict> {
        self.detector.verdict()
    }

    /// Audio analysed so far (ms).
    pub fn analysed_ms(&self) -> u32 {
        self.detector.analysed_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::amd::{AmdReason, AmdStatus};

    #[test]
    fn packets_of_any_size_make_20_ms_frames() {
        let mut feed = AmdFeed::new(AmdParams::default());
        // 30 ms packets: 3 packets are 90 ms, four whole frames and one partial.
        for _ in 0..3 {
            assert_eq!(feed.on_audio(&[0i16; 240]), None);
        }
        assert_eq!(feed.analysed_ms(), 80);
        assert_eq!(feed.partial.len(), 80);
    }

    #[test]
    fn no_audio_at_all_is_initial_silence_on_time() {
        let mut feed = AmdFeed::new(AmdParams::default());
        assert_eq!(feed.on_clock(Duration::from_millis(2000)), None);
        assert_eq!(
            feed.analysed_ms(),
            1800,
            "the allowed lag is not yet silence"
        );
        let v = feed.on_clock(Duration::from_millis(2700)).expect("verdict");
        assert_eq!(
            (v.result, v.reason, v.analysis_ms),
            (AmdStatus::Machine, AmdReason::InitialSilence, 2500)
        );
    }

    /// 20 ms of a 600 Hz tone (speech energy) starting at sample `at`.
    fn voice(at: usize) -> Vec<i16> {
        (at..at + 160)
            .map(|n| (3000.0 * (n as f64 * 600.0 * std::f64::consts::TAU / 8000.0).sin()) as i16)
            .collect()
    }

    /// Four 240 ms words with 200 ms pauses (the detector counts three: words after the
    /// first), then silence, as 20 ms RTP packets; the packets in `held` (frame indexes)
    /// arrive together at its end, as after a network hiccup.
    fn greeting(held: std::ops::Range<u64>) -> AmdVerdict {
        let mut feed = AmdFeed::new(AmdParams::default());
        let speech = |k: u64| matches!(k % 22, 0..=11) && k < 88;
        let frame = |k: u64| {
            if speech(k) {
                voice(k as usize * 160)
            } else {
                vec![0i16; 160]
            }
        };
        let mut late = Vec::new();
        for k in 0..250u64 {
            let now = Duration::from_millis(20 * (k + 1));
            if held.contains(&k) {
                late.push(k);
            } else {
                if k == held.end {
                    for &j in &late {
                        feed.on_audio_at(1000 + j as u32 * 160, &frame(j));
                    }
                }
                feed.on_audio_at(1000 + k as u32 * 160, &frame(k));
            }
            if let Some(v) = feed.on_clock(now) {
                return v;
            }
        }
        feed.verdict().expect("a verdict within 5 s")
    }

    /// A 400 ms hiccup in the middle of the last word: the clock fills 200 ms of it with
    /// silence; the late packets must not be counted again (that split the word in two, one
    /// word too many: a person taken for a machine, `maxwords`).
    #[test]
    fn late_audio_after_a_filled_gap_is_not_counted_twice() {
        let clean = greeting(0..0);
        assert_eq!(
            (clean.result, clean.reason),
            (AmdStatus::Human, AmdReason::HumanSpeech)
        );
        let jittered = greeting(72..92);
        assert_eq!(
            (jittered.result, jittered.reason),
            (clean.result, clean.reason)
        );
        // Only the part beyond the allowed lag was taken for silence (the word ends earlier).
        let earlier = clean.analysis_ms.abs_diff(jittered.analysis_ms);
        assert!(earlier <= MAX_LAG_MS as u32, "{earlier} ms");
    }

    #[test]
    fn lost_packets_are_silence_and_a_jump_re_anchors() {
        let mut feed = AmdFeed::new(AmdParams::default());
        feed.on_audio_at(0, &[0i16; 160]);
        // Two packets lost: the next one stands 60 ms in.
        feed.on_audio_at(480, &[0i16; 160]);
        assert_eq!(feed.analysed_ms(), 80);
        // A duplicate adds nothing.
        feed.on_audio_at(480, &[0i16; 160]);
        assert_eq!(feed.analysed_ms(), 80);
        // A new stream far away in timestamps continues the timeline where it stands.
        feed.on_audio_at(3_000_000, &[0i16; 160]);
        assert_eq!(feed.analysed_ms(), 100);
    }

    #[test]
    fn audio_keeping_up_with_the_clock_is_not_padded() {
        let mut feed = AmdFeed::new(AmdParams::default());
        for k in 1..=50u64 {
            feed.on_audio(&[0i16; 160]);
            feed.on_clock(Duration::from_millis(20 * k + 150));
        }
        assert_eq!(feed.analysed_ms(), 1000);
    }
}
