//! Sans-IO SIP transaction state machines (RFC 3261 §17, RFC 6026): timers, outputs and the
//! shared `Transaction` driving trait. Machines keep deadlines as `tokio::time::Instant` and
//! are advanced by `on_tick`; they must never sleep, spawn or do I/O.

pub mod client;
pub mod client_invite;
pub mod linger;
pub mod server;
pub mod server_invite;

pub use client::ClientNonInviteTransaction;
pub use client_invite::{ClientInviteTransaction, InviteResponse};
pub use linger::{InviteFate, LingerTable};
pub use server::ServerNonInviteTransaction;
pub use server_invite::ServerInviteTransaction;

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

/// RTT estimate (RFC 3261 §17.1.1.1).
pub const T1: Duration = Duration::from_millis(500);
/// Maximum retransmit interval for non-INVITE requests and INVITE responses.
pub const T2: Duration = Duration::from_secs(4);
/// Maximum duration a message will remain in the network.
pub const T4: Duration = Duration::from_secs(5);

/// Timer base values; shrink them in tests or config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: T1,
            t2: T2,
            t4: T4,
        }
    }
}

impl Timers {
    /// 64·T1: Timer B, F, H, J (unreliable) and L.
    pub fn t1_x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// What the caller must do after driving a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionOutput {
    /// Send these bytes again over the transaction's transport.
    Retransmit(Bytes),
    /// The transaction timed out (Timer F / H / L); always followed by `Terminated`.
    Timeout,
    /// The transaction is over; drop it.
    Terminated,
}

/// What every machine offers whoever drives it: its next deadline and what firing it does.
pub trait Transaction {
    fn next_deadline(&self) -> Option<Instant>;
    fn on_tick(&mut self, now: Instant) -> Vec<TransactionOutput>;
}

impl Transaction for ClientNonInviteTransaction {
    fn next_deadline(&self) -> Option<Instant> {
        ClientNonInviteTransaction::next_deadline(self)
    }
    fn on_tick(&mut self, now: Instant) -> Vec<TransactionOutput> {
        ClientNonInviteTransaction::on_tick(self, now)
    }
}

impl Transaction for ClientInviteTransaction {
    fn next_deadline(&self) -> Option<Instant> {
        ClientInviteTransaction::next_deadline(self)
    }
    fn on_tick(&mut self, now: Instant) -> Vec<TransactionOutput> {
        ClientInviteTransaction::on_tick(self, now)
    }
}

impl Transaction for ServerNonInviteTransaction {
    fn next_deadline(&self) -> Option<Instant> {
        ServerNonInviteTransaction::next_deadline(self)
    }
    fn on_tick(&mut self, now: Instant) -> Vec<TransactionOutput> {
        ServerNonInviteTransaction::on_tick(self, now)
    }
}

impl Transaction for ServerInviteTransaction {
    fn next_deadline(&self) -> Option<Instant> {
        ServerInviteTransaction::next_deadline(self)
    }
    fn on_tick(&mut self, now: Instant) -> Vec<TransactionOutput> {
        ServerInviteTransaction::on_tick(self, now)
    }
}

/// Test driver on paused tokio time: fires the machine's deadlines up to `end_ms` after `start`
/// and returns each output with the millisecond it fired at.
#[cfg(test)]
pub(crate) async fn drive(
    tx: &mut impl Transaction,
    start: Instant,
    end_ms: u64,
) -> Vec<(u64, TransactionOutput)> {
    let mut fired = Vec::new();
    while let Some(at) = tx.next_deadline() {
        let offset = at.duration_since(start).as_millis() as u64;
        if offset > end_ms {
            break;
        }
        tokio::time::advance(at.saturating_duration_since(Instant::now())).await;
        fired.extend(tx.on_tick(Instant::now()).into_iter().map(|o| (offset, o)));
    }
    fired
}

/// One optional one-shot deadline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    pub(crate) fn at(when: Instant) -> Deadline {
        Deadline(Some(when))
    }
    pub(crate) fn get(self) -> Option<Instant> {
        self.0
    }
    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }
    /// True (and disarms) when due at `now`.
    pub(crate) fn fire(&mut self, now: Instant) -> bool {
        match self.0 {
            Some(at) if at <= now => {
                self.0 = None;
                true
            }
            _ => false,
        }
    }
}

/// Retransmission timer (G, E, 2xx): first at `start + interval`, then doubling up to `cap`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Retransmit {
    next: Deadline,
    interval: Duration,
    cap: Duration,
}

impl Retransmit {
    pub(crate) fn start(now: Instant, first: Duration, cap: Duration) -> Retransmit {
        Retransmit {
            next: Deadline::at(after(now, first)),
            interval: first,
            cap,
        }
    }
    pub(crate) fn get(self) -> Option<Instant> {
        self.next.get()
    }
    pub(crate) fn clear(&mut self) {
        self.next.clear();
    }
    /// Pins every future interval to `interval` (non-INVITE client in Proceeding).
    pub(crate) fn pin(&mut self, interval: Duration) {
        self.interval = interval;
        self.cap = interval;
    }
    /// True when due; reschedules on the original grid (one fire even when several were missed).
    pub(crate) fn fire(&mut self, now: Instant) -> bool {
        let Some(at) = self.next.get().filter(|&at| at <= now) else {
            return false;
        };
        self.interval = self
            .interval
            .saturating_mul(2)
            .min(self.cap)
            .max(Duration::from_millis(1));
        let mut next = after(at, self.interval);
        if next <= now {
            next = after(now, self.interval);
        }
        self.next = Deadline::at(next);
        true
    }
}

/// `now + d`, clamped to ~30 years instead of panicking on absurd durations.
pub(crate) fn after(now: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 86_400);
    now.checked_add(d.min(FAR)).unwrap_or(now)
}

/// Earliest of several optional instants.
pub(crate) fn earliest(deadlines: &[Option<Instant>]) -> Option<Instant> {
    deadlines.iter().flatten().min().copied()
}
