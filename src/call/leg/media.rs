//! When a leg's RTP session starts and what it is told (RFC 3264): at once for a leg we place,
//! a moment after our 2xx for a call we answer, only at the ACK's answer for a delayed offer;
//! the peer's address only once an ACK confirmed the dialog; the peer's new SDP as an update.

use bytes::Bytes;
use tokio::time::Instant;

use super::rules::sdp_in;
use super::{Env, Leg, Output, Phase};
use crate::call::events::CallEndCause;
use crate::media::sdp;

/// When the RTP session starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MediaState {
    Idle,
    /// We offered in our 2xx (the INVITE had no SDP): the codec and address come with the
    /// ACK's answer, and media starts only then (RFC 3264 §5, delayed offer).
    AwaitAck,
    /// Starts by itself at this instant unless a media command starts it first.
    StartAt(Instant),
    Started,
}

impl Leg {
    /// Starts the RTP session now if it is due or pending (a media command wants it).
    pub(crate) fn start_media_now(&mut self) {
        if matches!(self.media, MediaState::StartAt(_)) && self.phase != Phase::Ended {
            self.media = MediaState::Started;
            let mut negotiated = self.negotiated.clone();
            if self.phase != Phase::Confirmed && !self.early_media {
                if let Some(n) = &mut negotiated {
                    n.remote_rtp = None;
                }
            }
            self.out.push(Output::StartMedia(negotiated));
        }
    }

    /// The RTP session will start (answered, media not running yet): media requests wait.
    pub(crate) fn media_pending(&self) -> bool {
        matches!(self.media, MediaState::StartAt(_) | MediaState::AwaitAck)
            && self.phase != Phase::Ended
    }

    /// True while the RTP session may still be started (answered, not ended).
    pub(crate) fn media_started(&self) -> bool {
        self.media == MediaState::Started
    }

    /// The peer's SDP (re-INVITE offer, or the answer in an ACK): what media follows.
    pub(super) fn update_remote_media(&mut self, req: &rsip::Request) {
        let Some(Ok(n)) = sdp_in(&req.headers, &req.body).map(sdp::negotiate) else {
            return;
        };
        self.negotiated = Some(n.clone());
        if self.media_started() && self.phase == Phase::Confirmed {
            self.out.push(Output::MediaUpdate(n));
        }
    }

    /// The media session heard nothing from the peer for `media.rtp_timeout_seconds`: its BYE
    /// was lost, or it is gone. BYE, and the call ends `rtp_timeout`.
    pub(crate) fn rtp_timeout(&mut self, env: &Env, now: Instant) {
        if self.phase == Phase::Confirmed {
            tracing::info!(call_id = %self.id, "no RTP from the peer; hanging up");
            self.send_bye(env, now);
            self.end(CallEndCause::RtpTimeout);
        }
    }

    /// Our SDP: an offer when the INVITE had none, else the answer to its offer.
    /// Its `o=` version goes up by one whenever its content changed since we last sent it
    /// (RFC 3264 §8: a re-INVITE that changed the codec, the direction...).
    pub(crate) fn local_sdp(&mut self, env: &Env) -> Option<Bytes> {
        let m = self.local_media?;
        let write = |n: &Option<crate::media::Negotiated>, version: u64| match n {
            Some(n) if !m.offer => sdp::answer_at(n, env.public_ip, m.port, m.session_id, version),
            _ => sdp::offer_at(env.public_ip, m.port, m.session_id, version),
        };
        let version = m.session_id.wrapping_add(self.sdp_changes);
        let mut sdp = write(&self.negotiated, version);
        let digest = super::rules::digest_without_origin(&sdp);
        if self.sdp_digest != 0 && digest != self.sdp_digest {
            self.sdp_changes += 1;
            sdp = write(&self.negotiated, version.wrapping_add(1));
        }
        self.sdp_digest = digest;
        Some(Bytes::from(sdp))
    }
}
