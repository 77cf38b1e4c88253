//! Server INVITE transaction: RFC 3261 §17.2.1 as amended by RFC 6026 §7.1 (Accepted state),
//! plus the UAS core's 2xx retransmission (§13.3.1.4) which we keep here. Owns response
//! retransmission (Timer G / 2xx), ACK waiting (Timer H / L) and Timer I; sans-IO.
//!
//! ```text
//!  Proceeding --2xx--> Accepted --ACK--------------------------> Terminated
//!      |                  '--Timer L (Timeout)----------------> Terminated
//!      '--3xx-6xx--> Completed --ACK--> Confirmed --Timer I---> Terminated
//!                        '--Timer H (Timeout)-----------------> Terminated
//! ```

use bytes::Bytes;
use tokio::time::Instant;

use crate::sip::transaction::{after, earliest, Deadline, Retransmit, Timers, TransactionOutput};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Proceeding,
    Accepted,
    Completed,
    Confirmed,
    Terminated,
}

/// Server INVITE transaction (see module doc).
#[derive(Debug, Clone)]
pub struct ServerInviteTransaction {
    state: State,
    reliable: bool,
    timers: Timers,
    last_response: Option<Bytes>,
    final_code: Option<u16>,
    retransmissions: u32,
    /// Timer G (non-2xx, unreliable transport only) or the 2xx retransmit timer (any transport).
    retransmit: Retransmit,
    /// Timer H (non-2xx) or Timer L (2xx).
    timeout: Deadline,
    timer_i: Deadline,
}

impl ServerInviteTransaction {
    /// Starts in Proceeding (the INVITE was just received).
    pub fn new(reliable: bool, timers: Timers, _now: Instant) -> ServerInviteTransaction {
        ServerInviteTransaction {
            state: State::Proceeding,
            reliable,
            timers,
            last_response: None,
            final_code: None,
            retransmissions: 0,
            retransmit: Retransmit::default(),
            timeout: Deadline::default(),
            timer_i: Deadline::default(),
        }
    }

    /// INVITE retransmission received: the last response sent (1xx or final) to resend.
    /// `None` if nothing was sent yet or in Confirmed/Terminated.
    pub fn on_request_retransmit(&mut self) -> Option<Bytes> {
        match self.state {
            State::Proceeding | State::Accepted | State::Completed => {
                let resp = self.last_response.clone()?;
                self.retransmissions = self.retransmissions.saturating_add(1);
                Some(resp)
            }
            State::Confirmed | State::Terminated => None,
        }
    }

    /// A 1xx was sent. Ignored outside Proceeding.
    pub fn on_provisional(&mut self, bytes: Bytes) {
        if self.state == State::Proceeding {
            self.last_response = Some(bytes);
        }
    }

    /// A final response was sent: 2xx → Accepted (retransmit + Timer L), 3xx–6xx →
    /// Completed (Timer G + Timer H). A code < 200 is treated as provisional. Ignored
    /// outside Proceeding.
    pub fn on_final(&mut self, code: u16, bytes: Bytes, now: Instant) {
        if code < 200 {
            self.on_provisional(bytes);
            return;
        }
        if self.state != State::Proceeding {
            return;
        }
        self.last_response = Some(bytes);
        self.final_code = Some(code);
        self.state = if code < 300 {
            State::Accepted
        } else {
            State::Completed
        };
        // The UAS core retransmits a 2xx on every transport (RFC 3261 §13.3.1.4: a stateful
        // proxy between us and the caller may drop it); Timer G is for unreliable ones only.
        if !self.reliable || code < 300 {
            self.retransmit = Retransmit::start(now, self.timers.t1, self.timers.t2);
        }
        self.timeout = Deadline::at(after(now, self.timers.t1_x64()));
    }

