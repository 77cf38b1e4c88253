//! Validation of who may reach the HTTP listeners: the API's tokens (`api.token`,
//! `api.token_file`, `[[api.tokens]]`) into an [`AccessPolicy`], and the TLS key pairs of
//! `[api]` and `[metrics]`, loaded now so a bad file stops the start naming its key.

use std::collections::HashSet;

use super::{invalid, ApiConfig, ConfigError};
use crate::api::auth::{AccessPolicy, ApiToken, Scope, Scopes, TokenDigest, Tokens};
use crate::tls::TlsConfig;

/// The name `api.token` goes by in errors and logs.
const ROOT_TOKEN_NAME: &str = "api.token";

/// Every accepted token from `[api]`.
pub(super) fn api_access(api: &ApiConfig) -> Result<AccessPolicy, ConfigError> {
    let mut tokens = Vec::new();
    if let Some(root) = root_token(api)? {
        tokens.push(ApiToken {
            name: ROOT_TOKEN_NAME.into(),
            digest: TokenDigest::of(&root),
            scopes: Scopes::ALL,
        });
    }
    let mut names: HashSet<&str> = HashSet::from([ROOT_TOKEN_NAME]);
    for (i, t) in api.tokens.iter().enumerate() {
        let key = |field: &str| format!("api.tokens[{i}].{field}");
        if t.name.is_empty() {
            return Err(invalid(key("name"), "must not be empty"));
        }
        if !names.insert(&t.name) {
            return Err(invalid(key("name"), format!("{:?} is used twice", t.name)));
        }
        let digest =
            match (t.token.is_empty(), t.token_sha256.is_empty()) {
                (false, true) => TokenDigest::of(&t.token),
                (true, false) => t.token_sha256.trim().parse().map_err(
                    |e: crate::api::auth::token::BadDigest| {
                        invalid(key("token_sha256"), e.to_string())
                    },
                )?,
                _ => {
                    return Err(invalid(
                        key("token"),
                        "set exactly one of token and token_sha256",
                    ))
                }
            };
        if t.scopes.is_empty() {
            return Err(invalid(key("scopes"), "must name at least one scope"));
        }
        let scopes = t
            .scopes
            .iter()
            .enumerate()
            .map(|(j, s)| {
                s.parse::<Scope>()
                    .map_err(|e| invalid(key(&format!("scopes[{j}]")), e.to_string()))
            })
            .collect::<Result<Scopes, _>>()?;
        tokens.push(ApiToken {
            name: t.name.clone(),
            digest,
            scopes,
        });
    }
    Ok(AccessPolicy::new(Tokens::new(tokens)))
}

/// `api.token`, or the contents of `api.token_file` (trailing newline trimmed).
fn root_token(api: &ApiConfig) -> Result<Option<String>, ConfigError> {
    if api.token_file.is_empty() {
        return Ok(Some(api.token.clone()).filter(|t| !t.is_empty()));
    }
    if !api.token.is_empty() {
        return Err(invalid(
            "api.token_file",
            "api.token and api.token_file are both set; set one",
        ));
    }
    let text = std::fs::read_to_string(&api.token_file)
        .map_err(|e| invalid("api.token_file", format!("{}: {e}", api.token_file)))?;
    let token = text.trim_end_matches(['\n', '\r']);
    if token.is_empty() {
        return Err(invalid(
            "api.token_file",
            format!("{} is empty", api.token_file),
        ));
    }
    Ok(Some(token.to_owned()))
}

/// `<section>.tls_cert` and `<section>.tls_key`: both (loaded) or neither.
pub(super) fn tls_files(
    section: &str,
    cert: &str,
    key: &str,
) -> Result<Option<TlsConfig>, ConfigError> {
    match (cert.is_empty(), key.is_empty()) {
        (true, true) => Ok(None),
        (false, false) => TlsConfig::load(cert.as_ref(), key.as_ref())
            .map(Some)
            .map_err(|e| {
                let which = if e.is_about_key() {
                    "tls_key"
                } else {
                    "tls_cert"
                };
                invalid(format!("{section}.{which}"), e.to_string())
            }),
        (false, true) => Err(invalid(
            format!("{section}.tls_key"),
            format!("required with {section}.tls_cert"),
        )),
        (true, false) => Err(invalid(
            format!("{section}.tls_cert"),
            format!("required with {section}.tls_key"),
        )),
    }
}
