//! The bearer tokens the API accepts: each held only as its SHA-256 digest (so a config may
//! carry `token_sha256` and no secret), with a name for logs and errors and the scopes it
//! grants. A presented token is hashed and compared with every digest in constant time.

use std::fmt;

use sha2::{Digest, Sha256};

use super::scope::Scopes;

/// SHA-256 of a token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of a token in clear.
    pub fn of(token: &str) -> TokenDigest {
        TokenDigest(Sha256::digest(token.as_bytes()).into())
    }

    /// Compares without an early exit, so timing tells nothing about how much matched.
    fn matches(&self, other: &TokenDigest) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

/// Not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 digest: expected 64 hex digits")]
pub struct BadDigest;

impl std::str::FromStr for TokenDigest {
    type Err = BadDigest;

    /// Hex as `sha256sum` prints it (either case).
    fn from_str(hex: &str) -> Result<Self, Self::Err> {
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return Err(BadDigest);
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |c: u8| (c as char).to_digit(16).ok_or(BadDigest);
            *byte = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Ok(TokenDigest(out))
    }
}

/// One accepted token.
#[derive(Debug, Clone)]
pub struct ApiToken {
    /// Names the token in logs and errors (`api.token` is named "api.token").
    pub name: String,
    pub digest: TokenDigest,
    pub scopes: Scopes,
}

/// Every accepted token; empty means the API is open to local processes.
#[derive(Debug, Clone, Default)]
pub struct Tokens(Vec<ApiToken>);

impl Tokens {
    pub fn new(tokens: Vec<ApiToken>) -> Tokens {
        Tokens(tokens)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The token `presented` is, if any. Every digest is compared (no early exit), so timing
    /// does not tell which one matched or how far. At most one matches: config validation
    /// (`config::access`) refuses two entries with one secret.
    pub fn find(&self, presented: &str) -> Option<&ApiToken> {
        let digest = TokenDigest::of(presented);
        self.0.iter().fold(None, |found, t| {
            if digest.matches(&t.digest) {
                Some(t)
            } else {
                found
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::auth::scope::Scope;

    fn token(name: &str, secret: &str, scopes: &[Scope]) -> ApiToken {
        ApiToken {
            name: name.into(),
            digest: TokenDigest::of(secret),
            scopes: scopes.iter().copied().collect(),
        }
    }

    #[test]
    fn a_presented_token_finds_its_entry_and_nothing_else_does() {
        let tokens = Tokens::new(vec![
            token("dashboard", "read-secret", &[Scope::Read]),
            token("ops", "ops-secret", &[Scope::Control]),
        ]);
        assert_eq!(tokens.find("read-secret").unwrap().name, "dashboard");
        assert_eq!(tokens.find("ops-secret").unwrap().name, "ops");
        for wrong in [
            "",
            "read-secre",
            "read-secret\n",
            "READ-SECRET",
            "ops-secret1",
        ] {
            assert!(tokens.find(wrong).is_none(), "{wrong:?}");
        }
        assert!(Tokens::default().find("").is_none());
    }

    #[test]
    fn sha256_hex_as_sha256sum_prints_it() {
        // printf %s secret | sha256sum
        let hex = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";
        let digest: TokenDigest = hex.parse().unwrap();
        assert_eq!(digest, TokenDigest::of("secret"));
        assert_eq!(hex.to_uppercase().parse::<TokenDigest>(), Ok(digest));
        assert_eq!("abc".parse::<TokenDigest>(), Err(BadDigest));
        let not_hex = format!("{}zz", &hex[..62]);
        assert_eq!(not_hex.parse::<TokenDigest>(), Err(BadDigest));
        assert!(!format!("{digest:?}").contains("2bb8"));
    }
}
