//! Answering a trunk's digest challenges as its UAC (RFC 3261 §22.2–22.3, RFC 7616): one
//! [`DigestClient`] per request we may resend (an INVITE, a BYE, a re-INVITE, a MESSAGE, a
//! REGISTER). It answers a 401/407 once; a second challenge is a failure unless it carries
//! `stale=true` with a new nonce (RFC 7616 §3.3), a bounded number of times. Sans-IO: the
//! hashes are `sip::auth`'s, the client nonce is passed in by [`DigestClient::answer`]'s caller.

use std::sync::Arc;

use crate::call::trunk::TrunkCredentials;
use crate::sip::auth::{challenge_of, ChallengeKind, DigestError};

/// Answers one request chain may send in all: the first, and two more for stale nonces.
pub(crate) const MAX_ANSWERS: u8 = 3;

/// Why a challenge is not answered: the request fails with the challenge's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    #[error("challenged, but the trunk has no credentials")]
    NoCredentials,
    #[error("challenge unusable: {0}")]
    Challenge(#[from] DigestError),
    #[error("challenge for realm {0:?}, not the trunk's realm")]
    OtherRealm(String),
    #[error("challenged again after our credentials (nonce not stale): refused")]
    Refused,
    #[error("challenged {MAX_ANSWERS} times with stale nonces")]
    TooManyStale,
    #[error("in-dialog challenge for realm {0:?}, but the INVITE was not challenged")]
    NotChallengedBefore(String),
}

/// The header a resent request carries: `Authorization` or `Proxy-Authorization` and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthHeader {
    pub(crate) name: &'static str,
    pub(crate) value: String,
}

/// The challenge state of one request and its resends.
#[derive(Debug, Clone)]
pub(crate) struct DigestClient {
    credentials: Option<Arc<TrunkCredentials>>,
    answers: u8,
    last_nonce: Option<String>,
    /// The realm of the last challenge answered.
    realm: Option<String>,
}

impl DigestClient {
    pub(crate) fn new(credentials: Option<Arc<TrunkCredentials>>) -> DigestClient {
        DigestClient {
            credentials,
            answers: 0,
            last_nonce: None,
            realm: None,
        }
    }

    /// Forgets the challenges answered: the request goes to a new target (RFC 3263 §4.3),
    /// whose server challenges with its own nonce.
    pub(crate) fn reset(&mut self) {
        self.answers = 0;
        self.last_nonce = None;
        self.realm = None;
    }

    /// The realm of the last challenge this client answered.
    pub(crate) fn answered_realm(&self) -> Option<&str> {
        self.realm.as_deref()
    }

