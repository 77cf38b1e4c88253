//! Band-limited sample-rate conversion of mono audio to 8 kHz: a Kaiser-windowed sinc low-pass
//! (cut-off 3.6 kHz, or 0.45 × the source rate when that is lower) evaluated at arbitrary source
//! positions, so any ratio works (44100→8000, 4000→8000, ...). Pure and allocation-bounded; it
//! must not know file formats or codecs.

/// The rate this module produces.
pub const TARGET_RATE: u32 = 8000;
/// The low-pass cut-off (−6 dB point) for downsampling: leaves the 300–3400 Hz telephone band flat
/// and reaches the stopband by 4 kHz, so nothing folds back into it.
const CUTOFF_HZ: f64 = 3600.0;
/// Transition band width as a fraction of the cut-off (3600 → 800 Hz: 3200..4000).
const TRANSITION_FRACTION: f64 = 800.0 / 3600.0;
/// Stopband attenuation the Kaiser window is designed for, in dB.
const ATTENUATION_DB: f64 = 70.0;
/// Kernel table resolution: points per source sample, linearly interpolated between.
const TABLE_STEPS: usize = 512;

/// Converts `samples` taken at `source_rate` Hz to 8 kHz. The output has
/// `ceil(len × 8000 / source_rate)` samples; at 8000 Hz it is a copy.
pub fn to_8k(samples: &[f32], source_rate: u32) -> Vec<f32> {
    if source_rate == TARGET_RATE || samples.is_empty() {
        return samples.to_vec();
    }
    if source_rate == 0 {
        return Vec::new();
    }
    let kernel = Kernel::new(source_rate);
    let step = f64::from(source_rate) / f64::from(TARGET_RATE);
    let out_len = (samples.len() as u64 * u64::from(TARGET_RATE)).div_ceil(u64::from(source_rate));
    (0..out_len)
        .map(|n| kernel.apply(samples, n as f64 * step))
        .collect()
}

/// A symmetric low-pass impulse response in source-sample units, tabulated on one side.
struct Kernel {
    /// h(d) for d = i / TABLE_STEPS, i in 0..=half_width × TABLE_STEPS (+1 guard point of 0).
    table: Vec<f32>,
    /// Taps reach this many source samples either side of the output position.
    half_width: f64,
}

impl Kernel {
    fn new(source_rate: u32) -> Kernel {
        let rate = f64::from(source_rate);
        let cutoff = CUTOFF_HZ.min(0.45 * rate);
        let transition = cutoff * TRANSITION_FRACTION;
        // Kaiser's estimates for window length and shape (Oppenheim & Schafer, 7.6).
        let taps = (ATTENUATION_DB - 7.95) / (14.36 * transition / rate);
        let half_width = (taps / 2.0).ceil().max(1.0);
        let beta = 0.1102 * (ATTENUATION_DB - 8.7);
        let i0_beta = bessel_i0(beta);
        // Cut-off in cycles per source sample; 2c·sinc(2c·d) has unit DC gain.
        let c = cutoff / rate;
        let points = (half_width as usize) * TABLE_STEPS + 1;
        let mut table: Vec<f32> = (0..points)
            .map(|i| {
                let d = i as f64 / TABLE_STEPS as f64;
                let r = d / half_width;
                let window = bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
                (2.0 * c * sinc(2.0 * c * d) * window) as f32
            })
            .collect();
        table.push(0.0); // guard so interpolation at the very edge reads a valid index
        Kernel { table, half_width }
    }

    /// h(d) by linear interpolation in the table; zero outside the window.
    fn at(&self, d: f64) -> f32 {
        let pos = d.abs() * TABLE_STEPS as f64;
        let i = pos as usize;
        match (self.table.get(i), self.table.get(i + 1)) {
            (Some(&a), Some(&b)) => {
                let frac = (pos - i as f64) as f32;
                a + (b - a) * frac
            }
            _ => 0.0,
        }
    }

