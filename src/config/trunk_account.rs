//! A trunk's account keys (issue 17): `username`/`password`/`realm` (digest, RFC 3261 §22),
//! `register`/`register_expires` (RFC 3261 §10.2) and `from_user`/`from_domain` (the caller
//! identity in From). Validated here so a key that cannot work is refused at start-up.

use std::sync::Arc;

use super::{invalid, ConfigError, TrunkConfig};
use crate::call::trunk::{TrunkAccount, TrunkCredentials};

/// `register_expires` when unset: an hour, the RFC 3261 §10.2.1.1 suggestion.
pub(super) fn default_register_expires() -> u32 {
    3600
}

/// The longest registration asked for (a day): longer ones outlive any failover plan.
const MAX_REGISTER_EXPIRES: u32 = 86_400;

/// Characters a quoted-string (username, realm) and a password may not hold here: a quote or
/// backslash would need escaping the digest does not do, CR/LF would split the header.
fn quotable(value: &str) -> bool {
    !value
        .chars()
        .any(|c| c == '"' || c == '\\' || c.is_control())
}

/// A URI user part we put in From: unreserved characters and the few marks RFC 3261 §25.1
/// allows unescaped (no `@`, `;`, `?`, `:`, spaces).
fn uri_user(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,".contains(c))
}

/// A host name, IPv4 or bracketed IPv6 address (no port, no parameters).
fn host(value: &str) -> bool {
    if let Some(v6) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !value.is_empty()
        && !value.starts_with(['.', '-'])
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
}

/// The validated account of `trunks[i]`; `has_proxy`: its `outbound_proxy` is set.
pub(super) fn account(
    i: usize,
    t: &TrunkConfig,
    has_proxy: bool,
) -> Result<TrunkAccount, ConfigError> {
    let key = |name: &str| format!("trunks[{i}].{name}");
    let credentials = match (t.username.is_empty(), t.password.is_empty()) {
        (true, true) => {
            if !t.realm.is_empty() {
                return Err(invalid(key("realm"), "needs username and password"));
            }
            None
        }
        (false, true) => return Err(invalid(key("password"), "required with username")),
        (true, false) => return Err(invalid(key("username"), "required with password")),
        (false, false) => {
            if !quotable(&t.username) {
                return Err(invalid(
                    key("username"),
                    "must not contain quotes, backslashes or control characters",
                ));
            }
            if t.password.chars().any(char::is_control) {
                return Err(invalid(
                    key("password"),
                    "must not contain control characters",
                ));
            }
            if !quotable(&t.realm) {
                return Err(invalid(
                    key("realm"),
                    "must not contain quotes, backslashes or control characters",
                ));
            }
            if t.realm.is_empty() {
                tracing::warn!(
                    key = %key("realm"),
                    "trunk has credentials but no realm: the INVITE answers a challenge in any \
                     realm (BYE and re-INVITE only the INVITE's); set realm to the carrier's"
                );
            }
            Some(Arc::new(TrunkCredentials {
                username: t.username.clone(),
                password: t.password.clone(),
                realm: (!t.realm.is_empty()).then(|| t.realm.clone()),
            }))
        }
    };
    let register_expires = if t.register {
        if credentials.is_none() {
            return Err(invalid(key("register"), "needs username and password"));
        }
        if !has_proxy {
            return Err(invalid(
                key("register"),
                "needs outbound_proxy (the registrar)",
            ));
        }
        if !uri_user(&t.username) {
            return Err(invalid(
                key("username"),
                "must be a SIP URI user part to register (letters, digits, -_.!~*'()&=+$,)",
            ));
        }
        if !(1..=MAX_REGISTER_EXPIRES).contains(&t.register_expires) {
            return Err(invalid(
                key("register_expires"),
                format!("must be 1..={MAX_REGISTER_EXPIRES} seconds"),
            ));
        }
        Some(t.register_expires)
    } else {
        None
    };
    if !t.from_user.is_empty() && !uri_user(&t.from_user) {
        return Err(invalid(
            key("from_user"),
            "must be a SIP URI user part (letters, digits, -_.!~*'()&=+$,)",
        ));
    }
    if !t.from_domain.is_empty() && !host(&t.from_domain) {
        return Err(invalid(
            key("from_domain"),
            "must be a host name or IP address (no port, no parameters)",
        ));
    }
    Ok(TrunkAccount {
        credentials,
        from_user: (!t.from_user.is_empty()).then(|| t.from_user.clone()),
        from_domain: (!t.from_domain.is_empty()).then(|| t.from_domain.clone()),
        register_expires,
    })
}
