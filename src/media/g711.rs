//! ITU-T G.711 µ-law (PCMU) and A-law (PCMA) for 16-bit linear PCM, one sample at a time.
//! Follows the ITU-T G.191 reference (`ulaw_compress`/`alaw_compress`: one's complement for
//! negative input, so the code space is symmetric). Pure arithmetic: no I/O, no allocation except
//! into the caller's buffers.

/// Largest biased magnitude µ-law can represent (14-bit magnitude domain).
const ULAW_CLIP: u16 = 0x1FFF;
/// µ-law bias (33 in the 14-bit domain, 0x84 in the 16-bit domain).
const ULAW_BIAS: u16 = 33;
/// A-law code bits inverted on the wire (even-bit inversion, G.711 §3.3).
const ALAW_TOGGLE: u8 = 0x55;

/// Decoded value of every µ-law code, computed at compile time.
static ULAW_TABLE: [i16; 256] = ulaw_table();
/// Decoded value of every A-law code, computed at compile time.
static ALAW_TABLE: [i16; 256] = alaw_table();

/// Encodes one linear sample as µ-law. `0` encodes as `0xFF` (positive zero).
pub fn ulaw_encode(sample: i16) -> u8 {
    // One's complement for negatives keeps -1 next to 0 (G.191), and never overflows on i16::MIN.
    let (magnitude, sign) = if sample < 0 {
        ((!sample) >> 2, 0x00)
    } else {
        (sample >> 2, 0x80)
    };
    // `magnitude` is 0..=8191 here, so the casts are lossless.
    let biased = (magnitude as u16 + ULAW_BIAS).min(ULAW_CLIP);
    // Segment = position of the leading one above bit 5 (0..=7).
    let segment = (16 - (biased >> 6).leading_zeros()) as u8;
    let mantissa = ((biased >> (segment + 1)) & 0x0F) as u8;
    ((segment << 4) | mantissa) ^ 0x7F | sign
}

/// Decodes one µ-law code. `0x7F` and `0xFF` both decode to `0` (negative and positive zero).
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_TABLE[usize::from(code)]
}

/// Encodes one linear sample as A-law. `0` encodes as `0xD5`.
pub fn alaw_encode(sample: i16) -> u8 {
    let (mut magnitude, sign) = if sample < 0 {
        ((!sample) >> 4, 0x00)
    } else {
        (sample >> 4, 0x80)
    };
    // `magnitude` is 0..=2047: segment 0 is linear, each further segment halves the resolution.
    if magnitude > 15 {
        let mut segment = 1;
        while magnitude > 31 {
            magnitude >>= 1;
            segment += 1;
        }
        magnitude = (magnitude - 16) + (segment << 4);
    }
    (magnitude as u8 | sign) ^ ALAW_TOGGLE
}

/// Decodes one A-law code. There is no zero: `0xD5` is +8 and `0x55` is -8.
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_TABLE[usize::from(code)]
}

// Two builders because const fn cannot call through a function pointer.
const fn ulaw_table() -> [i16; 256] {
    let mut table = [0; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = ulaw_expand(code as u8);
        code += 1;
    }
    table
}

const fn alaw_table() -> [i16; 256] {
    let mut table = [0; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = alaw_expand(code as u8);
        code += 1;
    }
    table
}

/// G.191 `ulaw_expand`: the midpoint of the code's quantisation interval.
const fn ulaw_expand(code: u8) -> i16 {
    let inverted = !code;
    let exponent = (inverted >> 4) & 0x07;
    let mantissa = (inverted & 0x0F) as i32;
    let step = 4 << (exponent + 1);
    let magnitude = (0x80 << exponent) + step * mantissa + step / 2 - 4 * ULAW_BIAS as i32;
    // |magnitude| <= 32124, so it fits in i16.
    if code < 0x80 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// G.191 `alaw_expand`: the midpoint of the code's quantisation interval.
const fn alaw_expand(code: u8) -> i16 {
    let bits = (code ^ ALAW_TOGGLE) & 0x7F;
    let exponent = bits >> 4;
    let mut mantissa = (bits & 0x0F) as i32;
    if exponent > 0 {
        mantissa += 16;
    }
    mantissa = (mantissa << 4) + 8;
    if exponent > 1 {
        mantissa <<= exponent - 1;
    }
    // |mantissa| <= 32256, so it fits in i16.
    if code & 0x80 != 0 {
        mantissa as i16
    } else {
        -mantissa as i16
    }
}

/// The two G.711 payload formats of RFC 3551 (static payload types, 8 kHz, one byte per sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// µ-law, payload type 0.
    Pcmu,
    /// A-law, payload type 8.
    Pcma,
}

