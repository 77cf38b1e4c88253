//! `activeflow config`: the effective config rendered as TOML with every secret replaced by
//! [`MASK`] (tokens, passwords, the webhook secret; in URLs any userinfo, user name included,
//! and secret-looking query parameters; the webhook URL's whole path and query, where services
//! put their tokens), so the output can be shared. An empty value stays empty: it shows that
//! nothing is set. [`masked_url`] serves error messages that name a URL.

use super::{Config, ConfigError};

/// What a secret reads as.
pub const MASK: &str = "********";

impl Config {
    /// A copy with every secret masked.
    pub fn masked(&self) -> Config {
        let mut c = self.clone();
        mask(&mut c.api.token);
        for t in &mut c.api.tokens {
            mask(&mut t.token);
        }
        for t in &mut c.trunks {
            mask(&mut t.password);
        }
        for u in &mut c.users {
            mask(&mut u.password);
        }
        mask(&mut c.events.webhook_secret);
        mask_webhook_url(&mut c.events.webhook_uri);
        mask_url(&mut c.storage.url);
        mask_url(&mut c.cluster.nats_url);
        c
    }

    /// The config as TOML, secrets masked.
    pub fn to_masked_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(&self.masked()).map_err(|e| ConfigError::Parse(e.to_string()))
    }
}

fn mask(value: &mut String) {
    if !value.is_empty() {
        *value = MASK.to_owned();
    }
}

/// A query parameter whose value is a secret by its name (`?token=`, `?password=`, `api_key`).
fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "secret", "token", "key", "auth", "sig"]
        .iter()
        .any(|word| name.contains(word))
}

/// `value` as `activeflow config` shows `storage.url` or `cluster.nats_url`: any userinfo and
/// secret query parameters masked (a value that is not a URL: masked whole).
pub fn masked_url(value: &str) -> String {
    let mut value = value.to_owned();
    mask_url(&mut value);
    value
}

/// Masks a URL's userinfo (`user:password@`, or a lone `token@`: the user name may be the
/// secret) and its secret query parameters; a value that does not parse as a URL is masked
/// whole (it might hold anything).
fn mask_url(value: &mut String) {
    if value.is_empty() {
        return;
    }
    let Ok(mut url) = url::Url::parse(value) else {
        *value = MASK.to_owned();
        return;
    };
    if !url.username().is_empty() && url.set_username(MASK).is_err() {
        *value = MASK.to_owned();
        return;
    }
    if url.password().is_some() && url.set_password(Some(MASK)).is_err() {
        *value = MASK.to_owned();
        return;
    }
    if url.query_pairs().any(|(k, _)| secret_name(&k)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret_name(&k) {
                    MASK.into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    *value = url.to_string();
}

/// A webhook URL as `scheme://host[:port]`, then `/********` when it has a path, query or
/// fragment: Slack-style `/services/T0/B0/secret` paths and `?code=` parameters hold the
/// credential, under any name. Userinfo shows as `********@`.
fn mask_webhook_url(value: &mut String) {
    if value.is_empty() {
        return;
    }
    let url = match url::Url::parse(value) {
        Ok(url) if url.host_str().is_some() => url,
        _ => {
            *value = MASK.to_owned();
            return;
        }
    };
    let mut shown = format!("{}://", url.scheme());
    if !url.username().is_empty() || url.password().is_some() {
        shown.push_str(MASK);
        shown.push('@');
    }
    shown.push_str(url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    let bare = matches!(url.path(), "" | "/") && url.query().is_none() && url.fragment().is_none();
    shown.push('/');
    if !bare {
        shown.push_str(MASK);
    }
    *value = shown;
}
