//! RFC 4028 session timers for a leg: what a request or response asks for (`Session-Expires`,
//! `Min-SE`, `Supported: timer`), what we agree to, and when the session must be refreshed
//! (by us, at half the interval) or is over (the peer refreshes; BYE at the interval less a
//! third, at most 32 s, §10). Pure: the leg sends the refresh and the BYE.

use std::time::Duration;

use tokio::time::Instant;

use crate::sip::transaction::after;

/// The absolute minimum interval (RFC 4028 §4: 90 s).
pub(crate) const MIN_SE_FLOOR: u32 = 90;

/// Who refreshes, in the words of the request that agreed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresher {
    Uac,
    Uas,
}

/// A `Session-Expires` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionExpires {
    pub(crate) seconds: u32,
    pub(crate) refresher: Option<Refresher>,
}

/// The agreed session timer of a dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionTimer {
    pub(crate) interval: u32,
    pub(crate) we_refresh: bool,
    /// The peer supports `timer` (our 2xx then says `Require: timer`).
    pub(crate) peer_supports: bool,
    /// When we refresh (we are the refresher) or when the session is over (the peer is, or
    /// our refresh is out).
    pub(crate) deadline: Instant,
    /// Our refresh is out and unanswered.
    pub(crate) refreshing: bool,
}

impl SessionTimer {
    pub(crate) fn new(interval: u32, we_refresh: bool, peer_supports: bool, now: Instant) -> Self {
        let mut t = SessionTimer {
            interval,
            we_refresh,
            peer_supports,
            deadline: now,
            refreshing: false,
        };
        t.restart(now);
        t
    }

    /// A refresh went through: the interval starts again.
    pub(crate) fn restart(&mut self, now: Instant) {
        self.refreshing = false;
        let interval = Duration::from_secs(u64::from(self.interval));
        let wait = if self.we_refresh {
            interval / 2
        } else {
            interval - (interval / 3).min(Duration::from_secs(32))
        };
        self.deadline = after(now, wait);
    }

    /// Our `Session-Expires` value in a message sent as `uas` (a 2xx) or `uac` (a request).
    pub(crate) fn header(&self, we_are_uas: bool) -> String {
        let refresher = if self.we_refresh == we_are_uas {
            "uas"
        } else {
            "uac"
        };
        format!("{};refresher={refresher}", self.interval)
    }

    /// Our refresh is out: the session is over if no 2xx comes before the interval less a
    /// third (at most 32 s) after the last refresh (§10).
    pub(crate) fn refresh_sent(&mut self, now: Instant) {
        let interval = Duration::from_secs(u64::from(self.interval));
        let expiry = interval - (interval / 3).min(Duration::from_secs(32));
        self.refreshing = true;
        self.deadline = after(now, expiry.saturating_sub(interval / 2));
    }
}

fn header_values<'a>(
    headers: &'a rsip::Headers,
    names: &'a [&str],
) -> impl Iterator<Item = String> + 'a {
    headers.iter().filter_map(move |h| match h {
        rsip::Header::Other(name, value) if names.iter().any(|n| name.eq_ignore_ascii_case(n)) => {
            Some(value.clone())
        }
        _ => None,
    })
}

/// `Session-Expires` (compact `x`), when present and readable.
pub(crate) fn session_expires(headers: &rsip::Headers) -> Option<SessionExpires> {
    let value = header_values(headers, &["Session-Expires", "x"]).next()?;
    let mut parts = value.split(';');
    let seconds = parts.next()?.trim().parse().ok()?;
    let refresher = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("refresher") {
            return None;
        }
        match v.trim().to_ascii_lowercase().as_str() {
            "uac" => Some(Refresher::Uac),
            "uas" => Some(Refresher::Uas),
            _ => None,
        }
    });
    Some(SessionExpires { seconds, refresher })
}

/// `Min-SE`, when present and readable.
pub(crate) fn min_se(headers: &rsip::Headers) -> Option<u32> {
    header_values(headers, &["Min-SE"])
        .next()
        .and_then(|v| v.split(';').next()?.trim().parse().ok())
}

/// Whether `Supported` (or `Require`) lists `timer`.
pub(crate) fn supports_timer(headers: &rsip::Headers) -> bool {
    headers.iter().any(|h| {
        let value = match h {
            rsip::Header::Supported(s) => s.to_string(),
            rsip::Header::Require(r) => r.to_string(),
            rsip::Header::Other(name, value)
                if name.eq_ignore_ascii_case("supported") || name.eq_ignore_ascii_case("k") =>
            {
                value.clone()
            }
            _ => return false,
        };
        let value = value
            .split_once(':')
            .map_or(value.as_str(), |(_, v)| v)
            .to_string();
        value
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("timer"))
    })
}

/// What we answer a request (INVITE or re-INVITE) with as its UAS (§9): `Err(min)` → 422 with
/// `Min-SE: min`; `Ok(None)` → no session timer; `Ok(Some(..))` → the agreed interval, whether
/// we refresh, and whether the peer supports `timer`.
pub(crate) fn as_uas(
    headers: &rsip::Headers,
    ours: Option<u32>,
    min: u32,
) -> Result<Option<(u32, bool, bool)>, u32> {
    let Some(ours) = ours else { return Ok(None) };
    let requested = session_expires(headers);
    if requested.is_some_and(|r| r.seconds < min) {
        return Err(min);
    }
    let peer_supports = supports_timer(headers);
    let floor = min.max(min_se(headers).unwrap_or(MIN_SE_FLOOR));
    let interval = requested.map_or(ours, |r| r.seconds.min(ours)).max(floor);
    let we_refresh = match requested.and_then(|r| r.refresher) {
        Some(Refresher::Uas) => true,
        Some(Refresher::Uac) => !peer_supports,
        None => !peer_supports,
    };
    Ok(Some((interval, we_refresh, peer_supports)))
}

/// What the 2xx to our INVITE or re-INVITE agreed (§7.2): a timer when it has
/// `Session-Expires`; we refresh unless it names the UAS.
pub(crate) fn as_uac(resp_headers: &rsip::Headers, now: Instant) -> Option<SessionTimer> {
    let se = session_expires(resp_headers)?;
    let we_refresh = se.refresher != Some(Refresher::Uas);
    Some(SessionTimer::new(
        se.seconds.max(MIN_SE_FLOOR),
        we_refresh,
        true,
        now,
    ))
}
