//! What a media session sends: a prompt being played (G.711 frames of 20 ms) and DTMF digits
//! being sent as RFC 4733 events. Pure state, advanced one 20 ms tick at a time by the RTP
//! session; no sockets, no clocks.

use std::collections::VecDeque;
use std::sync::Arc;

use super::dtmf::{digit_packets, TelephoneEvent};
use super::g711::Codec;
use super::request::MediaJob;

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// A prompt (or several, back to back), encoded frame by frame from the shared decoded audio:
/// a call playing a cached prompt holds no copy of it.
pub struct Playback {
    pub job: MediaJob,
    pub stop_on_digit: bool,
    audio: Vec<Arc<[i16]>>,
    part: usize,
    offset: usize,
    played: usize,
    total: usize,
    codec: Codec,
}

impl Playback {
    pub fn new(job: MediaJob, audio: &[Arc<[i16]>], codec: Codec, stop_on_digit: bool) -> Self {
        Playback {
            job,
            stop_on_digit,
            total: audio.iter().map(|a| a.len()).sum(),
            audio: audio.to_vec(),
            part: 0,
            offset: 0,
            played: 0,
            codec,
        }
    }

    /// Encodes the next 20 ms frame into `frame` (the last one padded with silence); false when
    /// everything was sent.
    pub fn next_frame(&mut self, frame: &mut Vec<u8>) -> bool {
        if self.played >= self.total {
            return false;
        }
        frame.clear();
        while frame.len() < FRAME_SAMPLES {
            let Some(part) = self.audio.get(self.part) else {
                break;
            };
            let take = (FRAME_SAMPLES - frame.len()).min(part.len() - self.offset);
            self.codec
                .encode(&part[self.offset..self.offset + take], frame);
            self.offset += take;
            self.played += take;
            if self.offset == part.len() {
                self.part += 1;
                self.offset = 0;
            }
        }
        frame.resize(FRAME_SAMPLES, self.codec.silence());
        true
    }

    pub fn played_ms(&self) -> u64 {
        (self.played / 8) as u64
    }

    pub fn total_ms(&self) -> u64 {
        (self.total / 8) as u64
    }
}

/// One thing to put on the wire this tick while sending digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigitTick {
    /// Send this event with this RTP timestamp (the event's start) and marker.
    Packet {
        event: TelephoneEvent,
        timestamp: u32,
        marker: bool,
    },
    /// Nothing this tick (the pause between digits).
    Pause,
    /// Every digit was sent.
    Done,
}

/// Digits queued for RFC 4733 sending.
pub struct DigitSender {
    pub job: MediaJob,
    digits: VecDeque<char>,
    current: VecDeque<TelephoneEvent>,
    event_timestamp: u32,
    first_packet: bool,
    pause_ticks: u32,
    duration_ms: u32,
    interval_ticks: u32,
    sent: String,
}

impl DigitSender {
    /// `None` if a character is not a DTMF key.
    pub fn new(job: MediaJob, digits: &str, duration_ms: u32, interval_ms: u32) -> Option<Self> {
        if digits
            .chars()
            .any(|c| digit_packets(c, duration_ms).is_none())
        {
            return None;
        }
        Some(DigitSender {
            job,
            digits: digits.chars().collect(),
            current: VecDeque::new(),
            event_timestamp: 0,
            first_packet: false,
            pause_ticks: 0,
            duration_ms,
            interval_ticks: interval_ms.div_ceil(20),
            sent: String::new(),
        })
    }

    /// Advances one tick; `timestamp` is the RTP timestamp of this tick.
    pub fn tick(&mut self, timestamp: u32) -> DigitTick {
        if let Some(event) = self.current.pop_front() {
            let marker = std::mem::take(&mut self.first_packet);
            if self.current.is_empty() {
                self.pause_ticks = self.interval_ticks;
            }
            return DigitTick::Packet {
                event,
                timestamp: self.event_timestamp,
                marker,
            };
        }
        if self.pause_ticks > 0 {
            self.pause_ticks -= 1;
            return DigitTick::Pause;
        }
        let Some(digit) = self.digits.pop_front() else {
            return DigitTick::Done;
        };
        self.current = digit_packets(digit, self.duration_ms)
            .unwrap_or_default()
            .into();
        self.sent.push(digit);
        self.event_timestamp = timestamp;
        self.first_packet = true;
        self.tick(timestamp)
    }

    pub fn sent(&self) -> &str {
        &self.sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playback_frames_and_padding() {
        let audio: Arc<[i16]> = vec![1000i16; 400].into();
        let empty: Arc<[i16]> = Vec::new().into();
        let mut p = Playback::new(
            MediaJob(1),
            &[audio.clone(), empty, audio],
            Codec::Pcmu,
            false,
        );
        assert_eq!(p.total_ms(), 100);
        let mut frame = Vec::new();
        let mut frames = 0;
        while p.next_frame(&mut frame) {
            assert_eq!(frame.len(), FRAME_SAMPLES);
            // Frames spanning two parts are whole: no silence inside the prompt.
            assert!(frame
                .iter()
                .all(|b| *b == crate::media::g711::ulaw_encode(1000)));
            frames += 1;
        }
        assert_eq!(frames, 5);
        assert_eq!(p.played_ms(), 100);
        let short: Arc<[i16]> = vec![1000i16; 170].into();
        let mut p = Playback::new(MediaJob(2), &[short], Codec::Pcma, false);
        assert!(p.next_frame(&mut frame) && p.next_frame(&mut frame));
        assert_eq!(frame[10], Codec::Pcma.silence());
        assert!(!p.next_frame(&mut frame));
    }

    #[test]
    fn digits_share_a_timestamp_then_pause() {
        let mut s = DigitSender::new(MediaJob(1), "1#", 100, 40).unwrap();
        let mut packets = Vec::new();
        let mut ts = 1000u32;
        loop {
            match s.tick(ts) {
                DigitTick::Done => break,
                t => packets.push(t),
            }
            ts += 160;
        }
        let first = packets
            .iter()
            .filter_map(|p| match p {
                DigitTick::Packet {
                    event, timestamp, ..
                } if event.event == 1 => Some(*timestamp),
                _ => None,
            })
            .collect::<Vec<_>>();
        assert!(first.iter().all(|t| *t == 1000), "{first:?}");
        assert!(matches!(packets[0], DigitTick::Packet { marker: true, .. }));
        assert!(packets.contains(&DigitTick::Pause));
        assert_eq!(s.sent(), "1#");
        assert!(DigitSender::new(MediaJob(2), "1x", 100, 0).is_none());
    }
}
