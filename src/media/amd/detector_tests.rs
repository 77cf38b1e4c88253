//! The detector on synthetic frames: tone bursts for words, zeros or hiss for silence.

use super::*;
use crate::media::amd::AmdStatus;

/// A 20 ms frame of a 440 Hz tone at `amplitude`.
fn tone(amplitude: f64) -> Vec<i16> {
    (0..160)
        .map(|i| {
            (amplitude * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin()) as i16
        })
        .collect()
}

/// A 20 ms frame of deterministic pseudo-random noise with mean absolute amplitude ≈ `level`.
fn hiss(level: i32, seed: &mut u32) -> Vec<i16> {
    (0..160)
        .map(|_| {
            *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            // Uniform in [-2·level, 2·level]: mean absolute value `level`.
            let u = (*seed >> 8) as i32 % (4 * level + 1) - 2 * level;
            u as i16
        })
        .collect()
}

/// Runs a script of (voice?, ms) segments with zero silence; the verdict.
fn run(params: AmdParams, script: &[(bool, u32)]) -> Option<AmdVerdict> {
    let mut d = Detector::new(params);
    for &(voice, ms) in script {
        for _ in 0..ms / 20 {
            let frame = if voice { tone(3000.0) } else { vec![0; 160] };
            if let Some(v) = d.on_frame(&frame) {
                return Some(v);
            }
        }
    }
    d.verdict()
}

fn verdict(script: &[(bool, u32)]) -> AmdVerdict {
    run(AmdParams::default(), script).expect("a verdict")
}

#[test]
fn short_greeting_then_silence_is_human() {
    // "Hello?" after 400 ms, then silence: human after 800 ms of it.
    let v = verdict(&[(false, 400), (true, 500), (false, 2000)]);
    assert_eq!(
        (v.result, v.reason),
        (AmdStatus::Human, AmdReason::HumanSpeech)
    );
    assert_eq!(v.analysis_ms, 1700, "400 + 500 + 800");
    assert_eq!(v.initial_silence_ms, 400);
    assert_eq!((v.voice_ms, v.words, v.silence_ms), (500, 1, 800));
}

#[test]
fn long_greeting_is_a_machine() {
    // Word-length bursts with short gaps: 1500 ms of voice before the 4th word... the words rule
    // is off here to test the greeting rule alone.
    let params = AmdParams {
        maximum_number_of_words: 100,
        ..AmdParams::default()
    };
    let mut script = vec![(false, 300)];
    for _ in 0..10 {
        script.extend([(true, 400), (false, 200)]);
    }
    let v = run(params, &script).expect("verdict");
    assert_eq!(
        (v.result, v.reason),
        (AmdStatus::Machine, AmdReason::LongGreeting)
    );
    assert_eq!(v.voice_ms, 1500);
}

#[test]
fn too_many_words_is_a_machine() {
    let mut script = vec![(false, 300)];
    for _ in 0..6 {
        script.extend([(true, 200), (false, 100)]);
    }
    let v = verdict(&script);
    assert_eq!(
        (v.result, v.reason),
        (AmdStatus::Machine, AmdReason::MaxWords)
    );
    assert_eq!(v.words, 4, "one more than maximum_number_of_words (3)");
}

#[test]
fn bursts_shorter_than_a_word_are_not_words() {
    // 60 ms clicks are under min_word_length (100 ms): no words, and still initial silence.
    let mut script = Vec::new();
    for _ in 0..20 {
        script.extend([(true, 60), (false, 200)]);
    }
    let v = verdict(&script);
    assert_eq!(v.words, 0);
    assert_eq!(
        v.reason,
        AmdReason::TooLong,
        "clicks reset the silence but make no word"
    );
    assert_eq!(v.result, AmdStatus::NotSure);
}

#[test]
fn silence_alone_is_a_machine_after_initial_silence() {
    let v = verdict(&[(false, 4000)]);
    assert_eq!(
        (v.result, v.reason),
        (AmdStatus::Machine, AmdReason::InitialSilence)
    );
    assert_eq!(
        (v.analysis_ms, v.initial_silence_ms, v.words),
        (2500, 2500, 0)
    );
}

#[test]
fn one_endless_word_is_a_machine() {
    let params = AmdParams {
        greeting_ms: 10_000,
        total_analysis_time_ms: 10_000,
        maximum_word_length_ms: 3000,
        ..AmdParams::default()
    };
    let v = run(params, &[(false, 200), (true, 5000)]).expect("verdict");
    assert_eq!(v.reason, AmdReason::MaxWordLength);
}

#[test]
fn no_decision_within_the_analysis_time_is_notsure() {
    // Speech that is neither short nor long: 140 ms words with 700 ms pauses, too few words and
    // too little voice, never 800 ms of silence.
    let params = AmdParams {
        maximum_number_of_words: 100,
        ..AmdParams::default()
    };
    let mut script = vec![(false, 200)];
    for _ in 0..10 {
        script.extend([(true, 140), (false, 700)]);
    }
    let v = run(params, &script).expect("verdict");
    assert_eq!(
        (v.result, v.reason),
        (AmdStatus::NotSure, AmdReason::TooLong)
    );
    assert_eq!(v.analysis_ms, 5000);
}

#[test]
fn a_verdict_is_final() {
    let mut d = Detector::new(AmdParams::default());
    for _ in 0..125 {
        d.on_frame(&[0; 160]);
    }
    let v = d.verdict().expect("initial silence");
    assert_eq!(d.on_frame(&tone(3000.0)), Some(v));
    assert_eq!(d.on_missing(800), Some(v));
}

#[test]
fn hiss_above_the_fixed_threshold_is_still_silence() {
    // Line noise at mean |x| 600 (well over silence_threshold 256) around a short greeting:
    // the floor follows the noise, so this is a human, not one endless word.
    let mut seed = 7;
    let mut d = Detector::new(AmdParams::default());
    let mut frames: Vec<Vec<i16>> = (0..20).map(|_| hiss(600, &mut seed)).collect();
    for _ in 0..25 {
        let mut f = tone(4000.0);
        for (s, n) in f.iter_mut().zip(hiss(600, &mut seed)) {
            *s = s.saturating_add(n);
        }
        frames.push(f);
    }
    frames.extend((0..100).map(|_| hiss(600, &mut seed)));
    let v = frames.iter().find_map(|f| d.on_frame(f)).expect("verdict");
    assert_eq!(
        (v.result, v.reason),
        (AmdStatus::Human, AmdReason::HumanSpeech)
    );
    assert_eq!(v.voice_ms, 500);
}

#[test]
fn the_fixed_threshold_is_a_floor() {
    // Quiet audio under silence_threshold is silence even on a digitally silent line.
    let params = AmdParams {
        silence_threshold: 3000,
        ..AmdParams::default()
    };
    let v = run(params, &[(false, 200), (true, 4000)]).expect("verdict");
    assert_eq!(
        v.reason,
        AmdReason::InitialSilence,
        "tone at mean |x| ≈ 1900 is under 3000"
    );
}

#[test]
fn missing_audio_counts_as_silence() {
    let mut d = Detector::new(AmdParams::default());
    for _ in 0..25 {
        d.on_frame(&tone(3000.0));
    }
    assert_eq!(d.on_missing(8 * 700), None);
    let v = d
        .on_missing(8 * 100)
        .expect("800 ms of silence after speech");
    assert_eq!(v.reason, AmdReason::HumanSpeech);
}
