//! Client non-INVITE transaction (RFC 3261 §17.1.2) for requests the engine sends (BYE):
//! Timer E retransmission, Timer F timeout, Timer K linger. Sans-IO; holds the request
//! bytes only to hand them back for retransmission.
//!
//! ```text
//!  Trying --1xx--> Proceeding --final--> Completed --Timer K--> Terminated
//!     |'------------final-------------^
//!     '--Timer F (either state, Timeout)-----------------------> Terminated
//! ```

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::sip::transaction::{after, earliest, Deadline, Retransmit, Timers, TransactionOutput};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// Client non-INVITE transaction (see module doc).
#[derive(Debug, Clone)]
pub struct ClientNonInviteTransaction {
    state: State,
    request: Bytes,
    reliable: bool,
    timers: Timers,
    retransmissions: u32,
    last_code: Option<u16>,
    timer_e: Retransmit,
    timer_f: Deadline,
    timer_k: Deadline,
}

impl ClientNonInviteTransaction {
    /// The request was just sent at `now`: Trying, Timer E (unreliable) and Timer F armed.
    pub fn new(
        request: Bytes,
        reliable: bool,
        timers: Timers,
        now: Instant,
    ) -> ClientNonInviteTransaction {
        let timer_e = if reliable {
            Retransmit::default()
        } else {
            Retransmit::start(now, timers.t1, timers.t2)
        };
        ClientNonInviteTransaction {
            state: State::Trying,
            request,
            reliable,
            timers,
            retransmissions: 0,
            last_code: None,
            timer_e,
            timer_f: Deadline::at(after(now, timers.t1_x64())),
            timer_k: Deadline::default(),
        }
    }

    /// A response matched this transaction: 1xx → Proceeding (Timer E then fires every T2);
    /// final → Completed with Timer K (T4 unreliable, 0 reliable). Absorbed once Completed.
    pub fn on_response(&mut self, code: u16, now: Instant) {
        if !matches!(self.state, State::Trying | State::Proceeding) {
            return;
        }
        self.last_code = Some(code);
        if code < 200 {
            self.state = State::Proceeding;
            self.timer_e.pin(self.timers.t2);
            return;
        }
        self.state = State::Completed;
        self.timer_e.clear();
        self.timer_f.clear();
        let wait = if self.reliable {
            Duration::ZERO
        } else {
            self.timers.t4
        };
        self.timer_k = Deadline::at(after(now, wait));
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        earliest(&[self.timer_e.get(), self.timer_f.get(), self.timer_k.get()])
    }

    /// Timer F → `[Timeout, Terminated]`; Timer E → `[Retransmit(request)]`;
    /// Timer K → `[Terminated]`.
    pub fn on_tick(&mut self, now: Instant) -> Vec<TransactionOutput> {
        match self.state {
            State::Trying | State::Proceeding => {
                if self.timer_f.fire(now) {
                    self.terminate();
                    return vec![TransactionOutput::Timeout, TransactionOutput::Terminated];
                }
                if self.timer_e.fire(now) {
                    self.retransmissions = self.retransmissions.saturating_add(1);
                    return vec![TransactionOutput::Retransmit(self.request.clone())];
                }
                Vec::new()
            }
            State::Completed if self.timer_k.fire(now) => {
                self.terminate();
                vec![TransactionOutput::Terminated]
            }
            State::Completed | State::Terminated => Vec::new(),
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timer_e.clear();
        self.timer_f.clear();
        self.timer_k.clear();
    }

    pub fn request(&self) -> &Bytes {
        &self.request
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// A final response arrived (or the transaction gave up): nothing left worth waiting for.
    pub fn is_completed(&self) -> bool {
        self.is_terminated() || self.last_code.is_some_and(|c| c >= 200)
    }

    /// Last response code received (1xx or final), if any.
    pub fn last_code(&self) -> Option<u16> {
        self.last_code
    }

    pub fn retransmissions(&self) -> u32 {
        self.retransmissions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::drive;
    use tokio::time::advance;

    const BYE: Bytes = Bytes::from_static(b"BYE sip:a SIP/2.0\r\n\r\n");

    #[tokio::test(start_paused = true)]
    async fn timer_e_schedule_then_timer_f() {
        let start = Instant::now();
        let mut tx = ClientNonInviteTransaction::new(BYE, false, Timers::default(), start);
        let fired = drive(&mut tx, start, 40_000).await;
        let retx: Vec<u64> = fired
            .iter()
            .filter(|(_, o)| *o == TransactionOutput::Retransmit(BYE))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(
            retx,
            [500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
        );
        assert_eq!(
            &fired[retx.len()..],
            [
                (32_000, TransactionOutput::Timeout),
                (32_000, TransactionOutput::Terminated)
            ]
        );
        assert!(tx.is_terminated());
        assert_eq!(tx.retransmissions(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn proceeding_retransmits_every_t2() {
        let start = Instant::now();
        let mut tx = ClientNonInviteTransaction::new(BYE, false, Timers::default(), start);
        let fired = drive(&mut tx, start, 500).await;
        assert_eq!(fired.len(), 1);
        tx.on_response(100, Instant::now());
        let fired = drive(&mut tx, start, 14_000).await;
        let times: Vec<u64> = fired.iter().map(|(t, _)| *t).collect();
        // Next E was already armed at 1.5 s; from then on every T2.
        assert_eq!(times, [1_500, 5_500, 9_500, 13_500]);
        assert_eq!(tx.last_code(), Some(100));
    }

    #[tokio::test(start_paused = true)]
    async fn final_response_timer_k_unreliable() {
        let start = Instant::now();
        let mut tx = ClientNonInviteTransaction::new(BYE, false, Timers::default(), start);
        advance(Duration::from_millis(200)).await;
        tx.on_response(200, Instant::now());
        tx.on_response(481, Instant::now()); // absorbed
        assert_eq!(tx.last_code(), Some(200));
        assert_eq!(
            tx.next_deadline(),
            Some(start + Duration::from_millis(5_200))
        );
        advance(Duration::from_millis(5_000)).await;
        assert_eq!(tx.on_tick(Instant::now()), [TransactionOutput::Terminated]);
        assert_eq!(tx.request(), &BYE);
    }

    #[tokio::test(start_paused = true)]
    async fn reliable_no_retransmit_timer_f_and_k_zero() {
        let start = Instant::now();
        let mut tx = ClientNonInviteTransaction::new(BYE, true, Timers::default(), start);
        assert_eq!(tx.next_deadline(), Some(start + Duration::from_secs(32)));
        let fired = drive(&mut tx, start, 40_000).await;
        assert_eq!(
            fired,
            [
                (32_000, TransactionOutput::Timeout),
                (32_000, TransactionOutput::Terminated)
            ]
        );
        let mut tx = ClientNonInviteTransaction::new(BYE, true, Timers::default(), start);
        tx.on_response(200, Instant::now());
        assert_eq!(tx.on_tick(Instant::now()), [TransactionOutput::Terminated]);
        assert_eq!(tx.retransmissions(), 0);
    }
}
