//! HTTP Digest as SIP uses it (RFC 3261 §22.4, RFC 7616, RFC 8760): parsing a challenge
//! (`WWW-Authenticate` / `Proxy-Authenticate`) and credentials (`Authorization` /
//! `Proxy-Authorization`), computing the `response` with MD5 or SHA-256, with `qop=auth`
//! (nonce count and client nonce) or without qop (RFC 2069, which RFC 3261 §22.4 keeps), and
//! verifying presented credentials against a password. Sans-IO: no clocks, no randomness (the
//! caller passes the cnonce), no state (nonce counts and server nonces are the caller's).

use std::fmt;

use md5::Md5;
use rsip::headers::UntypedHeader;
use sha2::{Digest, Sha256};

use super::params::{quote, AuthParams};

/// The digest algorithms supported (RFC 7616 §3.3; `-sess` variants are not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// The `algorithm` token.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// An `algorithm` value; absent means MD5 (RFC 7616 §3.3).
    fn parse(value: Option<&str>) -> Result<Algorithm, DigestError> {
        match value {
            None => Ok(Algorithm::Md5),
            Some(v) if v.eq_ignore_ascii_case("MD5") => Ok(Algorithm::Md5),
            Some(v) if v.eq_ignore_ascii_case("SHA-256") => Ok(Algorithm::Sha256),
            Some(v) => Err(DigestError::UnsupportedAlgorithm(v.to_string())),
        }
    }

    /// Lower-case hex of the hash of `data`.
    fn hex(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Why a challenge or credentials cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error(transparent)]
    Malformed(#[from] super::params::ParamsError),
    #[error("not a Digest header (scheme {0:?})")]
    NotDigest(String),
    #[error("a directive appears twice")]
    Duplicate,
    #[error("no {0} directive")]
    Missing(&'static str),
    #[error("unsupported algorithm {0:?} (MD5 and SHA-256 are)")]
    UnsupportedAlgorithm(String),
    #[error("unsupported qop {0:?} (auth is)")]
    UnsupportedQop(String),
    #[error("nc {0:?} is not 8 hex digits")]
    BadNonceCount(String),
    #[error("no challenge in the response")]
    NoChallenge,
}

/// Which pair of headers a challenge came in (RFC 3261 §22.2 and §22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// 401: `WWW-Authenticate`, answered in `Authorization`.
    Www,
    /// 407: `Proxy-Authenticate`, answered in `Proxy-Authorization`.
    Proxy,
}

impl ChallengeKind {
    /// The kind a status code challenges with, if it is 401 or 407.
    pub fn of_status(code: u16) -> Option<ChallengeKind> {
        match code {
            401 => Some(ChallengeKind::Www),
            407 => Some(ChallengeKind::Proxy),
            _ => None,
        }
    }

    pub fn challenge_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "WWW-Authenticate",
            ChallengeKind::Proxy => "Proxy-Authenticate",
        }
    }

    pub fn credentials_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "Authorization",
            ChallengeKind::Proxy => "Proxy-Authorization",
        }
    }
}

/// A `Digest` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// The server offered `qop="auth"`; without it the RFC 2069 form is used.
    pub qop_auth: bool,
    /// The previous request's nonce was merely stale: retry with this one (RFC 7616 §3.3).
    pub stale: bool,
}

