//! DTMF as RFC 4733 telephone-events (payload read/write, digit detection, packets to send) and as
//! SIP INFO bodies (`application/dtmf-relay`, `application/dtmf`). Pure: no RTP header handling
//! (see `rtp`), no timers; the caller owns sockets, clocks and the SIP transaction.

mod info;

pub use info::{info_digit, InfoDtmfError};

/// Samples per 20 ms packet at the 8 kHz telephone-event clock.
const SAMPLES_PER_PACKET: u32 = 160;
/// Telephone-event clock rate in samples per millisecond.
const SAMPLES_PER_MS: u32 = 8;
/// Times the final (end-bit) packet is sent (RFC 4733 §2.5.1.4).
const END_RETRANSMISSIONS: usize = 3;
/// Volume we send at, in -dBm0 (RFC 4733 §2.3.4).
const SEND_VOLUME: u8 = 10;
/// The digits, indexed by event code (RFC 4733 §3.2).
const DIGITS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

/// One telephone-event payload (RFC 4733 §2.3):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// |     event     |E|R| volume    |          duration             |
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    /// E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0, 6 bits (`write` masks off anything higher).
    pub volume: u8,
    /// Samples since the event began (its RTP timestamp), 8 kHz clock.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Reads the first 4 octets; None if there are fewer. The reserved bit is ignored.
    pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
        let &[event, flags, duration_high, duration_low, ..] = payload else {
            return None;
        };
        Some(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([duration_high, duration_low]),
        })
    }

    /// Appends the 4-octet payload (reserved bit zero).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(self.event);
        out.push(u8::from(self.end) << 7 | (self.volume & 0x3F));
        out.extend_from_slice(&self.duration.to_be_bytes());
    }
}

/// Event code to digit: 0-9, 10 `*`, 11 `#`, 12-15 `A`-`D`; None for other events (e.g. flash).
pub fn event_to_digit(event: u8) -> Option<char> {
    DIGITS.get(usize::from(event)).copied()
}

/// Digit to event code; accepts lowercase `a`-`d` too.
pub fn digit_to_event(digit: char) -> Option<u8> {
    let upper = digit.to_ascii_uppercase();
    // DIGITS has 16 entries, so the position fits in u8.
    DIGITS.iter().position(|&d| d == upper).map(|i| i as u8)
}

/// The digits one packet completed: zero, one, or two (a previous event whose end packets were
/// lost, then this packet's event if it is itself an end packet). Iterate it or use `as_slice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digits {
    buf: [char; 2],
    start: usize,
    end: usize,
}

impl Digits {
    fn none() -> Self {
        Self {
            buf: ['\0'; 2],
            start: 0,
            end: 0,
        }
    }

    fn push(&mut self, digit: Option<char>) {
        if let Some(digit) = digit {
            self.buf[self.end] = digit;
            self.end += 1;
        }
    }

    pub fn as_slice(&self) -> &[char] {
        &self.buf[self.start..self.end]
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

impl Iterator for Digits {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let digit = self.as_slice().first().copied()?;
        self.start += 1;
        Some(digit)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.end - self.start;
        (len, Some(len))
    }
}

impl ExactSizeIterator for Digits {}

/// An event seen but not yet reported: its RTP timestamp and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    timestamp: u32,
    event: u8,
}

/// Turns a stream of telephone-event packets into digits, one per event, keyed by the RTP
/// timestamp the event's packets share (RFC 4733 §2.5.2):
///
/// ```text
///   new timestamp ──► pending ──first end packet──► reported (later packets of it ignored)
///                        │
///                        └──newer timestamp arrives first (end lost)──► reported, new pending
/// ```
///
/// Timestamps are compared with serial-number arithmetic, so 32-bit wrap is handled; packets of
/// an event older than the last reported one (late or reordered) are ignored. Events without a
/// digit (flash, tones) are tracked for ordering but produce nothing. Events longer than
/// 65535 samples (RFC 4733 §2.5.1.3 segments, over 8 s) would count as several digits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventDetector {
    pending: Option<Pending>,
    last_reported: Option<u32>,
}

