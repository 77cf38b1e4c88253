//! SDP offer/answer (RFC 3264) for audio: picks PCMU or PCMA (the offerer's order wins) plus
//! telephone-event when offered, and writes the answer. Parsing uses `sdp-types`; writing is plain
//! text because the answer's shape is fixed.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// Static payload types we can send and receive.
const PCMU: u8 = 0;
const PCMA: u8 = 8;
/// Payload type used for telephone-event when we make the offer.
const DEFAULT_DTMF_PT: u8 = 101;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    #[error("unparseable SDP: {0}")]
    Parse(String),
    #[error("no audio stream in the offer")]
    NoAudio,
    #[error("no common codec (we support PCMU and PCMA)")]
    NoCommonCodec,
}

/// What the offer/answer settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// PCMU (0) or PCMA (8).
    pub payload_type: u8,
    /// The peer's telephone-event payload type, if it offered one.
    pub dtmf_payload_type: Option<u8>,
    /// Where the peer wants RTP (before symmetric-RTP learning).
    pub remote_rtp: Option<SocketAddr>,
}

impl Negotiated {
    pub fn codec_name(&self) -> &'static str {
        if self.payload_type == PCMA {
            "PCMA"
        } else {
            "PCMU"
        }
    }
}

/// Checks an offer and decides the codecs; no port is needed yet (the 488 decision comes first).
pub fn negotiate(offer: &[u8]) -> Result<Negotiated, SdpError> {
    let session = sdp_types::Session::parse(offer).map_err(|e| SdpError::Parse(e.to_string()))?;
    let audio = session
        .medias
        .iter()
        .find(|m| m.media == "audio" && m.port != 0)
        .ok_or(SdpError::NoAudio)?;
    let mut payload_type = None;
    let mut dtmf_payload_type = None;
    let rtpmaps: Vec<sdp_types::RtpMap> = audio
        .attributes_typed::<sdp_types::RtpMap>()
        .filter_map(Result::ok)
        .collect();
    for fmt in audio.fmt.split_whitespace() {
        let Ok(pt) = fmt.parse::<u8>() else { continue };
        let name = rtpmaps
            .iter()
            .find(|r| r.payload_type == pt)
            .map(|r| r.encoding_name.to_ascii_uppercase());
        match (pt, name.as_deref()) {
            (PCMU, None | Some("PCMU")) | (PCMA, None | Some("PCMA")) if payload_type.is_none() => {
                payload_type = Some(pt)
            }
            (_, Some("TELEPHONE-EVENT")) if dtmf_payload_type.is_none() => {
                dtmf_payload_type = Some(pt)
            }
            _ => {}
        }
    }
    let payload_type = payload_type.ok_or(SdpError::NoCommonCodec)?;
    let address = audio
        .connections
        .first()
        .or(session.connection.as_ref())
        .and_then(|c| c.connection_address.split('/').next())
        .and_then(|a| a.parse::<IpAddr>().ok());
    Ok(Negotiated {
        payload_type,
        dtmf_payload_type,
        remote_rtp: address.map(|ip| SocketAddr::new(ip, audio.port)),
    })
}

/// Writes our answer for a negotiated offer.
pub fn answer(negotiated: &Negotiated, local_ip: IpAddr, rtp_port: u16, session_id: u64) -> String {
    let mut fmts = vec![(negotiated.payload_type, negotiated.codec_name(), "8000")];
    if let Some(pt) = negotiated.dtmf_payload_type {
        fmts.push((pt, "telephone-event", "8000"));
    }
    write_sdp(local_ip, rtp_port, session_id, &fmts)
}

/// Writes our offer (when the INVITE came without SDP).
pub fn offer(local_ip: IpAddr, rtp_port: u16, session_id: u64) -> String {
    let fmts = [
        (PCMU, "PCMU", "8000"),
        (PCMA, "PCMA", "8000"),
        (DEFAULT_DTMF_PT, "telephone-event", "8000"),
    ];
    write_sdp(local_ip, rtp_port, session_id, &fmts)
}

fn write_sdp(ip: IpAddr, port: u16, session_id: u64, fmts: &[(u8, &str, &str)]) -> String {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut s = String::with_capacity(256);
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "v=0\r\no=activeflow {session_id} {session_id} IN {family} {ip}\r\ns=activeflow\r\n\
         c=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP"
    );
    for (pt, _, _) in fmts {
        let _ = write!(s, " {pt}");
    }
    s.push_str("\r\n");
    for (pt, name, rate) in fmts {
        let _ = write!(s, "a=rtpmap:{pt} {name}/{rate}\r\n");
        if *name == "telephone-event" {
            let _ = write!(s, "a=fmtp:{pt} 0-16\r\n");
        }
    }
    s.push_str("a=ptime:20\r\na=sendrecv\r\n");
    s
}

#[cfg(test)]
mod tests;
