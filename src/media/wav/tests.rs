//! Tests for the WAV decoder and writer over hand-built files: every encoding, chunk layouts and
//! each error. The writer round-trips through a real temp file.

use super::*;

/// A canonical fmt body (16 bytes).
fn fmt_body(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
    let block = channels * bits.div_ceil(8);
    let mut b = Vec::new();
    b.extend_from_slice(&tag.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    b.extend_from_slice(&block.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b
}

/// A WAVE_FORMAT_EXTENSIBLE fmt body whose sub-format GUID starts with `sub_tag`.
fn extensible_body(sub_tag: u16, channels: u16, rate: u32, bits: u16, tail: [u8; 14]) -> Vec<u8> {
    let mut b = fmt_body(WAVE_FORMAT_EXTENSIBLE, channels, rate, bits);
    b.extend_from_slice(&22u16.to_le_bytes()); // cbSize
    b.extend_from_slice(&bits.to_le_bytes()); // valid bits
    b.extend_from_slice(&0u32.to_le_bytes()); // channel mask
    b.extend_from_slice(&sub_tag.to_le_bytes());
    b.extend_from_slice(&tail);
    b
}

fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut c = id.to_vec();
    c.extend_from_slice(&(body.len() as u32).to_le_bytes());
    c.extend_from_slice(body);
    if body.len() % 2 == 1 {
        c.push(0);
    }
    c
}

fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = chunks.concat();
    let mut f = b"RIFF".to_vec();
    f.extend_from_slice(&(body.len() as u32 + 4).to_le_bytes());
    f.extend_from_slice(b"WAVE");
    f.extend_from_slice(&body);
    f
}

fn wav(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    riff(&[
        chunk(b"fmt ", &fmt_body(tag, channels, rate, bits)),
        chunk(b"data", data),
    ])
}