impl EventDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one packet's RTP timestamp and payload; returns the digits it completed.
    pub fn on_event(&mut self, timestamp: u32, event: &TelephoneEvent) -> Digits {
        let mut digits = Digits::none();
        if self
            .last_reported
            .is_some_and(|last| !is_newer(timestamp, last))
        {
            return digits;
        }
        match self.pending {
            Some(pending) if pending.timestamp == timestamp => {}
            Some(pending) if is_newer(pending.timestamp, timestamp) => return digits,
            Some(pending) => {
                // A newer event began before we saw this one's end: its end packets were lost.
                digits.push(event_to_digit(pending.event));
                self.last_reported = Some(pending.timestamp);
                self.pending = Some(Pending {
                    timestamp,
                    event: event.event,
                });
            }
            None => {
                self.pending = Some(Pending {
                    timestamp,
                    event: event.event,
                })
            }
        }
        if event.end {
            if let Some(pending) = self.pending.take() {
                digits.push(event_to_digit(pending.event));
                self.last_reported = Some(pending.timestamp);
            }
        }
        digits
    }

    /// A new RTP stream (SSRC) began: its timestamps have nothing to do with the old one's, so
    /// everything is forgotten. Returns the old stream's event in progress, if any, as ended.
    pub fn reset(&mut self) -> Option<char> {
        let pending = self.pending.take();
        *self = Self::default();
        pending.and_then(|p| event_to_digit(p.event))
    }

    /// Reports the event in progress, if any, as if its end had arrived. For the caller's
    /// inactivity timeout or end of stream, when every end packet of the last event was lost.
    pub fn flush(&mut self) -> Option<char> {
        let pending = self.pending.take()?;
        self.last_reported = Some(pending.timestamp);
        event_to_digit(pending.event)
    }
}

/// `a` is later than `b` in RTP timestamp order (RFC 1982 serial arithmetic on 32 bits).
fn is_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