    /// The band-limited value of `samples` at fractional source position `x` (zero outside).
    fn apply(&self, samples: &[f32], x: f64) -> f32 {
        let first = (x - self.half_width).ceil().max(0.0) as usize;
        let last = ((x + self.half_width).floor() as usize).min(samples.len() - 1);
        let mut acc = 0.0f32;
        for (k, &s) in samples.iter().enumerate().take(last + 1).skip(first) {
            acc += s * self.at(x - k as f64);
        }
        acc
    }
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// Modified Bessel function of the first kind, order 0 (power series; converges fast for β < 20).
fn bessel_i0(x: f64) -> f64 {
    let half = x / 2.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..50 {
        term *= (half / k as f64) * (half / k as f64);
        sum += term;
        if term < sum * 1e-16 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, seconds: f64, amplitude: f64) -> Vec<f32> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin()) as f32
            })
            .collect()
    }

    /// RMS of the middle of a signal, away from the zero-padded edges.
    fn rms_middle(s: &[f32]) -> f64 {
        let mid = &s[s.len() / 4..s.len() * 3 / 4];
        (mid.iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            / mid.len() as f64)
            .sqrt()
    }

    fn zero_crossings_middle(s: &[f32]) -> usize {
        let mid = &s[s.len() / 4..s.len() * 3 / 4];
        mid.windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count()
    }

    fn db(ratio: f64) -> f64 {
        20.0 * ratio.log10()
    }

    #[test]
    fn identity_at_8000() {
        let input = sine(1000.0, 8000, 0.1, 0.5);
        assert_eq!(to_8k(&input, 8000), input);
        assert!(to_8k(&[], 44_100).is_empty());
    }

    #[test]
    fn one_khz_keeps_frequency_and_level() {
        for rate in [22_050, 44_100, 16_000, 48_000, 11_025, 4000, 192_000] {
            let input = sine(1000.0, rate, 1.0, 0.5);
            let out = to_8k(&input, rate);
            let expected_len = (input.len() as u64 * 8000).div_ceil(u64::from(rate)) as usize;
            assert_eq!(out.len(), expected_len, "length at {rate} Hz");
            // Half a second of 1 kHz has 1000 crossings.
            let crossings = zero_crossings_middle(&out);
            assert!(
                (998..=1002).contains(&crossings),
                "{crossings} crossings at {rate} Hz"
            );
            let level = db(rms_middle(&out) / rms_middle(&input));
            assert!(level.abs() < 1.0, "level {level:.2} dB at {rate} Hz");
        }
    }

    #[test]
    fn six_khz_at_44100_is_attenuated() {
        let input = sine(6000.0, 44_100, 1.0, 0.5);
        let out = to_8k(&input, 44_100);
        let attenuation = db(rms_middle(&out) / rms_middle(&input));
        assert!(attenuation < -30.0, "6 kHz only {attenuation:.1} dB down");
    }

    #[test]
    fn upsampling_rejects_images() {
        // 1.5 kHz at 4 kHz images to 2.5 kHz at 8 kHz; the interpolation filter must remove it.
        let input = sine(1500.0, 4000, 1.0, 0.5);
        let out = to_8k(&input, 4000);
        let mid = &out[out.len() / 4..out.len() * 3 / 4];
        // Project onto 2.5 kHz: its amplitude is the image's.
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (i, &v) in mid.iter().enumerate() {
            let phase = 2.0 * std::f64::consts::PI * 2500.0 * i as f64 / 8000.0;
            re += f64::from(v) * phase.cos();
            im += f64::from(v) * phase.sin();
        }
        let image = 2.0 * (re * re + im * im).sqrt() / mid.len() as f64;
        assert!(
            db(image / 0.5) < -40.0,
            "image at {:.1} dB",
            db(image / 0.5)
        );
    }

    #[test]
    fn dc_passes_unchanged() {
        let out = to_8k(&vec![0.25f32; 22_050], 22_050);
        let mid = &out[out.len() / 4..out.len() * 3 / 4];
        assert!(
            mid.iter().all(|&v| (v - 0.25).abs() < 0.001),
            "{:?}",
            &mid[..4]
        );
    }
}
