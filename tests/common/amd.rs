//! The AMD test material, made at test time: greetings spoken by espeak-ng ("human" = a short
//! greeting then silence, "machine" = a voicemail greeting) in several voices and speeds, with
//! white or pink noise at a few SNRs (deterministic seeds), at 8 kHz and through µ-law as a phone
//! line carries them; and a pcap writer (Ethernet/IPv4/UDP/RTP PCMU) for SIPp `play_pcap_audio`.

use std::path::Path;
use std::process::Command;

use activeflow::media::g711::{ulaw_decode, ulaw_encode};
use activeflow::media::wav::decode_to_8k_mono;

/// Short answers a person gives when picking up.
pub const HUMAN_GREETINGS: &[&str] = &[
    "Hello?",
    "Yes, speaking.",
    "Hi, this is Anna.",
    "Hello, who is this?",
    "Yeah?",
    "Good morning.",
    "Hello, Mark here.",
    "Hi there.",
];

/// Voicemail greetings.
pub const MACHINE_GREETINGS: &[&str] = &[
    "Hi, you've reached Anna Smith. I can't take your call right now, please leave a message after the tone.",
    "Hello, you have reached the voicemail of John. Please leave your name and number and I will call you back.",
    "Thank you for calling Acme Plumbing. Our office is closed. Please leave a message after the beep.",
    "The person you are calling is not available. At the tone, please record your message.",
    "Hey, it's Mike. Sorry I missed you, leave a message and I'll get back to you as soon as I can.",
    "You've reached the Johnson family. We're not home right now, so please leave a message after the tone.",
];

/// Held out: phrases, voices, speeds and noise never used while the parameters were chosen
/// (added with the review of the first figure), including harder cases: a longer human
/// answer, a human who speaks again after a pause, and short machine greetings.
pub const HELD_OUT_HUMAN_GREETINGS: &[&str] = &[
    "Hello, this is Sarah.",
    "Hi. Who's calling?",
    "Yes?",
    "Hello, Peter speaking, how can I help?",
    "Morning!",
];
pub const HELD_OUT_MACHINE_GREETINGS: &[&str] = &[
    "Please leave a message.",
    "You have reached extension four five two. Nobody is available to take your call. Please leave a message after the tone and we will return your call.",
    "Hi, this is Dave. I'm away until Monday. Leave your number and a short message, and I will call you back.",
    "This mailbox belongs to Maria Lopez. Please speak after the tone.",
];
pub const HELD_OUT_VOICES: &[&str] = &["en-gb-x-rp", "en-029", "en-us-nyc"];
pub const HELD_OUT_SPEEDS: &[u32] = &[170];
pub const HELD_OUT_NOISE: &[Noise] = &[
    Noise::Clean,
    Noise::White { snr_db: 15.0 },
    Noise::Pink { snr_db: 7.0 },
];

/// espeak-ng voices (language + variant).
pub const VOICES: &[&str] = &["en-us", "en-gb+f3", "en-gb-scotland", "en-us+m3"];
/// Speaking rates (words per minute).
pub const SPEEDS: &[u32] = &[150, 190];

/// Line noise added to a recording.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Noise {
    Clean,
    White { snr_db: f64 },
    Pink { snr_db: f64 },
}

impl Noise {
    pub const ALL: &[Noise] = &[
        Noise::Clean,
        Noise::White { snr_db: 20.0 },
        Noise::Pink { snr_db: 20.0 },
        Noise::White { snr_db: 10.0 },
        Noise::Pink { snr_db: 10.0 },
        Noise::White { snr_db: 5.0 },
        Noise::Pink { snr_db: 5.0 },
    ];

