//! The UAS digest checks (RFC 3261 §22.4, RFC 7616 §3.3–3.4): challenges offered, credentials
//! accepted, and every way they are refused.

use super::*;

fn auth(epoch: Instant) -> Authenticator {
    Authenticator::new(
        AuthSettings {
            realm: "activeflow".into(),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            users: HashMap::from([("alice".to_string(), "secret".to_string())]),
        },
        epoch,
    )
    .unwrap()
}

/// The phone's address: the nonces of its 401s are bound to it.
fn ip() -> IpAddr {
    "198.51.100.7".parse().unwrap()
}

fn register(authorization: Option<String>) -> rsip::Request {
    let mut text = String::from(
        "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
         From: <sip:alice@127.0.0.1>;tag=a\r\nTo: <sip:alice@127.0.0.1>\r\n\
         Call-ID: c1\r\nCSeq: 2 REGISTER\r\nContent-Length: 0\r\n",
    );
    if let Some(a) = authorization {
        text.push_str(&format!("Authorization: {a}\r\n"));
    }
    text.push_str("\r\n");
    rsip::Request::try_from(text.as_bytes()).unwrap()
}

/// Answers the `index`-th challenge of a 401 the way a phone would.
fn answer(
    a: &Authenticator,
    index: usize,
    user: &str,
    pass: &str,
    nc: u32,
    now: Instant,
) -> String {
    let challenge = Challenge::parse(&a.challenges(false, now, ip())[index]).unwrap();
    challenge
        .answer(user, pass, "REGISTER", "sip:127.0.0.1:5060", nc, "cn")
        .to_header_value()
}

/// RFC 8760 §2.4 / RFC 7616 §3.7: SHA-256 is offered first, then MD5, both qop="auth".
#[test]
fn challenges_offer_sha256_then_md5() {
    let now = Instant::now();
    let c = auth(now).challenges(true, now, ip());
    let parsed: Vec<Challenge> = c.iter().map(|v| Challenge::parse(v).unwrap()).collect();
    assert_eq!(parsed[0].algorithm, Algorithm::Sha256);
    assert_eq!(parsed[1].algorithm, Algorithm::Md5);
    assert!(parsed
        .iter()
        .all(|c| c.qop_auth && c.stale && c.realm == "activeflow"));
    assert_eq!(parsed[0].nonce, parsed[1].nonce);
}

/// RFC 3261 §22.4: a request without credentials is challenged; right credentials with
/// either algorithm authenticate the user.
#[test]
fn right_credentials_authenticate() {
    let now = Instant::now();
    let a = auth(now);
    assert_eq!(
        a.check(&register(None), now, ip()),
        Verdict::Challenge { stale: false }
    );
    for index in [0, 1] {
        let creds = answer(&a, index, "alice", "secret", 1, now);
        assert_eq!(
            a.check(&register(Some(creds)), now, ip()),
            Verdict::Authenticated("alice".into())
        );
    }
}

#[test]
fn wrong_password_and_unknown_user_fail() {
    let now = Instant::now();
    let a = auth(now);
    let creds = answer(&a, 0, "alice", "guess", 1, now);
    assert_eq!(
        a.check(&register(Some(creds)), now, ip()),
        Verdict::Failed(AuthFailure::WrongPassword)
    );
    let creds = answer(&a, 1, "mallory", "secret", 1, now);
    assert_eq!(
        a.check(&register(Some(creds)), now, ip()),
        Verdict::Failed(AuthFailure::UnknownUser)
    );
    assert!(AuthFailure::WrongPassword.is_guess() && !AuthFailure::Replay.is_guess());
}

/// RFC 7616 §5.4: a nonce count not above the last one is a replay; a higher one is fine.
#[test]
fn a_replayed_nonce_count_is_refused() {
    let now = Instant::now();
    let a = auth(now);
    let challenge = Challenge::parse(&a.challenges(false, now, ip())[0]).unwrap();
    let with = |nc| {
        register(Some(
            challenge
                .answer(
                    "alice",
                    "secret",
                    "REGISTER",
                    "sip:127.0.0.1:5060",
                    nc,
                    "cn",
                )
                .to_header_value(),
        ))
    };
    assert_eq!(
        a.check(&with(1), now, ip()),
        Verdict::Authenticated("alice".into())
    );
    assert_eq!(
        a.check(&with(1), now, ip()),
        Verdict::Failed(AuthFailure::Replay)
    );
    assert_eq!(
        a.check(&with(2), now, ip()),
        Verdict::Authenticated("alice".into())
    );
    assert_eq!(
        a.check(&with(2), now, ip()),
        Verdict::Failed(AuthFailure::Replay)
    );
}

