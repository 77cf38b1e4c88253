//! A test caller with media: raw SIP over UDP plus its own RTP socket, so tests can capture
//! exactly what the engine sends (sequence numbers, timestamps, spacing, audio) and send RTP,
//! RFC 4733 events and SIP INFO back. Decodes RTP and G.711 itself, independent of the engine.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::{header, RawPeer};

/// One received RTP packet.
#[derive(Debug, Clone)]
pub struct Packet {
    pub at: Instant,
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

pub struct MediaCaller {
    pub sip: RawPeer,
    pub rtp: UdpSocket,
    pub call_id: String,
    /// The engine's RTP address from its SDP answer.
    pub engine_rtp: Option<SocketAddr>,
    ok: String,
    cseq: u32,
}

impl MediaCaller {
    pub fn new(engine: SocketAddr) -> Self {
        let rtp = UdpSocket::bind("127.0.0.1:0").expect("rtp bind");
        rtp.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        MediaCaller {
            sip: RawPeer::new(engine),
            rtp,
            call_id: format!("media-{}", uuid::Uuid::new_v4()),
            engine_rtp: None,
            ok: String::new(),
            cseq: 1,
        }
    }

    fn rtp_port(&self) -> u16 {
        self.rtp.local_addr().expect("addr").port()
    }

    /// INVITE offering `payload_type` (0 PCMU or 8 PCMA) and telephone-event 101, then ACK.
    /// Returns the 200 OK.
    pub fn call(&mut self, number: &str, payload_type: u8) -> String {
        let port = self.sip.port();
        let name = if payload_type == 8 { "PCMA" } else { "PCMU" };
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {rtp} RTP/AVP {payload_type} 101\r\na=rtpmap:{payload_type} {name}/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n",
            rtp = self.rtp_port()
        );
        let invite = format!(
            "INVITE sip:{number}@{engine} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-inv-{cid}\r\n\
             From: <sip:caller@127.0.0.1:{port}>;tag=caller-tag\r\n\
             To: <sip:{number}@{engine}>\r\n\
             Call-ID: {cid}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:caller@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n\
             Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            engine = self.sip.engine,
            cid = self.call_id,
            len = sdp.len()
        );
        self.sip.send(&invite);
        let ok = self.sip.recv_final();
        assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
        self.engine_rtp = sdp_address(&ok);
        self.ok = ok.clone();
        let ack = self.in_dialog("ACK", 1, "", "");
        self.sip.send(&ack);
        ok
    }

