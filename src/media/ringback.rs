//! In-band ringback: the tone a caller hears while a `connect` leg rings and the call is
//! already answered (no 180 can tell it any more). One cadence of the configured country's
//! tone (ITU-T E.180 Supplement 2) as 8 kHz PCM; the player repeats it. Samples only.

use serde::{Deserialize, Serialize};

use super::tone::{tone, SAMPLE_RATE};

/// `media.ringback_tone`: whose ringback the caller hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RingbackTone {
    /// North America: 440 + 480 Hz, 2 s on, 4 s off.
    #[default]
    Us,
    /// Most of Europe (CEPT): 425 Hz, 1 s on, 4 s off.
    Eu,
    /// United Kingdom: 400 + 450 Hz, 0.4 s on, 0.2 s off, 0.4 s on, 2 s off.
    Uk,
}

/// Level of each component: -16 dBFS, so the sum of two stays well below full scale.
const COMPONENT_AMPLITUDE: f32 = 0.158;

impl RingbackTone {
    /// The tone's frequencies and its cadence as (on, off) pairs in ms.
    fn spec(self) -> (&'static [f32], &'static [(u32, u32)]) {
        match self {
            RingbackTone::Us => (&[440.0, 480.0], &[(2000, 4000)]),
            RingbackTone::Eu => (&[425.0], &[(1000, 4000)]),
            RingbackTone::Uk => (&[400.0, 450.0], &[(400, 200), (400, 2000)]),
        }
    }

    /// One cadence period in ms.
    pub fn period_ms(self) -> u32 {
        self.spec().1.iter().map(|(on, off)| on + off).sum()
    }

    /// One cadence: the tone bursts and their silences.
    pub fn cadence(self) -> Vec<i16> {
        let (frequencies, cadence) = self.spec();
        let mut out = Vec::with_capacity((self.period_ms() * SAMPLE_RATE / 1000) as usize);
        for &(on, off) in cadence {
            let mut burst = vec![0i32; (on * SAMPLE_RATE / 1000) as usize];
            for &f in frequencies {
                for (sum, s) in burst.iter_mut().zip(tone(f, on, COMPONENT_AMPLITUDE)) {
                    *sum += i32::from(s);
                }
            }
            out.extend(burst.into_iter().map(|s| s.clamp(-32768, 32767) as i16));
            out.resize(out.len() + (off * SAMPLE_RATE / 1000) as usize, 0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn energy(samples: &[i16]) -> f64 {
        samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64
    }

    #[test]
    fn cadences_have_their_on_and_off_parts() {
        // E.180 Supplement 2: US 2 s on 4 s off; CEPT 1 s on 4 s off; UK 0.4/0.2/0.4/2.
        for (tone, period, on_ms) in [
            (RingbackTone::Us, 6000, 2000),
            (RingbackTone::Eu, 5000, 1000),
            (RingbackTone::Uk, 3000, 400),
        ] {
            let samples = tone.cadence();
            assert_eq!(samples.len(), period as usize * 8, "{tone:?}");
            let on = &samples[80..(on_ms as usize * 8 - 80)];
            assert!(energy(on) > 1.0e6, "{tone:?} on part is loud");
            let tail = &samples[samples.len() - 800..];
            assert!(tail.iter().all(|&s| s == 0), "{tone:?} ends in silence");
        }
    }

    #[test]
    fn eu_tone_is_425_hz() {
        let samples = RingbackTone::Eu.cadence();
        let on = &samples[..8000];
        let crossings = on.windows(2).filter(|p| (p[0] < 0) != (p[1] < 0)).count();
        assert!((845..=855).contains(&crossings), "{crossings}");
    }

    #[test]
    fn config_names() {
        #[derive(Deserialize)]
        struct T {
            t: RingbackTone,
        }
        let parse = |s: &str| toml::from_str::<T>(&format!("t = \"{s}\"")).map(|t| t.t);
        assert_eq!(parse("us").ok(), Some(RingbackTone::Us));
        assert_eq!(parse("eu").ok(), Some(RingbackTone::Eu));
        assert_eq!(parse("uk").ok(), Some(RingbackTone::Uk));
        assert!(parse("fr").is_err());
    }
}
