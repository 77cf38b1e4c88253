//! Conference test helpers: G.711 A-law coding written here (independent of the engine's),
//! Goertzel tone power, a tone sender that paces RTP on 20 ms from a `MediaCaller`'s socket,
//! a writer of RTP/UDP/IPv4/Ethernet pcaps for SIPp's `play_pcap_audio` and the SIPp scenario
//! that replays one, and a raw SSE tap for conference events.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::rtp::{ulaw_to_linear, ulaw_tone, MediaCaller, Packet};

/// A sine of `frequency` Hz, sample `i` (at 8 kHz).
fn sine(frequency: f64, amplitude: f64, i: usize) -> i16 {
    (amplitude * (2.0 * std::f64::consts::PI * frequency * i as f64 / 8000.0).sin()) as i16
}

/// G.711 A-law encode (the classic segment search of ITU-T G.711 §A on 13-bit samples).
pub fn linear_to_alaw(sample: i16) -> u8 {
    const SEGMENT_END: [i32; 8] = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];
    let mut pcm = i32::from(sample) >> 3;
    let mask = if pcm >= 0 {
        0xd5u8
    } else {
        pcm = -pcm - 1;
        0x55u8
    };
    let Some(segment) = SEGMENT_END.iter().position(|end| pcm <= *end) else {
        return 0x7f ^ mask;
    };
    let shift = if segment < 2 { 1 } else { segment };
    let code = ((segment as u8) << 4) | ((pcm >> shift) & 0x0f) as u8;
    code ^ mask
}

/// G.711 A-law decode.
pub fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let exponent = (a & 0x70) >> 4;
    let mantissa = i32::from(a & 0x0f);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// `samples` of a tone in payload type `pt` (0 µ-law, 8 A-law), from sample `offset`.
pub fn tone_frame(
    pt: u8,
    frequency: f64,
    amplitude: f64,
    offset: usize,
    samples: usize,
) -> Vec<u8> {
    if pt == 0 {
        return ulaw_tone(frequency, amplitude, samples, offset);
    }
    (0..samples)
        .map(|i| linear_to_alaw(sine(frequency, amplitude, offset + i)))
        .collect()
}

/// The linear audio of the received packets of payload type `pt`, in arrival order.
pub fn decode(packets: &[Packet], pt: u8) -> Vec<i16> {
    packets
        .iter()
        .filter(|p| p.payload_type == pt)
        .flat_map(|p| p.payload.iter().copied())
        .map(|c| {
            if pt == 0 {
                ulaw_to_linear(c)
            } else {
                alaw_to_linear(c)
            }
        })
        .collect()
}

/// Goertzel power of `frequency` in `samples` (8 kHz), normalised by length: a tone of
/// amplitude A gives about A²/4.
pub fn tone_power(samples: &[i16], frequency: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * frequency / 8000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for x in samples {
        let s = f64::from(*x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    power / (samples.len() as f64).powi(2)
}

/// Sends a tone from a caller's RTP socket every 20 ms until dropped (or `stop`); with
/// [`ToneSender::start_every`], every `ms` milliseconds (10 or 30 ms packetisation).
pub struct ToneSender {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ToneSender {
    pub fn start(caller: &MediaCaller, pt: u8, frequency: f64, amplitude: f64) -> ToneSender {
        Self::start_every(caller, pt, frequency, amplitude, 20)
    }

    pub fn start_every(
        caller: &MediaCaller,
        pt: u8,
        frequency: f64,
        amplitude: f64,
        ms: u32,
    ) -> ToneSender {
        let samples = ms * 8;
        let socket = caller.rtp.try_clone().expect("clone rtp socket");
        let to: SocketAddr = caller.engine_rtp.expect("engine RTP address");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut k: u32 = 0;
            while !flag.load(Ordering::Relaxed) {
                let mut p = vec![0x80, pt | if k == 0 { 0x80 } else { 0 }];
                p.extend_from_slice(&(k as u16).to_be_bytes());
                p.extend_from_slice(&(k * samples).to_be_bytes());
                p.extend_from_slice(&0x0c0f_0000u32.to_be_bytes());
                let offset = (k * samples) as usize;
                p.extend(tone_frame(
                    pt,
                    frequency,
                    amplitude,
                    offset,
                    samples as usize,
                ));
                let _ = socket.send_to(&p, to);
                k += 1;
                let next = start + Duration::from_millis(u64::from(ms * k));
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        });
        ToneSender {
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ToneSender {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `seconds` of a µ-law tone as RTP in a pcap (Ethernet/IPv4/UDP, 20 ms apart), the
/// format SIPp's `play_pcap_audio` replays.
pub fn write_tone_pcap(path: &Path, frequency: f64, amplitude: f64, seconds: u32) {
    let payloads =
        (0..seconds as usize * 50).map(|k| ulaw_tone(frequency, amplitude, 160, k * 160));
    super::pcap::write_pcmu_pcap(path, 0x5eed_0000, payloads);
}

/// A raw SSE subscription to `GET /v1/events?types=...`: the `data:` JSON of each event.
pub struct EventTap {
    stream: std::net::TcpStream,
    text: String,
}

impl EventTap {
    pub fn connect(api: SocketAddr, types: &str) -> EventTap {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(api).expect("connect api");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let request = format!(
            "GET /v1/events?types={types} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).expect("send");
        EventTap {
            stream,
            text: String::new(),
        }
    }

    /// Every event's data so far (JSON objects on `data:` lines).
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect()
    }

    /// Reads until `done` holds for the events, or `limit` (then panics with them).
    pub fn until(
        &mut self,
        limit: Duration,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        use std::io::Read;
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        loop {
            let events = self.events();
            if done(&events) {
                return events;
            }
            assert!(Instant::now() < deadline, "events so far: {events:?}");
            if let Ok(n) = self.stream.read(&mut buf) {
                self.text.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    }
}

/// A SIPp caller that replays `pcap` for its whole call, then hangs up after `hold_ms`.
pub fn tone_scenario(dir: &std::path::Path, pcap: &std::path::Path, hold_ms: u32) -> String {
    let xml = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="conference tone caller">
  <send retrans="500"><![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]-inv
      From: sipp <sip:tone@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:tone@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200"/>
  <send><![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:tone@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <pause milliseconds="{hold_ms}"/>
  <send retrans="500"><![CDATA[

      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:tone@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>
</scenario>
"#,
        pcap = pcap.display()
    );
    let path = dir.join(format!("tone-{}.xml", uuid::Uuid::new_v4()));
    std::fs::write(&path, xml).expect("scenario");
    path.display().to_string()
}