/// Packets to send one digit as RFC 4733 events at 20 ms packetisation (160 samples at 8 kHz):
/// ceil(duration_ms/20) packets (at least one) with growing duration, then the final end-bit
/// packet repeated 3 times (same duration). volume 10. None for a character that is not a DTMF
/// digit.
///
/// All packets carry the same RTP timestamp (the event's start); the caller sets the marker bit
/// on the first packet only and sends one packet every 20 ms (the end retransmissions may go
/// back to back). Durations are capped at 65535 samples (8191 ms): longer events are not split.
pub fn digit_packets(digit: char, duration_ms: u32) -> Option<Vec<TelephoneEvent>> {
    let event = digit_to_event(digit)?;
    let total = duration_ms
        .saturating_mul(SAMPLES_PER_MS)
        .min(u32::from(u16::MAX));
    let count = total.div_ceil(SAMPLES_PER_PACKET).max(1);
    let packet = |duration: u32, end: bool| TelephoneEvent {
        event,
        end,
        volume: SEND_VOLUME,
        // `total` is capped at u16::MAX above.
        duration: duration.min(total) as u16,
    };
    let mut packets: Vec<TelephoneEvent> = (1..=count)
        .map(|n| packet(n * SAMPLES_PER_PACKET, false))
        .collect();
    packets.extend(std::iter::repeat_n(
        packet(total, true),
        END_RETRANSMISSIONS,
    ));
    Some(packets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(code: u8, end: bool, duration: u16) -> TelephoneEvent {
        TelephoneEvent {
            event: code,
            end,
            volume: 10,
            duration,
        }
    }

    /// Feeds (timestamp, event) pairs and collects every reported digit.
    fn detect(detector: &mut EventDetector, packets: &[(u32, TelephoneEvent)]) -> String {
        packets
            .iter()
            .flat_map(|(ts, e)| detector.on_event(*ts, e))
            .collect()
    }

    #[test]
    fn reset_forgets_the_old_stream_and_hands_back_its_event_in_progress() {
        let mut d = EventDetector::new();
        assert_eq!(detect(&mut d, &[(90_000, event(1, true, 800))]), "1");
        assert_eq!(detect(&mut d, &[(95_000, event(3, false, 160))]), "");
        // A new SSRC whose timestamps are older: without the reset its digits are dropped.
        assert_eq!(d.reset(), Some('3'));
        assert_eq!(detect(&mut d, &[(1_000, event(2, true, 800))]), "2");
        assert_eq!(d.reset(), None);
    }

    #[test]
    fn payload_round_trip_and_bits() {
        let parsed = TelephoneEvent::parse(&[11, 0x80 | 0x40 | 10, 0x03, 0x20, 0xEE]);
        assert_eq!(
            parsed,
            Some(event(11, true, 800)),
            "R bit ignored, extra octets ignored"
        );
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), None);
        let mut out = vec![0xAA];
        event(5, false, 160).write(&mut out);
        assert_eq!(out, [0xAA, 5, 10, 0, 160]);
        let loud = TelephoneEvent {
            volume: 0xFF,
            ..event(1, true, 1)
        };
        let mut out = Vec::new();
        loud.write(&mut out);
        assert_eq!(out[1], 0x80 | 0x3F, "volume masked, R bit zero");
    }

    #[test]
    fn digits_and_events_map_both_ways() {
        for code in 0..16u8 {
            let digit = event_to_digit(code).expect("digit");
            assert_eq!(digit_to_event(digit), Some(code));
            assert_eq!(digit_to_event(digit.to_ascii_lowercase()), Some(code));
        }
        assert_eq!(event_to_digit(10), Some('*'));
        assert_eq!(event_to_digit(11), Some('#'));
        assert_eq!(event_to_digit(16), None);
        assert_eq!(digit_to_event('e'), None);
        assert_eq!(digit_to_event(' '), None);
    }

    #[test]
    fn one_digit_per_event_despite_retransmissions() {
        let mut detector = EventDetector::new();
        let mut packets: Vec<(u32, TelephoneEvent)> =
            (1..=4).map(|n| (1000, event(1, false, n * 160))).collect();
        packets.extend([(1000, event(1, true, 800)); 3]);
        packets.extend([(2000, event(2, false, 160)), (2000, event(2, true, 320))]);
        packets.extend([(2000, event(2, true, 320)); 2]);
        assert_eq!(detect(&mut detector, &packets), "12");
        // The same digit twice in a row is two events (two timestamps).
        let again = [(3000, event(2, true, 320)), (4000, event(2, true, 320))];
        assert_eq!(detect(&mut detector, &again), "22");
    }

    #[test]
    fn lost_end_packets_report_on_next_event() {
        let mut detector = EventDetector::new();
        assert!(detector.on_event(100, &event(10, false, 160)).is_empty());
        let digits = detector.on_event(900, &event(11, false, 160));
        assert_eq!(digits.as_slice(), ['*']);
        assert_eq!(detect(&mut detector, &[(900, event(11, true, 320))]), "#");
        // Next event arrives only as an end packet: both digits come out of one call.
        assert!(detector.on_event(1800, &event(3, false, 160)).is_empty());
        let digits = detector.on_event(2700, &event(4, true, 480));
        assert_eq!(digits.len(), 2);
        assert_eq!(digits.collect::<String>(), "34");
        // Late end packets of reported events are ignored.
        assert_eq!(detect(&mut detector, &[(900, event(11, true, 480))]), "");
        assert_eq!(detect(&mut detector, &[(100, event(10, true, 480))]), "");
    }

    #[test]
    fn flush_reports_event_whose_end_never_came() {
        let mut detector = EventDetector::new();
        assert_eq!(detector.flush(), None);
        detector.on_event(5, &event(9, false, 160));
        assert_eq!(detector.flush(), Some('9'));
        assert_eq!(
            detect(&mut detector, &[(5, event(9, true, 320))]),
            "",
            "already reported"
        );
    }

    #[test]
    fn timestamps_wrap() {
        let mut detector = EventDetector::new();
        let start = u32::MAX - 100;
        let packets = [
            (start, event(7, false, 160)),
            (start, event(7, true, 320)),
            (start.wrapping_add(1000), event(8, false, 160)),
            (start, event(7, true, 320)),
            (start.wrapping_add(1000), event(8, true, 320)),
        ];
        assert_eq!(detect(&mut detector, &packets), "78");
    }

    #[test]
    fn non_digit_events_are_silent_but_ordered() {
        let mut detector = EventDetector::new();
        let packets = [(10, event(16, true, 160)), (20, event(0, true, 160))];
        assert_eq!(detect(&mut detector, &packets), "0");
    }

    #[test]
    fn packets_for_a_digit() {
        let packets = digit_packets('#', 100).expect("digit");
        let durations: Vec<u16> = packets.iter().map(|p| p.duration).collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800, 800]);
        let ends: Vec<bool> = packets.iter().map(|p| p.end).collect();
        assert_eq!(ends, [false, false, false, false, false, true, true, true]);
        assert!(packets.iter().all(|p| p.event == 11 && p.volume == 10));

        // Not a multiple of 20 ms: the last packets carry the exact duration.
        let durations: Vec<u16> = digit_packets('a', 50)
            .expect("digit")
            .iter()
            .map(|p| p.duration)
            .collect();
        assert_eq!(durations, [160, 320, 400, 400, 400, 400]);
        assert_eq!(digit_packets('1', 0).map(|p| p.len()), Some(4));
        let long = digit_packets('1', u32::MAX).expect("digit");
        assert_eq!(long.last().map(|p| p.duration), Some(u16::MAX));
        assert_eq!(digit_packets('x', 100), None);

        // What we send, we detect once.
        let mut detector = EventDetector::new();
        let packets: Vec<_> = packets.into_iter().map(|p| (42, p)).collect();
        assert_eq!(detect(&mut detector, &packets), "#");
    }
}
