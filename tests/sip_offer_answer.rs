//! RFC 3264 offer/answer and session liveness on the wire against raw UDP peers: one answer
//! m-line per offered one (video refused with port 0), SRTP-only refused with 488, a SIP-I
//! multipart body, a T.38-only re-INVITE refused with the call left up, a PCMA-only caller sent
//! PCMA, a delayed offer whose media starts at the ACK's answer, hold and resume by re-INVITE,
//! a silent caller hung up (`rtp_timeout`) and the per-call time cap (`max_duration`).
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use activeflow::engine::EndReason;
use activeflow::engine::Status;
use common::{flow, header, start};
use serde_json::json;

fn beeping() -> serde_json::Value {
    flow(
        "beep",
        json!([{"type": "answer"}, {"type": "beep", "option": {"duration": 3000}},
               {"type": "sleep", "option": {"duration": 60000}}]),
    )
}

struct Caller {
    sip: UdpSocket,
    rtp: UdpSocket,
    engine: SocketAddr,
}

impl Caller {
    fn new(engine: SocketAddr) -> Caller {
        let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
        sip.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
        rtp.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Caller { sip, rtp, engine }
    }

    fn port(&self) -> u16 {
        self.sip.local_addr().unwrap().port()
    }

    fn rtp_port(&self) -> u16 {
        self.rtp.local_addr().unwrap().port()
    }

    /// `method` in dialog `call_id` with `body` of `content_type` (none when empty).
    fn send(
        &self,
        method: &str,
        call_id: &str,
        to_tag: Option<&str>,
        cseq: u32,
        content_type: &str,
        body: &[u8],
    ) {
        let port = self.port();
        let tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let ctype = if body.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {content_type}\r\n")
        };
        let mut msg = format!(
            "{method} sip:100@{engine} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{m}-{cseq}-{n}\r\n\
             From: <sip:caller@127.0.0.1>;tag=c1\r\nTo: <sip:100@127.0.0.1>{tag}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\nContact: <sip:caller@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n\
             {ctype}Content-Length: {len}\r\n\r\n",
            engine = self.engine,
            m = method.to_lowercase(),
            n = std::process::id(),
            len = body.len()
        )
        .into_bytes();
        msg.extend_from_slice(body);
        self.sip.send_to(&msg, self.engine).unwrap();
    }

    fn recv_until(&self, needle: &str) -> String {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, _) = self
                .sip
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("no {needle:?}: {e}"));
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if m.lines().next().unwrap_or("").contains(needle) {
                return m;
            }
        }
    }

    /// Payload types of the RTP packets that reach our RTP socket within `wait`.
    fn rtp_payload_types(&self, wait: Duration) -> Vec<u8> {
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 2048];
        let mut pts = Vec::new();
        while Instant::now() < deadline {
            if let Ok((n, _)) = self.rtp.recv_from(&mut buf) {
                if n > 12 {
                    pts.push(buf[1] & 0x7f);
                }
            }
        }
        pts
    }
}

/// A flow that answers and holds the call.
fn hold_flow() -> serde_json::Value {
    flow(
        "hold",
        json!([{"type": "answer"}, {"type": "sleep", "option": {"duration": 60000}}]),
    )
}

impl Caller {
    /// An answered, ACKed call `call_id` offering PCMU/PCMA; the engine's To tag.
    fn call_up(&self, call_id: &str) -> String {
        let offer = sdp(self.rtp_port(), AUDIO);
        self.send(
            "INVITE",
            call_id,
            None,
            1,
            "application/sdp",
            offer.as_bytes(),
        );
        let tag = to_tag(&self.recv_until("200 OK"));
        self.send("ACK", call_id, Some(&tag), 1, "", b"");
        tag
    }
}

fn sdp(rtp_port: u16, media: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n{}",
        media.replace("{port}", &rtp_port.to_string())
    )
}

fn to_tag(msg: &str) -> String {
    header(msg, "To")
        .unwrap()
        .split(";tag=")
        .nth(1)
        .unwrap()
        .to_string()
}

const AUDIO: &str = "m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";

/// RFC 3264 §6: one m-line per offered m-line, in order; the video stream is refused with
/// port 0 and keeps its media, proto and formats.
#[test]
fn an_audio_and_video_offer_gets_video_refused_in_order() {
    let e = start(&[beeping()], &[("*", "beep")], &[]);
    let c = Caller::new(e.sip);
    let offer = sdp(
        c.rtp_port(),
        &format!("{AUDIO}m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"),
    );
    c.send(
        "INVITE",
        "av@t",
        None,
        1,
        "application/sdp",
        offer.as_bytes(),
    );
    let ok = c.recv_until("200 OK");
    let mlines: Vec<&str> = ok.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(mlines.len(), 2, "{ok}");
    assert!(
        mlines[0].starts_with("m=audio ") && !mlines[0].starts_with("m=audio 0 "),
        "{ok}"
    );
    assert_eq!(mlines[1], "m=video 0 RTP/AVP 96", "{ok}");
}

