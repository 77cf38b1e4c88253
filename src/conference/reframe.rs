//! Re-framing received audio into the room's 20 ms frames: a peer may packetise at 10, 30 or
//! any number of ms (RFC 3551 §4.2 leaves the packet time to the sender), the room mixes
//! 160-sample frames. Decoded samples are appended, whole frames taken out in order, and a
//! remainder (less than one frame) waits for the next packet. Pure: no codec, no channel.

use super::mix::{Frame, FRAME_SAMPLES};

/// Decoded samples not yet a whole frame (bounded: whole frames always leave).
#[derive(Debug, Default)]
pub struct Reframer {
    partial: Vec<i16>,
}

impl Reframer {
    pub fn new() -> Self {
        Reframer {
            partial: Vec::with_capacity(2 * FRAME_SAMPLES),
        }
    }

    /// Where a packet's samples are decoded to (appended after the remainder).
    pub fn buffer(&mut self) -> &mut Vec<i16> {
        &mut self.partial
    }

    /// Hands every whole frame, oldest first, to `each`; keeps the remainder.
    pub fn frames(&mut self, mut each: impl FnMut(Box<Frame>)) {
        let mut at = 0;
        while self.partial.len() - at >= FRAME_SAMPLES {
            let mut frame = Box::new([0i16; FRAME_SAMPLES]);
            frame.copy_from_slice(&self.partial[at..at + FRAME_SAMPLES]);
            at += FRAME_SAMPLES;
            each(frame);
        }
        self.partial.drain(..at);
    }

    /// Samples waiting for the next packet.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds payloads of `sizes` samples of one running ramp; returns the frames out, in
    /// order, and what is left over.
    fn feed(sizes: &[usize]) -> (Vec<Frame>, usize) {
        let mut r = Reframer::new();
        let mut next = 0i32;
        let mut out = Vec::new();
        for n in sizes {
            for _ in 0..*n {
                r.buffer().push((1000 + next % 20_000) as i16);
                next += 1;
            }
            r.frames(|f| out.push(*f));
        }
        (out, r.pending())
    }

    /// The frames are exactly the input cut at every 160th sample: nothing lost, repeated,
    /// zero-padded or reordered.
    fn assert_continuous(frames: &[Frame]) {
        for (k, f) in frames.iter().enumerate() {
            for (i, s) in f.iter().enumerate() {
                let n = (k * FRAME_SAMPLES + i) as i32;
                assert_eq!(i32::from(*s), 1000 + n % 20_000, "frame {k} sample {i}");
            }
        }
    }

    #[test]
    fn ten_ms_packets_make_one_frame_per_two() {
        let (frames, left) = feed(&[80, 80, 80]);
        assert_eq!((frames.len(), left), (1, 80));
        let (frames, left) = feed(&[80; 10]);
        assert_eq!((frames.len(), left), (5, 0));
        assert_continuous(&frames);
    }

    #[test]
    fn thirty_ms_packets_make_three_frames_per_two() {
        let (frames, left) = feed(&[240, 240]);
        assert_eq!((frames.len(), left), (3, 0));
        assert_continuous(&frames);
        let (frames, left) = feed(&[240; 5]);
        assert_eq!((frames.len(), left), (7, 80));
        assert_continuous(&frames);
    }

    #[test]
    fn mixed_packet_times_lose_nothing() {
        // 3 × 10 ms then 2 × 30 ms: 720 samples, 4 whole frames and a half.
        let (frames, left) = feed(&[80, 80, 80, 240, 240]);
        assert_eq!((frames.len(), left), (4, 80));
        assert_continuous(&frames);
        let (frames, left) = feed(&[80, 80, 80, 240, 240, 80, 160, 1]);
        assert_eq!((frames.len(), left), (6, 1));
        assert_continuous(&frames);
    }
}
