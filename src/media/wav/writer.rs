//! Streams a recording to disk as 8 kHz mono 16-bit PCM WAV: header first with placeholder sizes,
//! samples through a buffer, sizes patched on `finalize`. Owns only the file; never resamples.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use super::OUTPUT_RATE;

const HEADER_BYTES: u32 = 44;
const BYTES_PER_SAMPLE: u32 = 2;
/// RIFF sizes are 32-bit: the data may not exceed this many samples (about 74 hours at 8 kHz).
const MAX_SAMPLES: u64 = ((u32::MAX - HEADER_BYTES) / BYTES_PER_SAMPLE) as u64;

/// An open recording. Drop without [`WavWriter::finalize`] leaves a file whose sizes say "empty".
#[derive(Debug)]
pub struct WavWriter {
    out: BufWriter<File>,
    samples: u64,
}

impl WavWriter {
    /// Creates (or truncates) `path` and writes the 44-byte header.
    pub fn create(path: &Path) -> io::Result<WavWriter> {
        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(&header(0))?;
        Ok(WavWriter { out, samples: 0 })
    }

    /// Appends samples (little-endian) through the buffer.
    pub fn write_samples(&mut self, samples: &[i16]) -> io::Result<()> {
        let total = self.samples + samples.len() as u64;
        if total > MAX_SAMPLES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("WAV recording would exceed {MAX_SAMPLES} samples (32-bit RIFF size)"),
            ));
        }
        let mut bytes = Vec::with_capacity(samples.len() * 2);
        for s in samples {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        self.out.write_all(&bytes)?;
        self.samples = total;
        Ok(())
    }

    pub fn samples_written(&self) -> u64 {
        self.samples
    }

    /// Flushes, patches the RIFF and data sizes, syncs, and returns how many samples were written.
    pub fn finalize(mut self) -> io::Result<u64> {
        // MAX_SAMPLES keeps this within u32.
        let data_bytes = (self.samples * u64::from(BYTES_PER_SAMPLE)) as u32;
        self.out.flush()?;
        let file = self.out.get_mut();
        file.seek(SeekFrom::Start(4))?;
        file.write_all(&(data_bytes + HEADER_BYTES - 8).to_le_bytes())?;
        file.seek(SeekFrom::Start(40))?;
        file.write_all(&data_bytes.to_le_bytes())?;
        file.sync_all()?;
        Ok(self.samples)
    }
}

fn header(data_bytes: u32) -> [u8; HEADER_BYTES as usize] {
    let mut h = [0u8; HEADER_BYTES as usize];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(data_bytes + HEADER_BYTES - 8).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&OUTPUT_RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(OUTPUT_RATE * BYTES_PER_SAMPLE).to_le_bytes()); // byte rate
    h[32..34].copy_from_slice(&(BYTES_PER_SAMPLE as u16).to_le_bytes()); // block align
    h[34..36].copy_from_slice(&16u16.to_le_bytes()); // bits per sample
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}
