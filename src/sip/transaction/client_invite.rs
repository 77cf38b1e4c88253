//! Client INVITE transaction (RFC 3261 §17.1.1, with RFC 6026's Accepted state) for the
//! engine's outbound legs: Timer A retransmits the INVITE over UDP, Timer B gives up, Timer D
//! absorbs retransmitted non-2xx finals (each re-ACKed), Timer M absorbs retransmitted 2xx
//! (the ACK for a 2xx is the dialog's, not the transaction's). Sans-IO.
//!
//! ```text
//!  Calling --1xx--> Proceeding --2xx--> Accepted --Timer M--> Terminated
//!     |  '------------2xx---------------^
//!     |--300-699 (either state)--> Completed --Timer D--> Terminated
//!     '--Timer B (Calling only, Timeout)--------------------> Terminated
//! ```
//! Timer B runs in Calling only (§17.1.1.2): once a provisional came the callee may ring as
//! long as it likes; the transaction user's own ring timeout ends that with CANCEL.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::sip::transaction::{after, earliest, Deadline, Retransmit, Timers, TransactionOutput};

/// Timer D over UDP: how long retransmitted non-2xx finals are absorbed (RFC 3261: ≥ 32 s).
pub const TIMER_D: Duration = Duration::from_secs(32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Calling,
    Proceeding,
    Accepted,
    Completed,
    Terminated,
}

/// What the transaction user must do with a response the transaction matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteResponse {
    /// A 1xx: pass it up (ringing, early media).
    Provisional,
    /// A 2xx: the first one sets up the dialog and is ACKed by it; a retransmission
    /// (`retransmission`) is ACKed again with the same ACK.
    Accepted { retransmission: bool },
    /// A 300–699 final. The first one: build the ACK, send it and hand it to
    /// [`ClientInviteTransaction::store_ack`]. A retransmission carries that ACK to send again
    /// (`None` if none was stored).
    Rejected { retransmission: Option<Bytes> },
    /// Out of place (a 1xx after a final, say): nothing to do.
    Ignored,
}

/// Client INVITE transaction (see module doc).
#[derive(Debug, Clone)]
pub struct ClientInviteTransaction {
    state: State,
    request: Bytes,
    reliable: bool,
    timers: Timers,
    final_code: Option<u16>,
    provisional_seen: bool,
    ack: Option<Bytes>,
    timer_a: Retransmit,
    timer_b: Deadline,
    timer_d: Deadline,
    timer_m: Deadline,
}

impl ClientInviteTransaction {
    /// The INVITE was just sent at `now`: Calling, with Timer A (UDP only) and Timer B.
    pub fn new(request: Bytes, reliable: bool, timers: Timers, now: Instant) -> Self {
        let timer_a = if reliable {
            Retransmit::default()
        } else {
            // Timer A doubles without the T2 cap of non-INVITE requests; Timer B ends it.
            Retransmit::start(now, timers.t1, timers.t1_x64())
        };
        ClientInviteTransaction {
            state: State::Calling,
            request,
            reliable,
            timers,
            final_code: None,
            provisional_seen: false,
            ack: None,
            timer_a,
            timer_b: Deadline::at(after(now, timers.t1_x64())),
            timer_d: Deadline::default(),
            timer_m: Deadline::default(),
        }
    }

