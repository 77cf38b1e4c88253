//! SDP offer/answer (RFC 3264) for audio: learns every offered stream, takes the first plain
//! RTP audio stream with PCMU or PCMA (the offerer's order wins) plus telephone-event/8000, and
//! honours the offered direction. Parsing uses `sdp-types`; writing lives in `write`, and
//! finding the SDP inside a SIP body (multipart included) in `multipart`. No SIP, no sockets.

use std::net::{IpAddr, SocketAddr};

mod multipart;
mod write;

pub use multipart::sdp_of;
pub use write::{answer, answer_at, offer, offer_at};

/// Static payload types we can send and receive.
const PCMU: u8 = 0;
const PCMA: u8 = 8;
/// The only clock rate we take for G.711 and telephone-event (RFC 4733 §2.5.1.5 ties the
/// event clock to the audio it goes with; ours is 8000 Hz).
const AUDIO_CLOCK: u32 = 8000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    #[error("unparseable SDP: {0}")]
    Parse(String),
    #[error("no audio stream in the offer")]
    NoAudio,
    #[error("no common codec (we support PCMU and PCMA)")]
    NoCommonCodec,
    /// Audio offered only over SRTP (`RTP/SAVP`, `RTP/SAVPF`), which we do not do yet.
    #[error("audio offered only over SRTP (RTP/SAVP or RTP/SAVPF)")]
    Srtp,
}

/// A stream's direction attribute (RFC 3264 §6.1, RFC 4566 §6), from the writer's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction an answer gives to an offered one (RFC 3264 §6.1).
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// The attribute name as written in SDP.
    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The last direction attribute in a list (there should be at most one).
    fn of(attributes: &[sdp_types::Attribute]) -> Option<Direction> {
        attributes
            .iter()
            .rev()
            .find_map(|a| match a.attribute.to_ascii_lowercase().as_str() {
                "sendrecv" => Some(Direction::SendRecv),
                "sendonly" => Some(Direction::SendOnly),
                "recvonly" => Some(Direction::RecvOnly),
                "inactive" => Some(Direction::Inactive),
                _ => None,
            })
    }
}

/// One offered m-line, kept so the answer can mirror it (RFC 3264 §6: one m-line per offered
/// m-line, in the same order; refused ones with port 0 and the same media, proto and fmt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedStream {
    pub media: String,
    pub port: u16,
    pub proto: String,
    pub fmt: String,
}

/// What the offer/answer settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// PCMU (0) or PCMA (8).
    pub payload_type: u8,
    /// The peer's telephone-event/8000 payload type, if it offered one.
    pub dtmf_payload_type: Option<u8>,
    /// Where the peer wants RTP (before symmetric-RTP learning); `None` when it gave no
    /// address or the hold address `0.0.0.0` (RFC 3264 §8.4).
    pub remote_rtp: Option<SocketAddr>,
    /// Every m-line of the peer's SDP, in order.
    pub streams: Vec<OfferedStream>,
    /// Which of `streams` is the audio we take.
    pub audio_index: usize,
    /// The peer's direction for that stream (media level, else session level, else sendrecv).
    pub direction: Direction,
    /// The peer gave `c=` with an unspecified address (`0.0.0.0` or `::`): old-style hold.
    pub held_by_address: bool,
}

impl Negotiated {
    pub fn codec_name(&self) -> &'static str {
        if self.payload_type == PCMA {
            "PCMA"
        } else {
            "PCMU"
        }
    }

    /// Whether we may send RTP: the peer receives (`sendrecv` or `recvonly`) and gave a real
    /// address (RFC 3264 §6.1, §8.4).
    pub fn we_send(&self) -> bool {
        matches!(self.direction, Direction::SendRecv | Direction::RecvOnly) && !self.held_by_address
    }

    /// Whether the peer holds us: it only sends, sends nothing, or gave `c=0.0.0.0`.
    pub fn on_hold(&self) -> bool {
        matches!(self.direction, Direction::SendOnly | Direction::Inactive) || self.held_by_address
    }

    /// The direction our answer states for the audio stream.
    pub fn answer_direction(&self) -> Direction {
        self.direction.reversed()
    }
}

