//! The N−1 mixer: one 20 ms frame of 8 kHz PCM per participant in, one frame per participant
//! out holding the sum of every *other* participant (never its own voice). The sum is taken
//! once and each participant's own frame subtracted, so a tick costs O(N) not O(N²).
//! Pure arithmetic: no clocks, channels or codecs (the room and the media session own those).

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// One 20 ms frame of 8 kHz linear PCM.
pub type Frame = [i16; FRAME_SAMPLES];

/// A frame whose every sample is within this of zero is silence (about −54 dBFS): it adds
/// nothing to the mix and is not summed (G.711 idle noise decodes to ±8 µ-law / ±8 A-law).
pub const SILENCE_PEAK: u16 = 64;

/// Whether a frame is silence (see [`SILENCE_PEAK`]).
pub fn is_silent(frame: &Frame) -> bool {
    frame.iter().all(|s| s.unsigned_abs() <= SILENCE_PEAK)
}

/// The sum of one tick's active frames, from which each participant's mix is taken.
pub struct Mixer {
    sum: [i32; FRAME_SAMPLES],
    /// Frames summed this tick.
    active: usize,
}

impl Default for Mixer {
    fn default() -> Self {
        Mixer {
            sum: [0; FRAME_SAMPLES],
            active: 0,
        }
    }
}

impl Mixer {
    /// Sums this tick's active frames (`None` = silent, muted or absent: costs nothing).
    pub fn prepare<'a>(&mut self, inputs: impl IntoIterator<Item = Option<&'a Frame>>) {
        self.sum = [0; FRAME_SAMPLES];
        self.active = 0;
        for frame in inputs.into_iter().flatten() {
            self.active += 1;
            for (acc, s) in self.sum.iter_mut().zip(frame.iter()) {
                *acc += i32::from(*s);
            }
        }
    }

    /// Frames summed by the last [`Mixer::prepare`].
    pub fn active(&self) -> usize {
        self.active
    }

    /// What the participant whose own (summed) input was `own` hears: the sum minus `own`,
    /// saturated to 16 bits (loud speakers clip, they never wrap). `false` (and `out`
    /// untouched) when nobody else spoke: the participant hears silence.
    pub fn output_for(&self, own: Option<&Frame>, out: &mut Frame) -> bool {
        let others = self.active - usize::from(own.is_some());
        if others == 0 {
            return false;
        }
        match own {
            Some(own) => {
                for ((o, acc), s) in out.iter_mut().zip(self.sum.iter()).zip(own.iter()) {
                    *o = saturate(*acc - i32::from(*s));
                }
            }
            None => {
                for (o, acc) in out.iter_mut().zip(self.sum.iter()) {
                    *o = saturate(*acc);
                }
            }
        }
        true
    }
}

fn saturate(v: i32) -> i16 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constant(v: i16) -> Frame {
        [v; FRAME_SAMPLES]
    }

    /// Every participant's output, as the room computes it.
    fn mix_all(inputs: &[Option<Frame>]) -> Vec<Option<Frame>> {
        let mut mixer = Mixer::default();
        mixer.prepare(inputs.iter().map(Option::as_ref));
        inputs
            .iter()
            .map(|own| {
                let mut out = constant(0);
                mixer.output_for(own.as_ref(), &mut out).then_some(out)
            })
            .collect()
    }

    #[test]
    fn each_hears_the_others_and_never_itself() {
        let out = mix_all(&[Some(constant(100)), Some(constant(20)), Some(constant(3))]);
        assert_eq!(out[0], Some(constant(23)));
        assert_eq!(out[1], Some(constant(103)));
        assert_eq!(out[2], Some(constant(120)));
    }

    #[test]
    fn a_silent_leg_hears_everyone_and_adds_nothing() {
        let out = mix_all(&[Some(constant(100)), None, Some(constant(-30))]);
        assert_eq!(out[1], Some(constant(70)));
        assert_eq!(out[0], Some(constant(-30)));
        assert_eq!(out[2], Some(constant(100)));
    }

    #[test]
    fn the_only_speaker_hears_nothing() {
        let out = mix_all(&[Some(constant(100)), None]);
        assert_eq!(out[0], None);
        assert_eq!(out[1], Some(constant(100)));
        assert_eq!(mix_all(&[None, None]), vec![None, None]);
    }

    #[test]
    fn loud_sums_saturate_instead_of_wrapping() {
        let out = mix_all(&[Some(constant(30_000)), Some(constant(30_000)), None]);
        assert_eq!(out[2], Some(constant(i16::MAX)), "30000 + 30000");
        assert_eq!(out[0], Some(constant(30_000)));
        let out = mix_all(&[Some(constant(-30_000)), Some(constant(-30_000)), None]);
        assert_eq!(out[2], Some(constant(i16::MIN)));
        // Own subtracted from the exact (32-bit) sum, not from a clipped one.
        let out = mix_all(&[
            Some(constant(30_000)),
            Some(constant(30_000)),
            Some(constant(-20_000)),
        ]);
        assert_eq!(out[2], Some(constant(i16::MAX)));
        assert_eq!(out[0], Some(constant(10_000)));
    }

    #[test]
    fn silence_is_recognised() {
        assert!(is_silent(&constant(0)));
        assert!(is_silent(&constant(-64)));
        assert!(!is_silent(&constant(65)));
        let mut f = constant(0);
        f[80] = i16::MIN;
        assert!(!is_silent(&f));
    }
}
