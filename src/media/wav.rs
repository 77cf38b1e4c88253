//! WAV (RIFF/WAVE) in and out: decodes any common WAV to the engine's 8 kHz mono 16-bit PCM, and
//! writes recordings in that same shape ([`WavWriter`]). Pure byte work, no I/O in the decoder; it
//! must not G.711-*encode* (the codec module owns that) — the µ-law/A-law decode here is private.

mod g711;
mod writer;

#[cfg(test)]
mod tests;

use crate::media::resample;

pub use writer::WavWriter;

/// The rate everything leaves this module at (and [`WavWriter`] records at).
pub const OUTPUT_RATE: u32 = resample::TARGET_RATE;
/// Longest source audio accepted, in seconds at its own rate.
pub const MAX_SECONDS: u64 = 3600;
/// Lowest accepted source sample rate.
pub const MIN_RATE: u32 = 4000;
/// Highest accepted source sample rate.
pub const MAX_RATE: u32 = 192_000;

const WAVE_FORMAT_PCM: u16 = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT: u16 = 0x0003;
const WAVE_FORMAT_ALAW: u16 = 0x0006;
const WAVE_FORMAT_MULAW: u16 = 0x0007;
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// A KSDATAFORMAT_SUBTYPE_* GUID is {0000xxxx-0000-0010-8000-00aa00389b71}: its first two bytes
/// (little-endian) are a plain format tag, these 14 bytes are fixed.
const SUBFORMAT_GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];
/// Streaming writers that cannot seek back leave this in the data size: "until end of file".
const SIZE_UNKNOWN: u32 = 0xFFFF_FFFF;

/// Why a WAV could not be turned into PCM. Each names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    #[error("not a RIFF/WAVE file")]
    NotRiffWave,
    #[error("WAV has no {0:?} chunk")]
    MissingChunk(&'static str),
    #[error("WAV chunk {:?} is truncated ({declared} bytes declared, {available} present)", fourcc(.id))]
    TruncatedChunk {
        id: [u8; 4],
        declared: u32,
        available: usize,
    },
    #[error("WAV fmt chunk too short ({0} bytes)")]
    FmtTooShort(usize),
    #[error("unsupported WAV format tag 0x{0:04x}")]
    UnsupportedFormatTag(u16),
    #[error("unsupported WAV extensible sub-format {}", guid(.0))]
    UnsupportedSubFormat([u8; 16]),
    #[error("unsupported {bits} bits per sample for WAV format tag 0x{format_tag:04x}")]
    UnsupportedBitsPerSample { format_tag: u16, bits: u16 },
    #[error("WAV declares zero channels")]
    ZeroChannels,
    #[error("unsupported WAV sample rate {0} Hz (accepted: 4000..=192000)")]
    UnsupportedSampleRate(u32),
    #[error("WAV holds no audio")]
    EmptyAudio,
    #[error("WAV too long: {frames} frames at {rate} Hz is over {MAX_SECONDS} s")]
    TooLong { frames: u64, rate: u32 },
}

fn fourcc(id: &[u8; 4]) -> String {
    id.iter().map(|&b| char::from(b)).collect()
}

fn guid(g: &[u8; 16]) -> String {
    g.iter().map(|b| format!("{b:02x}")).collect()
}

/// How one sample is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    U8,
    I16,
    I24,
    I32,
    F32,
    F64,
    MuLaw,
    ALaw,
}

