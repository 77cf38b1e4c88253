//! Messages between a call session and whoever drives it (the engine's activeflow actor) —
//! the only coupling between `call` and the layers above.

use actix::{Message, Recipient};

use super::CallId;
use crate::media::{DigitSource, MediaError, MediaEvent, MediaJob, MediaRequest, MediaResult};
use crate::metrics::Unavailable;
use crate::sip::transport::Peer;

/// A new incoming call, sent to the offer sink on the session's own arbiter (the engine's
/// supervisor shard there) once the INVITE passed the ACL and SDP checks. The sink must answer with [`CallCommand::Attach`] or
/// [`CallCommand::Reject`] on `commands`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallOffer {
    pub call_id: CallId,
    /// Request-URI user part: the dialled number.
    pub destination: String,
    /// From URI user part: the caller's number.
    pub source: String,
    /// The `[[users]]` name the caller authenticated as (digest, RFC 3261 §22), if any.
    pub source_user: Option<String>,
    /// VoIPBIN address types and display names of the caller and the callee.
    pub parties: super::party::Parties,
    pub peer: Peer,
    pub commands: Recipient<CallCommand>,
    /// The SIP Call-ID header of the INVITE.
    pub sip_call_id: String,
    /// The call's span (`call::span`): the engine records the activeflow it starts on it.
    pub span: tracing::Span,
}

/// Why the engine hangs a call up; decides the final response before answer (ARCHITECTURE §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupCause {
    Normal,
    Busy,
    NoAnswer,
    /// The cluster declared this node's run lost (issue 20): the call ends `node_lost`.
    NodeLost,
}

impl HangupCause {
    /// The final response when the call was not answered yet.
    pub fn refusal_before_answer(self) -> Refusal {
        match self {
            HangupCause::Busy => Refusal::Status(486),
            HangupCause::NoAnswer => Refusal::Status(480),
            HangupCause::Normal => Refusal::Status(603),
            // The node is leaving the call to nobody: a caller may retry elsewhere (§21.5.4).
            HangupCause::NodeLost => Refusal::Unavailable(Unavailable::NodeLost),
        }
    }
}

/// A final response refusing a call before its answer. A 503 carries its reason, counted
/// (`activeflow_sip_unavailable_total`) by the leg when it sends the 503, not by whoever asks
/// for it: a CANCEL that lands first gets its 487 instead, and nothing is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 503 Service Unavailable (with Retry-After), for this reason.
    Unavailable(Unavailable),
    /// Any other final status (400, 404, 486, 500, ...).
    Status(u16),
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::Unavailable(_) => 503,
            Refusal::Status(status) => status,
        }
    }

    /// The reason a 503 is counted under; `None` for any other status.
    pub fn unavailable(self) -> Option<Unavailable> {
        match self {
            Refusal::Unavailable(reason) => Some(reason),
            Refusal::Status(_) => None,
        }
    }
}

/// Commands to a call session.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum CallCommand {
    /// Where to send this call's [`CallEvent`]s; events raised earlier are delivered now.
    Attach(Recipient<CallEvent>),
    /// Refuse the call with a final response (404, 503 for a reason, ...).
    Reject(Refusal),
    /// Send 180 Ringing (before the answer, once): a leg `connect` placed is ringing.
    Ring,
    /// Send 200 OK with our SDP.
    Answer,
    /// Send 183 Session Progress with our SDP (reliably when the caller supports 100rel) and
    /// start the RTP session before the answer: a `connect` leg's early media is relayed.
    EarlyMedia,
    /// End the call: a final response before answer, BYE after.
    Hangup(HangupCause),
    /// Play, record, echo or send digits on the call's media; answered by
    /// [`CallEvent::MediaDone`] with the same job.
    Media {
        job: MediaJob,
        request: MediaRequest,
    },
    /// Cut a play or echo short (it still reports `MediaDone`).
    StopMedia { job: MediaJob },
    /// Whether the peer may transfer this call by REFER now: only while the engine bridges
    /// it with another party (`connect`); otherwise its REFER gets 403 (RFC 3515 §2.4.2).
    Transferable(bool),
    /// Report the progress of the peer's accepted REFER in a NOTIFY (RFC 3515 §2.4.4): a
    /// status of 200 or more is the last one; `then_hangup`: BYE once that NOTIFY is answered.
    TransferNotify { status: u16, then_hangup: bool },
    /// Send REFER to the peer (the `transfer` action): answered by
    /// [`CallEvent::TransferAnswered`], then [`CallEvent::TransferProgress`].
    Refer { target: String },
    /// Give up on our REFER (no last NOTIFY came in time): another may be sent.
    ReferAbandoned,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEndCause {
    /// The caller sent BYE.
    RemoteBye,
    /// The caller sent CANCEL before the final response.
    Cancelled,
    /// No ACK came for our 2xx within 64·T1.
    AckTimeout,
    /// No RTP came from the answered peer for `media.rtp_timeout_seconds`: we sent BYE.
    RtpTimeout,
    /// `engine.max_call_seconds` passed since the INVITE: we ended the call.
    MaxDuration,
    /// The RFC 4028 session timer ran out unrefreshed (or our refresh got 408/481): BYE.
    SessionExpired,
    /// The engine hung up or rejected it.
    Local,
    /// The call failed: on a leg we placed, the peer could not be reached (transport error, no
    /// DNS answer, no answer to the INVITE, an unusable SDP answer); on an incoming call, the
    /// engine's own failure (no RTP port: 503, no PRACK: 504, 500, the session dying).
    Failed,
    /// Our outbound INVITE got this final response (3xx–6xx).
    Rejected(u16),
    /// Our outbound INVITE rang past its ring timeout and was cancelled.
    NoAnswer,
    /// The peer transferred the call by REFER (RFC 3515) and we sent BYE after the last
    /// NOTIFY.
    Transferred,
    /// Its node was declared lost by the cluster (issue 20): ended by a survivor in the
    /// store, or by the node itself on its comeback (BYE / CANCEL / 503 as for a local end).
    NodeLost,
}

