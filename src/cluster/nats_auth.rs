//! Credentials written in `cluster.nats_url`: `nats://user:password@host:port` or
//! `nats://token@host:port` (percent-encoded). async-nats 0.52 sends CONNECT's user, pass and
//! auth_token from its `ConnectOptions` only and ignores a URL's userinfo, so they are taken out
//! of the URL here and set on the options; the URL is dialled without them.

use std::fmt;

use async_nats::ConnectOptions;

/// How this node authenticates to NATS.
#[derive(Clone, PartialEq, Eq)]
pub enum NatsCredentials {
    None,
    /// `nats://user:password@host` (NATS `--user` / `--pass`).
    UserPassword {
        user: String,
        password: String,
    },
    /// `nats://token@host` (NATS `--auth`).
    Token(String),
}

/// Never prints a password or token.
impl fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatsCredentials::None => f.write_str("None"),
            NatsCredentials::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .finish_non_exhaustive(),
            NatsCredentials::Token(_) => f.write_str("Token(..)"),
        }
    }
}

/// `cluster.nats_url` split into the address(es) to dial (no userinfo) and its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsTarget {
    pub url: String,
    pub credentials: NatsCredentials,
}

/// Splits `nats_url` (one URL, or several separated by commas as async-nats takes them, whose
/// credentials must agree); `Err` says why, without quoting it.
pub fn split(nats_url: &str) -> Result<NatsTarget, String> {
    let mut urls = Vec::new();
    let mut credentials = NatsCredentials::None;
    for one in nats_url.split(',').map(str::trim) {
        let (url, found) = split_one(one)?;
        if found != NatsCredentials::None {
            if credentials != NatsCredentials::None && credentials != found {
                return Err("its URLs carry different credentials".into());
            }
            credentials = found;
        }
        urls.push(url);
    }
    Ok(NatsTarget {
        url: urls.join(","),
        credentials,
    })
}

fn split_one(nats_url: &str) -> Result<(String, NatsCredentials), String> {
    let mut url = url::Url::parse(nats_url).map_err(|e| format!("not a URL: {e}"))?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| "its userinfo is not UTF-8 once percent-decoded".to_owned())
    };
    let user = decode(url.username())?;
    let credentials = match url.password() {
        Some(password) => NatsCredentials::UserPassword {
            user,
            password: decode(password)?,
        },
        None if !user.is_empty() => NatsCredentials::Token(user),
        None => NatsCredentials::None,
    };
    if credentials != NatsCredentials::None
        && (url.set_username("").is_err() || url.set_password(None).is_err())
    {
        return Err("its credentials cannot be taken out of it".into());
    }
    Ok((url.to_string(), credentials))
}

impl NatsCredentials {
    /// `options` carrying these credentials in CONNECT.
    pub fn apply(self, options: ConnectOptions) -> ConnectOptions {
        match self {
            NatsCredentials::None => options,
            NatsCredentials::UserPassword { user, password } => {
                options.user_and_password(user, password)
            }
            NatsCredentials::Token(token) => options.token(token),
        }
    }
}

#[cfg(test)]
#[path = "nats_auth_tests.rs"]
mod tests;