    pub fn label(self) -> String {
        match self {
            Noise::Clean => "clean".into(),
            Noise::White { snr_db } => format!("white {snr_db} dB"),
            Noise::Pink { snr_db } => format!("pink {snr_db} dB"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Label {
    Human,
    Machine,
}

/// One labelled recording: 8 kHz linear PCM that went through µ-law.
pub struct Recording {
    pub label: Label,
    pub text: &'static str,
    pub voice: &'static str,
    pub speed: u32,
    pub noise: Noise,
    pub pcm: Vec<i16>,
}

/// Speaks `text` with espeak-ng into 8 kHz PCM (panics if espeak-ng is missing: tests never
/// skip a peer).
pub fn speak(text: &str, voice: &str, speed: u32, dir: &Path) -> Vec<i16> {
    let wav = dir.join(format!("tts-{}.wav", uuid::Uuid::new_v4()));
    let status = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &speed.to_string(), "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .unwrap_or_else(|e| panic!("cannot run espeak-ng ({e}); scripts/test.sh installs it"));
    assert!(status.success(), "espeak-ng failed for {voice}");
    let bytes = std::fs::read(&wav).expect("espeak wav");
    let _ = std::fs::remove_file(&wav);
    let pcm = decode_to_8k_mono(&bytes).expect("espeak wav decodes");
    trim(&pcm).to_vec()
}

/// Without espeak's own leading and trailing near-silence.
fn trim(pcm: &[i16]) -> &[i16] {
    let loud = |s: &i16| s.unsigned_abs() > 64;
    let start = pcm.iter().position(loud).unwrap_or(0);
    let end = pcm.iter().rposition(loud).map_or(pcm.len(), |e| e + 1);
    &pcm[start..end]
}

/// Lays out a call: `lead_ms` of silence, the greeting, `tail_ms` of silence; adds `noise`
/// (its level set from the greeting's RMS) with `seed`; clips and passes it through µ-law.
pub fn line(speech: &[i16], lead_ms: u32, tail_ms: u32, noise: Noise, seed: u64) -> Vec<i16> {
    let lead = lead_ms as usize * 8;
    let mut signal = vec![0f64; lead + speech.len() + tail_ms as usize * 8];
    for (i, s) in speech.iter().enumerate() {
        signal[lead + i] = f64::from(*s);
    }
    let rms = (speech.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>()
        / speech.len().max(1) as f64)
        .sqrt();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    match noise {
        Noise::Clean => {}
        Noise::White { snr_db } => {
            let raw: Vec<f64> = (0..signal.len()).map(|_| rng.gaussian()).collect();
            add_scaled(&mut signal, &raw, rms / 10f64.powf(snr_db / 20.0));
        }
        Noise::Pink { snr_db } => {
            let raw = pink(&mut rng, signal.len());
            add_scaled(&mut signal, &raw, rms / 10f64.powf(snr_db / 20.0));
        }
    }
    signal
        .iter()
        .map(|s| ulaw_decode(ulaw_encode(s.clamp(-32768.0, 32767.0) as i16)))
        .collect()
}

/// Adds `noise` scaled to RMS `target`.
fn add_scaled(signal: &mut [f64], noise: &[f64], target: f64) {
    let rms = (noise.iter().map(|n| n * n).sum::<f64>() / noise.len().max(1) as f64).sqrt();
    let k = if rms > 0.0 { target / rms } else { 0.0 };
    for (s, n) in signal.iter_mut().zip(noise) {
        *s += n * k;
    }
}

/// Pink (1/f) noise: Paul Kellet's economy filter over white noise.
fn pink(rng: &mut Rng, n: usize) -> Vec<f64> {
    let (mut b0, mut b1, mut b2) = (0.0, 0.0, 0.0);
    (0..n)
        .map(|_| {
            let w = rng.gaussian();
            b0 = 0.99765 * b0 + w * 0.0990460;
            b1 = 0.96300 * b1 + w * 0.2965164;
            b2 = 0.57000 * b2 + w * 1.0526913;
            b0 + b1 + b2 + w * 0.1848
        })
        .collect()
}

/// xorshift64*: deterministic noise for a given seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Box-Muller.
    fn gaussian(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// The tuning set: every greeting × voice × speed × noise (the material the default
/// parameters were chosen on). Leading silence varies from 200 to 800 ms; the tail is 4 s of
/// (noisy) silence.
pub fn labelled_set(dir: &Path) -> Vec<Recording> {
    let groups = [
        (Label::Human, HUMAN_GREETINGS),
        (Label::Machine, MACHINE_GREETINGS),
    ];
    build_set(dir, &groups, VOICES, SPEEDS, Noise::ALL, 0)
}

/// The held-out set: the held-out greetings × voices × speed × noise, laid out the same way
/// (other seeds).
pub fn held_out_set(dir: &Path) -> Vec<Recording> {
    let groups = [
        (Label::Human, HELD_OUT_HUMAN_GREETINGS),
        (Label::Machine, HELD_OUT_MACHINE_GREETINGS),
    ];
    build_set(
        dir,
        &groups,
        HELD_OUT_VOICES,
        HELD_OUT_SPEEDS,
        HELD_OUT_NOISE,
        10_000,
    )
}

fn build_set(
    dir: &Path,
    groups: &[(Label, &'static [&'static str])],
    voices: &'static [&'static str],
    speeds: &[u32],
    noises: &[Noise],
    first_seed: u64,
) -> Vec<Recording> {
    let mut set = Vec::new();
    let mut n = first_seed;
    for (label, texts) in groups.iter().copied() {
        for text in texts.iter().copied() {
            for voice in voices.iter().copied() {
                for speed in speeds {
                    let speech = speak(text, voice, *speed, dir);
                    for noise in noises {
                        n += 1;
                        let lead = 200 + (n * 137 % 7) as u32 * 100;
                        set.push(Recording {
                            label,
                            text,
                            voice,
                            speed: *speed,
                            noise: *noise,
                            pcm: line(&speech, lead, 4000, *noise, n),
                        });
                    }
                }
            }
        }
    }
    set
}

/// How a recording's 20 ms packets reach the engine on a simulated network: each frame's
/// arrival time (ms after the first was sent), or `None` when lost. Deterministic per `seed`:
/// up to 40 ms of jitter on every packet, 1 % lost, and on every other recording one hiccup
/// of 300 ms (15 packets held, then delivered together).
pub fn arrivals(frames: usize, seed: u64) -> Vec<Option<u64>> {
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let hiccup = seed
        .is_multiple_of(2)
        .then(|| 25 + (rng.next() % 100) as usize);
    (0..frames)
        .map(|k| {
            if rng.uniform() < 0.01 {
                return None;
            }
            let sent = k as u64 * 20;
            let jitter = (rng.uniform() * 40.0) as u64;
            let held = hiccup.filter(|h| (*h..*h + 15).contains(&k));
            Some(match held {
                Some(h) => (h as u64 + 15) * 20 + jitter,
                None => sent + jitter,
            })
        })
        .collect()
}

/// Writes `pcm` as a pcap of RTP PCMU packets (20 ms each, 20 ms apart), Ethernet/IPv4/UDP
/// from 127.0.0.1:6000 to :6002, for SIPp's `play_pcap_audio` (which replays the RTP with the
/// capture's timing to the call's media address).
pub fn write_pcap(path: &Path, pcm: &[i16]) {
    let payloads = pcm
        .chunks(160)
        .map(|frame| frame.iter().map(|s| ulaw_encode(*s)).collect());
    super::pcap::write_pcmu_pcap(path, 0x1234_5678, payloads);
}
