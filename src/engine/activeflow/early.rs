//! What a `connect` caller hears before a callee answers: the first callee's early media
//! relayed (`early_media: true`; an unanswered caller gets 183 with our SDP first, RFC 3960
//! gateway model), or, when the flow answered the caller already and nobody sends media, our
//! in-band ringback (`media.ringback_tone`) until an answer or the connect's end.

use super::connect::Connecting;
use super::Activeflow;
use crate::call::CallCommand;
use crate::media::relay::RelayLink;
use crate::media::{AudioSource, MediaJob, MediaRequest};

impl Activeflow {
    fn next_job(&mut self) -> MediaJob {
        self.last_job += 1;
        MediaJob(self.last_job)
    }

    /// A leg rings: an unanswered caller gets 180; an answered one hears ringback (once),
    /// unless early media already plays.
    pub(super) fn ring_caller(&mut self, connecting: &mut Connecting) {
        let Some(call) = self.call.as_ref().filter(|_| !self.call_released) else {
            return;
        };
        if !self.call_answered {
            // A no-op once rung (or once a 183 went out).
            call.commands.do_send(CallCommand::Ring);
            return;
        }
        if connecting.ringback.is_some() || connecting.early.is_some() {
            return;
        }
        let commands = call.commands.clone();
        let job = self.next_job();
        let duration_ms = u32::try_from(connecting.ring_timeout_ms).unwrap_or(u32::MAX);
        commands.do_send(CallCommand::Media {
            job,
            request: MediaRequest::Play {
                sources: vec![AudioSource::Ringback { duration_ms }],
                stop_on_digit: false,
            },
        });
        connecting.ringback = Some(job);
        crate::metrics::connect_early_media("ringback");
    }

    /// Leg `index` has media before its answer: relayed to the caller when the flow asked
    /// for early media and no other leg's already is (first wins until an answer).
    pub(super) fn leg_early_media(&mut self, connecting: &mut Connecting, index: usize) {
        if !connecting.early_media || connecting.winner.is_some() || connecting.early.is_some() {
            return;
        }
        let Some(call) = self.call.as_ref().filter(|_| !self.call_released) else {
            return;
        };
        let caller = call.commands.clone();
        let Some(callee) = connecting.legs[index].commands.clone() else {
            return;
        };
        if let Some(job) = connecting.ringback.take() {
            caller.do_send(CallCommand::StopMedia { job });
        }
        let (caller_end, callee_end) = RelayLink::pair();
        let caller_job = self.next_job();
        let callee_job = self.next_job();
        callee.do_send(CallCommand::Media {
            job: callee_job,
            request: MediaRequest::Relay(callee_end),
        });
        if !self.call_answered {
            caller.do_send(CallCommand::EarlyMedia);
        }
        caller.do_send(CallCommand::Media {
            job: caller_job,
            request: MediaRequest::Relay(caller_end),
        });
        connecting.early = Some((index, caller_job));
        crate::metrics::connect_early_media("early_media");
    }

    /// Leg `index` ended before answering: if its early media was relayed, that stops.
    pub(super) fn early_leg_ended(&mut self, connecting: &mut Connecting, index: usize) {
        if let Some((early, job)) = connecting.early {
            if early == index {
                connecting.early = None;
                self.stop_caller_media(job);
            }
        }
    }

    /// The connect is over unanswered: ringback and early media stop.
    pub(super) fn stop_early(&mut self, connecting: &mut Connecting) {
        let jobs = [
            connecting.ringback.take(),
            connecting.early.take().map(|e| e.1),
        ];
        for job in jobs.into_iter().flatten() {
            self.stop_caller_media(job);
        }
    }

    pub(super) fn stop_caller_media(&self, job: MediaJob) {
        if let Some(call) = self.call.as_ref().filter(|_| !self.call_released) {
            call.commands.do_send(CallCommand::StopMedia { job });
        }
    }
}
