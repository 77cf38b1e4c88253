//! RFC 3263 §4.3 failover for a leg we place: the INVITE goes to the resolved targets in turn.
//! A 503, a transaction timeout (Timer B), a transport error (TCP connect refused) or no
//! response at all within `sip.failover_timeout_ms` moves it to the next target: a new client
//! transaction (new branch) with the same Call-ID and From tag and the next CSeq. Once a target
//! has answered anything, only its 503 moves on. With no target left the leg fails as before.
//! A target left for its silence that wakes up later gets a CANCEL (provisional) or an ACK
//! and a BYE (2xx), so it never holds a second, orphaned call.
//!
//! ```text
//!  target 1 ──503 / Timer B / connect refused / silent past the failover timeout──▶ target 2 ─ …
//!     └──any response─▶ stays (only a 503 still moves on)        last target: fails as before
//! ```

use std::collections::VecDeque;

use bytes::Bytes;
use tokio::time::Instant;

use super::{Env, Leg, Output, Phase};
use crate::call::events::CallEndCause;
use crate::sip::dialog::Dialog;
use crate::sip::message::{new_branch, RequestBuilder};
use crate::sip::transport::Peer;

/// Abandoned targets remembered per leg (as many as RFC 3263 resolution may give).
const MAX_ABANDONED: usize = 16;

/// Why the INVITE moved on (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailoverReason {
    /// The target answered 503 Service Unavailable.
    Unavailable,
    /// Timer B, or no response within the failover timeout.
    Timeout,
    /// The message could not be delivered (TCP connect failed).
    Transport,
}

impl FailoverReason {
    fn label(self) -> &'static str {
        match self {
            FailoverReason::Unavailable => "unavailable",
            FailoverReason::Timeout => "timeout",
            FailoverReason::Transport => "transport",
        }
    }
}

/// The targets still to try and the current one's attempt number and deadline.
#[derive(Debug, Default)]
pub(crate) struct Failover {
    remaining: VecDeque<Peer>,
    /// Counts targets tried; a transport error for an older attempt is stale and ignored.
    attempt: u32,
    /// No response from the current target by then: next target (set only while one remains).
    deadline: Option<Instant>,
    /// Targets left for their silence, whose INVITE transaction may still wake up.
    pub(super) abandoned: Vec<Abandoned>,
    /// When the current target's INVITE was sent.
    sent: Option<Instant>,
}

/// An INVITE we stopped waiting for: its branch, where it went, its CSeq, and until when its
/// transaction could still answer (sent + 64·T1, Timer B's span, §17.1.1.2): the leg lives
/// that long, to CANCEL or ACK+BYE a late answer.
#[derive(Debug)]
pub(super) struct Abandoned {
    branch: String,
    peer: Peer,
    cseq: u32,
    cancelled: bool,
    until: Instant,
}

impl Failover {
    /// The failover timeout, or the earliest abandoned target's end.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.abandoned
            .iter()
            .map(|a| a.until)
            .chain(self.deadline)
            .min()
    }

    /// No abandoned target can still answer.
    pub(super) fn is_settled(&self) -> bool {
        self.abandoned.is_empty()
    }

    /// The current target answered (it is alive), or the leg ended: no failover timeout.
    pub(super) fn disarm(&mut self) {
        self.deadline = None;
    }

    fn arm(&mut self, env: &Env, now: Instant) {
        self.sent = Some(now);
        self.deadline = (!self.remaining.is_empty()).then(|| now + env.failover_timeout);
    }
}

impl Leg {
    /// The next hop's targets are known, in RFC 3263 order: send the INVITE to the first and
    /// start ringing. An empty list ends the leg (the destination did not resolve).
    pub(crate) fn resolved_targets(&mut self, targets: Vec<Peer>, env: &Env, now: Instant) {
        let pending = self
            .outgoing_ref()
            .is_some_and(|o| o.invite_tx.is_none() && o.failover.attempt == 0);
        if self.phase != Phase::Early || !pending {
            return;
        }
        let mut remaining = VecDeque::from(targets);
        let Some(first) = remaining.pop_front() else {
            self.end(CallEndCause::Failed);
            return;
        };
        self.peer = Some(first);
        if let Some(o) = self.role_out() {
            o.failover.remaining = remaining;
            o.failover.attempt = 1;
            o.failover.arm(env, now);
            o.ring_deadline = Some(now + o.ring_timeout);
        }
        self.send_invite(env, now);
    }

