//! Server non-INVITE transaction (RFC 3261 §17.2.2): absorbs request retransmissions by
//! resending the last response, and lingers in Completed for Timer J. Sans-IO; never
//! builds messages.
//!
//! ```text
//!  Trying --1xx--> Proceeding --final--> Completed --Timer J--> Terminated
//!     '-------------final---------------^
//! ```

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::sip::transaction::{after, Deadline, Timers, TransactionOutput};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// Server non-INVITE transaction (see module doc).
#[derive(Debug, Clone)]
pub struct ServerNonInviteTransaction {
    state: State,
    reliable: bool,
    timers: Timers,
    last_response: Option<Bytes>,
    retransmissions: u32,
    timer_j: Deadline,
}

impl ServerNonInviteTransaction {
    /// Starts in Trying (the request was just received).
    pub fn new(reliable: bool, timers: Timers, _now: Instant) -> ServerNonInviteTransaction {
        ServerNonInviteTransaction {
            state: State::Trying,
            reliable,
            timers,
            last_response: None,
            retransmissions: 0,
            timer_j: Deadline::default(),
        }
    }

    /// Request retransmission: the last response in Proceeding/Completed, `None` in Trying
    /// (absorbed) or Terminated.
    pub fn on_request_retransmit(&mut self) -> Option<Bytes> {
        match self.state {
            State::Proceeding | State::Completed => {
                let resp = self.last_response.clone()?;
                self.retransmissions = self.retransmissions.saturating_add(1);
                Some(resp)
            }
            State::Trying | State::Terminated => None,
        }
    }

    /// A 1xx was sent: Trying/Proceeding → Proceeding. Ignored otherwise.
    pub fn on_provisional(&mut self, bytes: Bytes) {
        if matches!(self.state, State::Trying | State::Proceeding) {
            self.state = State::Proceeding;
            self.last_response = Some(bytes);
        }
    }

    /// A final response was sent: → Completed, Timer J = 64·T1 (unreliable) or 0
    /// (reliable, fires on the next tick). Ignored once Completed.
    pub fn on_final(&mut self, bytes: Bytes, now: Instant) {
        if !matches!(self.state, State::Trying | State::Proceeding) {
            return;
        }
        self.state = State::Completed;
        self.last_response = Some(bytes);
        let wait = if self.reliable {
            Duration::ZERO
        } else {
            self.timers.t1_x64()
        };
        self.timer_j = Deadline::at(after(now, wait));
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.timer_j.get()
    }

    /// Timer J → `[Terminated]`.
    pub fn on_tick(&mut self, now: Instant) -> Vec<TransactionOutput> {
        if self.state == State::Completed && self.timer_j.fire(now) {
            self.state = State::Terminated;
            return vec![TransactionOutput::Terminated];
        }
        Vec::new()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// In Completed: the final response and when Timer J fires (for handing the transaction
    /// to a [`super::LingerTable`]).
    pub fn lingering_response(&self) -> Option<(&Bytes, Instant)> {
        match self.state {
            State::Completed => Some((self.last_response.as_ref()?, self.timer_j.get()?)),
            _ => None,
        }
    }

    /// Responses resent in answer to request retransmissions.
    pub fn retransmissions(&self) -> u32 {
        self.retransmissions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    #[tokio::test(start_paused = true)]
    async fn unreliable_timer_j_and_duplicates() {
        let start = Instant::now();
        let mut tx = ServerNonInviteTransaction::new(false, Timers::default(), start);
        assert_eq!(tx.on_request_retransmit(), None); // Trying: absorbed
        assert_eq!(tx.next_deadline(), None);
        tx.on_provisional(Bytes::from_static(b"100"));
        assert_eq!(tx.on_request_retransmit(), Some(Bytes::from_static(b"100")));
        tx.on_final(Bytes::from_static(b"200"), start);
        tx.on_final(Bytes::from_static(b"500"), start); // ignored
        tx.on_provisional(Bytes::from_static(b"180")); // ignored
        assert_eq!(tx.on_request_retransmit(), Some(Bytes::from_static(b"200")));
        assert_eq!(tx.next_deadline(), Some(start + Duration::from_secs(32)));
        advance(Duration::from_millis(31_999)).await;
        assert!(tx.on_tick(Instant::now()).is_empty());
        assert_eq!(tx.on_request_retransmit(), Some(Bytes::from_static(b"200")));
        advance(Duration::from_millis(1)).await;
        assert_eq!(tx.on_tick(Instant::now()), [TransactionOutput::Terminated]);
        assert!(tx.is_terminated());
        assert_eq!(tx.on_request_retransmit(), None);
        assert_eq!(tx.retransmissions(), 3);
        assert!(tx.on_tick(Instant::now()).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn reliable_timer_j_zero() {
        let start = Instant::now();
        let mut tx = ServerNonInviteTransaction::new(true, Timers::default(), start);
        tx.on_final(Bytes::from_static(b"200"), start);
        assert_eq!(tx.next_deadline(), Some(start));
        assert_eq!(tx.on_tick(Instant::now()), [TransactionOutput::Terminated]);
        assert_eq!(tx.next_deadline(), None);
    }

    /// Driven through the shared `Transaction` trait like the other three machines.
    #[tokio::test(start_paused = true)]
    async fn timer_j_through_the_transaction_trait() {
        let start = Instant::now();
        let mut tx = ServerNonInviteTransaction::new(false, Timers::default(), start);
        tx.on_final(Bytes::from_static(b"200"), start);
        let fired = crate::sip::transaction::drive(&mut tx, start, 40_000).await;
        assert_eq!(fired, [(32_000, TransactionOutput::Terminated)]);
        assert!(tx.is_terminated());
    }
}
