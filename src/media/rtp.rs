//! RTP (RFC 3550) fixed header reading and writing, our outgoing stream's SSRC/sequence state, and
//! the RTCP sender report we send alongside it. Bytes in, bytes out: no sockets, no clocks (the
//! caller passes timestamps and NTP time), no payload interpretation.

/// Length of the fixed RTP header (RFC 3550 §5.1) without CSRCs.
pub const HEADER_LEN: usize = 12;

/// The only RTP version there is.
const VERSION: u8 = 2;
/// RTCP packet types (RFC 3550 §12.1).
const RTCP_SR: u8 = 200;
const RTCP_SDES: u8 = 202;
/// SDES item type for the canonical name (RFC 3550 §6.5.1).
const SDES_CNAME: u8 = 1;
/// Second bytes that are RTCP on a port shared with RTP (RFC 5761 §4: RTCP packet types 192..=223
/// collide with RTP marker + payload types 64..=95, which multiplexing forbids for RTP).
const RTCP_MUX_RANGE: std::ops::RangeInclusive<u8> = 192..=223;

/// The fields of the fixed header we send or care about when receiving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    /// 7 bits; `write` masks off anything higher.
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

impl RtpHeader {
    /// Appends the 12-byte fixed header: version 2, no padding, no extension, no CSRC.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(VERSION << 6);
        out.push(u8::from(self.marker) << 7 | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
    }
}

/// Parses a datagram: version must be 2; skips CSRCs and a header extension; strips padding
/// (validating the pad count). Returns the header and the payload; None for anything invalid,
/// and None for RTCP multiplexed on the same port (RFC 5761 §4: second byte 192..=223, which
/// covers SR/RR/SDES/BYE/APP 200..=204 as well as the feedback and XR types).
pub fn parse(packet: &[u8]) -> Option<(RtpHeader, &[u8])> {
    let fixed = packet.get(..HEADER_LEN)?;
    if fixed[0] >> 6 != VERSION || RTCP_MUX_RANGE.contains(&fixed[1]) {
        return None;
    }
    let has_padding = fixed[0] & 0x20 != 0;
    let has_extension = fixed[0] & 0x10 != 0;
    let csrc_count = usize::from(fixed[0] & 0x0F);

    let mut payload_start = HEADER_LEN + 4 * csrc_count;
    if has_extension {
        // Extension header: 16-bit profile-defined id, 16-bit length in 32-bit words (§5.3.1).
        let length = packet.get(payload_start + 2..payload_start + 4)?;
        let words = usize::from(u16::from_be_bytes([length[0], length[1]]));
        payload_start += 4 + 4 * words;
    }
    let mut payload_end = packet.len();
    if has_padding {
        // The last octet counts the padding, itself included, so it cannot be zero (§5.1).
        let pad = usize::from(*packet.last()?);
        if pad == 0 {
            return None;
        }
        payload_end = payload_end.checked_sub(pad)?;
    }
    let payload = packet.get(payload_start..payload_end)?;

    let header = RtpHeader {
        marker: fixed[1] & 0x80 != 0,
        payload_type: fixed[1] & 0x7F,
        sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
        timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
    };
    Some((header, payload))
}

/// A random 32-bit value from a v4 UUID's random bits (RFC 3550 §5.1 wants the SSRC, initial
/// sequence number and initial timestamp unpredictable; `rand` is not a dependency).
fn random_u32() -> u32 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    // Bytes 0..4 of a v4 UUID are entirely random (the version/variant bits are in 6 and 8).
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// A random initial RTP timestamp for a new outgoing stream (RFC 3550 §5.1).
pub fn random_timestamp() -> u32 {
    random_u32()
}

/// Our outgoing stream: random SSRC and initial sequence number (RFC 3550 §5.1), plus the
/// packet and octet counts the sender report needs (§6.4.1; both wrap, as the spec allows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpStream {
    ssrc: u32,
    next_sequence: u16,
    packets_sent: u32,
    octets_sent: u32,
}

impl Default for RtpStream {
    fn default() -> Self {
        Self::new()
    }
}

impl RtpStream {
    /// A stream with a random SSRC and a random initial sequence number.
    pub fn new() -> Self {
        let random = random_u32();
        Self::with(random_u32(), (random >> 16) as u16)
    }