fn le16(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[test]
fn pcm16_mono_8k_is_exact() {
    let samples = [0i16, 1, -1, 1000, -32_768, 32_767, 12_345];
    let bytes = wav(1, 1, 8000, 16, &le16(&samples));
    assert_eq!(decode_to_8k_mono(&bytes), Ok(samples.to_vec()));
}

#[test]
fn every_integer_width_and_float_decode_to_the_same_values() {
    let u8_data = [128u8, 192, 64];
    let i24_data = [0, 0, 0, 0, 0, 0x40, 0, 0, 0xC0];
    let i32_data: Vec<u8> = [0i32, 0x4000_0000, -0x4000_0000]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f32_data: Vec<u8> = [0f32, 0.5, -0.5]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f64_data: Vec<u8> = [0f64, 0.5, -0.5]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let cases = [
        wav(1, 1, 8000, 8, &u8_data),
        wav(1, 1, 8000, 16, &le16(&[0, 16_384, -16_384])),
        wav(1, 1, 8000, 24, &i24_data),
        wav(1, 1, 8000, 32, &i32_data),
        wav(3, 1, 8000, 32, &f32_data),
        wav(3, 1, 8000, 64, &f64_data),
    ];
    for bytes in cases {
        assert_eq!(decode_to_8k_mono(&bytes), Ok(vec![0, 16_384, -16_384]));
    }
}

#[test]
fn g711_wavs_decode() {
    let ulaw = wav(7, 1, 8000, 8, &[0xFF, 0x80, 0x00]);
    assert_eq!(decode_to_8k_mono(&ulaw), Ok(vec![0, 32_124, -32_124]));
    let alaw = wav(6, 1, 8000, 8, &[0xD5, 0xAA, 0x2A]);
    assert_eq!(decode_to_8k_mono(&alaw), Ok(vec![8, 32_256, -32_256]));
}

#[test]
fn channels_are_averaged() {
    let stereo = le16(&[1000, -1000, 2000, 2000, 300, 100]);
    assert_eq!(
        decode_to_8k_mono(&wav(1, 2, 8000, 16, &stereo)),
        Ok(vec![0, 2000, 200])
    );
    let six = le16(&[600, 600, 600, 0, 0, 0]);
    assert_eq!(decode_to_8k_mono(&wav(1, 6, 8000, 16, &six)), Ok(vec![300]));
}

#[test]
fn sixteen_khz_stereo_is_resampled_to_half_length() {
    let frames: Vec<i16> = (0..16_000)
        .flat_map(|i| {
            let v =
                (8000.0 * (2.0 * std::f64::consts::PI * 500.0 * i as f64 / 16_000.0).sin()) as i16;
            [v, v]
        })
        .collect();
    let out = decode_to_8k_mono(&wav(1, 2, 16_000, 16, &le16(&frames))).expect("decodes");
    assert_eq!(out.len(), 8000);
    let peak = out[2000..6000].iter().map(|s| s.unsigned_abs()).max();
    assert!(peak.is_some_and(|p| (7800..=8200).contains(&p)), "{peak:?}");
}

#[test]
fn extensible_uses_its_sub_format() {
    let data = [0, 0, 0, 0, 0, 0x40];
    let bytes = riff(&[
        chunk(
            b"fmt ",
            &extensible_body(1, 1, 8000, 24, SUBFORMAT_GUID_TAIL),
        ),
        chunk(b"data", &data),
    ]);
    assert_eq!(decode_to_8k_mono(&bytes), Ok(vec![0, 16_384]));
    let mut other = SUBFORMAT_GUID_TAIL;
    other[13] ^= 0xFF;
    let bytes = riff(&[
        chunk(b"fmt ", &extensible_body(1, 1, 8000, 24, other)),
        chunk(b"data", &data),
    ]);
    assert!(matches!(
        decode_to_8k_mono(&bytes),
        Err(WavError::UnsupportedSubFormat(_))
    ));
    let bytes = riff(&[
        chunk(
            b"fmt ",
            &extensible_body(0x55, 1, 8000, 16, SUBFORMAT_GUID_TAIL),
        ),
        chunk(b"data", &data),
    ]);
    assert_eq!(
        decode_to_8k_mono(&bytes),
        Err(WavError::UnsupportedFormatTag(0x55))
    );
}

#[test]
fn other_chunks_and_odd_padding_are_skipped() {
    let bytes = riff(&[
        chunk(b"LIST", b"INFOISFT\x03\0\0\0ab\0"), // 15 bytes: padded
        chunk(b"junk", b"x"),
        chunk(b"fmt ", &fmt_body(1, 1, 8000, 16)),
        chunk(b"fact", &[0, 0, 0, 0]),
        chunk(b"data", &le16(&[7, -7])),
        chunk(b"LIST", b"zz"),
    ]);
    assert_eq!(decode_to_8k_mono(&bytes), Ok(vec![7, -7]));
    // data before fmt is legal too.
    let bytes = riff(&[
        chunk(b"data", &le16(&[5])),
        chunk(b"fmt ", &fmt_body(1, 1, 8000, 16)),
    ]);
    assert_eq!(decode_to_8k_mono(&bytes), Ok(vec![5]));
}

#[test]
fn unknown_data_size_means_until_end_of_file() {
    let mut bytes = wav(1, 1, 8000, 16, &le16(&[1, 2, 3]));
    let at = bytes.len() - 6 - 4;
    bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(decode_to_8k_mono(&bytes), Ok(vec![1, 2, 3]));
}

#[test]
fn errors_name_what_is_wrong() {
    let err = |bytes: &[u8]| decode_to_8k_mono(bytes).expect_err("must fail");
    assert_eq!(err(b"RIFX\0\0\0\0WAVE"), WavError::NotRiffWave);
    assert_eq!(err(b"RIFF\0\0\0\0AVI "), WavError::NotRiffWave);
    assert_eq!(err(b""), WavError::NotRiffWave);
    assert_eq!(
        err(&riff(&[chunk(b"data", &[0, 0])])),
        WavError::MissingChunk("fmt ")
    );
    assert_eq!(
        err(&riff(&[chunk(b"fmt ", &fmt_body(1, 1, 8000, 16))])),
        WavError::MissingChunk("data")
    );
    let mpeg = err(&wav(0x55, 1, 8000, 16, &[0, 0]));
    assert_eq!(mpeg.to_string(), "unsupported WAV format tag 0x0055");
    assert_eq!(
        err(&wav(1, 1, 8000, 12, &[0, 0])),
        WavError::UnsupportedBitsPerSample {
            format_tag: 1,
            bits: 12
        }
    );
    assert_eq!(
        err(&wav(7, 1, 8000, 16, &[0, 0])),
        WavError::UnsupportedBitsPerSample {
            format_tag: 7,
            bits: 16
        }
    );
    assert_eq!(err(&wav(1, 0, 8000, 16, &[0, 0])), WavError::ZeroChannels);
    assert_eq!(
        err(&wav(1, 1, 3999, 16, &[0, 0])),
        WavError::UnsupportedSampleRate(3999)
    );
    assert_eq!(
        err(&wav(1, 1, 192_001, 16, &[0, 0])),
        WavError::UnsupportedSampleRate(192_001)
    );
    assert_eq!(err(&wav(1, 1, 8000, 16, &[])), WavError::EmptyAudio);
    assert_eq!(err(&wav(1, 2, 8000, 16, &[0, 0])), WavError::EmptyAudio); // half a frame
    let short_fmt = riff(&[chunk(b"fmt ", &[1, 0, 1, 0]), chunk(b"data", &[0, 0])]);
    assert_eq!(err(&short_fmt), WavError::FmtTooShort(4));

    let mut truncated = wav(1, 1, 8000, 16, &le16(&[1, 2, 3, 4]));
    truncated.truncate(truncated.len() - 3);
    let e = err(&truncated);
    assert_eq!(
        e,
        WavError::TruncatedChunk {
            id: *b"data",
            declared: 8,
            available: 5
        }
    );
    assert_eq!(
        e.to_string(),
        "WAV chunk \"data\" is truncated (8 bytes declared, 5 present)"
    );
}

#[test]
fn more_than_an_hour_is_refused() {
    let hour_at_4k = 4000 * 3600;
    let bytes = wav(1, 1, 4000, 8, &vec![128u8; hour_at_4k + 1]);
    assert_eq!(
        decode_to_8k_mono(&bytes),
        Err(WavError::TooLong {
            frames: hour_at_4k as u64 + 1,
            rate: 4000
        })
    );
}

#[test]
fn garbage_never_panics() {
    // A cheap in-tree stand-in for the fuzz target: every prefix and a few corruptions.
    let good = wav(1, 2, 11_025, 16, &le16(&[1, 2, 3, 4, 5, 6, 7, 8]));
    for n in 0..good.len() {
        let _ = decode_to_8k_mono(&good[..n]);
    }
    for i in 4..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0xFF;
        let _ = decode_to_8k_mono(&bad);
    }
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "activeflow-wav-{}-{nanos}-{name}",
        std::process::id()
    ))
}