    /// A response with this transaction's branch and CSeq method INVITE arrived.
    pub fn on_response(&mut self, code: u16, now: Instant) -> InviteResponse {
        match (self.state, code) {
            (State::Calling | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                self.provisional_seen = true;
                // Once a provisional arrived the INVITE got through: no more Timer A, and no
                // Timer B (RFC 3261 §17.1.1.2 fires it in Calling only).
                self.timer_a.clear();
                self.timer_b.clear();
                InviteResponse::Provisional
            }
            (State::Calling | State::Proceeding, 200..=299) => {
                self.state = State::Accepted;
                self.final_code = Some(code);
                self.timer_a.clear();
                self.timer_b.clear();
                self.timer_m = Deadline::at(after(now, self.timers.t1_x64()));
                InviteResponse::Accepted {
                    retransmission: false,
                }
            }
            (State::Calling | State::Proceeding, 300..=699) => {
                self.state = State::Completed;
                self.final_code = Some(code);
                self.timer_a.clear();
                self.timer_b.clear();
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    TIMER_D
                };
                self.timer_d = Deadline::at(after(now, wait));
                InviteResponse::Rejected {
                    retransmission: None,
                }
            }
            (State::Accepted, 200..=299) => InviteResponse::Accepted {
                retransmission: true,
            },
            (State::Completed, 300..=699) => InviteResponse::Rejected {
                retransmission: Some(self.ack.clone().unwrap_or_default()),
            },
            _ => InviteResponse::Ignored,
        }
    }

    /// The ACK the user sent for the non-2xx final; re-sent for each retransmission of it.
    pub fn store_ack(&mut self, ack: Bytes) {
        self.ack = Some(ack);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        earliest(&[
            self.timer_a.get(),
            self.timer_b.get(),
            self.timer_d.get(),
            self.timer_m.get(),
        ])
    }

    /// Timer B → `[Timeout, Terminated]`; Timer A → `[Retransmit(INVITE)]`; Timer D or M →
    /// `[Terminated]`.
    pub fn on_tick(&mut self, now: Instant) -> Vec<TransactionOutput> {
        match self.state {
            State::Calling | State::Proceeding => {
                if self.timer_b.fire(now) {
                    self.terminate();
                    return vec![TransactionOutput::Timeout, TransactionOutput::Terminated];
                }
                if self.timer_a.fire(now) {
                    return vec![TransactionOutput::Retransmit(self.request.clone())];
                }
                Vec::new()
            }
            State::Completed if self.timer_d.fire(now) => {
                self.terminate();
                vec![TransactionOutput::Terminated]
            }
            State::Accepted if self.timer_m.fire(now) => {
                self.terminate();
                vec![TransactionOutput::Terminated]
            }
            State::Completed | State::Accepted | State::Terminated => Vec::new(),
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timer_a.clear();
        self.timer_b.clear();
        self.timer_d.clear();
        self.timer_m.clear();
    }

    /// The INVITE as sent (its top Via, From, To, Call-ID and CSeq shape CANCEL and ACK).
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// A provisional arrived, so a CANCEL may be sent (RFC 3261 §9.1).
    pub fn may_cancel(&self) -> bool {
        self.provisional_seen && matches!(self.state, State::Proceeding)
    }

    /// No final response yet.
    pub fn is_pending(&self) -> bool {
        matches!(self.state, State::Calling | State::Proceeding)
    }

    pub fn final_code(&self) -> Option<u16> {
        self.final_code
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::drive;
    use tokio::time::advance;

    const INVITE: Bytes = Bytes::from_static(b"INVITE sip:b@h SIP/2.0\r\n\r\n");
    const ACK: Bytes = Bytes::from_static(b"ACK sip:b@h SIP/2.0\r\n\r\n");

    #[tokio::test(start_paused = true)]
    async fn timer_a_doubles_until_timer_b() {
        let start = Instant::now();
        let mut tx = ClientInviteTransaction::new(INVITE, false, Timers::default(), start);
        let fired = drive(&mut tx, start, 40_000).await;
        let retx: Vec<u64> = fired
            .iter()
            .filter(|(_, o)| *o == TransactionOutput::Retransmit(INVITE))
            .map(|(t, _)| *t)
            .collect();
        // 0.5, 1, 2, 4, 8, 16 s apart (no T2 cap for INVITE), then Timer B at 32 s.
        assert_eq!(retx, [500, 1_500, 3_500, 7_500, 15_500, 31_500]);
        assert_eq!(
            &fired[retx.len()..],
            [
                (32_000, TransactionOutput::Timeout),
                (32_000, TransactionOutput::Terminated)
            ]
        );
        assert!(tx.is_terminated());
    }

    /// RFC 3261 §17.1.1.2: Timer B fires in Calling only; a callee that rings for minutes
    /// and then answers is still accepted.
    #[tokio::test(start_paused = true)]
    async fn provisional_stops_timer_a_and_timer_b() {
        let start = Instant::now();
        let mut tx = ClientInviteTransaction::new(INVITE, false, Timers::default(), start);
        assert!(!tx.may_cancel());
        assert_eq!(
            tx.on_response(180, Instant::now()),
            InviteResponse::Provisional
        );
        assert!(tx.may_cancel());
        assert_eq!(tx.next_deadline(), None);
        tokio::time::advance(Duration::from_secs(45)).await;
        assert!(tx.on_tick(Instant::now()).is_empty());
        assert_eq!(
            tx.on_response(200, Instant::now()),
            InviteResponse::Accepted {
                retransmission: false
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rejected_is_acked_again_for_each_retransmission_until_timer_d() {
        let start = Instant::now();
        let mut tx = ClientInviteTransaction::new(INVITE, false, Timers::default(), start);
        tx.on_response(100, Instant::now());
        assert_eq!(
            tx.on_response(486, Instant::now()),
            InviteResponse::Rejected {
                retransmission: None
            }
        );
        tx.store_ack(ACK);
        assert!(!tx.is_pending());
        assert_eq!(tx.final_code(), Some(486));
        assert_eq!(
            tx.on_response(486, Instant::now()),
            InviteResponse::Rejected {
                retransmission: Some(ACK)
            }
        );
        assert_eq!(tx.on_response(180, Instant::now()), InviteResponse::Ignored);
        let fired = drive(&mut tx, start, 40_000).await;
        assert_eq!(fired, [(32_000, TransactionOutput::Terminated)]);
    }

    #[tokio::test(start_paused = true)]
    async fn accepted_absorbs_2xx_retransmissions_until_timer_m() {
        let start = Instant::now();
        let mut tx = ClientInviteTransaction::new(INVITE, false, Timers::default(), start);
        advance(Duration::from_millis(100)).await;
        assert_eq!(
            tx.on_response(200, Instant::now()),
            InviteResponse::Accepted {
                retransmission: false
            }
        );
        assert_eq!(
            tx.on_response(200, Instant::now()),
            InviteResponse::Accepted {
                retransmission: true
            }
        );
        assert!(!tx.may_cancel());
        let fired = drive(&mut tx, start, 40_000).await;
        assert_eq!(fired, [(32_100, TransactionOutput::Terminated)]);
    }

    #[tokio::test(start_paused = true)]
    async fn reliable_transport_never_retransmits_and_timer_d_is_zero() {
        let start = Instant::now();
        let mut tx = ClientInviteTransaction::new(INVITE, true, Timers::default(), start);
        assert_eq!(tx.next_deadline(), Some(start + Duration::from_secs(32)));
        tx.on_response(603, Instant::now());
        assert_eq!(tx.on_tick(Instant::now()), [TransactionOutput::Terminated]);
    }
}