impl Encoding {
    fn bytes(self) -> usize {
        match self {
            Encoding::U8 | Encoding::MuLaw | Encoding::ALaw => 1,
            Encoding::I16 => 2,
            Encoding::I24 => 3,
            Encoding::I32 | Encoding::F32 => 4,
            Encoding::F64 => 8,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Format {
    encoding: Encoding,
    channels: u16,
    rate: u32,
}

/// Decodes a whole WAV file to 8 kHz mono 16-bit PCM: channels are averaged, any rate in
/// 4000..=192000 is resampled. A trailing partial frame is dropped.
pub fn decode_to_8k_mono(bytes: &[u8]) -> Result<Vec<i16>, WavError> {
    let (format, data) = parse(bytes)?;
    let frame_bytes = usize::from(format.channels) * format.encoding.bytes();
    let frames = data.len() / frame_bytes;
    if frames == 0 {
        return Err(WavError::EmptyAudio);
    }
    if frames as u64 > u64::from(format.rate) * MAX_SECONDS {
        return Err(WavError::TooLong {
            frames: frames as u64,
            rate: format.rate,
        });
    }
    let data = &data[..frames * frame_bytes];
    let mono = match format.encoding {
        Encoding::U8 => mix(data, format.channels, 1, |b| {
            (f32::from(b[0]) - 128.0) / 128.0
        }),
        Encoding::I16 => mix(data, format.channels, 2, |b| {
            f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0
        }),
        Encoding::I24 => mix(data, format.channels, 3, |b| {
            // Put the 24 bits at the top of an i32 so the sign comes along, then scale.
            let v = i32::from_le_bytes([0, b[0], b[1], b[2]]);
            v as f32 / 2_147_483_648.0
        }),
        Encoding::I32 => mix(data, format.channels, 4, |b| {
            i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0
        }),
        Encoding::F32 => mix(data, format.channels, 4, |b| {
            finite(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }),
        Encoding::F64 => mix(data, format.channels, 8, |b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            finite(f64::from_le_bytes(a) as f32)
        }),
        Encoding::MuLaw => mix(data, format.channels, 1, |b| {
            f32::from(g711::ulaw_to_linear(b[0])) / 32_768.0
        }),
        Encoding::ALaw => mix(data, format.channels, 1, |b| {
            f32::from(g711::alaw_to_linear(b[0])) / 32_768.0
        }),
    };
    let resampled = resample::to_8k(&mono, format.rate);
    Ok(resampled.into_iter().map(to_i16).collect())
}

/// NaN and infinities in float WAVs become silence rather than poisoning the resampler.
fn finite(v: f32) -> f32 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

fn to_i16(v: f32) -> i16 {
    // `as` saturates; the clamp documents the intent.
    (v * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16
}

/// Averages the channels of each frame after decoding each sample with `sample`.
fn mix(data: &[u8], channels: u16, width: usize, sample: impl Fn(&[u8]) -> f32) -> Vec<f32> {
    let channels = usize::from(channels);
    let scale = 1.0 / channels as f32;
    data.chunks_exact(width * channels)
        .map(|frame| frame.chunks_exact(width).map(&sample).sum::<f32>() * scale)
        .collect()
}

/// Walks the RIFF chunks and returns the format and the data chunk's bytes.
fn parse(bytes: &[u8]) -> Result<(Format, &[u8]), WavError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotRiffWave);
    }
    let mut fmt = None;
    let mut data = None;
    let mut pos = 12usize;
    while pos.saturating_add(8) <= bytes.len() && (fmt.is_none() || data.is_none()) {
        let id = [bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]];
        let declared = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]);
        let start = pos + 8;
        let available = bytes.len() - start;
        let size = match usize::try_from(declared) {
            Ok(size) if size <= available => size,
            _ if &id == b"data" && declared == SIZE_UNKNOWN => available,
            _ => {
                return Err(WavError::TruncatedChunk {
                    id,
                    declared,
                    available,
                })
            }
        };
        let body = &bytes[start..start + size];
        match &id {
            b"fmt " if fmt.is_none() => fmt = Some(parse_fmt(body)?),
            b"data" if data.is_none() => data = Some(body),
            _ => {} // LIST, fact, cue, bext, ...: not ours to read.
        }
        // Chunks are word-aligned: an odd-sized body is followed by one pad byte.
        pos = start + size + (size & 1);
    }
    let format = fmt.ok_or(WavError::MissingChunk("fmt "))?;
    let data = data.ok_or(WavError::MissingChunk("data"))?;
    Ok((format, data))
}

fn parse_fmt(body: &[u8]) -> Result<Format, WavError> {
    if body.len() < 16 {
        return Err(WavError::FmtTooShort(body.len()));
    }
    let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
    let mut tag = u16_at(0);
    let channels = u16_at(2);
    let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
    let bits = u16_at(14);
    if tag == WAVE_FORMAT_EXTENSIBLE {
        // cbSize(2) validBits(2) channelMask(4) subFormat(16) follow the basic 16 bytes.
        if body.len() < 40 {
            return Err(WavError::FmtTooShort(body.len()));
        }
        let mut sub = [0u8; 16];
        sub.copy_from_slice(&body[24..40]);
        if sub[2..] != SUBFORMAT_GUID_TAIL {
            return Err(WavError::UnsupportedSubFormat(sub));
        }
        tag = u16::from_le_bytes([sub[0], sub[1]]);
    }
    let encoding = match (tag, bits) {
        (WAVE_FORMAT_PCM, 8) => Encoding::U8,
        (WAVE_FORMAT_PCM, 16) => Encoding::I16,
        (WAVE_FORMAT_PCM, 24) => Encoding::I24,
        (WAVE_FORMAT_PCM, 32) => Encoding::I32,
        (WAVE_FORMAT_IEEE_FLOAT, 32) => Encoding::F32,
        (WAVE_FORMAT_IEEE_FLOAT, 64) => Encoding::F64,
        (WAVE_FORMAT_MULAW, 8) => Encoding::MuLaw,
        (WAVE_FORMAT_ALAW, 8) => Encoding::ALaw,
        (WAVE_FORMAT_PCM | WAVE_FORMAT_IEEE_FLOAT | WAVE_FORMAT_MULAW | WAVE_FORMAT_ALAW, _) => {
            return Err(WavError::UnsupportedBitsPerSample {
                format_tag: tag,
                bits,
            })
        }
        _ => return Err(WavError::UnsupportedFormatTag(tag)),
    };
    if channels == 0 {
        return Err(WavError::ZeroChannels);
    }
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Err(WavError::UnsupportedSampleRate(rate));
    }
    Ok(Format {
        encoding,
        channels,
        rate,
    })
}
