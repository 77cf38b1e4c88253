//! Completed server non-INVITE transactions whose dialog is gone (RFC 3261 §17.2.2, Timer J):
//! only the final response is kept, by transaction key, so a retransmitted BYE or CANCEL still
//! gets its answer without keeping the whole call-session actor alive for 64·T1. Bounded in
//! time by Timer J; all entries share one timeout, so expiry is a FIFO.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use dashmap::DashMap;
use tokio::time::Instant;

use crate::sip::message::TransactionKey;

#[derive(Default)]
pub struct LingerTable {
    responses: DashMap<TransactionKey, Bytes>,
    expiry: Mutex<VecDeque<(Instant, TransactionKey)>>,
}

impl LingerTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `response` for retransmissions of `key` until `until` (Timer J).
    pub fn insert(&self, key: TransactionKey, response: Bytes, until: Instant) {
        self.responses.insert(key.clone(), response);
        self.lock().push_back((until, key));
    }

    /// The response to resend for a retransmitted request, if its transaction still lingers.
    pub fn lookup(&self, key: &TransactionKey) -> Option<Bytes> {
        self.responses.get(key).map(|r| r.clone())
    }

    /// Drops every entry whose Timer J fired by `now`; returns how many.
    pub fn purge(&self, now: Instant) -> usize {
        let mut expired = Vec::new();
        {
            let mut q = self.lock();
            while q.front().is_some_and(|(at, _)| *at <= now) {
                if let Some((_, key)) = q.pop_front() {
                    expired.push(key);
                }
            }
        }
        for key in &expired {
            self.responses.remove(key);
        }
        expired.len()
    }

    pub fn len(&self) -> usize {
        self.responses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.responses.is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, TransactionKey)>> {
        self.expiry.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn responses_linger_until_timer_j() {
        let table = LingerTable::new();
        let key = TransactionKey::client("z9hG4bK-1", rsip::Method::Bye);
        let now = Instant::now();
        table.insert(
            key.clone(),
            Bytes::from_static(b"SIP/2.0 200 OK"),
            now + Duration::from_secs(32),
        );
        assert!(table.lookup(&key).is_some());
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(table.purge(Instant::now()), 0);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(table.purge(Instant::now()), 1);
        assert!(table.lookup(&key).is_none());
        assert!(table.is_empty());
    }
}
