//! The receiving side of a recording: orders the caller's decoded audio by RTP timestamp (gaps
//! become silence, late and duplicate packets are dropped), batches it for the writer thread,
//! and decides when a recording ends by itself (max duration, continuous silence).

use std::time::{Duration, Instant};

use super::request::RecordingRequest;

/// Audio handed to the writer per chunk: one second at 8 kHz.
const CHUNK: usize = 8000;
/// A gap wider than this (5 s) is a new stream (e.g. after hold), not lost packets.
const MAX_GAP: u32 = 5 * 8000;
/// Mean absolute amplitude below which a packet counts as silence (about -44 dBFS).
const SILENCE_LEVEL: u32 = 200;

pub struct Capture {
    pub request: RecordingRequest,
    buffer: Vec<i16>,
    expected_timestamp: Option<u32>,
    started: Instant,
    last_voice: Instant,
}

impl Capture {
    pub fn new(request: RecordingRequest, now: Instant) -> Self {
        Capture {
            request,
            buffer: Vec::with_capacity(CHUNK),
            expected_timestamp: None,
            started: now,
            last_voice: now,
        }
    }

    /// Adds one packet's samples; returns a full chunk to write when one is ready.
    pub fn on_audio(&mut self, timestamp: u32, pcm: &[i16], now: Instant) -> Option<Vec<i16>> {
        if let Some(expected) = self.expected_timestamp {
            let ahead = timestamp.wrapping_sub(expected);
            if ahead >= u32::MAX / 2 {
                // Behind what we already have: a duplicate or a late packet.
                return None;
            }
            if ahead > 0 && ahead <= MAX_GAP {
                self.buffer.resize(self.buffer.len() + ahead as usize, 0);
            }
        }
        self.expected_timestamp = Some(timestamp.wrapping_add(pcm.len() as u32));
        self.buffer.extend_from_slice(pcm);
        if !is_silence(pcm) {
            self.last_voice = now;
        }
        (self.buffer.len() >= CHUNK).then(|| std::mem::take(&mut self.buffer))
    }

    /// Why the recording should stop now, if it should.
    pub fn should_stop(&self, now: Instant) -> Option<&'static str> {
        if now.duration_since(self.started) >= self.request.max_duration {
            return Some("duration");
        }
        match self.request.end_of_silence {
            Some(limit) if now.duration_since(self.last_voice) >= limit => Some("silence"),
            _ => None,
        }
    }

    pub fn ends_on(&self, digit: char) -> bool {
        self.request.end_keys.contains(digit)
    }

    /// What is buffered but not yet written.
    pub fn take_rest(&mut self) -> Vec<i16> {
        std::mem::take(&mut self.buffer)
    }

    pub fn elapsed(&self, now: Instant) -> Duration {
        now.duration_since(self.started)
    }
}

fn is_silence(pcm: &[i16]) -> bool {
    if pcm.is_empty() {
        return true;
    }
    let sum: u64 = pcm.iter().map(|s| u64::from(s.unsigned_abs())).sum();
    sum / (pcm.len() as u64) < u64::from(SILENCE_LEVEL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::recording::RecordingId;

    fn request(max: Duration, silence: Option<Duration>) -> RecordingRequest {
        RecordingRequest {
            id: RecordingId::new(),
            activeflow_id: String::new(),
            max_duration: max,
            end_of_silence: silence,
            end_keys: "#".into(),
            beep_start: false,
        }
    }

    #[test]
    fn orders_by_timestamp_and_fills_gaps() {
        let now = Instant::now();
        let mut c = Capture::new(request(Duration::from_secs(60), None), now);
        let voice = [3000i16; 160];
        assert!(c.on_audio(1000, &voice, now).is_none());
        // One packet lost: 160 samples of silence are inserted.
        assert!(c.on_audio(1320, &voice, now).is_none());
        // A duplicate and a late one are dropped.
        assert!(c.on_audio(1320, &voice, now).is_none());
        assert!(c.on_audio(1160, &voice, now).is_none());
        let rest = c.take_rest();
        assert_eq!(rest.len(), 480);
        assert_eq!(&rest[160..320], &[0i16; 160][..]);
        assert!(c.ends_on('#') && !c.ends_on('1'));
    }

    #[test]
    fn chunks_and_wrap() {
        let now = Instant::now();
        let mut c = Capture::new(request(Duration::from_secs(60), None), now);
        let voice = [3000i16; 160];
        let mut ts = u32::MAX - 800;
        let mut chunks = 0;
        for _ in 0..60 {
            if c.on_audio(ts, &voice, now).is_some() {
                chunks += 1;
            }
            ts = ts.wrapping_add(160);
        }
        assert_eq!(chunks, 1);
        assert_eq!(c.take_rest().len(), 60 * 160 - CHUNK);
    }

    #[test]
    fn stops_on_duration_and_silence() {
        let t0 = Instant::now();
        let c = Capture::new(request(Duration::from_secs(2), None), t0);
        assert_eq!(c.should_stop(t0 + Duration::from_secs(1)), None);
        assert_eq!(c.should_stop(t0 + Duration::from_secs(2)), Some("duration"));
        let mut c = Capture::new(
            request(Duration::from_secs(60), Some(Duration::from_secs(1))),
            t0,
        );
        c.on_audio(0, &[3000i16; 160], t0 + Duration::from_millis(500));
        c.on_audio(160, &[0i16; 160], t0 + Duration::from_millis(1400));
        assert_eq!(c.should_stop(t0 + Duration::from_millis(1400)), None);
        assert_eq!(
            c.should_stop(t0 + Duration::from_millis(1500)),
            Some("silence")
        );
    }
}
