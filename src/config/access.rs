//! Validation of who may reach the HTTP listeners: the API's tokens (`api.token`,
//! `api.token_file`, `[[api.tokens]]`) into an [`AccessPolicy`], and the TLS key pairs of
//! `[api]` and `[metrics]`, loaded now so a bad file stops the start naming its key. Each
//! secret is accepted once: two entries with one token are refused, not resolved by order.

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
        // Two entries with one secret: whichever `Tokens::find` met last would win, silently
        // granting the other entry's scopes. Refuse, naming the entry and the first holder.
        if let Some(first) = tokens.iter().find(|held| held.digest == digest) {
            let field = if t.token.is_empty() {
                "token_sha256"
            } else {
                "token"
            };
            return Err(invalid(key(field), format!("same token as {}", first.name)));
        }
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

#[cfg(test)]
mod tests {
    use crate::config::{Config, DEFAULT_TOML};

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }
    fn scratch_file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("activeflow-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_token_file_is_read_and_conflicts_with_the_token() {
        let file = scratch_file("token", "from-file\n");
        let path = file.display().to_string();
        let s =
            Config::from_toml_with_env(DEFAULT_TOML, env(&[("ACTIVEFLOW_API_TOKEN_FILE", &path)]))
                .unwrap()
                .validate()
                .unwrap();
        assert!(!s.api_access.is_open());
        let both = env(&[
            ("ACTIVEFLOW_API_TOKEN_FILE", &path),
            ("ACTIVEFLOW_API_TOKEN", "inline"),
        ]);
        let e = Config::from_toml_with_env(DEFAULT_TOML, both)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("api.token_file") && e.contains("api.token and"),
            "{e}"
        );
        let empty = scratch_file("empty", "\n").display().to_string();
        for value in [empty.as_str(), "/nonexistent/token"] {
            let e = Config::from_toml_with_env(
                DEFAULT_TOML,
                env(&[("ACTIVEFLOW_API_TOKEN_FILE", value)]),
            )
            .unwrap()
            .validate()
            .unwrap_err();
            assert!(e.to_string().contains("api.token_file"), "{e}");
        }
        // The embedded default: no token, open to local processes only.
        let open = Config::from_toml_with_env(DEFAULT_TOML, env(&[])).unwrap();
        assert!(open.validate().unwrap().api_access.is_open());
    }

    #[test]
    fn scoped_tokens_name_the_entry_at_fault() {
        let with = |entry: &str| {
            let text = format!("{DEFAULT_TOML}\n[[api.tokens]]\n{entry}\n");
            Config::from_toml_with_env(&text, env(&[]))
                .and_then(Config::validate)
                .map(|s| s.api_access.is_open())
        };
        assert!(!with("name = \"d\"\ntoken = \"t\"\nscopes = [\"read\"]").unwrap());
        let hash = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";
        assert!(with(&format!(
            "name = \"d\"\ntoken_sha256 = \"{hash}\"\nscopes = [\"admin\"]"
        ))
        .is_ok());
        let cases = [
            (
                "name = \"\"\ntoken = \"t\"\nscopes = [\"read\"]",
                "api.tokens[0].name",
            ),
            (
                "name = \"api.token\"\ntoken = \"t\"\nscopes = [\"read\"]",
                "api.tokens[0].name",
            ),
            ("name = \"d\"\nscopes = [\"read\"]", "api.tokens[0].token"),
            (
                "name = \"d\"\ntoken = \"t\"\ntoken_sha256 = \"00\"\nscopes = [\"read\"]",
                "api.tokens[0].token",
            ),
            (
                "name = \"d\"\ntoken_sha256 = \"abc\"\nscopes = [\"read\"]",
                "api.tokens[0].token_sha256",
            ),
            (
                "name = \"d\"\ntoken = \"t\"\nscopes = []",
                "api.tokens[0].scopes",
            ),
            (
                "name = \"d\"\ntoken = \"t\"\nscopes = [\"read\", \"root\"]",
                "api.tokens[0].scopes[1]",
            ),
        ];
        for (entry, key) in cases {
            let e = with(entry).unwrap_err().to_string();
            assert!(e.contains(key), "{entry}: {e}");
        }
        // A scoped token alone is enough for a public listen address.
        let text = format!(
            "{DEFAULT_TOML}\n[[api.tokens]]\nname = \"d\"\ntoken = \"t\"\nscopes = [\"read\"]\n"
        );
        let public = env(&[("ACTIVEFLOW_API_LISTEN", "0.0.0.0:8080")]);
        assert!(Config::from_toml_with_env(&text, public)
            .unwrap()
            .validate()
            .is_ok());
    }

    #[test]
    fn one_secret_given_twice_is_refused_naming_the_entry_and_the_first() {
        let validate = |entries: &str, token: &str| {
            let text = format!("{DEFAULT_TOML}\n{entries}\n");
            let vars = env(&[("ACTIVEFLOW_API_TOKEN", token)]);
            Config::from_toml_with_env(&text, vars).and_then(Config::validate)
        };
        let entry = |name: &str, secret: &str| {
            format!("[[api.tokens]]\nname = \"{name}\"\n{secret}\nscopes = [\"read\"]\n")
        };
        // printf %s secret | sha256sum
        let hash = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";
        let plain = "token = \"secret\"";
        let hashed = format!("token_sha256 = \"{hash}\"");
        let cases = [
            (
                entry("d", plain),
                "secret",
                "api.tokens[0].token: same token as api.token",
            ),
            (
                entry("d", plain) + &entry("e", plain),
                "",
                "api.tokens[1].token: same token as d",
            ),
            (
                entry("d", plain) + &entry("e", "token = \"other\"") + &entry("f", &hashed),
                "",
                "api.tokens[2].token_sha256: same token as d",
            ),
            (
                entry("d", &hashed),
                "secret",
                "api.tokens[0].token_sha256: same token as api.token",
            ),
        ];
        for (entries, token, want) in cases {
            let e = validate(&entries, token).unwrap_err().to_string();
            assert!(e.contains(want), "{entries}: {e}");
        }
        let distinct = entry("d", plain) + &entry("e", "token = \"other\"");
        assert!(validate(&distinct, "root").is_ok());
    }

    #[test]
    fn tls_needs_both_files_and_names_the_bad_one() {
        let cases = [
            (
                vec![("ACTIVEFLOW_API_TLS_CERT", "/x/cert.pem")],
                "api.tls_key",
            ),
            (
                vec![("ACTIVEFLOW_API_TLS_KEY", "/x/key.pem")],
                "api.tls_cert",
            ),
            (
                vec![("ACTIVEFLOW_METRICS_TLS_CERT", "/x/cert.pem")],
                "metrics.tls_key",
            ),
            (
                vec![
                    ("ACTIVEFLOW_METRICS_TLS_CERT", "/nonexistent/cert.pem"),
                    ("ACTIVEFLOW_METRICS_TLS_KEY", "/nonexistent/key.pem"),
                ],
                "metrics.tls_cert",
            ),
            (
                vec![("ACTIVEFLOW_EVENTS_MAX_READERS", "0")],
                "events.max_readers",
            ),
        ];
        for (vars, key) in cases {
            let e = Config::from_toml_with_env(DEFAULT_TOML, env(&vars))
                .unwrap()
                .validate()
                .unwrap_err();
            assert!(e.to_string().contains(key), "{vars:?}: {e}");
        }
    }
}
