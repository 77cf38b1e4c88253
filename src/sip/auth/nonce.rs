//! Server nonces for digest challenges (RFC 7616 §3.3, §5.4): stateless-verifiable, so a
//! challenge keeps no state. A nonce is `<seconds>-<serial>-<tag>`: seconds since this
//! process's epoch, a serial that makes each challenge's nonce unique (nonce counts are kept
//! per nonce), and an HMAC-SHA-256 of both and of the source IP it was sent to, under a
//! per-process random key. A nonce from another process, altered, or presented from another
//! IP than it was sent to is invalid (so a forged source cannot use a nonce the forger fetched
//! for itself); an authentic one older than its life is stale. Sans-IO: the caller passes the
//! clock.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ring::hmac;

/// How long a nonce may be used (RFC 7616 §5.4 leaves it to the server).
pub const NONCE_LIFE: Duration = Duration::from_secs(300);

/// What a presented nonce is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceState {
    /// Ours and within its life; `issued` is when.
    Fresh { issued: Instant },
    /// Ours but expired: the client may retry at once with a new one (`stale=true`).
    Stale,
    /// Not ours (another process, altered, malformed).
    Invalid,
}

/// Issues and checks nonces.
pub struct NonceIssuer {
    key: hmac::Key,
    epoch: Instant,
    life: Duration,
    serial: AtomicU64,
}

/// Why no issuer could be made.
#[derive(Debug, thiserror::Error)]
#[error("the system random generator failed")]
pub struct NoRandom;

impl NonceIssuer {
    /// A new issuer with a fresh random key; `epoch` is the clock's zero for nonces.
    pub fn new(epoch: Instant, life: Duration) -> Result<Self, NoRandom> {
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).map_err(|_| NoRandom)?;
        Ok(NonceIssuer {
            key,
            epoch,
            life,
            serial: AtomicU64::new(0),
        })
    }

    /// A new nonce for `source`, issued `now`.
    pub fn issue(&self, now: Instant, source: IpAddr) -> String {
        let seconds = now.saturating_duration_since(self.epoch).as_secs();
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let body = format!("{seconds:x}-{serial:x}");
        let tag = hmac::sign(&self.key, signed(&body, source).as_bytes());
        format!("{body}-{}", hex(tag.as_ref()))
    }

    /// What `nonce`, presented from `source`, is at `now`.
    pub fn check(&self, nonce: &str, now: Instant, source: IpAddr) -> NonceState {
        let Some((body, tag)) = nonce.rsplit_once('-') else {
            return NonceState::Invalid;
        };
        let Some(tag) = unhex(tag) else {
            return NonceState::Invalid;
        };
        if hmac::verify(&self.key, signed(body, source).as_bytes(), &tag).is_err() {
            return NonceState::Invalid;
        }
        let Some(seconds) = body
            .split_once('-')
            .and_then(|(s, _)| u64::from_str_radix(s, 16).ok())
        else {
            return NonceState::Invalid;
        };
        let Some(issued) = self.epoch.checked_add(Duration::from_secs(seconds)) else {
            return NonceState::Invalid;
        };
        if issued > now {
            return NonceState::Invalid;
        }
        if now.duration_since(issued) > self.life {
            return NonceState::Stale;
        }
        NonceState::Fresh { issued }
    }

    pub fn life(&self) -> Duration {
        self.life
    }
}

/// What the tag covers: the nonce's body and the source IP (canonical: an IPv4-mapped IPv6
/// address is its IPv4 one, as a dual-stack socket may report either).
fn signed(body: &str, source: IpAddr) -> String {
    format!("{body}@{}", source.to_canonical())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 §3.3 / §5.4: a nonce verifies while fresh, is stale after its life, and is
    /// invalid when altered or issued by another process (another key).
    #[test]
    fn nonces_verify_expire_and_resist_forgery() {
        let epoch = Instant::now();
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let issuer = NonceIssuer::new(epoch, NONCE_LIFE).unwrap();
        let at = epoch + Duration::from_secs(10);
        let a = issuer.issue(at, ip);
        let b = issuer.issue(at, ip);
        assert_ne!(a, b, "every challenge gets its own nonce");
        assert!(matches!(issuer.check(&a, at, ip), NonceState::Fresh { .. }));
        assert!(matches!(
            issuer.check(&a, at + NONCE_LIFE, ip),
            NonceState::Fresh { .. }
        ));
        assert_eq!(
            issuer.check(&a, at + NONCE_LIFE + Duration::from_secs(1), ip),
            NonceState::Stale
        );
        let other = NonceIssuer::new(epoch, NONCE_LIFE).unwrap();
        assert_eq!(other.check(&a, at, ip), NonceState::Invalid);
        // Moving the timestamp forward breaks the tag.
        let forged = a.replacen("a-", "b-", 1);
        assert_eq!(issuer.check(&forged, at, ip), NonceState::Invalid);
        for junk in ["", "-", "x-y-z", "a-0-zz", "a-0-", &format!("{a}0")] {
            assert_eq!(issuer.check(junk, at, ip), NonceState::Invalid, "{junk}");
        }
        // A nonce from the future (clock skew or forgery) is not accepted.
        assert_eq!(issuer.check(&a, epoch, ip), NonceState::Invalid);
    }

    /// A nonce is bound to the IP it was sent to: presented from another IP it is invalid,
    /// so a forged source cannot use a nonce its forger fetched (and cannot get it banned).
    #[test]
    fn a_nonce_is_bound_to_its_source_ip() {
        let epoch = Instant::now();
        let issuer = NonceIssuer::new(epoch, NONCE_LIFE).unwrap();
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let nonce = issuer.issue(epoch, ip);
        assert!(matches!(
            issuer.check(&nonce, epoch, ip),
            NonceState::Fresh { .. }
        ));
        for other in ["198.51.100.8", "2001:db8::7"] {
            let other: IpAddr = other.parse().unwrap();
            assert_eq!(issuer.check(&nonce, epoch, other), NonceState::Invalid);
        }
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        assert!(matches!(
            issuer.check(&nonce, epoch, mapped),
            NonceState::Fresh { .. }
        ));
    }
}
