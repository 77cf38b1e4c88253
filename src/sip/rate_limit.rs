//! Per-source token buckets for requests that would make the engine do work outside any dialog
//! (new INVITEs, OPTIONS, REGISTER, MESSAGE, ...): `sip.max_new_calls_per_source_per_second`.
//! Sans-IO: the caller passes the clock. The table of sources is bounded (sharded, a fixed
//! number of sources per shard), so a flood from spoofed addresses cannot grow memory; sources
//! in `sip.rate_limit_exempt` (the operator's own trunks and proxies) never touch it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::net::Cidr;

/// Shards of the source table: threads receiving at once rarely meet on one lock.
const SHARDS: usize = 64;
/// Sources remembered at most, over all shards (~64 bytes each: about 4 MiB when full).
pub const MAX_SOURCES: usize = 65_536;
const PER_SHARD: usize = MAX_SOURCES / SHARDS;
/// A full shard forgets its idle sources at most this often; between sweeps a new source is
/// admitted untracked (no bucket is evicted: it could be a Limited one).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What the limiter says of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within the source's rate (or the limiter is off).
    Admitted,
    /// The source is in `sip.rate_limit_exempt`: never counted.
    Exempt,
    /// Over the source's rate: refuse or drop it.
    Limited,
}

/// One source's bucket: `tokens` as of `last`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

struct Shard {
    buckets: HashMap<IpAddr, Bucket>,
    last_sweep: Option<Instant>,
}

/// Token buckets keyed by source IP: `rate` tokens a second, at most `burst` (one second's
/// worth) saved up. A source unseen, or idle long enough to refill, starts full.
pub struct SourceRateLimiter {
    rate: f64,
    burst: f64,
    exempt: Vec<Cidr>,
    shards: Box<[Mutex<Shard>]>,
}

impl SourceRateLimiter {
    /// `per_second` requests a second per source, 0 = off; `exempt` sources are never limited.
    pub fn new(per_second: u32, exempt: Vec<Cidr>) -> Self {
        let shards = (0..if per_second == 0 { 0 } else { SHARDS })
            .map(|_| {
                Mutex::new(Shard {
                    buckets: HashMap::new(),
                    last_sweep: None,
                })
            })
            .collect();
        SourceRateLimiter {
            rate: f64::from(per_second),
            burst: f64::from(per_second.max(1)),
            exempt,
            shards,
        }
    }

    /// Takes one token from `source`'s bucket at `now`.
    pub fn admit(&self, source: IpAddr, now: Instant) -> Admission {
        if self.shards.is_empty() {
            return Admission::Admitted;
        }
        if self.exempt.iter().any(|c| c.contains(source)) {
            return Admission::Exempt;
        }
        let Some(shard) = self.shards.get(shard_of(source)) else {
            return Admission::Admitted;
        };
        // A poisoned shard (a panic while held: nothing here panics) still holds valid buckets.
        let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bucket) = shard.buckets.get_mut(&source) {
            return self.take(bucket, now);
        }
        if shard.buckets.len() >= PER_SHARD && !self.make_room(&mut shard, now) {
            // Admitted untracked: evicting a bucket instead could evict a Limited one, and a
            // source churning spoofed addresses would then reset its own bucket. A source
            // starts with a full bucket anyway, so this admits what tracking would.
            return Admission::Admitted;
        }
        let mut bucket = Bucket {
            tokens: self.burst,
            last: now,
        };
        let admission = self.take(&mut bucket, now);
        shard.buckets.insert(source, bucket);
        admission
    }

    /// Sources remembered now (for tests and the bound).
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).buckets.len())
            .sum()
    }

    fn refill(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        (bucket.tokens + elapsed * self.rate).min(self.burst)
    }

    fn take(&self, bucket: &mut Bucket, now: Instant) -> Admission {
        let tokens = self.refill(bucket, now);
        bucket.last = now;
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            Admission::Admitted
        } else {
            bucket.tokens = tokens;
            Admission::Limited
        }
    }

    /// A full shard forgets the sources whose bucket has refilled (forgetting them loses
    /// nothing: an unseen source starts full), at most once per `SWEEP_EVERY`; whether that
    /// made room. Nothing is evicted otherwise: a bucket still refilling may be a Limited one.
    fn make_room(&self, shard: &mut Shard, now: Instant) -> bool {
        let may_sweep = shard
            .last_sweep
            .is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY);
        if may_sweep {
            shard.last_sweep = Some(now);
            shard.buckets.retain(|_, b| {
                (b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * self.rate)
                    < self.burst
            });
        }
        shard.buckets.len() < PER_SHARD
    }
}