    /// A stream with a chosen SSRC and initial sequence number (tests, or keeping an SSRC).
    pub fn with(ssrc: u32, sequence: u16) -> Self {
        Self {
            ssrc,
            next_sequence: sequence,
            packets_sent: 0,
            octets_sent: 0,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.next_sequence
    }

    /// Appends header + payload to `out` (cleared first), advancing the sequence number (wrapping).
    pub fn write_packet(
        &mut self,
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        out.clear();
        out.reserve(HEADER_LEN + payload.len());
        RtpHeader {
            marker,
            payload_type,
            sequence: self.next_sequence,
            timestamp,
            ssrc: self.ssrc,
        }
        .write(out);
        out.extend_from_slice(payload);
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.packets_sent = self.packets_sent.wrapping_add(1);
        // Sender's octet count is payload octets only, header and padding excluded (§6.4.1).
        self.octets_sent = self.octets_sent.wrapping_add(payload.len() as u32);
    }

    pub fn packets_sent(&self) -> u32 {
        self.packets_sent
    }

    /// Payload octets sent (headers excluded, as the sender report defines it).
    pub fn octets_sent(&self) -> u32 {
        self.octets_sent
    }
}

/// RTCP sender report (RFC 3550 §6.4.1) with no report blocks, plus an SDES CNAME chunk (a
/// compound packet as §6.1 requires): ntp = (seconds since 1900, fraction). `out` is cleared
/// first. A CNAME longer than the 255 octets an SDES item can hold is cut at a char boundary.
pub fn sender_report(
    ssrc: u32,
    ntp: (u32, u32),
    rtp_timestamp: u32,
    packets: u32,
    octets: u32,
    cname: &str,
    out: &mut Vec<u8>,
) {
    out.clear();
    // SR: header + sender info = 7 words; the length field counts words minus one (§6.4.1).
    rtcp_header(0, RTCP_SR, 6, out);
    for word in [ssrc, ntp.0, ntp.1, rtp_timestamp, packets, octets] {
        out.extend_from_slice(&word.to_be_bytes());
    }

    let cname = truncate_to(cname, usize::from(u8::MAX));
    // Chunk: SSRC, CNAME item (type, length, text), then at least one null octet ending the
    // item list, padded to a 32-bit boundary (§6.5).
    let chunk_len = (4 + 2 + cname.len() + 1).next_multiple_of(4);
    let words = (4 + chunk_len) / 4 - 1;
    // At most (4 + 264) / 4 - 1 = 66 words, so the cast is lossless.
    rtcp_header(1, RTCP_SDES, words as u16, out);
    let chunk_start = out.len();
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(SDES_CNAME);
    out.push(cname.len() as u8);
    out.extend_from_slice(cname.as_bytes());
    out.resize(chunk_start + chunk_len, 0);
}

/// Common RTCP header: version 2, no padding, `count` in the 5-bit RC/SC field.
fn rtcp_header(count: u8, packet_type: u8, length_words_minus_one: u16, out: &mut Vec<u8>) {
    out.push(VERSION << 6 | (count & 0x1F));
    out.push(packet_type);
    out.extend_from_slice(&length_words_minus_one.to_be_bytes());
}

fn truncate_to(text: &str, max_len: usize) -> &str {
    if text.len() <= max_len {
        return text;
    }
    let mut end = max_len;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PCMU packet as a softphone sends it: marker on the first packet of a talkspurt.
    const PCMU_PACKET: [u8; 16] = [
        0x80, 0x80, 0x1F, 0x40, 0x00, 0x00, 0x0C, 0x80, 0xDE, 0xAD, 0xBE, 0xEF, 0xFF, 0xFF, 0x7F,
        0xFE,
    ];

    #[test]
    fn parses_a_plain_packet() {
        let (header, payload) = parse(&PCMU_PACKET).expect("valid");
        assert_eq!(
            header,
            RtpHeader {
                marker: true,
                payload_type: 0,
                sequence: 8000,
                timestamp: 3200,
                ssrc: 0xDEAD_BEEF,
            }
        );
        assert_eq!(payload, &[0xFF, 0xFF, 0x7F, 0xFE]);
    }

    #[test]
    fn write_then_parse_round_trips() {
        let header = RtpHeader {
            marker: false,
            payload_type: 101,
            sequence: u16::MAX,
            timestamp: u32::MAX,
            ssrc: 1,
        };
        let mut out = vec![0xAA];
        header.write(&mut out);
        assert_eq!(out.len(), 1 + HEADER_LEN, "write appends");
        out.extend_from_slice(b"xyz");
        assert_eq!(parse(&out[1..]), Some((header, &b"xyz"[..])));
        // Empty payload is fine (e.g. a keepalive).
        assert_eq!(parse(&out[1..1 + HEADER_LEN]), Some((header, &[][..])));
    }

    #[test]
    fn skips_csrcs_and_extension_and_strips_padding() {
        let mut packet = vec![0x80 | 0x20 | 0x10 | 2, 8, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        packet.extend_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2]); // two CSRCs
        packet.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0]); // one-word extension
        packet.extend_from_slice(&[0xD5; 3]); // payload
        packet.extend_from_slice(&[0, 0, 3]); // three octets of padding
        let (header, payload) = parse(&packet).expect("valid");
        assert_eq!(header.payload_type, 8);
        assert_eq!(header.ssrc, 9);
        assert_eq!(payload, &[0xD5; 3]);
    }

    #[test]
    fn rejects_invalid_packets() {
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&PCMU_PACKET[..HEADER_LEN - 1]), None);
        for version in [0u8, 1, 3] {
            let mut packet = PCMU_PACKET;
            packet[0] = version << 6;
            assert_eq!(parse(&packet), None, "version {version}");
        }
        // CSRC count larger than the packet.
        let mut packet = PCMU_PACKET;
        packet[0] |= 2;
        assert_eq!(parse(&packet), None);
        // Extension flag with a truncated or overlong extension header.
        let mut packet = PCMU_PACKET.to_vec();
        packet[0] |= 0x10;
        assert_eq!(parse(&packet[..HEADER_LEN + 2]), None);
        packet[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&[0, 1]);
        assert_eq!(parse(&packet), None);
        packet[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&[0, 0]);
        assert_eq!(parse(&packet).map(|(_, p)| p.len()), Some(0));
        // Padding count of zero, or more than the payload holds.
        let mut packet = PCMU_PACKET;
        packet[0] |= 0x20;
        packet[15] = 0;
        assert_eq!(parse(&packet), None);
        packet[15] = 5;
        assert_eq!(parse(&packet), None);
        packet[15] = 4;
        assert_eq!(parse(&packet).map(|(_, p)| p.len()), Some(0));
    }

    #[test]
    fn rtcp_on_the_rtp_port_is_not_rtp() {
        let mut report = Vec::new();
        sender_report(1, (2, 3), 4, 5, 6, "a@b", &mut report);
        assert_eq!(parse(&report), None);
        for packet_type in 192..=223u8 {
            let mut packet = PCMU_PACKET;
            packet[1] = packet_type;
            assert_eq!(parse(&packet), None, "RTCP type {packet_type}");
        }
        // Payload type 72 without the marker is not an RTCP packet type.
        let mut packet = PCMU_PACKET;
        packet[1] = 72;
        assert!(parse(&packet).is_some());
    }

    #[test]
    fn stream_advances_and_wraps() {
        let mut stream = RtpStream::with(0x1234_5678, u16::MAX);
        let mut out = vec![1, 2, 3];
        stream.write_packet(0, true, 160, &[0xFF; 160], &mut out);
        assert_eq!(out.len(), HEADER_LEN + 160, "out is cleared first");
        let (header, payload) = parse(&out).expect("valid");
        assert_eq!(
            (header.sequence, header.marker, header.ssrc),
            (u16::MAX, true, 0x1234_5678)
        );
        assert_eq!(payload.len(), 160);

        stream.write_packet(0, false, 320, &[0xFF; 160], &mut out);
        let (header, _) = parse(&out).expect("valid");
        assert_eq!((header.sequence, header.timestamp), (0, 320));
        assert_eq!(stream.next_sequence(), 1);
        assert_eq!(stream.packets_sent(), 2);
        assert_eq!(stream.octets_sent(), 320);
    }

    #[test]
    fn new_streams_are_random() {
        let streams: Vec<RtpStream> = (0..4).map(|_| RtpStream::new()).collect();
        let ssrcs: std::collections::HashSet<u32> = streams.iter().map(RtpStream::ssrc).collect();
        assert_eq!(
            ssrcs.len(),
            4,
            "four random SSRCs collide with probability ~1e-9"
        );
        assert!(streams
            .iter()
            .all(|s| s.packets_sent() == 0 && s.octets_sent() == 0));
    }

    #[test]
    fn sender_report_layout() {
        let mut out = vec![9; 5];
        sender_report(
            0xCAFE_F00D,
            (0x1122_3344, 0x8000_0000),
            160,
            7,
            1120,
            "ab",
            &mut out,
        );
        // SR: 28 octets.
        assert_eq!(&out[..4], &[0x80, 200, 0, 6]);
        assert_eq!(&out[4..8], &0xCAFE_F00Du32.to_be_bytes());
        assert_eq!(&out[8..16], &[0x11, 0x22, 0x33, 0x44, 0x80, 0, 0, 0]);
        assert_eq!(&out[16..28], &[0, 0, 0, 160, 0, 0, 0, 7, 0, 0, 4, 96]);
        // SDES: header, then a 12-octet chunk: SSRC, CNAME item "ab", a null octet ending the
        // item list and padding to 32 bits; 16 octets = 4 words, length field 3.
        assert_eq!(out.len(), 28 + 16);
        assert_eq!(&out[28..32], &[0x81, 202, 0, 3]);
        assert_eq!(&out[32..36], &0xCAFE_F00Du32.to_be_bytes());
        assert_eq!(&out[36..], &[1, 2, b'a', b'b', 0, 0, 0, 0]);
    }

    #[test]
    fn sender_report_lengths_match_for_every_cname_size() {
        let long = "é".repeat(200);
        for len in 0..=300 {
            let cname = truncate_to(&long, len);
            let mut out = Vec::new();
            sender_report(1, (0, 0), 0, 0, 0, cname, &mut out);
            assert_eq!(out.len() % 4, 0);
            let sdes = &out[28..];
            let words = usize::from(u16::from_be_bytes([sdes[2], sdes[3]]));
            assert_eq!((words + 1) * 4, sdes.len(), "SDES length field for {len}");
            let item_len = usize::from(sdes[9]);
            assert!(item_len <= 255);
            assert!(std::str::from_utf8(&sdes[10..10 + item_len]).is_ok());
            assert_eq!(sdes[10 + item_len], 0, "null octet ends the item list");
        }
    }
}