    /// A request inside the dialog (the To tag from the 200 OK).
    fn in_dialog(&self, method: &str, cseq: u32, content_type: &str, body: &str) -> String {
        let port = self.sip.port();
        let to = header(&self.ok, "To").expect("To");
        let ctype = if content_type.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {content_type}\r\n")
        };
        format!(
            "{method} sip:activeflow@{engine} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{m}-{cseq}-{cid}\r\n\
             From: <sip:caller@127.0.0.1:{port}>;tag=caller-tag\r\nTo: {to}\r\n\
             Call-ID: {cid}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n\
             {ctype}Content-Length: {len}\r\n\r\n{body}",
            engine = self.sip.engine,
            m = method.to_lowercase(),
            cid = self.call_id,
            len = body.len()
        )
    }

    /// Sends SIP INFO with `body`; returns the response's status line.
    pub fn info(&mut self, content_type: &str, body: &str) -> String {
        self.cseq += 1;
        let info = self.in_dialog("INFO", self.cseq, content_type, body);
        self.sip.send(&info);
        let response = self.recv_response("INFO");
        response.lines().next().unwrap_or_default().to_owned()
    }

    /// Hangs up from the caller's side.
    pub fn bye(&mut self) {
        self.cseq += 1;
        let bye = self.in_dialog("BYE", self.cseq, "", "");
        self.sip.send(&bye);
        self.recv_response("BYE");
    }

    /// The response to our `method`, answering an engine BYE on the way if one comes.
    fn recv_response(&self, method: &str) -> String {
        loop {
            let m = self.sip.recv().expect("a SIP response");
            if m.starts_with("SIP/2.0") && header(&m, "CSeq").is_some_and(|c| c.ends_with(method)) {
                return m;
            }
        }
    }

    /// Waits for the engine's BYE and answers it.
    pub fn expect_bye(&self) {
        let bye = self.sip.recv_until("BYE");
        let mut ok = String::from("SIP/2.0 200 OK\r\n");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            ok.push_str(&format!("{name}: {}\r\n", header(&bye, name).expect(name)));
        }
        ok.push_str("Content-Length: 0\r\n\r\n");
        self.sip.send(&ok);
    }

    /// Receives RTP until `quiet` passes with no packet (after at least one), or `limit`.
    pub fn capture(&self, quiet: Duration, limit: Duration) -> Vec<Packet> {
        let deadline = Instant::now() + limit;
        let mut packets: Vec<Packet> = Vec::new();
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            match self.rtp.recv_from(&mut buf) {
                Ok((n, _)) => {
                    if let Some(p) = parse(&buf[..n]) {
                        packets.push(p);
                    }
                }
                Err(_) => {
                    if packets.last().is_some_and(|p| p.at.elapsed() >= quiet) {
                        break;
                    }
                }
            }
        }
        packets
    }

    /// Sends one RTP packet to the engine.
    /// One key as RFC 4733 events from sequence number `seq` on (advanced past them): start,
    /// update, then the end packet three times (§2.5.1.4), at `timestamp`.
    pub fn press(&self, event: u8, seq: &mut u16, timestamp: u32) {
        let packets = [
            (false, 160u16),
            (false, 320),
            (true, 480),
            (true, 480),
            (true, 480),
        ];
        for (i, (end, duration)) in packets.into_iter().enumerate() {
            let flags = if end { 0x80 } else { 0 } | 10;
            let [d0, d1] = duration.to_be_bytes();
            self.send_rtp(101, i == 0, *seq, timestamp, &[event, flags, d0, d1]);
            *seq += 1;
        }
    }

    pub fn send_rtp(
        &self,
        payload_type: u8,
        marker: bool,
        sequence: u16,
        timestamp: u32,
        payload: &[u8],
    ) {
        let mut p = vec![0x80, payload_type | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&sequence.to_be_bytes());
        p.extend_from_slice(&timestamp.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(payload);
        let to = self.engine_rtp.expect("engine RTP address");
        self.rtp.send_to(&p, to).expect("send rtp");
    }
}

fn parse(b: &[u8]) -> Option<Packet> {
    if b.len() < 12 || b[0] >> 6 != 2 {
        return None;
    }
    let csrc = usize::from(b[0] & 0x0f) * 4;
    let start = 12 + csrc;
    Some(Packet {
        at: Instant::now(),
        payload_type: b[1] & 0x7f,
        marker: b[1] & 0x80 != 0,
        sequence: u16::from_be_bytes([b[2], b[3]]),
        timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        payload: b.get(start..)?.to_vec(),
    })
}

/// The `c=` address and `m=audio` port of an SDP body inside a SIP message.
pub fn sdp_address(msg: &str) -> Option<SocketAddr> {
    let ip = msg
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))?
        .trim();
    let port = msg
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))?
        .split_whitespace()
        .next()?;
    format!("{ip}:{port}").parse().ok()
}

/// G.711 µ-law to linear (ITU-T G.711), written here so the test does not trust the engine's.
pub fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let t = ((i32::from(u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

/// The same tone coded as µ-law for `samples` samples at 8 kHz (`frequency` Hz, `amplitude`).
pub fn ulaw_tone(frequency: f64, amplitude: f64, samples: usize, offset: usize) -> Vec<u8> {
    (0..samples)
        .map(|i| {
            let t = (i + offset) as f64 / 8000.0;
            let s = (amplitude * (2.0 * std::f64::consts::PI * frequency * t).sin()) as i16;
            linear_to_ulaw(s)
        })
        .collect()
}

fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = (s + BIAS).min(0x7fff);
    let exponent = (0..8)
        .rev()
        .find(|e| s & (0x4000 >> (7 - e)) != 0)
        .unwrap_or(0);
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// Root mean square of linear samples.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Sign changes per second, divided by two: the frequency of a clean tone.
pub fn tone_frequency(samples: &[i16]) -> f64 {
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    crossings as f64 / 2.0 / (samples.len() as f64 / 8000.0)
}