/// The shard of a source: a cheap mix of its address bits (the shard's own map hashes with a
/// random key, so a chosen address cannot degrade it).
fn shard_of(ip: IpAddr) -> usize {
    let bits: u64 = match ip {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            let v = u128::from(v6);
            (v as u64) ^ ((v >> 64) as u64)
        }
    };
    (bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SHARDS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let limiter = SourceRateLimiter::new(10, Vec::new());
        let t0 = Instant::now();
        let source = ip(0x0A00_0001);
        for _ in 0..10 {
            assert_eq!(limiter.admit(source, t0), Admission::Admitted);
        }
        assert_eq!(limiter.admit(source, t0), Admission::Limited);
        // 100 ms at 10/s: one more token.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(limiter.admit(source, t1), Admission::Admitted);
        assert_eq!(limiter.admit(source, t1), Admission::Limited);
        // Other sources are not charged for it.
        assert_eq!(limiter.admit(ip(0x0A00_0002), t1), Admission::Admitted);
    }

    #[test]
    fn refused_requests_do_not_drain_the_bucket_below_empty() {
        let limiter = SourceRateLimiter::new(2, Vec::new());
        let t0 = Instant::now();
        let source = ip(1);
        limiter.admit(source, t0);
        limiter.admit(source, t0);
        for _ in 0..1000 {
            assert_eq!(limiter.admit(source, t0), Admission::Limited);
        }
        // Half a second at 2/s refills one token, however hard it was hammered.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(limiter.admit(source, t1), Admission::Admitted);
    }

    #[test]
    fn exempt_sources_and_off_are_never_limited() {
        let loopback: Cidr = "127.0.0.0/8".parse().expect("cidr");
        let limiter = SourceRateLimiter::new(1, vec![loopback]);
        let t0 = Instant::now();
        for _ in 0..100 {
            assert_eq!(
                limiter.admit(IpAddr::from([127, 0, 0, 1]), t0),
                Admission::Exempt
            );
        }
        assert_eq!(limiter.tracked(), 0);
        let off = SourceRateLimiter::new(0, Vec::new());
        for _ in 0..100 {
            assert_eq!(off.admit(ip(7), t0), Admission::Admitted);
        }
    }

    #[test]
    fn a_spoofed_source_flood_stays_within_the_table_bound() {
        let limiter = SourceRateLimiter::new(100, Vec::new());
        let t0 = Instant::now();
        for n in 0..(MAX_SOURCES as u32 * 3) {
            // Every source sends once, all at the same instant: nothing refills, so only
            // admitting new sources untracked keeps the table bounded.
            limiter.admit(ip(n), t0);
        }
        assert!(limiter.tracked() <= MAX_SOURCES, "{}", limiter.tracked());
        // A second later every bucket has refilled: one sweep per shard forgets them.
        let t1 = t0 + Duration::from_secs(2);
        for n in 0..(SHARDS as u32 * 64) {
            limiter.admit(ip(0x4000_0000 + n), t1);
        }
        assert!(limiter.tracked() < MAX_SOURCES / 2, "{}", limiter.tracked());
    }

    #[test]
    fn a_limited_source_stays_limited_among_many_others() {
        let limiter = SourceRateLimiter::new(5, Vec::new());
        let t0 = Instant::now();
        let attacker = ip(0xC000_0201);
        for _ in 0..5 {
            limiter.admit(attacker, t0);
        }
        for n in 0..1000 {
            limiter.admit(ip(0x0B00_0000 + n), t0);
        }
        assert_eq!(limiter.admit(attacker, t0), Admission::Limited);
    }

    /// A full shard swept lately evicts nobody: churning spoofed sources through the
    /// attacker's own shard cannot reset its Limited bucket.
    #[test]
    fn churning_a_full_shard_does_not_reset_a_limited_source() {
        let limiter = SourceRateLimiter::new(1, Vec::new());
        let t0 = Instant::now();
        let attacker = ip(0xC000_0201);
        assert_eq!(limiter.admit(attacker, t0), Admission::Admitted);
        let shard = shard_of(attacker);
        let mut same_shard = (0x0B00_0000u32..).map(ip).filter(|s| shard_of(*s) == shard);
        for source in same_shard.by_ref().take(PER_SHARD * 4) {
            limiter.admit(source, t0);
        }
        let t1 = t0 + Duration::from_millis(500);
        for source in same_shard.take(PER_SHARD * 64) {
            assert_eq!(limiter.admit(source, t1), Admission::Admitted);
        }
        assert_eq!(limiter.admit(attacker, t1), Admission::Limited);
        assert!(limiter.tracked() <= PER_SHARD, "{}", limiter.tracked());
    }

    #[test]
    fn ipv6_sources_are_tracked_apart() {
        let limiter = SourceRateLimiter::new(1, Vec::new());
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8::1".parse().expect("ip");
        let b: IpAddr = "2001:db8::2".parse().expect("ip");
        assert_eq!(limiter.admit(a, t0), Admission::Admitted);
        assert_eq!(limiter.admit(a, t0), Admission::Limited);
        assert_eq!(limiter.admit(b, t0), Admission::Admitted);
    }
}