/// Checks an offer (or an answer to our offer) and decides the codecs; no port is needed yet
/// (the 488 decision comes first).
pub fn negotiate(offer: &[u8]) -> Result<Negotiated, SdpError> {
    let session = sdp_types::Session::parse(offer).map_err(|e| SdpError::Parse(e.to_string()))?;
    let streams = session
        .medias
        .iter()
        .map(|m| OfferedStream {
            media: m.media.clone(),
            port: m.port,
            proto: m.proto.clone(),
            fmt: m.fmt.clone(),
        })
        .collect();
    // The first plain-RTP audio stream with a codec we have (RFC 3264 §6: we may refuse the
    // others); the error says why none fits.
    let mut error = SdpError::NoAudio;
    let mut chosen = None;
    for (index, media) in session.medias.iter().enumerate() {
        if !media.media.eq_ignore_ascii_case("audio") || media.port == 0 {
            continue;
        }
        if !is_plain_rtp(&media.proto) {
            if is_srtp(&media.proto) && error == SdpError::NoAudio {
                error = SdpError::Srtp;
            }
            continue;
        }
        match codecs(media) {
            Some(found) => {
                chosen = Some((index, media, found));
                break;
            }
            None => error = SdpError::NoCommonCodec,
        }
    }
    let (audio_index, audio, (payload_type, dtmf_payload_type)) = chosen.ok_or(error)?;
    let address = audio
        .connections
        .first()
        .or(session.connection.as_ref())
        .and_then(|c| c.connection_address.split('/').next())
        .and_then(|a| a.parse::<IpAddr>().ok());
    let held_by_address = address.is_some_and(|ip| ip.is_unspecified());
    let direction = Direction::of(&audio.attributes)
        .or_else(|| Direction::of(&session.attributes))
        .unwrap_or_default();
    Ok(Negotiated {
        payload_type,
        dtmf_payload_type,
        remote_rtp: address
            .filter(|ip| !ip.is_unspecified())
            .map(|ip| SocketAddr::new(ip, audio.port)),
        streams,
        audio_index,
        direction,
        held_by_address,
    })
}

/// `RTP/AVP` or `RTP/AVPF` (RFC 3551, RFC 4585): what we can carry.
fn is_plain_rtp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF")
}

fn is_srtp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/SAVP") || proto.eq_ignore_ascii_case("RTP/SAVPF")
}

/// The first of PCMU/PCMA in the offerer's order, and telephone-event at 8000 Hz.
fn codecs(audio: &sdp_types::Media) -> Option<(u8, Option<u8>)> {
    let rtpmaps: Vec<sdp_types::RtpMap> = audio
        .attributes_typed::<sdp_types::RtpMap>()
        .filter_map(Result::ok)
        .collect();
    let mut payload_type = None;
    let mut dtmf_payload_type = None;
    for fmt in audio.fmt.split_whitespace() {
        let Ok(pt) = fmt.parse::<u8>() else { continue };
        let map = rtpmaps.iter().find(|r| r.payload_type == pt);
        let name = map.map(|r| r.encoding_name.to_ascii_uppercase());
        let rate_ok = map.is_none_or(|r| r.clock_rate == AUDIO_CLOCK);
        match (pt, name.as_deref()) {
            (PCMU, None | Some("PCMU")) | (PCMA, None | Some("PCMA"))
                if rate_ok && payload_type.is_none() =>
            {
                payload_type = Some(pt)
            }
            (_, Some("TELEPHONE-EVENT")) if rate_ok && dtmf_payload_type.is_none() => {
                dtmf_payload_type = Some(pt)
            }
            _ => {}
        }
    }
    Some((payload_type?, dtmf_payload_type))
}

#[cfg(test)]
mod tests;