#[test]
fn writer_round_trips_through_the_decoder() {
    let path = temp_path("rec.wav");
    let mut w = WavWriter::create(&path).expect("create");
    let first: Vec<i16> = (0..1000).map(|i| (i * 13 % 2000 - 1000) as i16).collect();
    w.write_samples(&first).expect("write");
    w.write_samples(&[i16::MIN, i16::MAX, 0]).expect("write");
    assert_eq!(w.samples_written(), 1003);
    assert_eq!(w.finalize().expect("finalize"), 1003);

    let bytes = std::fs::read(&path).expect("read back");
    let _ = std::fs::remove_file(&path);
    assert_eq!(bytes.len(), 44 + 2006);
    assert_eq!(&bytes[4..8], &(36u32 + 2006).to_le_bytes());
    assert_eq!(&bytes[40..44], &2006u32.to_le_bytes());
    let mut expected = first;
    expected.extend_from_slice(&[i16::MIN, i16::MAX, 0]);
    assert_eq!(decode_to_8k_mono(&bytes), Ok(expected));
}

#[test]
fn unfinalized_writer_leaves_an_empty_but_valid_header() {
    let path = temp_path("empty.wav");
    let w = WavWriter::create(&path).expect("create");
    drop(w);
    let bytes = std::fs::read(&path).expect("read back");
    let _ = std::fs::remove_file(&path);
    assert_eq!(bytes.len(), 44);
    assert_eq!(decode_to_8k_mono(&bytes), Err(WavError::EmptyAudio));
}
