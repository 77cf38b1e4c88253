//! Media: SDP offer/answer (PCMU, PCMA, telephone-event) and the RTP port pool. Knows nothing of
//! SIP dialogs or flows; the call session asks it for an answer and a port.

pub mod dtmf;
pub mod g711;
pub mod library;
pub mod resample;
pub mod rtp;
pub mod rtp_ports;
pub mod sdp;
pub mod tone;
pub mod wav;

pub use rtp_ports::{RtpLease, RtpPortPool};
pub use sdp::{Negotiated, SdpError};