/// RFC 3264 §6 (no SRTP yet): an offer with only RTP/SAVP audio gets 488.
#[test]
fn an_srtp_only_offer_gets_488() {
    let e = start(&[beeping()], &[("*", "beep")], &[]);
    let c = Caller::new(e.sip);
    let offer = sdp(
        c.rtp_port(),
        "m=audio {port} RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n",
    );
    c.send(
        "INVITE",
        "savp@t",
        None,
        1,
        "application/sdp",
        offer.as_bytes(),
    );
    let r = c.recv_until("SIP/2.0 4");
    assert!(r.starts_with("SIP/2.0 488"), "{r}");
}

/// RFC 2046 §5.1 / RFC 3204: a SIP-I INVITE (multipart/mixed: SDP plus a binary ISUP part) is
/// answered from its SDP part.
#[test]
fn a_sip_i_multipart_offer_is_answered() {
    let e = start(&[beeping()], &[("*", "beep")], &[]);
    let c = Caller::new(e.sip);
    let mut body = format!(
        "--unique-boundary-1\r\nContent-Type: application/sdp\r\n\r\n{}\r\n\
         --unique-boundary-1\r\nContent-Type: application/isup;version=itu-t92+\r\n\
         Content-Disposition: signal;handling=optional\r\n\r\n",
        sdp(c.rtp_port(), AUDIO)
    )
    .into_bytes();
    body.extend_from_slice(&[0x01, 0x10, 0x00, 0x0d, 0x0a, 0xff, 0x00, 0x0a, 0x03]);
    body.extend_from_slice(b"\r\n--unique-boundary-1--\r\n");
    c.send(
        "INVITE",
        "sipi@t",
        None,
        1,
        "multipart/mixed;boundary=unique-boundary-1",
        &body,
    );
    let ok = c.recv_until("200 OK");
    assert!(ok.contains("m=audio "), "{ok}");
}

/// RFC 3264 §8 (and issue 14): a re-INVITE offering only T.38 gets 488 and the call stays up.
#[test]
fn a_t38_only_reinvite_gets_488_and_the_call_stays_up() {
    let e = start(&[beeping()], &[("*", "beep")], &[]);
    let c = Caller::new(e.sip);
    let tag = c.call_up("t38@t");
    let t38 = sdp(
        c.rtp_port(),
        "m=image {port} udptl t38\r\na=T38FaxVersion:0\r\n",
    );
    c.send(
        "INVITE",
        "t38@t",
        Some(&tag),
        2,
        "application/sdp",
        t38.as_bytes(),
    );
    let r = c.recv_until("SIP/2.0 4");
    assert!(r.starts_with("SIP/2.0 488"), "{r}");
    c.send("ACK", "t38@t", Some(&tag), 2, "", b"");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(e.activeflows()[0].status, Status::Running);
    c.send("BYE", "t38@t", Some(&tag), 3, "", b"");
    c.recv_until("SIP/2.0 200");
}

/// RFC 3264 §6.1 / RFC 3551: a PCMA-only caller is answered PCMA and sent PCMA (pt 8).
#[test]
fn a_pcma_only_caller_gets_pcma() {
    let e = start(&[beeping()], &[("*", "beep")], &[]);
    let c = Caller::new(e.sip);
    let offer = sdp(c.rtp_port(), "m=audio {port} RTP/AVP 8\r\n");
    c.send(
        "INVITE",
        "pcma@t",
        None,
        1,
        "application/sdp",
        offer.as_bytes(),
    );
    let ok = c.recv_until("200 OK");
    assert!(ok.contains("m=audio ") && ok.contains(" RTP/AVP 8"), "{ok}");
    c.send("ACK", "pcma@t", Some(&to_tag(&ok)), 1, "", b"");
    let pts = c.rtp_payload_types(Duration::from_secs(2));
    assert!(pts.len() > 20, "{} packets", pts.len());
    assert!(pts.iter().all(|&pt| pt == 8), "{pts:?}");
}

