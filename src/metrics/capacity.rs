//! What the engine can still take and what it turned away: the RTP port pool's use and size,
//! and every SIP `503 Service Unavailable` by reason (a fixed word, [`Unavailable`]). Names,
//! label words and recording only; `crate::metrics::install` describes and zeroes them.

use metrics::{counter, describe_counter, describe_gauge, gauge, Counter, Gauge};

use super::Cached;

pub const RTP_PORTS_IN_USE: &str = "activeflow_rtp_ports_in_use";
pub const RTP_PORTS_CAPACITY: &str = "activeflow_rtp_ports_capacity";
pub const SIP_UNAVAILABLE_TOTAL: &str = "activeflow_sip_unavailable_total";

/// Why the engine answered a SIP request 503 (the `reason` of `activeflow_sip_unavailable_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The overload guard: call sessions' queue lag is over `sip.overload_lag_ms`.
    Overload,
    /// The source is over `sip.max_new_calls_per_source_per_second`.
    RateLimited,
    /// `engine.max_activeflows` calls (at the door) or activeflows (at the supervisor) reached.
    MaxActiveflows,
    /// The hard cap on call sessions, live and lingering (memory under floods).
    MaxSessions,
    /// No RTP port free to answer with (`media.rtp_ports`, or the open-file limit).
    RtpPortsExhausted,
    /// A cluster node that cannot beat: new INVITEs until it beats again.
    NodeIsolated,
    /// The same node's answer to OPTIONS meanwhile (out of its proxy's rotation): apart, so
    /// that the INVITE reasons count refused calls only.
    NodeIsolatedOptions,
    /// Shutdown has begun: no new calls.
    ShuttingDown,
    /// An in-dialog request over its dialog's cap of server transactions.
    DialogTransactions,
    /// The cluster declared this node's run lost: its unanswered calls are refused.
    NodeLost,
    /// A retransmitted INVITE whose first copy was refused with 503, refused again.
    Retransmission,
}

impl Unavailable {
    /// Every reason, in the order of [`UNAVAILABLE_REASONS`].
    pub const ALL: [Unavailable; 11] = [
        Unavailable::Overload,
        Unavailable::RateLimited,
        Unavailable::MaxActiveflows,
        Unavailable::MaxSessions,
        Unavailable::RtpPortsExhausted,
        Unavailable::NodeIsolated,
        Unavailable::NodeIsolatedOptions,
        Unavailable::ShuttingDown,
        Unavailable::DialogTransactions,
        Unavailable::NodeLost,
        Unavailable::Retransmission,
    ];

    pub fn as_str(self) -> &'static str {
        UNAVAILABLE_REASONS[self as usize]
    }
}

/// `reason` values of `activeflow_sip_unavailable_total`, in [`Unavailable`] order.
pub const UNAVAILABLE_REASONS: &[&str] = &[
    "overload",
    "rate_limited",
    "max_activeflows",
    "max_sessions",
    "rtp_ports_exhausted",
    "node_isolated",
    "node_isolated_options",
    "shutting_down",
    "dialog_transactions",
    "node_lost",
    "retransmission",
];

pub(super) fn describe() {
    describe_gauge!(
        RTP_PORTS_IN_USE,
        "RTP ports of the pool in use: leased to calls and media streams (or, when the \
         open-file limit is the bound, its sockets held)"
    );
    describe_gauge!(
        RTP_PORTS_CAPACITY,
        "RTP ports the pool can lease at once: the even ports of media.rtp_ports, or fewer \
         when the open-file limit allows fewer sockets"
    );
    describe_counter!(
        SIP_UNAVAILABLE_TOTAL,
        "SIP 503 Service Unavailable answers sent, by reason"
    );
}

pub(super) fn zeroes() {
    gauge!(RTP_PORTS_IN_USE).set(0.0);
    gauge!(RTP_PORTS_CAPACITY).set(0.0);
    for r in UNAVAILABLE_REASONS {
        counter!(SIP_UNAVAILABLE_TOTAL, "reason" => *r).absolute(0);
    }
}

static UNAVAILABLE: Cached<Counter> = Cached::new();

/// One 503 answered for `reason`.
pub fn sip_unavailable(reason: Unavailable) {
    let make = |r: &'static str| counter!(SIP_UNAVAILABLE_TOTAL, "reason" => r);
    if let Some(c) = UNAVAILABLE.at(UNAVAILABLE_REASONS, make, reason as usize) {
        c.increment(1);
    }
}

/// The pool's size is `total` ports; returns the handle its use is reported on (at zero).
pub fn rtp_ports_pool(total: usize) -> Gauge {
    gauge!(RTP_PORTS_CAPACITY).set(total as f64);
    let in_use = gauge!(RTP_PORTS_IN_USE);
    in_use.set(0.0);
    in_use
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_in_enum_order() {
        assert_eq!(Unavailable::ALL.len(), UNAVAILABLE_REASONS.len());
        for (i, r) in Unavailable::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        assert_eq!(
            Unavailable::RtpPortsExhausted.as_str(),
            "rtp_ports_exhausted"
        );
    }
}