    /// ACK received. Accepted → Terminated; Completed → Confirmed with Timer I (T4 on
    /// unreliable, zero on reliable: fires on the next tick). Otherwise absorbed.
    pub fn on_ack(&mut self, now: Instant) {
        match self.state {
            State::Accepted => self.terminate(),
            State::Completed => {
                self.retransmit.clear();
                self.timeout.clear();
                self.state = State::Confirmed;
                self.last_response = None;
                let wait = if self.reliable {
                    std::time::Duration::ZERO
                } else {
                    self.timers.t4
                };
                self.timer_i = Deadline::at(after(now, wait));
            }
            State::Proceeding | State::Confirmed | State::Terminated => {}
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        earliest(&[
            self.retransmit.get(),
            self.timeout.get(),
            self.timer_i.get(),
        ])
    }

    /// Timer H / L → `[Timeout, Terminated]`; Timer G / 2xx → `[Retransmit]`;
    /// Timer I → `[Terminated]`.
    pub fn on_tick(&mut self, now: Instant) -> Vec<TransactionOutput> {
        match self.state {
            State::Accepted | State::Completed => {
                if self.timeout.fire(now) {
                    self.terminate();
                    return vec![TransactionOutput::Timeout, TransactionOutput::Terminated];
                }
                match (self.retransmit.fire(now), &self.last_response) {
                    (true, Some(resp)) => {
                        self.retransmissions = self.retransmissions.saturating_add(1);
                        vec![TransactionOutput::Retransmit(resp.clone())]
                    }
                    _ => Vec::new(),
                }
            }
            State::Confirmed if self.timer_i.fire(now) => {
                self.terminate();
                vec![TransactionOutput::Terminated]
            }
            State::Proceeding | State::Confirmed | State::Terminated => Vec::new(),
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        // Nothing will be resent: free the response (calls can stay up for hours).
        self.last_response = None;
        self.retransmit.clear();
        self.timeout.clear();
        self.timer_i.clear();
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// A final response was sent and no ACK has arrived yet.
    pub fn awaiting_ack(&self) -> bool {
        matches!(self.state, State::Accepted | State::Completed)
    }

    pub fn final_code(&self) -> Option<u16> {
        self.final_code
    }

    /// Responses resent so far (timer-driven and in answer to INVITE retransmissions).
    pub fn retransmissions(&self) -> u32 {
        self.retransmissions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::drive;
    use std::time::Duration;
    use tokio::time::advance;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn unreliable_2xx_schedule_and_timer_l() {
        let start = Instant::now();
        let mut tx = ServerInviteTransaction::new(false, Timers::default(), start);
        assert_eq!(tx.on_request_retransmit(), None);
        tx.on_provisional(Bytes::from_static(b"180"));
        assert_eq!(tx.on_request_retransmit(), Some(Bytes::from_static(b"180")));
        tx.on_final(200, Bytes::from_static(b"200"), start);
        assert!(tx.awaiting_ack());
        let fired = drive(&mut tx, start, 40_000).await;
        let retx: Vec<u64> = fired
            .iter()
            .filter(|(_, o)| matches!(o, TransactionOutput::Retransmit(b) if b == "200"))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(
            retx,
            [500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
        );
        let tail: Vec<_> = fired.iter().skip(retx.len()).cloned().collect();
        assert_eq!(
            tail,
            [
                (32_000, TransactionOutput::Timeout),
                (32_000, TransactionOutput::Terminated)
            ]
        );
        assert!(tx.is_terminated());
        assert_eq!(tx.next_deadline(), None);
        assert_eq!(tx.retransmissions(), 11);
    }

    #[tokio::test(start_paused = true)]
    async fn ack_stops_2xx_retransmission() {
        let start = Instant::now();
        let mut tx = ServerInviteTransaction::new(false, Timers::default(), start);
        tx.on_final(200, Bytes::from_static(b"200"), start);
        advance(ms(500)).await;
        assert_eq!(tx.on_tick(Instant::now()).len(), 1);
        advance(ms(200)).await;
        tx.on_ack(Instant::now());
        assert!(tx.is_terminated());
        assert!(!tx.awaiting_ack());
        assert_eq!(tx.next_deadline(), None);
        advance(ms(60_000)).await;
        assert!(tx.on_tick(Instant::now()).is_empty());
        tx.on_ack(Instant::now());
        assert_eq!(tx.on_request_retransmit(), None);
        assert_eq!(tx.final_code(), Some(200));
    }

    /// RFC 3261 §13.3.1.4: the 2xx is retransmitted until the ACK on every transport (TCP
    /// too: a stateful proxy in the path may have lost it), T1 doubling to T2, Timer L ends it.
    #[tokio::test(start_paused = true)]
    async fn reliable_2xx_retransmitted_until_timer_l() {
        let start = Instant::now();
        let mut tx = ServerInviteTransaction::new(true, Timers::default(), start);
        tx.on_final(200, Bytes::from_static(b"200"), start);
        assert_eq!(tx.next_deadline(), Some(start + ms(500)));
        let fired = drive(&mut tx, start, 40_000).await;
        let times: Vec<u64> = fired
            .iter()
            .filter(|(_, o)| matches!(o, TransactionOutput::Retransmit(_)))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(&times[..5], [500, 1_500, 3_500, 7_500, 11_500]);
        assert_eq!(
            &fired[fired.len() - 2..],
            [
                (32_000, TransactionOutput::Timeout),
                (32_000, TransactionOutput::Terminated)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reliable_2xx_stops_at_ack() {
        let start = Instant::now();
        let mut tx = ServerInviteTransaction::new(true, Timers::default(), start);
        tx.on_final(200, Bytes::from_static(b"200"), start);
        advance(ms(600)).await;
        assert_eq!(tx.on_tick(Instant::now()).len(), 1);
        tx.on_ack(Instant::now());
        assert!(tx.is_terminated());
        assert_eq!(tx.next_deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn non_2xx_timer_g_then_ack_then_timer_i() {
        let start = Instant::now();
        let mut tx = ServerInviteTransaction::new(false, Timers::default(), start);
        tx.on_final(486, Bytes::from_static(b"486"), start);
        let fired = drive(&mut tx, start, 4_000).await;
        let times: Vec<u64> = fired.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, [500, 1_500, 3_500]);
        // Duplicate INVITE in Completed: resend the final response.
        assert_eq!(tx.on_request_retransmit(), Some(Bytes::from_static(b"486")));
        advance(ms(500)).await; // t = 4.0 s
        tx.on_ack(Instant::now());
        assert!(!tx.awaiting_ack() && !tx.is_terminated());
        assert_eq!(tx.next_deadline(), Some(start + ms(9_000)));
        tx.on_ack(Instant::now()); // duplicate ACK absorbed
        assert_eq!(tx.on_request_retransmit(), None);
        advance(ms(4_999)).await;
        assert!(tx.on_tick(Instant::now()).is_empty());
        advance(ms(1)).await;
        assert_eq!(tx.on_tick(Instant::now()), [TransactionOutput::Terminated]);
        assert!(tx.is_terminated());
    }

    #[tokio::test(start_paused = true)]
    async fn non_2xx_timer_h_timeout() {
        let start = Instant::now();
        let mut tx = ServerInviteTransaction::new(false, Timers::default(), start);
        tx.on_final(603, Bytes::from_static(b"603"), start);
        let fired = drive(&mut tx, start, 40_000).await;
        assert_eq!(fired.last(), Some(&(32_000, TransactionOutput::Terminated)));
        assert!(fired.contains(&(32_000, TransactionOutput::Timeout)));
        assert_eq!(tx.final_code(), Some(603));
    }

    #[tokio::test(start_paused = true)]
    async fn reliable_non_2xx_timer_i_zero_and_late_final_ignored() {
        let start = Instant::now();
        let mut tx = ServerInviteTransaction::new(true, Timers::default(), start);
        tx.on_final(404, Bytes::from_static(b"404"), start);
        tx.on_final(200, Bytes::from_static(b"200"), start); // ignored
        assert_eq!(tx.final_code(), Some(404));
        advance(ms(100)).await;
        assert!(tx.on_tick(Instant::now()).is_empty());
        tx.on_ack(Instant::now());
        assert_eq!(tx.next_deadline(), Some(Instant::now()));
        assert_eq!(tx.on_tick(Instant::now()), [TransactionOutput::Terminated]);
    }

    #[tokio::test(start_paused = true)]
    async fn shrunk_timers_and_late_tick_fires_once() {
        let timers = Timers {
            t1: ms(10),
            t2: ms(40),
            t4: ms(50),
        };
        let start = Instant::now();
        let mut tx = ServerInviteTransaction::new(false, timers, start);
        tx.on_final(500, Bytes::from_static(b"500"), start);
        advance(ms(100)).await; // 10, 30, 70 all missed
        assert_eq!(tx.on_tick(Instant::now()).len(), 1);
        assert!(tx.next_deadline().is_some_and(|d| d > Instant::now()));
        advance(ms(540)).await; // past Timer H = 640 ms
        assert_eq!(
            tx.on_tick(Instant::now()),
            [TransactionOutput::Timeout, TransactionOutput::Terminated]
        );
    }
}
