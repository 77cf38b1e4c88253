//! The host's audio on its way to the caller: cut into 20 ms µ-law frames, held in a bounded
//! queue and handed to the session one frame per 20 ms tick (the task owns the clock), so a host
//! that sends faster than real time (a TTS answer at once, or a flood) costs the call's thread
//! one frame per tick at most. Frames beyond the bound are dropped and counted. Pure: no
//! clock or socket here.

use std::collections::VecDeque;

use super::Frame;

/// µ-law bytes in one 20 ms frame at 8 kHz.
pub(super) const FRAME_BYTES: usize = 160;
/// µ-law silence, to pad a short last piece.
const SILENCE: u8 = 0xFF;

#[derive(Debug)]
pub(super) struct HostPlayout {
    queue: VecDeque<Vec<u8>>,
    /// Most frames held.
    cap: usize,
    /// Pad a short piece to a whole frame (WebSocket messages), or keep it for the next piece
    /// (RTP packets of 10 ms multiples make whole frames together).
    pad: bool,
    carry: Vec<u8>,
    timestamp: u32,
    /// The next frame starts a talkspurt (RFC 3551 §4.1 marker).
    marker: bool,
}

impl HostPlayout {
    pub(super) fn new(cap: usize, pad: bool) -> Self {
        HostPlayout {
            queue: VecDeque::new(),
            cap,
            pad,
            carry: Vec::with_capacity(FRAME_BYTES),
            timestamp: 0,
            marker: true,
        }
    }

    /// Queues `audio`; returns how many frames were dropped on a full queue.
    pub(super) fn push(&mut self, audio: &[u8]) -> u64 {
        let mut dropped = 0;
        let mut rest = audio;
        while !rest.is_empty() {
            let take = (FRAME_BYTES - self.carry.len()).min(rest.len());
            self.carry.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.carry.len() < FRAME_BYTES && !self.pad {
                break;
            }
            let mut frame = std::mem::replace(&mut self.carry, Vec::with_capacity(FRAME_BYTES));
            frame.resize(FRAME_BYTES, SILENCE);
            if self.queue.len() >= self.cap {
                dropped += 1;
            } else {
                self.queue.push_back(frame);
            }
        }
        dropped
    }

    /// Barge-in: everything queued goes.
    pub(super) fn clear(&mut self) {
        self.queue.clear();
        self.carry.clear();
        self.marker = true;
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// This tick's frame, on the stream's own 20 ms timestamps.
    pub(super) fn next_frame(&mut self) -> Option<Frame> {
        let payload = self.queue.pop_front()?;
        let frame = Frame {
            marker: std::mem::replace(&mut self.marker, false),
            timestamp: self.timestamp,
            payload,
        };
        self.timestamp = self.timestamp.wrapping_add(FRAME_BYTES as u32);
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_ms_packets_make_whole_frames() {
        let mut p = HostPlayout::new(10, false);
        assert_eq!(p.push(&[1; 80]), 0);
        assert!(p.is_empty(), "half a frame waits");
        p.push(&[2; 80]);
        let f = p.next_frame().unwrap();
        assert_eq!((f.marker, f.timestamp, f.payload.len()), (true, 0, 160));
        assert_eq!((f.payload[0], f.payload[159]), (1, 2));
        p.push(&[3; 160]);
        let f = p.next_frame().unwrap();
        assert_eq!((f.marker, f.timestamp), (false, 160));
    }

    #[test]
    fn a_flood_is_bounded_and_counted() {
        let mut p = HostPlayout::new(10, false);
        let dropped: u64 = (0..100).map(|_| p.push(&[0; 160])).sum();
        assert_eq!(dropped, 90);
        let mut n = 0;
        while p.next_frame().is_some() {
            n += 1;
        }
        assert_eq!(n, 10, "one frame per tick, at most the bound");
    }

    #[test]
    fn websocket_pieces_are_padded_and_clear_empties() {
        let mut p = HostPlayout::new(500, true);
        p.push(&[7; 200]);
        let f = p.next_frame().unwrap();
        assert_eq!(f.payload, vec![7; 160]);
        let f = p.next_frame().unwrap();
        assert_eq!(&f.payload[..40], &[7; 40]);
        assert_eq!(f.payload[40], SILENCE);
        p.push(&[1; 320]);
        p.clear();
        assert!(p.next_frame().is_none());
    }
}
