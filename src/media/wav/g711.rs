//! G.711 µ-law and A-law *decoding* for WAV files stored that way (format tags 7 and 6). Private
//! to the WAV reader: the public codec (encode and decode for RTP) lives in its own module.

/// ITU-T G.711 µ-law byte to 16-bit linear (the classic bias-0x84 expansion).
pub(super) fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    // Largest magnitude is 32124, so the cast cannot wrap.
    let magnitude = magnitude as i16;
    if u & 0x80 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// ITU-T G.711 A-law byte to 16-bit linear (even bits inverted on the wire, sign bit set = positive).
pub(super) fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let segment = (a & 0x70) >> 4;
    let mut magnitude = i32::from(a & 0x0F) << 4;
    magnitude += match segment {
        0 => 8,
        _ => 0x108,
    };
    if segment > 1 {
        magnitude <<= segment - 1;
    }
    // Largest magnitude is 32256, so the cast cannot wrap.
    let magnitude = magnitude as i16;
    if a & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_reference_points() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x00), -32_124);
        assert_eq!(ulaw_to_linear(0x80), 32_124);
        assert_eq!(ulaw_to_linear(0xFE), 8);
    }

    #[test]
    fn alaw_reference_points() {
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32_256);
        assert_eq!(alaw_to_linear(0x2A), -32_256);
    }

    #[test]
    fn decoders_are_monotonic_in_magnitude() {
        // Within one sign, larger codes (after the wire inversion) mean larger magnitudes.
        let ulaw: Vec<i16> = (0..=0x7Fu8).map(|c| ulaw_to_linear(!c)).collect();
        assert!(ulaw.windows(2).all(|w| w[0] <= w[1]), "{ulaw:?}");
        let alaw: Vec<i16> = (0..=0x7Fu8)
            .map(|c| alaw_to_linear((c | 0x80) ^ 0x55))
            .collect();
        assert!(alaw.windows(2).all(|w| w[0] <= w[1]), "{alaw:?}");
    }
}