    /// Moves the INVITE to the next target, if one is left; true when it did.
    pub(super) fn fail_over(&mut self, reason: FailoverReason, env: &Env, now: Instant) -> bool {
        if self.phase != Phase::Early {
            return false;
        }
        let current = self.peer;
        let Some(o) = self.role_out() else {
            return false;
        };
        let Some(next) = o.failover.remaining.pop_front() else {
            return false;
        };
        if reason == FailoverReason::Timeout && o.failover.abandoned.len() < MAX_ABANDONED {
            if let Some(peer) = current {
                let until = o.failover.sent.unwrap_or(now) + env.timers.t1 * 64;
                o.failover.abandoned.push(Abandoned {
                    branch: o.branch.clone(),
                    peer,
                    cseq: o.invite_cseq,
                    cancelled: false,
                    until,
                });
            }
        }
        o.failover.attempt += 1;
        o.failover.arm(env, now);
        o.invite_cseq = o.invite_cseq.max(o.early.last_cseq) + 1;
        let branch = std::mem::replace(&mut o.branch, new_branch());
        let old = o.invite_tx.take();
        if reason == FailoverReason::Unavailable {
            // The 503's transaction stays to re-ACK its retransmissions (§17.1.1.2).
            o.keep_previous(branch, old, current);
        }
        crate::metrics::sip_failover(reason.label());
        tracing::info!(call_id = %self.id, reason = reason.label(), next = %next, "failing over");
        self.peer = Some(next);
        // The next target's server challenges with its own nonce.
        self.reset_invite_credentials();
        self.send_invite(env, now);
        true
    }

    /// Sending attempt `attempt`'s INVITE failed at the transport (TCP connect refused):
    /// next target, or the leg fails. Stale attempts and answered targets are ignored.
    pub(crate) fn transport_failed(&mut self, attempt: u32, env: &Env, now: Instant) {
        let current = self.outgoing_ref().is_some_and(|o| {
            o.failover.attempt == attempt && o.invite_tx.as_ref().is_some_and(|t| !t.may_cancel())
        });
        if !current || self.phase != Phase::Early {
            return;
        }
        if !self.fail_over(FailoverReason::Transport, env, now) {
            tracing::info!(call_id = %self.id, "transport error on the last target");
            self.end(CallEndCause::Failed);
        }
    }

    /// The failover timeout passed with no response from the current target.
    pub(super) fn failover_tick(&mut self, env: &Env, now: Instant) {
        if let Some(o) = self.role_out() {
            o.failover.abandoned.retain(|a| a.until > now);
        }
        let due = self
            .outgoing_ref()
            .and_then(|o| o.failover.deadline)
            .is_some_and(|at| at <= now);
        if due {
            if let Some(o) = self.role_out() {
                o.failover.deadline = None;
            }
            self.fail_over(FailoverReason::Timeout, env, now);
        }
    }

    /// A response to the INVITE sent to a target we left for its silence: a provisional gets
    /// a CANCEL (RFC 3261 §9.1), a 2xx an ACK and a BYE (§15: we do not want that dialog), a
    /// final failure its ACK (§17.1.1.3). Other branches are not ours and are ignored.
    pub(super) fn stale_invite_response(
        &mut self,
        resp: &rsip::Response,
        branch: &str,
        code: u16,
        env: &Env,
    ) {
        let local_tag = self.local_tag.clone();
        let call_id = self.sip_call_id.clone();
        let Some(o) = self.role_out() else { return };
        let Some(i) = o.failover.abandoned.iter().position(|a| a.branch == branch) else {
            return;
        };
        let (local_uri, uri) = (o.local_uri.clone(), o.route.request_uri.clone());
        let entry = &mut o.failover.abandoned[i];
        let (peer, cseq) = (entry.peer, entry.cseq);
        let via = peer.transport.via_token();
        // The sent-by the INVITE carried (a TLS or TCP listener's port).
        let sent_by = env.sent_by_over(peer.transport);
        let request = |method| {
            RequestBuilder::new(method, &uri)
                .via(&sent_by, via, branch)
                .from_addr(&local_uri, &local_tag)
                .call_id(&call_id)
                .cseq(cseq)
                .max_forwards(70)
        };
        let to = || {
            use rsip::prelude::*;
            resp.to_header()
                .map(|t| t.value().to_string())
                .unwrap_or_else(|_| format!("<{uri}>"))
        };
        let mut out = Vec::new();
        match code {
            100..=199 if !entry.cancelled => {
                entry.cancelled = true;
                out.push(
                    request(rsip::Method::Cancel)
                        .to_addr(&format!("<{uri}>"), None)
                        .build(),
                );
            }
            200..=299 => {
                o.failover.abandoned.remove(i);
                let mut dialog = Dialog::as_uac(resp, &local_uri, &local_tag, cseq, &uri);
                out.push(
                    dialog
                        .request(rsip::Method::Ack, cseq, &sent_by, via)
                        .build(),
                );
                out.push(dialog.bye(&sent_by, via));
                tracing::info!(call_id = %self.id, %peer, "late 2xx from an abandoned target: BYE");
            }
            300..=699 => {
                o.failover.abandoned.remove(i);
                out.push(request(rsip::Method::Ack).to_addr(&to(), None).build());
            }
            _ => {}
        }
        for bytes in out {
            self.send_to(peer, bytes);
        }
    }

    /// The INVITE to the current target: the shell watches its delivery (a failed TCP connect
    /// comes back as [`Leg::transport_failed`] with this attempt).
    pub(super) fn send_invite_bytes(&mut self, bytes: Bytes) {
        let (Some(to), Some(attempt)) =
            (self.peer, self.outgoing_ref().map(|o| o.failover.attempt))
        else {
            return;
        };
        self.out.push(Output::SendInvite { to, bytes, attempt });
    }
}