impl Challenge {
    /// Parses one challenge header value. A challenge offering only `auth-int` is refused.
    pub fn parse(value: &str) -> Result<Challenge, DigestError> {
        let p = digest_params(value)?;
        let qop_auth = match p.get("qop") {
            None => false,
            Some(list) => {
                if !list
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth"))
                {
                    return Err(DigestError::UnsupportedQop(list.to_string()));
                }
                true
            }
        };
        Ok(Challenge {
            realm: required(&p, "realm")?.to_string(),
            nonce: required(&p, "nonce")?.to_string(),
            opaque: p.get("opaque").map(str::to_string),
            algorithm: Algorithm::parse(p.get("algorithm"))?,
            qop_auth,
            stale: p
                .get("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The header value a server sends.
    pub fn to_header_value(&self) -> String {
        let mut v = format!(
            "Digest realm={}, nonce={}, algorithm={}",
            quote(&self.realm),
            quote(&self.nonce),
            self.algorithm
        );
        if self.qop_auth {
            v.push_str(", qop=\"auth\"");
        }
        if let Some(opaque) = &self.opaque {
            v.push_str(&format!(", opaque={}", quote(opaque)));
        }
        if self.stale {
            v.push_str(", stale=true");
        }
        v
    }

    /// Credentials answering this challenge for `method` on `uri` (the Request-URI), as the
    /// `nc`-th use of its nonce with client nonce `cnonce` (both ignored without qop).
    pub fn answer(
        &self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> Credentials {
        let qop = self.qop_auth.then(|| QopAuth {
            nc,
            cnonce: cnonce.to_string(),
        });
        let response = compute(
            self.algorithm,
            &Inputs {
                username,
                realm: &self.realm,
                password,
                method,
                uri,
                nonce: &self.nonce,
                qop: qop.as_ref(),
            },
        );
        Credentials {
            username: username.to_string(),
            realm: self.realm.clone(),
            nonce: self.nonce.clone(),
            uri: uri.to_string(),
            response,
            algorithm: self.algorithm,
            opaque: self.opaque.clone(),
            qop,
        }
    }
}

/// The first challenge of `response` (401 or 407) this module can answer, with its kind:
/// servers list them in their order of preference (RFC 7616 §3.7, RFC 8760 §2.4), so the
/// first supported one is taken. `NoChallenge` when none is usable.
pub fn challenge_of(response: &rsip::Response) -> Result<(ChallengeKind, Challenge), DigestError> {
    let kind =
        ChallengeKind::of_status(response.status_code.code()).ok_or(DigestError::NoChallenge)?;
    let mut first_error = None;
    for header in response.headers.iter() {
        let value = match (kind, header) {
            (ChallengeKind::Www, rsip::Header::WwwAuthenticate(h)) => h.value(),
            (ChallengeKind::Proxy, rsip::Header::ProxyAuthenticate(h)) => h.value(),
            _ => continue,
        };
        match Challenge::parse(value) {
            Ok(challenge) => return Ok((kind, challenge)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(DigestError::NoChallenge))
}

/// `qop=auth`'s nonce count and client nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QopAuth {
    pub nc: u32,
    pub cnonce: String,
}

/// `Digest` credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    /// Lower-case hex, as computed (parsed credentials keep what was sent).
    pub response: String,
    pub algorithm: Algorithm,
    pub opaque: Option<String>,
    /// `qop=auth` with its `nc` and `cnonce`; `None` in the RFC 2069 form.
    pub qop: Option<QopAuth>,
}

impl Credentials {
    /// Parses one credentials header value (a server receiving `Authorization`).
    pub fn parse(value: &str) -> Result<Credentials, DigestError> {
        let p = digest_params(value)?;
        let qop = match p.get("qop") {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let nc = required(&p, "nc")?;
                if nc.len() != 8 {
                    return Err(DigestError::BadNonceCount(nc.to_string()));
                }
                let nc = u32::from_str_radix(nc, 16)
                    .map_err(|_| DigestError::BadNonceCount(nc.to_string()))?;
                Some(QopAuth {
                    nc,
                    cnonce: required(&p, "cnonce")?.to_string(),
                })
            }
            Some(q) => return Err(DigestError::UnsupportedQop(q.to_string())),
        };
        Ok(Credentials {
            username: required(&p, "username")?.to_string(),
            realm: required(&p, "realm")?.to_string(),
            nonce: required(&p, "nonce")?.to_string(),
            uri: required(&p, "uri")?.to_string(),
            response: required(&p, "response")?.to_ascii_lowercase(),
            algorithm: Algorithm::parse(p.get("algorithm"))?,
            opaque: p.get("opaque").map(str::to_string),
            qop,
        })
    }

    /// The header value a client sends.
    pub fn to_header_value(&self) -> String {
        let mut v = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
            quote(&self.username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(&self.uri),
            quote(&self.response),
            self.algorithm
        );
        if let Some(q) = &self.qop {
            v.push_str(&format!(
                ", qop=auth, nc={:08x}, cnonce={}",
                q.nc,
                quote(&q.cnonce)
            ));
        }
        if let Some(opaque) = &self.opaque {
            v.push_str(&format!(", opaque={}", quote(opaque)));
        }
        v
    }

    /// Whether `response` is right for `password` and `method` (the request's method; the
    /// `uri` is the one the credentials name: the caller checks it matches the Request-URI,
    /// and checks realm, nonce, nonce count and username itself). Compared in constant time.
    pub fn verify(&self, password: &str, method: &str) -> bool {
        let expected = compute(
            self.algorithm,
            &Inputs {
                username: &self.username,
                realm: &self.realm,
                password,
                method,
                uri: &self.uri,
                nonce: &self.nonce,
                qop: self.qop.as_ref(),
            },
        );
        expected.len() == self.response.len()
            && expected
                .bytes()
                .zip(self.response.bytes())
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }
}

struct Inputs<'a> {
    username: &'a str,
    realm: &'a str,
    password: &'a str,
    method: &'a str,
    uri: &'a str,
    nonce: &'a str,
    qop: Option<&'a QopAuth>,
}

/// RFC 7616 §3.4.1 (and RFC 2069 without qop).
fn compute(alg: Algorithm, i: &Inputs<'_>) -> String {
    let ha1 = alg.hex(&format!("{}:{}:{}", i.username, i.realm, i.password));
    let ha2 = alg.hex(&format!("{}:{}", i.method, i.uri));
    match i.qop {
        Some(q) => alg.hex(&format!(
            "{ha1}:{}:{:08x}:{}:auth:{ha2}",
            i.nonce, q.nc, q.cnonce
        )),
        None => alg.hex(&format!("{ha1}:{}:{ha2}", i.nonce)),
    }
}

fn digest_params(value: &str) -> Result<AuthParams, DigestError> {
    let p = AuthParams::parse(value)?;
    if !p.scheme.eq_ignore_ascii_case("Digest") {
        return Err(DigestError::NotDigest(p.scheme));
    }
    if p.has_duplicates() {
        return Err(DigestError::Duplicate);
    }
    Ok(p)
}

fn required<'a>(p: &'a AuthParams, name: &'static str) -> Result<&'a str, DigestError> {
    p.get(name).ok_or(DigestError::Missing(name))
}

#[cfg(test)]
#[path = "digest_tests.rs"]
mod tests;