/// RFC 3264 §5 (delayed offer): an INVITE without SDP gets our offer in the 200; nothing is
/// sent before the ACK brings the answer, then media flows to the answer's address with its
/// codec (PCMA here).
#[test]
fn a_delayed_offer_gets_media_at_the_acks_answer() {
    let e = start(&[beeping()], &[("*", "beep")], &[]);
    let c = Caller::new(e.sip);
    c.send("INVITE", "late@t", None, 1, "", b"");
    let ok = c.recv_until("200 OK");
    assert!(
        ok.contains("m=audio ") && ok.contains("RTP/AVP 0 8 101"),
        "{ok}"
    );
    // The flow's beep waits for the answer: nothing reaches our RTP port meanwhile.
    assert!(c.rtp_payload_types(Duration::from_millis(800)).is_empty());
    let answer = sdp(c.rtp_port(), "m=audio {port} RTP/AVP 8\r\n");
    c.send(
        "ACK",
        "late@t",
        Some(&to_tag(&ok)),
        1,
        "application/sdp",
        answer.as_bytes(),
    );
    let pts = c.rtp_payload_types(Duration::from_secs(2));
    assert!(pts.len() > 20, "{} packets", pts.len());
    assert!(pts.iter().all(|&pt| pt == 8), "{pts:?}");
}

/// RFC 3264 §8.4: a re-INVITE with `a=sendonly` (hold) stops our RTP and is answered
/// `a=recvonly`; one with `a=sendrecv` resumes it.
#[test]
fn hold_and_resume_by_reinvite() {
    let long_beep = flow(
        "beep",
        json!([{"type": "answer"}, {"type": "beep", "option": {"duration": 20000}}]),
    );
    let e = start(&[long_beep], &[("*", "beep")], &[]);
    let c = Caller::new(e.sip);
    let tag = c.call_up("hold@t");
    assert!(c.rtp_payload_types(Duration::from_secs(1)).len() > 20);
    let held = sdp(c.rtp_port(), &format!("{AUDIO}a=sendonly\r\n"));
    c.send(
        "INVITE",
        "hold@t",
        Some(&tag),
        2,
        "application/sdp",
        held.as_bytes(),
    );
    let ok = c.recv_until("200 OK");
    assert!(ok.contains("a=recvonly"), "{ok}");
    c.send("ACK", "hold@t", Some(&tag), 2, "", b"");
    c.rtp_payload_types(Duration::from_millis(300)); // what was on its way
    let during = c.rtp_payload_types(Duration::from_secs(1));
    assert!(during.is_empty(), "{} packets while held", during.len());
    let resumed = sdp(c.rtp_port(), &format!("{AUDIO}a=sendrecv\r\n"));
    c.send(
        "INVITE",
        "hold@t",
        Some(&tag),
        3,
        "application/sdp",
        resumed.as_bytes(),
    );
    c.recv_until("200 OK");
    c.send("ACK", "hold@t", Some(&tag), 3, "", b"");
    assert!(c.rtp_payload_types(Duration::from_secs(1)).len() > 20);
}

/// Issue 14 liveness: an answered caller from which no RTP arrives for
/// `media.rtp_timeout_seconds` (its BYE lost, say) gets BYE; the activeflow ends `rtp_timeout`.
#[test]
fn a_silent_caller_is_hung_up_after_the_rtp_timeout() {
    let hold = hold_flow();
    let e = start(
        &[hold],
        &[("*", "hold")],
        &[("ACTIVEFLOW_MEDIA_RTP_TIMEOUT_SECONDS", "1")],
    );
    let c = Caller::new(e.sip);
    c.call_up("quiet@t");
    let started = Instant::now();
    let bye = c.recv_until("BYE ");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(header(&bye, "Call-ID"), Some("quiet@t"));
    e.wait_for("the activeflow to end", Duration::from_secs(5), |all| {
        all.iter()
            .any(|a| a.end_reason == Some(EndReason::RtpTimeout))
    });
}

/// `engine.max_call_seconds`: a call is ended with BYE that long after its INVITE; the
/// activeflow ends `max_duration`.
#[test]
fn the_call_time_cap_ends_a_call() {
    let hold = hold_flow();
    let e = start(
        &[hold],
        &[("*", "hold")],
        &[("ACTIVEFLOW_ENGINE_MAX_CALL_SECONDS", "1")],
    );
    let c = Caller::new(e.sip);
    c.call_up("cap@t");
    c.recv_until("BYE ");
    e.wait_for("the activeflow to end", Duration::from_secs(5), |all| {
        all.iter()
            .any(|a| a.end_reason == Some(EndReason::MaxDuration))
    });
}
