//! Server nonces for digest challenges (RFC 7616 §3.3, §5.4): stateless-verifiable, so a
//! challenge keeps no state. A nonce is `<seconds>-<serial>-<tag>`: seconds since this
//! process's epoch, a serial that makes each challenge's nonce unique (nonce counts are kept
//! per nonce), and an HMAC-SHA-256 of both under a per-process random key. A nonce from
//! another process, or altered, is invalid; an authentic one older than its life is stale.
//! Sans-IO: the caller passes the clock.

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

    /// A new nonce, issued `now`.
    pub fn issue(&self, now: Instant) -> String {
        let seconds = now.saturating_duration_since(self.epoch).as_secs();
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let body = format!("{seconds:x}-{serial:x}");
        let tag = hmac::sign(&self.key, body.as_bytes());
        format!("{body}-{}", hex(tag.as_ref()))
    }

    /// What `nonce` is at `now`.
    pub fn check(&self, nonce: &str, now: Instant) -> NonceState {
        let Some((body, tag)) = nonce.rsplit_once('-') else {
            return NonceState::Invalid;
        };
        let Some(tag) = unhex(tag) else {
            return NonceState::Invalid;
        };
        if hmac::verify(&self.key, body.as_bytes(), &tag).is_err() {
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 128 {
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
        let issuer = NonceIssuer::new(epoch, NONCE_LIFE).unwrap();
        let at = epoch + Duration::from_secs(10);
        let a = issuer.issue(at);
        let b = issuer.issue(at);
        assert_ne!(a, b, "every challenge gets its own nonce");
        assert!(matches!(issuer.check(&a, at), NonceState::Fresh { .. }));
        assert!(matches!(
            issuer.check(&a, at + NONCE_LIFE),
            NonceState::Fresh { .. }
        ));
        assert_eq!(
            issuer.check(&a, at + NONCE_LIFE + Duration::from_secs(1)),
            NonceState::Stale
        );
        let other = NonceIssuer::new(epoch, NONCE_LIFE).unwrap();
        assert_eq!(other.check(&a, at), NonceState::Invalid);
        // Moving the timestamp forward breaks the tag.
        let forged = a.replacen("a-", "b-", 1);
        assert_eq!(issuer.check(&forged, at), NonceState::Invalid);
        for junk in ["", "-", "x-y-z", "a-0-zz", "a-0-", &format!("{a}0")] {
            assert_eq!(issuer.check(junk, at), NonceState::Invalid, "{junk}");
        }
        // A nonce from the future (clock skew or forgery) is not accepted.
        assert_eq!(issuer.check(&a, epoch), NonceState::Invalid);
    }
}
