//! Failed-authentication limiting, fail2ban-style: a source IP that fails digest
//! authentication `limit` times (wrong password, unknown user) within `window` is banned for
//! `ban`; the dispatcher drops its requests no dialog takes meanwhile, and TCP/TLS accept
//! closes its new connections. Sources in `sip.rate_limit_exempt` (a proxy in front of many
//! phones) and in a trunk ACL (the caller does not count theirs) are never banned. An IPv6
//! source is its /64 (one host holds a whole /64: banning one address of it would ban
//! nothing). The table is bounded: when full, the oldest record not banned makes room, so a
//! flood of new sources cannot keep a guesser untracked. Sans-IO: the caller passes the clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::net::Cidr;

/// Sources with failures remembered at most (~48 bytes each).
pub(super) const MAX_SOURCES: usize = 65_536;

/// `sip.auth_fail_limit`, `sip.auth_fail_window_secs`, `sip.auth_ban_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanSettings {
    pub limit: u32,
    pub window: Duration,
    /// Zero: failures are counted but nobody is banned.
    pub ban: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    window_start: Instant,
    banned_until: Option<Instant>,
}

impl Record {
    fn idle(&self, now: Instant, window: Duration) -> bool {
        let window_over = now.saturating_duration_since(self.window_start) > window;
        window_over && self.banned_until.is_none_or(|u| u <= now)
    }
}

/// What one failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Counted; the source may go on.
    Counted,
    /// This failure banned the source (log it once).
    Banned,
    /// The source is exempt or could not be tracked (table full).
    Untracked,
}

/// The failures table.
pub struct AuthBans {
    settings: BanSettings,
    exempt: Vec<Cidr>,
    sources: Mutex<HashMap<IpAddr, Record>>,
    /// Sources banned at some point and not yet swept: zero lets `is_banned` skip the lock.
    banned: AtomicUsize,
}

impl AuthBans {
    pub fn new(settings: BanSettings, exempt: Vec<Cidr>) -> Self {
        AuthBans {
            settings,
            exempt,
            sources: Mutex::new(HashMap::new()),
            banned: AtomicUsize::new(0),
        }
    }

    /// Whether `source`'s requests are to be dropped at `now`.
    pub fn is_banned(&self, source: IpAddr, now: Instant) -> bool {
        if self.banned.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let source = key(source);
        let Ok(sources) = self.sources.lock() else {
            return false;
        };
        sources
            .get(&source)
            .and_then(|r| r.banned_until)
            .is_some_and(|until| until > now)
    }

    /// One failed authentication from `source` at `now`.
    pub fn failed(&self, source: IpAddr, now: Instant) -> Failure {
        if self.exempt.iter().any(|c| c.contains(source)) {
            return Failure::Untracked;
        }
        let source = key(source);
        let Ok(mut sources) = self.sources.lock() else {
            return Failure::Untracked;
        };
        if !sources.contains_key(&source) && sources.len() >= MAX_SOURCES {
            self.sweep(&mut sources, now);
            if sources.len() >= MAX_SOURCES && !self.evict_oldest_unbanned(&mut sources, now) {
                // Every record is a live ban: those are never forgotten early.
                return Failure::Untracked;
            }
        }
        let window = self.settings.window;
        let record = sources.entry(source).or_insert(Record {
            failures: 0,
            window_start: now,
            banned_until: None,
        });
        if now.saturating_duration_since(record.window_start) > window {
            record.failures = 0;
            record.window_start = now;
        }
        record.failures = record.failures.saturating_add(1);
        let already = record.banned_until.is_some_and(|u| u > now);
        if already || record.failures < self.settings.limit || self.settings.ban.is_zero() {
            return Failure::Counted;
        }
        if record.banned_until.is_none() {
            self.banned.fetch_add(1, Ordering::Relaxed);
        }
        record.banned_until = Some(now + self.settings.ban);
        record.failures = 0;
        Failure::Banned
    }

    /// Forgets sources whose window and ban are over.
    pub fn purge(&self, now: Instant) {
        if let Ok(mut sources) = self.sources.lock() {
            self.sweep(&mut sources, now);
        }
    }

    fn sweep(&self, sources: &mut HashMap<IpAddr, Record>, now: Instant) {
        let window = self.settings.window;
        let mut unbanned = 0;
        sources.retain(|_, r| {
            let keep = !r.idle(now, window);
            if !keep && r.banned_until.is_some() {
                unbanned += 1;
            }
            keep
        });
        self.banned.fetch_sub(unbanned, Ordering::Relaxed);
    }

    /// Removes the record with the oldest window among those not banned at `now`; false when
    /// every record is banned.
    fn evict_oldest_unbanned(&self, sources: &mut HashMap<IpAddr, Record>, now: Instant) -> bool {
        let oldest = sources
            .iter()
            .filter(|(_, r)| r.banned_until.is_none_or(|u| u <= now))
            .min_by_key(|(_, r)| r.window_start)
            .map(|(ip, _)| *ip);
        let Some(removed) = oldest.and_then(|ip| sources.remove(&ip)) else {
            return false;
        };
        if removed.banned_until.is_some() {
            self.banned.fetch_sub(1, Ordering::Relaxed);
        }
        true
    }