impl Codec {
    /// Maps a static RTP payload type (RFC 3551 table 4) to its codec.
    pub fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The encoding name as written in SDP `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// Appends one code per sample to `out`.
    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        let encode = match self {
            Codec::Pcmu => ulaw_encode,
            Codec::Pcma => alaw_encode,
        };
        out.extend(pcm.iter().map(|&sample| encode(sample)));
    }

    /// Appends one sample per code to `out`.
    pub fn decode(self, payload: &[u8], out: &mut Vec<i16>) {
        let table = match self {
            Codec::Pcmu => &ULAW_TABLE,
            Codec::Pcma => &ALAW_TABLE,
        };
        out.extend(payload.iter().map(|&code| table[usize::from(code)]));
    }

    /// The code for digital silence: `0xFF` for µ-law, `0xD5` for A-law.
    pub fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ulaw_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0xFE), 8);
        assert_eq!(ulaw_decode(0x7E), -8);
        // First code of segments 1, 6 and 7 (Sun/CCITT g711.c `ulaw2linear`).
        assert_eq!(ulaw_decode(0xEF), 132);
        assert_eq!(ulaw_decode(0x9F), 8316);
        assert_eq!(ulaw_decode(0x8F), 16764);
    }

    #[test]
    fn known_alaw_values() {
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        // First code of segment 1 and of segment 2.
        assert_eq!(alaw_decode(0xD5 ^ 0x10), 264);
        assert_eq!(alaw_decode(0xD5 ^ 0x20), 528);
    }

    #[test]
    fn every_code_round_trips() {
        for code in 0..=255u8 {
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(
                ulaw_encode(ulaw_decode(code)),
                expected,
                "µ-law {code:#04x}"
            );
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#04x}");
        }
    }

    #[test]
    fn tables_are_symmetric() {
        for code in 0..=127u8 {
            assert_eq!(ulaw_decode(code), -ulaw_decode(code | 0x80));
            assert_eq!(alaw_decode(code), -alaw_decode(code | 0x80));
        }
    }

    #[test]
    fn quantisation_is_monotonic() {
        let mut previous = (i16::MIN, i16::MIN);
        for sample in i16::MIN..=i16::MAX {
            let now = (
                ulaw_decode(ulaw_encode(sample)),
                alaw_decode(alaw_encode(sample)),
            );
            assert!(now.0 >= previous.0, "µ-law not monotonic at {sample}");
            assert!(now.1 >= previous.1, "A-law not monotonic at {sample}");
            previous = now;
        }
    }

    /// Round-trip error stays within half a quantisation step of the code's segment (plus the
    /// bits the coder drops before quantising), except above the largest code, where it clips.
    #[test]
    fn round_trip_error_is_bounded() {
        for sample in i16::MIN..=i16::MAX {
            let x = i32::from(sample);

            let code = ulaw_encode(sample);
            let decoded = i32::from(ulaw_decode(code));
            let step = 8 << ((!code >> 4) & 0x07);
            if x.abs() <= 32124 {
                assert!(
                    (x - decoded).abs() <= step / 2 + 4,
                    "µ-law {sample} -> {decoded}"
                );
            } else {
                assert_eq!(decoded.abs(), 32124);
            }

            let code = alaw_encode(sample);
            let decoded = i32::from(alaw_decode(code));
            let exponent = ((code ^ ALAW_TOGGLE) >> 4) & 0x07;
            let step = 16 << exponent.saturating_sub(1);
            if x.abs() <= 32256 {
                assert!(
                    (x - decoded).abs() <= step / 2,
                    "A-law {sample} -> {decoded}"
                );
            } else {
                assert_eq!(decoded.abs(), 32256);
            }
        }
    }

    #[test]
    fn codec_buffers_and_metadata() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            assert_eq!(Codec::from_payload_type(codec.payload_type()), Some(codec));
            let mut silence = Vec::new();
            codec.encode(&[0; 160], &mut silence);
            assert_eq!(silence, vec![codec.silence(); 160]);

            let pcm: Vec<i16> = (0..160).map(|i| (i * 409 - 32_000) as i16).collect();
            let mut payload = vec![0xAB];
            codec.encode(&pcm, &mut payload);
            assert_eq!(payload.len(), 161, "encode appends");
            let mut decoded = vec![7];
            codec.decode(&payload[1..], &mut decoded);
            assert_eq!(decoded.len(), 161, "decode appends");
            let mut again = Vec::new();
            codec.encode(&decoded[1..], &mut again);
            assert_eq!(
                again,
                payload[1..],
                "decoded audio re-encodes to the same codes"
            );
        }
        assert_eq!(Codec::Pcmu.name(), "PCMU");
        assert_eq!(Codec::Pcma.name(), "PCMA");
        assert_eq!(Codec::from_payload_type(18), None);
    }
}
