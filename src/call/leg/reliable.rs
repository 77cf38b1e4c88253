//! Reliable provisional responses (RFC 3262, 100rel), both roles, sans-IO. As UAS: our 183
//! with SDP goes out with `Require: 100rel` and an `RSeq`, again at T1, 2·T1, 4·T1... until a
//! PRACK with the matching `RAck` comes (§3), and the call is refused (5xx) if none comes
//! within 64·T1. As UAC: which reliable provisionals get a PRACK (§4: the first of an early
//! dialog, then only RSeq one higher; retransmissions and out-of-order ones are dropped).
//!
//! ```text
//!  UAS:  Pending ──PRACK (RAck matches)──▶ Acknowledged
//!           └──────64·T1, no PRACK─────▶ TimedOut (the INVITE gets 5xx)
//! ```

use std::time::Duration;

use bytes::Bytes;
use rsip::prelude::*;
use tokio::time::Instant;

use crate::sip::transaction::Timers;

/// The option tag (RFC 3262 §8).
pub(crate) const TAG: &str = "100rel";

/// How the INVITE's sender stands on 100rel (RFC 3262 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerSupport {
    None,
    Supported,
    Required,
}

impl PeerSupport {
    /// From the INVITE's `Supported` and `Require` (compact `k:` is normalised earlier).
    pub(crate) fn of(headers: &rsip::Headers) -> PeerSupport {
        if has_tag(headers, "require") {
            PeerSupport::Required
        } else if has_tag(headers, "supported") {
            PeerSupport::Supported
        } else {
            PeerSupport::None
        }
    }
}

/// Whether header `name` (Require or Supported) lists `100rel`.
pub(crate) fn has_tag(headers: &rsip::Headers, name: &str) -> bool {
    headers
        .iter()
        .filter_map(|h| match h {
            rsip::Header::Require(r) if name == "require" => Some(r.value().to_string()),
            rsip::Header::Supported(s) if name == "supported" => Some(s.value().to_string()),
            rsip::Header::Other(n, v) if n.eq_ignore_ascii_case(name) => Some(v.clone()),
            _ => None,
        })
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(TAG)))
}

/// The value of header `name` (RSeq, RAck), which rsip keeps as `Other`.
pub(crate) fn header_value(headers: &rsip::Headers, name: &str) -> Option<String> {
    headers.iter().find_map(|h| match h {
        rsip::Header::Other(n, v) if n.eq_ignore_ascii_case(name) => Some(v.trim().to_string()),
        _ => None,
    })
}

/// `RSeq: 1..2**31-1` (RFC 3262 §7.1).
pub(crate) fn rseq(headers: &rsip::Headers) -> Option<u32> {
    header_value(headers, "RSeq")?
        .parse()
        .ok()
        .filter(|n| (1..=0x7fff_ffff).contains(n))
}

/// `RAck: <rseq> <cseq> <method>` (RFC 3262 §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RAck {
    pub(crate) rseq: u32,
    pub(crate) cseq: u32,
    pub(crate) method: String,
}

impl RAck {
    pub(crate) fn of(headers: &rsip::Headers) -> Option<RAck> {
        let value = header_value(headers, "RAck")?;
        let mut parts = value.split_whitespace();
        let rack = RAck {
            rseq: parts.next()?.parse().ok()?,
            cseq: parts.next()?.parse().ok()?,
            method: parts.next()?.to_ascii_uppercase(),
        };
        parts.next().is_none().then_some(rack)
    }
}

impl std::fmt::Display for RAck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.rseq, self.cseq, self.method)
    }
}

/// What a tick of our reliable provisional does.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReliableTick {
    Nothing,
    Retransmit(Bytes),
    /// 64·T1 passed without PRACK: refuse the INVITE with a 5xx (§3).
    TimedOut,
}

/// Our one reliable provisional (the 183 with our SDP), as UAS (§3).
#[derive(Debug)]
pub(crate) struct ReliableProvisional {
    pub(crate) rseq: u32,
    invite_cseq: u32,
    bytes: Bytes,
    interval: Duration,
    next_at: Option<Instant>,
    give_up_at: Instant,
    acknowledged: bool,
}

impl ReliableProvisional {
    /// `bytes` was just sent for the INVITE of CSeq `invite_cseq`.
    pub(crate) fn new(
        rseq: u32,
        invite_cseq: u32,
        bytes: Bytes,
        timers: Timers,
        now: Instant,
    ) -> Self {
        ReliableProvisional {
            rseq,
            invite_cseq,
            bytes,
            interval: timers.t1,
            next_at: Some(now + timers.t1),
            give_up_at: now + timers.t1 * 64,
            acknowledged: false,
        }
    }

    pub(crate) fn is_acknowledged(&self) -> bool {
        self.acknowledged
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.acknowledged {
            return None;
        }
        self.next_at.map(|at| at.min(self.give_up_at))
    }

    /// A PRACK's RAck: true when it acknowledges this provisional (else the PRACK gets 481).
    pub(crate) fn on_prack(&mut self, rack: &RAck) -> bool {
        let matches =
            rack.rseq == self.rseq && rack.cseq == self.invite_cseq && rack.method == "INVITE";
        if matches {
            self.acknowledged = true;
            self.next_at = None;
        }
        matches
    }

    pub(crate) fn on_tick(&mut self, now: Instant) -> ReliableTick {
        if self.acknowledged {
            return ReliableTick::Nothing;
        }
        if now >= self.give_up_at {
            self.next_at = None;
            self.acknowledged = true; // nothing more to do: the INVITE is refused
            return ReliableTick::TimedOut;
        }
        match self.next_at {
            Some(at) if at <= now => {
                self.interval *= 2;
                self.next_at = Some(now + self.interval);
                ReliableTick::Retransmit(self.bytes.clone())
            }
            _ => ReliableTick::Nothing,
        }
    }
}

/// What the UAC does with a reliable provisional (§4).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// New and in order: process it and PRACK it.
    Prack(RAck),
    /// A retransmission or out of order: not PRACKed, not processed.
    Drop,
}

/// The UAC's RSeq bookkeeping, one entry per early dialog (the provisional's To tag).
#[derive(Debug, Default)]
pub(crate) struct PrackSequence {
    last: Vec<(String, u32)>,
}

/// Early dialogs one INVITE may have (forks): more are answered from the first entries' view.
const MAX_EARLY_DIALOGS: usize = 16;

impl PrackSequence {
    /// A provisional to our INVITE of CSeq `cseq` from the early dialog `to_tag` carrying
    /// `RSeq: rseq` and `Require: 100rel`.
    pub(crate) fn on_reliable(&mut self, to_tag: &str, rseq: u32, cseq: u32) -> Received {
        let rack = RAck {
            rseq,
            cseq,
            method: "INVITE".into(),
        };
        let known = self.last.len();
        match self.last.iter_mut().find(|(t, _)| t == to_tag) {
            // §4: only the response whose RSeq is one higher than the last is processed.
            Some((_, last)) if rseq == last.wrapping_add(1) => {
                *last = rseq;
                Received::Prack(rack)
            }
            Some(_) => Received::Drop,
            None if known < MAX_EARLY_DIALOGS => {
                self.last.push((to_tag.to_string(), rseq));
                Received::Prack(rack)
            }
            None => Received::Drop,
        }
    }
}
