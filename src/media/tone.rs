//! Generated audio at 8 kHz linear PCM: sine tones with click-free edges, and the `beep` action's
//! tone. Produces samples only; encoding (see `g711`) and pacing them onto RTP are the caller's.

use std::f64::consts::{PI, TAU};

/// Telephony narrowband sample rate, samples per second.
pub const SAMPLE_RATE: u32 = 8000;
/// Length of the raised-cosine fade at each end: 5 ms.
const FADE_SAMPLES: usize = (SAMPLE_RATE / 200) as usize;
/// The `beep` action's tone.
const BEEP_FREQUENCY_HZ: f32 = 1000.0;
/// Level in dBFS as AES17 defines it: a full-scale sine is 0 dBFS, so this is its peak level.
const BEEP_LEVEL_DBFS: f32 = -10.0;

/// A sine of `frequency_hz` for `duration_ms` at `amplitude` (0.0..=1.0 of full scale), with 5 ms
/// raised-cosine fade in/out so it does not click. Amplitude outside the range is clamped (NaN is
/// silence); tones shorter than 10 ms fade over half their length. The caller bounds
/// `duration_ms`: the whole tone is allocated at once.
pub fn tone(frequency_hz: f32, duration_ms: u32, amplitude: f32) -> Vec<i16> {
    let len = usize::try_from(u64::from(duration_ms) * u64::from(SAMPLE_RATE) / 1000)
        .unwrap_or(usize::MAX);
    let amplitude = if amplitude.is_nan() {
        0.0
    } else {
        amplitude.clamp(0.0, 1.0)
    };
    let peak = f64::from(amplitude) * f64::from(i16::MAX);
    let radians_per_sample = TAU * f64::from(frequency_hz) / f64::from(SAMPLE_RATE);
    let fade = FADE_SAMPLES.min(len / 2);
    (0..len)
        .map(|n| {
            let gain = envelope(n, len, fade);
            // |value| <= i16::MAX; `as` saturates anyway (and maps a NaN frequency to 0).
            (peak * gain * (radians_per_sample * n as f64).sin()).round() as i16
        })
        .collect()
}

/// The `beep` action's tone: 1 kHz at -10 dBFS.
pub fn beep(duration_ms: u32) -> Vec<i16> {
    tone(
        BEEP_FREQUENCY_HZ,
        duration_ms,
        10f32.powf(BEEP_LEVEL_DBFS / 20.0),
    )
}

/// Gain for sample `n` of `len`: a raised-cosine (Hann) ramp over `fade` samples at each end.
fn envelope(n: usize, len: usize, fade: usize) -> f64 {
    let from_edge = n.min(len - 1 - n);
    if from_edge >= fade {
        1.0
    } else {
        0.5 - 0.5 * (PI * from_edge as f64 / fade as f64).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sign changes (zero counts as positive): two per period of a sine.
    fn zero_crossings(samples: &[i16]) -> usize {
        samples
            .windows(2)
            .filter(|pair| (pair[0] < 0) != (pair[1] < 0))
            .count()
    }

    fn rms(samples: &[i16]) -> f64 {
        let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (sum / samples.len() as f64).sqrt()
    }

    #[test]
    fn frequency_from_zero_crossings() {
        for (frequency, duration_ms) in [(1000.0, 1000), (440.0, 1000), (350.0, 500), (3400.0, 200)]
        {
            let samples = tone(frequency, duration_ms, 0.5);
            assert_eq!(samples.len(), duration_ms as usize * 8);
            let expected = 2.0 * f64::from(frequency) * f64::from(duration_ms) / 1000.0;
            let counted = zero_crossings(&samples) as f64;
            assert!(
                (counted - expected).abs() <= 2.0,
                "{frequency} Hz: {counted} crossings, expected {expected}"
            );
        }
    }

    #[test]
    fn beep_is_one_kilohertz_at_minus_ten_dbfs() {
        let samples = beep(1000);
        assert_eq!(samples.len(), 8000);
        assert!((1998..=2002).contains(&zero_crossings(&samples)));
        let steady = &samples[FADE_SAMPLES..samples.len() - FADE_SAMPLES];
        // A sine's RMS is peak / sqrt(2); AES17 dBFS compares peaks of sines.
        let dbfs = 20.0 * (rms(steady) * 2f64.sqrt() / f64::from(i16::MAX)).log10();
        assert!((dbfs + 10.0).abs() < 0.05, "{dbfs} dBFS");
        let peak = steady.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!((10_300..=10_362).contains(&peak), "peak {peak}");
    }

    #[test]
    fn level_follows_amplitude_and_is_clamped() {
        let full = tone(440.0, 200, 1.0);
        let steady_rms = rms(&full[FADE_SAMPLES..full.len() - FADE_SAMPLES]);
        let expected = f64::from(i16::MAX) / 2f64.sqrt();
        assert!((steady_rms / expected - 1.0).abs() < 0.01, "{steady_rms}");
        assert_eq!(tone(440.0, 200, 7.0), full, "amplitude above 1 is clamped");
        assert!(tone(440.0, 200, 0.0).iter().all(|&s| s == 0));
        assert!(tone(440.0, 200, -1.0).iter().all(|&s| s == 0));
        assert!(tone(440.0, 200, f32::NAN).iter().all(|&s| s == 0));
    }

    #[test]
    fn edges_fade_so_they_do_not_click() {
        let samples = tone(1000.0, 100, 1.0);
        assert_eq!(samples.first(), Some(&0));
        assert!(samples.last().is_some_and(|s| s.abs() < 100));
        // The envelope only grows through the fade-in: each cycle's peak exceeds the last.
        let peaks: Vec<u16> = samples[..FADE_SAMPLES]
            .chunks(8)
            .map(|cycle| cycle.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0))
            .collect();
        assert!(peaks.windows(2).all(|pair| pair[0] < pair[1]), "{peaks:?}");
        assert!(peaks[0] < 3000);
        // Sample-to-sample steps inside the fade stay below the steady tone's.
        let max_step = |s: &[i16]| {
            s.windows(2)
                .map(|p| (i32::from(p[1]) - i32::from(p[0])).abs())
                .max()
                .unwrap_or(0)
        };
        assert!(max_step(&samples[..FADE_SAMPLES / 4]) < max_step(&samples[400..480]) / 4);
    }

    #[test]
    fn short_and_empty_tones() {
        assert!(tone(1000.0, 0, 1.0).is_empty());
        let short = tone(1000.0, 1, 1.0);
        assert_eq!(short.len(), 8);
        assert_eq!(short[0], 0);
        assert!(beep(4).iter().all(|s| s.unsigned_abs() < i16::MAX as u16));
    }
}