    /// Sources tracked (for tests and bounds checks).
    pub fn tracked(&self) -> usize {
        self.sources.lock().map_or(0, |s| s.len())
    }
}

/// The table's key for `ip`: IPv4 (also IPv4-mapped IPv6) as is, IPv6 its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bans(exempt: &[&str]) -> AuthBans {
        AuthBans::new(
            BanSettings {
                limit: 3,
                window: Duration::from_secs(60),
                ban: Duration::from_secs(300),
            },
            exempt.iter().map(|c| c.parse().unwrap()).collect(),
        )
    }

    /// The limit-th failure within the window bans for the ban time; the ban ends alone.
    #[test]
    fn failures_within_the_window_ban_the_source() {
        let t = Instant::now();
        let b = bans(&[]);
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(!b.is_banned(ip, t));
        assert_eq!(b.failed(ip, t), Failure::Counted);
        assert_eq!(b.failed(ip, t + Duration::from_secs(1)), Failure::Counted);
        assert_eq!(b.failed(ip, t + Duration::from_secs(2)), Failure::Banned);
        assert!(b.is_banned(ip, t + Duration::from_secs(3)));
        assert!(!b.is_banned("198.51.100.8".parse().unwrap(), t));
        // Failures while banned do not ban again (logged once).
        assert_eq!(b.failed(ip, t + Duration::from_secs(4)), Failure::Counted);
        assert!(b.is_banned(ip, t + Duration::from_secs(301)));
        assert!(!b.is_banned(ip, t + Duration::from_secs(303)));
        b.purge(t + Duration::from_secs(400));
        assert_eq!(b.tracked(), 0);
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_ban() {
        let t = Instant::now();
        let b = bans(&[]);
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        for i in 0..10 {
            assert_eq!(
                b.failed(ip, t + Duration::from_secs(i * 31)),
                Failure::Counted
            );
        }
        assert!(!b.is_banned(ip, t + Duration::from_secs(400)));
    }

    #[test]
    fn exempt_sources_are_never_banned() {
        let t = Instant::now();
        let b = bans(&["10.0.0.0/8"]);
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(b.failed(ip, t), Failure::Untracked);
        }
        assert!(!b.is_banned(ip, t));
        assert_eq!(b.tracked(), 0);
    }

    /// The table never holds more than MAX_SOURCES; when full, a new source evicts the oldest
    /// record not banned (it is tracked, and can be banned); a table full of live bans leaves
    /// new sources untracked rather than forgetting a ban.
    #[test]
    fn the_table_is_bounded() {
        let t = Instant::now();
        let b = bans(&[]);
        let first = IpAddr::from(0u32.to_be_bytes());
        for i in 0..MAX_SOURCES as u32 {
            let at = if i == 0 {
                t
            } else {
                t + Duration::from_millis(1)
            };
            b.failed(IpAddr::from(i.to_be_bytes()), at);
        }
        assert_eq!(b.tracked(), MAX_SOURCES);
        let late: IpAddr = "203.0.113.1".parse().unwrap();
        assert_eq!(b.failed(late, t), Failure::Counted);
        assert_eq!(b.failed(late, t), Failure::Counted);
        assert_eq!(b.failed(late, t), Failure::Banned);
        assert_eq!(b.tracked(), MAX_SOURCES);
        // The oldest record (the first source's) made room; the others stay.
        assert_eq!(b.failed(first, t), Failure::Counted);
        assert!(b.is_banned(late, t));

        let full = bans(&[]);
        for i in 0..MAX_SOURCES as u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            for _ in 0..3 {
                full.failed(ip, t);
            }
        }
        assert_eq!(full.failed(late, t), Failure::Untracked);
        assert!(full.is_banned(first, t + Duration::from_secs(1)));
        // Once the bans are over the old records are swept to make room.
        assert_eq!(
            full.failed(late, t + Duration::from_secs(301)),
            Failure::Counted
        );
        assert_eq!(full.tracked(), 1);
    }

    /// An IPv6 source is its /64: failures from addresses of one /64 add up and ban it all;
    /// another /64 is another source. IPv4-mapped IPv6 is the IPv4 source.
    #[test]
    fn ipv6_sources_are_keyed_by_their_64() {
        let t = Instant::now();
        let b = bans(&[]);
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"] {
            b.failed(host.parse().unwrap(), t);
        }
        assert!(b.is_banned("2001:db8:1:2:abcd::9".parse().unwrap(), t));
        assert!(!b.is_banned("2001:db8:1:3::1".parse().unwrap(), t));
        for _ in 0..3 {
            b.failed("::ffff:198.51.100.7".parse().unwrap(), t);
        }
        assert!(b.is_banned("198.51.100.7".parse().unwrap(), t));
    }
}