/// RFC 7616 §3.3: an expired nonce, or one we never issued, with the right password gets
/// stale=true; a wrong password with an expired one of ours is still a guess.
#[test]
fn expired_and_foreign_nonces() {
    let now = Instant::now();
    let a = auth(now);
    let later = now + NONCE_LIFE + Duration::from_secs(1);
    let creds = answer(&a, 0, "alice", "secret", 1, now);
    assert_eq!(
        a.check(&register(Some(creds)), later, ip()),
        Verdict::Challenge { stale: true }
    );
    let creds = answer(&a, 0, "alice", "guess", 1, now);
    assert_eq!(
        a.check(&register(Some(creds)), later, ip()),
        Verdict::Failed(AuthFailure::WrongPassword)
    );
    // A nonce from another process (a restart): right password → stale=true, so the phone
    // retries at once; wrong password → a bad nonce, which never counts toward a ban.
    let other = auth(now);
    let creds = answer(&other, 0, "alice", "secret", 1, now);
    assert_eq!(
        a.check(&register(Some(creds)), now, ip()),
        Verdict::Challenge { stale: true }
    );
    let creds = answer(&other, 0, "alice", "guess", 1, now);
    assert_eq!(
        a.check(&register(Some(creds)), now, ip()),
        Verdict::Failed(AuthFailure::BadNonce)
    );
    assert!(!AuthFailure::BadNonce.is_guess());
}

/// RFC 7616 §3.4.6: credentials for another URI are refused; garbage is malformed; another
/// realm's credentials are no credentials for us (challenge).
#[test]
fn other_uri_garbage_and_other_realms() {
    let now = Instant::now();
    let a = auth(now);
    let challenge = Challenge::parse(&a.challenges(false, now, ip())[0]).unwrap();
    let creds = challenge
        .answer(
            "alice",
            "secret",
            "REGISTER",
            "sip:elsewhere.example",
            1,
            "cn",
        )
        .to_header_value();
    assert_eq!(
        a.check(&register(Some(creds)), now, ip()),
        Verdict::Failed(AuthFailure::Malformed)
    );
    assert_eq!(
        a.check(&register(Some("Digest username=".into())), now, ip()),
        Verdict::Failed(AuthFailure::Malformed)
    );
    let mut foreign = challenge.clone();
    foreign.realm = "carrier".into();
    let creds = foreign
        .answer("alice", "secret", "REGISTER", "sip:127.0.0.1:5060", 1, "cn")
        .to_header_value();
    assert_eq!(
        a.check(&register(Some(creds)), now, ip()),
        Verdict::Challenge { stale: false }
    );
}

/// Every failure's label is a pre-registered `reason` of `activeflow_sip_auth_failures_total`.
#[test]
fn failure_labels_are_the_metric_reasons() {
    let labels: Vec<&str> = AuthFailure::ALL.iter().map(|f| f.label()).collect();
    assert_eq!(labels, crate::metrics::AUTH_FAILURE_REASONS);
}

/// A nonce fetched by one source and presented from another (a forged source address): even
/// garbage responses are bad nonces, not guesses, so they cannot get the forged source
/// banned; the same answer from the source the nonce was sent to is a guess.
#[test]
fn a_nonce_presented_from_another_source_is_not_a_guess() {
    let now = Instant::now();
    let a = auth(now);
    let victim: IpAddr = "203.0.113.9".parse().unwrap();
    for user in ["alice", "mallory"] {
        let creds = answer(&a, 0, user, "guess", 1, now);
        let verdict = a.check(&register(Some(creds.clone())), now, victim);
        assert_eq!(verdict, Verdict::Failed(AuthFailure::BadNonce), "{user}");
        assert!(matches!(
            a.check(&register(Some(creds)), now, ip()),
            Verdict::Failed(f) if f.is_guess()
        ));
    }
}

/// RFC 7616 §3.4 / §3.7: only what the challenges offered is accepted: credentials with an
/// algorithm removed from `sip.auth_algorithms`, or without `qop` (RFC 2069 form, though
/// every challenge offers `qop="auth"`), are malformed even with the right password.
#[test]
fn unoffered_algorithms_and_the_rfc_2069_form_are_refused() {
    let now = Instant::now();
    let sha_only = Authenticator::new(
        AuthSettings {
            realm: "activeflow".into(),
            algorithms: vec![Algorithm::Sha256],
            users: HashMap::from([("alice".to_string(), "secret".to_string())]),
        },
        now,
    )
    .unwrap();
    let mut md5 = Challenge::parse(&sha_only.challenges(false, now, ip())[0]).unwrap();
    md5.algorithm = Algorithm::Md5;
    let creds = md5
        .answer("alice", "secret", "REGISTER", "sip:127.0.0.1:5060", 1, "cn")
        .to_header_value();
    assert_eq!(
        sha_only.check(&register(Some(creds)), now, ip()),
        Verdict::Failed(AuthFailure::Malformed)
    );
    let a = auth(now);
    let mut no_qop = Challenge::parse(&a.challenges(false, now, ip())[0]).unwrap();
    no_qop.qop_auth = false;
    let creds = no_qop
        .answer("alice", "secret", "REGISTER", "sip:127.0.0.1:5060", 1, "cn")
        .to_header_value();
    assert!(!creds.contains("qop"), "{creds}");
    assert_eq!(
        a.check(&register(Some(creds)), now, ip()),
        Verdict::Failed(AuthFailure::Malformed)
    );
}