impl CallEndCause {
    pub fn as_str(self) -> &'static str {
        match self {
            CallEndCause::RemoteBye => "remote_bye",
            CallEndCause::Cancelled => "cancelled",
            CallEndCause::AckTimeout => "ack_timeout",
            CallEndCause::RtpTimeout => "rtp_timeout",
            CallEndCause::MaxDuration => "max_duration",
            CallEndCause::SessionExpired => "session_expired",
            CallEndCause::Local => "local",
            CallEndCause::Failed => "failed",
            CallEndCause::Rejected(_) => "rejected",
            CallEndCause::NoAnswer => "no_answer",
            CallEndCause::Transferred => "transferred",
            CallEndCause::NodeLost => "node_lost",
        }
    }
}

/// Events from a call session.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum CallEvent {
    /// Our 2xx went out (a call we answer), or the callee's 2xx came (a leg we place).
    Answered { call_id: CallId },
    /// A leg we place got a provisional response (180 ringing, 183 progress).
    Progress { call_id: CallId, code: u16 },
    /// A leg we place got SDP in a provisional: its media runs before the answer.
    EarlyMedia { call_id: CallId },
    /// The dialog is over; no more commands will be honoured.
    Ended {
        call_id: CallId,
        cause: CallEndCause,
    },
    /// The caller pressed a key (RFC 4733 event or SIP INFO).
    Digit {
        call_id: CallId,
        digit: char,
        source: DigitSource,
    },
    /// A [`CallCommand::Media`] request finished.
    MediaDone { job: MediaJob, result: MediaResult },
    /// The peer asked to transfer the call (an accepted REFER, RFC 3515 §2.4.2): `target` is
    /// its Refer-To URI. Answer with [`CallCommand::TransferNotify`].
    TransferRequested { call_id: CallId, target: String },
    /// Our REFER was answered (2xx: accepted; otherwise refused; 408 when nothing came).
    TransferAnswered { call_id: CallId, code: u16 },
    /// The peer's NOTIFY about our REFER: the status of its `message/sipfrag` body (RFC 3420);
    /// `terminated`: the subscription is over (the last NOTIFY).
    TransferProgress {
        call_id: CallId,
        code: u16,
        terminated: bool,
    },
}

impl CallEvent {
    /// What the media session of call `call_id` reported, as that call's event (`None` for
    /// what the call acts on itself: an RTP timeout hangs the call up).
    pub(crate) fn from_media(call_id: CallId, event: MediaEvent) -> Option<CallEvent> {
        match event {
            MediaEvent::Digit(digit) => Some(CallEvent::Digit {
                call_id,
                digit,
                source: DigitSource::Rfc4733,
            }),
            MediaEvent::Done { job, result } => Some(CallEvent::MediaDone { job, result }),
            MediaEvent::RtpTimeout => None,
        }
    }

    /// The answer to a media request on a call that has no media session: not answered yet,
    /// or already over (`ended`).
    pub(crate) fn media_unavailable(job: MediaJob, ended: bool) -> CallEvent {
        let error = if ended {
            MediaError::CallEnded
        } else {
            MediaError::NotAnswered
        };
        CallEvent::MediaDone {
            job,
            result: Err(error),
        }
    }
}
