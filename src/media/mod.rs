//! Media: SDP offer/answer (PCMU, PCMA, telephone-event), the RTP port pool, one RTP session
//! task per answered call (play, DTMF, echo, record, answering-machine detection, mute, external
//! media), the audio library (prompts, TTS) and recordings. Knows nothing of SIP dialogs or
//! flows; the call session drives it.

pub mod amd;
pub mod capture;
pub mod dtmf;
pub mod external;
pub mod g711;
pub mod library;
pub mod playout;
pub mod recording;
pub mod relay;
pub mod request;
pub mod resample;
pub mod ringback;
pub mod rtp;
pub mod rtp_ports;
pub mod rtp_session;
pub mod sdp;
pub mod tone;
pub mod wav;

pub use recording::{RecordingId, RecordingInfo, RecordingStatus, Recordings};
pub use request::{
    AudioSource, DigitSource, MediaError, MediaEvent, MediaJob, MediaRequest, MediaResult,
    RecordingRequest,
};
pub use rtp_ports::{RtpLease, RtpPortPool};
pub use rtp_session::{MediaCommand, MediaConfig, MediaHandle, MediaUpdate};
pub use sdp::{Negotiated, SdpError};
