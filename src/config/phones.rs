//! `[[users]]` (phones that authenticate with SIP digest and register) and the `sip.realm`,
//! `sip.auth_*` and `sip.register_*` keys: parsed and checked into the SIP layer's own types.
//! Errors name the key (`users[1].password`).

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{invalid, Config, ConfigError};
use crate::sip::auth::server::{AuthSettings, BanSettings};
use crate::sip::auth::Algorithm;
use crate::sip::registrar::ExpiryLimits;

/// One `[[users]]` entry.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for UserConfig {
    /// The password never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The checked phone settings.
#[derive(Debug, Clone)]
pub struct PhoneSettings {
    pub auth: AuthSettings,
    pub bans: BanSettings,
    pub expiry: ExpiryLimits,
}

pub(super) fn default_realm() -> String {
    "activeflow".into()
}
pub(super) fn default_auth_algorithms() -> Vec<String> {
    vec!["SHA-256".into(), "MD5".into()]
}
pub(super) fn default_auth_fail_limit() -> u32 {
    5
}
pub(super) fn default_auth_fail_window() -> u64 {
    60
}
pub(super) fn default_auth_ban() -> u64 {
    300
}
pub(super) fn default_register_min_expires() -> u32 {
    60
}
pub(super) fn default_register_max_expires() -> u32 {
    3600
}

/// A user name must be a plain SIP URI user part: it is matched against the To of a REGISTER
/// and put into Request-URIs.
fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-_.!~*'".contains(c))
}

pub(super) fn validate(config: &Config) -> Result<PhoneSettings, ConfigError> {
    let sip = &config.sip;
    let realm = sip.realm.trim();
    if realm.is_empty()
        || realm.len() > 64
        || realm.contains(['"', '\\'])
        || realm.chars().any(char::is_control)
    {
        return Err(invalid(
            "sip.realm",
            "must be 1-64 bytes of text without quotes, backslashes or control characters",
        ));
    }
    let mut algorithms = Vec::with_capacity(sip.auth_algorithms.len());
    for (i, name) in sip.auth_algorithms.iter().enumerate() {
        let key = format!("sip.auth_algorithms[{i}]");
        let algorithm = [Algorithm::Sha256, Algorithm::Md5]
            .into_iter()
            .find(|a| a.token().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| invalid(&key, "must be \"SHA-256\" or \"MD5\""))?;
        if algorithms.contains(&algorithm) {
            return Err(invalid(key, "is listed twice"));
        }
        algorithms.push(algorithm);
    }
    if algorithms.is_empty() {
        return Err(invalid(
            "sip.auth_algorithms",
            "must name at least one algorithm",
        ));
    }
    let mut users = HashMap::with_capacity(config.users.len());
    for (i, u) in config.users.iter().enumerate() {
        if !valid_username(&u.username) {
            return Err(invalid(
                format!("users[{i}].username"),
                "must be 1-64 characters of letters, digits and + - _ . ! ~ * '",
            ));
        }
        if u.password.is_empty() {
            return Err(invalid(format!("users[{i}].password"), "must not be empty"));
        }
        if users
            .insert(u.username.clone(), u.password.clone())
            .is_some()
        {
            return Err(invalid(
                format!("users[{i}].username"),
                format!("{:?} is listed twice", u.username),
            ));
        }
    }
    if sip.auth_fail_limit == 0 {
        return Err(invalid("sip.auth_fail_limit", "must be at least 1"));
    }
    if !(1..=86_400).contains(&sip.auth_fail_window_secs) {
        return Err(invalid("sip.auth_fail_window_secs", "must be 1..=86400"));
    }
    if sip.auth_ban_secs > 7 * 86_400 {
        return Err(invalid(
            "sip.auth_ban_secs",
            "must be 0 (count only) ..= 604800",
        ));
    }
    if sip.register_min_expires == 0 {
        return Err(invalid("sip.register_min_expires", "must be at least 1"));
    }
    if sip.register_max_expires < sip.register_min_expires || sip.register_max_expires > 86_400 {
        return Err(invalid(
            "sip.register_max_expires",
            "must be sip.register_min_expires ..= 86400",
        ));
    }
    Ok(PhoneSettings {
        auth: AuthSettings {
            realm: realm.to_string(),
            algorithms,
            users,
        },
        bans: BanSettings {
            limit: sip.auth_fail_limit,
            window: Duration::from_secs(sip.auth_fail_window_secs),
            ban: Duration::from_secs(sip.auth_ban_secs),
        },
        expiry: ExpiryLimits {
            min: sip.register_min_expires,
            max: sip.register_max_expires,
        },
    })
}