    /// [`DigestClient::answer`] for an in-dialog request (BYE, re-INVITE): only a challenge in
    /// the realm the dialog's INVITE answered (`invite_realm`) is answered; when the INVITE was
    /// never challenged, only one in the trunk's configured `realm` (a carrier that trusts the
    /// INVITE by source but challenges the BYE), else none. A callee or a directly reached
    /// Contact then gets no digest of our credentials to attack offline.
    pub(crate) fn answer_in_dialog(
        &mut self,
        invite_realm: Option<&str>,
        response: &rsip::Response,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> Result<AuthHeader, AuthError> {
        let (_, challenge) = challenge_of(response)?;
        let pinned = self.credentials.as_ref().is_some_and(|c| c.realm.is_some());
        match invite_realm {
            // `answer` checks the challenge is in the pinned realm.
            None if pinned => {}
            None => return Err(AuthError::NotChallengedBefore(challenge.realm)),
            Some(r) if r != challenge.realm => return Err(AuthError::OtherRealm(challenge.realm)),
            Some(_) => {}
        }
        self.answer(response, method, uri, cnonce)
    }

    /// The credentials for resending `method` to `uri` after `response` (a 401 or 407), or
    /// why it must not be resent. `cnonce` is a fresh client nonce.
    pub(crate) fn answer(
        &mut self,
        response: &rsip::Response,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> Result<AuthHeader, AuthError> {
        let credentials = self.credentials.as_ref().ok_or(AuthError::NoCredentials)?;
        let (kind, challenge) = challenge_of(response)?;
        if let Some(realm) = &credentials.realm {
            if *realm != challenge.realm {
                return Err(AuthError::OtherRealm(challenge.realm));
            }
        }
        if let Some(last) = &self.last_nonce {
            // Our credentials were refused; only a stale nonce may be answered again.
            if !challenge.stale || *last == challenge.nonce {
                return Err(AuthError::Refused);
            }
            if self.answers >= MAX_ANSWERS {
                return Err(AuthError::TooManyStale);
            }
        }
        // A fresh nonce: its first use (RFC 7616 §3.4: nc counts uses of one nonce).
        let credentials = challenge.answer(
            &credentials.username,
            &credentials.password,
            method,
            uri,
            1,
            cnonce,
        );
        self.answers += 1;
        self.last_nonce = Some(challenge.nonce);
        self.realm = Some(challenge.realm);
        Ok(AuthHeader {
            name: kind.credentials_header(),
            value: credentials.to_header_value(),
        })
    }
}

/// Whether `code` is a digest challenge (401 or 407).
pub(crate) fn is_challenge(code: u16) -> bool {
    ChallengeKind::of_status(code).is_some()
}

/// A fresh client nonce (RFC 7616 §3.4: unpredictable to the server).
pub(crate) fn new_cnonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(realm: Option<&str>) -> Option<Arc<TrunkCredentials>> {
        Some(Arc::new(TrunkCredentials {
            username: "alice".into(),
            password: "secret".into(),
            realm: realm.map(str::to_string),
        }))
    }

    fn challenge(code: u16, header: &str) -> rsip::Response {
        let name = if code == 401 {
            "WWW-Authenticate"
        } else {
            "Proxy-Authenticate"
        };
        let text = format!(
            "SIP/2.0 {code} Unauthorized\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
             From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
             {name}: {header}\r\nContent-Length: 0\r\n\r\n"
        );
        rsip::Response::try_from(text.as_bytes()).unwrap()
    }

    /// RFC 3261 §22.2/§22.3: 401 is answered in Authorization, 407 in Proxy-Authorization,
    /// with the challenge's realm, nonce, opaque and algorithm and `qop=auth`'s nc and cnonce.
    #[test]
    fn answers_401_and_407_in_their_headers() {
        let mut c = DigestClient::new(creds(None));
        let h = c
            .answer(
                &challenge(
                    401,
                    r#"Digest realm="r", nonce="n1", qop="auth", opaque="o", algorithm=SHA-256"#,
                ),
                "INVITE",
                "sip:b@h",
                "cn",
            )
            .unwrap();
        assert_eq!(h.name, "Authorization");
        let parsed = crate::sip::auth::Credentials::parse(&h.value).unwrap();
        assert_eq!(parsed.nonce, "n1");
        assert_eq!(parsed.opaque.as_deref(), Some("o"));
        assert_eq!(parsed.algorithm, crate::sip::auth::Algorithm::Sha256);
        assert_eq!(parsed.qop.as_ref().map(|q| q.nc), Some(1));
        assert!(parsed.verify("secret", "INVITE"));
        assert!(!parsed.verify("wrong", "INVITE"));
        let mut c = DigestClient::new(creds(None));
        let h = c
            .answer(
                &challenge(407, r#"Digest realm="r", nonce="n""#),
                "BYE",
                "sip:b@h",
                "cn",
            )
            .unwrap();
        assert_eq!(h.name, "Proxy-Authorization");
        assert!(crate::sip::auth::Credentials::parse(&h.value)
            .unwrap()
            .verify("secret", "BYE"));
    }

    /// RFC 3261 §22.2: a second challenge after our credentials means they were refused;
    /// RFC 7616 §3.3: only `stale=true` with a new nonce is answered again, and not forever.
    #[test]
    fn a_repeated_challenge_fails_unless_stale_with_a_new_nonce() {
        let mut c = DigestClient::new(creds(None));
        let first = challenge(407, r#"Digest realm="r", nonce="n1""#);
        assert!(c.answer(&first, "INVITE", "sip:b@h", "x").is_ok());
        assert_eq!(
            c.answer(&first, "INVITE", "sip:b@h", "x"),
            Err(AuthError::Refused)
        );
        let same_stale = challenge(407, r#"Digest realm="r", nonce="n1", stale=true"#);
        assert_eq!(
            c.answer(&same_stale, "INVITE", "sip:b@h", "x"),
            Err(AuthError::Refused)
        );
        let new_not_stale = challenge(407, r#"Digest realm="r", nonce="n2""#);
        assert_eq!(
            c.answer(&new_not_stale, "INVITE", "sip:b@h", "x"),
            Err(AuthError::Refused)
        );
        for n in 2..=MAX_ANSWERS {
            let stale = challenge(
                407,
                &format!(r#"Digest realm="r", nonce="s{n}", stale=true"#),
            );
            assert!(c.answer(&stale, "INVITE", "sip:b@h", "x").is_ok(), "{n}");
        }
        let stale = challenge(407, r#"Digest realm="r", nonce="last", stale=true"#);
        assert_eq!(
            c.answer(&stale, "INVITE", "sip:b@h", "x"),
            Err(AuthError::TooManyStale)
        );
        assert_eq!(c.answers, MAX_ANSWERS);
    }

    /// RFC 3261 §22.3: in-dialog requests answer only the realm of the INVITE's challenge;
    /// with the trunk's `realm` unset a callee's `407 realm="x"` to our BYE gets nothing, nor
    /// does any challenge when the INVITE was never challenged.
    #[test]
    fn in_dialog_challenges_are_answered_only_in_the_invites_realm() {
        let mut invite = DigestClient::new(creds(None));
        assert_eq!(invite.answered_realm(), None);
        let mut bye = DigestClient::new(creds(None));
        let carrier = challenge(407, r#"Digest realm="carrier", nonce="n""#);
        let other = challenge(407, r#"Digest realm="x", nonce="m""#);
        assert_eq!(
            bye.answer_in_dialog(None, &carrier, "BYE", "sip:b@h", "c"),
            Err(AuthError::NotChallengedBefore("carrier".into()))
        );
        assert!(invite.answer(&carrier, "INVITE", "sip:b@h", "c").is_ok());
        assert_eq!(invite.answered_realm(), Some("carrier"));
        assert_eq!(
            bye.answer_in_dialog(invite.answered_realm(), &other, "BYE", "sip:b@h", "c"),
            Err(AuthError::OtherRealm("x".into()))
        );
        assert!(bye
            .answer_in_dialog(invite.answered_realm(), &carrier, "BYE", "sip:b@h", "c")
            .is_ok());
        // With `realm` configured, a BYE challenge in that realm is answered though the INVITE
        // was never challenged; one in another realm is not.
        let mut pinned = DigestClient::new(creds(Some("carrier")));
        assert_eq!(
            pinned
                .clone()
                .answer_in_dialog(None, &other, "BYE", "sip:b@h", "c"),
            Err(AuthError::OtherRealm("x".into()))
        );
        assert!(pinned
            .answer_in_dialog(None, &carrier, "BYE", "sip:b@h", "c")
            .is_ok());
    }

    /// RFC 3263 §4.3: a new target is a new server with its own nonce; after `reset` its
    /// first challenge is answered (not refused as a repeated one).
    #[test]
    fn reset_answers_a_new_targets_challenge() {
        let mut c = DigestClient::new(creds(None));
        assert!(c
            .answer(
                &challenge(407, r#"Digest realm="r", nonce="sbc1""#),
                "INVITE",
                "sip:b@h",
                "c"
            )
            .is_ok());
        let sbc2 = challenge(407, r#"Digest realm="r", nonce="sbc2""#);
        assert_eq!(
            c.clone().answer(&sbc2, "INVITE", "sip:b@h", "c"),
            Err(AuthError::Refused)
        );
        c.reset();
        assert!(c.answer(&sbc2, "INVITE", "sip:b@h", "c").is_ok());
    }

    /// No credentials, another realm than the configured one, an unsupported algorithm: the
    /// challenge is not answered.
    #[test]
    fn unusable_challenges_are_not_answered() {
        let ch = challenge(401, r#"Digest realm="carrier", nonce="n""#);
        assert_eq!(
            DigestClient::new(None).answer(&ch, "INVITE", "sip:b@h", "x"),
            Err(AuthError::NoCredentials)
        );
        assert_eq!(
            DigestClient::new(creds(Some("other"))).answer(&ch, "INVITE", "sip:b@h", "x"),
            Err(AuthError::OtherRealm("carrier".into()))
        );
        assert!(DigestClient::new(creds(Some("carrier")))
            .answer(&ch, "INVITE", "sip:b@h", "x")
            .is_ok());
        let sess = challenge(401, r#"Digest realm="r", nonce="n", algorithm=MD5-sess"#);
        assert!(matches!(
            DigestClient::new(creds(None)).answer(&sess, "INVITE", "sip:b@h", "x"),
            Err(AuthError::Challenge(_))
        ));
    }
}
