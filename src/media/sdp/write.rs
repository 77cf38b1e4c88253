//! Writes our SDP: the answer mirrors every offered m-line in order (RFC 3264 §6), ours with a
//! port and the rest refused with port 0; the offer has one audio stream. Plain text, because
//! the shape is fixed; nothing here parses.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::{Direction, Negotiated, PCMA, PCMU};

/// Payload type used for telephone-event when we make the offer.
const DEFAULT_DTMF_PT: u8 = 101;

/// Writes our answer for a negotiated offer: one m-line per offered m-line, in order.
pub fn answer(negotiated: &Negotiated, local_ip: IpAddr, rtp_port: u16, session_id: u64) -> String {
    answer_at(negotiated, local_ip, rtp_port, session_id, session_id)
}

/// [`answer`] with the `o=` line's session version: RFC 3264 §8 wants it one higher each
/// time our SDP in the session changes.
pub fn answer_at(
    negotiated: &Negotiated,
    local_ip: IpAddr,
    rtp_port: u16,
    session_id: u64,
    version: u64,
) -> String {
    let mut fmts = vec![(negotiated.payload_type, negotiated.codec_name())];
    if let Some(pt) = negotiated.dtmf_payload_type {
        fmts.push((pt, "telephone-event"));
    }
    let mut s = session_header(local_ip, session_id, version);
    let direction = negotiated.answer_direction();
    if negotiated.streams.is_empty() {
        // Built by hand rather than by `negotiate`: answer with our audio stream alone.
        audio_stream(&mut s, rtp_port, "RTP/AVP", &fmts, direction);
    }
    for (index, stream) in negotiated.streams.iter().enumerate() {
        if index == negotiated.audio_index {
            audio_stream(&mut s, rtp_port, &stream.proto, &fmts, direction);
        } else {
            // Writing to a String cannot fail.
            let _ = write!(
                s,
                "m={} 0 {} {}\r\n",
                stream.media, stream.proto, stream.fmt
            );
        }
    }
    s
}

/// Writes our offer (when the INVITE came without SDP).
pub fn offer(local_ip: IpAddr, rtp_port: u16, session_id: u64) -> String {
    offer_at(local_ip, rtp_port, session_id, session_id)
}

/// [`offer`] with the `o=` line's session version.
pub fn offer_at(local_ip: IpAddr, rtp_port: u16, session_id: u64, version: u64) -> String {
    let fmts = [
        (PCMU, "PCMU"),
        (PCMA, "PCMA"),
        (DEFAULT_DTMF_PT, "telephone-event"),
    ];
    let mut s = session_header(local_ip, session_id, version);
    audio_stream(&mut s, rtp_port, "RTP/AVP", &fmts, Direction::SendRecv);
    s
}

fn session_header(ip: IpAddr, session_id: u64, version: u64) -> String {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        "v=0\r\no=activeflow {session_id} {version} IN {family} {ip}\r\ns=activeflow\r\n\
         c=IN {family} {ip}\r\nt=0 0\r\n"
    );
    s
}

fn audio_stream(s: &mut String, port: u16, proto: &str, fmts: &[(u8, &str)], direction: Direction) {
    let _ = write!(s, "m=audio {port} {proto}");
    for (pt, _) in fmts {
        let _ = write!(s, " {pt}");
    }
    s.push_str("\r\n");
    for (pt, name) in fmts {
        let _ = write!(s, "a=rtpmap:{pt} {name}/8000\r\n");
        if *name == "telephone-event" {
            let _ = write!(s, "a=fmtp:{pt} 0-16\r\n");
        }
    }
    let _ = write!(s, "a=ptime:20\r\na={}\r\n", direction.attribute());
}
