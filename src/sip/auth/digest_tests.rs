//! The worked examples of RFC 2617 §3.5 and RFC 7616 §3.9.1 (same inputs, MD5 and SHA-256),
//! and the parse/format round trips a UAC and a UAS rely on.

use super::*;

/// RFC 7616 §3.9.1's challenge, as a SIP header value would carry it.
fn rfc7616_challenge(algorithm: &str) -> Challenge {
    Challenge::parse(&format!(
        r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#
    ))
    .expect("parses")
}

const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

#[test]
fn rfc7616_md5_example() {
    let c = rfc7616_challenge("MD5");
    assert!(c.qop_auth);
    let creds = c.answer(
        "Mufasa",
        "Circle of Life",
        "GET",
        "/dir/index.html",
        1,
        CNONCE,
    );
    assert_eq!(creds.response, "8ca523f5e9506fed4657c9700eebdbec");
}

#[test]
fn rfc7616_sha256_example() {
    let c = rfc7616_challenge("SHA-256");
    assert_eq!(c.algorithm, Algorithm::Sha256);
    let creds = c.answer(
        "Mufasa",
        "Circle of Life",
        "GET",
        "/dir/index.html",
        1,
        CNONCE,
    );
    assert_eq!(
        creds.response,
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

#[test]
fn rfc2617_example_with_qop_auth() {
    let c = Challenge::parse(
        r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
    )
    .expect("parses");
    assert_eq!(c.algorithm, Algorithm::Md5, "absent algorithm means MD5");
    let creds = c.answer(
        "Mufasa",
        "Circle Of Life",
        "GET",
        "/dir/index.html",
        1,
        "0a4f113b",
    );
    assert_eq!(creds.response, "6629fae49393a05397450978507c4ef1");
}

#[test]
fn credentials_round_trip_and_verify() {
    let c = rfc7616_challenge("SHA-256");
    let sent = c.answer("alice", "secret", "INVITE", "sip:100@example.org", 7, "abc");
    let value = sent.to_header_value();
    assert!(value.contains("nc=00000007"), "{value}");
    assert!(value.contains(r#"opaque="FQhe/"#), "{value}");
    let received = Credentials::parse(&value).expect("parses");
    assert_eq!(received, sent);
    assert!(received.verify("secret", "INVITE"));
    assert!(!received.verify("Secret", "INVITE"), "wrong password");
    assert!(!received.verify("secret", "REGISTER"), "another method");
}

#[test]
fn rfc2069_form_without_qop() {
    let c = Challenge::parse(r#"Digest realm="r", nonce="n""#).expect("parses");
    assert!(!c.qop_auth);
    let creds = c.answer("u", "p", "REGISTER", "sip:r", 1, "ignored");
    assert_eq!(creds.qop, None);
    let value = creds.to_header_value();
    assert!(!value.contains("nc="), "{value}");
    assert!(Credentials::parse(&value)
        .expect("parses")
        .verify("p", "REGISTER"));
}

#[test]
fn challenge_round_trip() {
    let c = Challenge {
        realm: "activeflow".into(),
        nonce: "abc".into(),
        opaque: None,
        algorithm: Algorithm::Sha256,
        qop_auth: true,
        stale: true,
    };
    assert_eq!(Challenge::parse(&c.to_header_value()), Ok(c));
}

#[test]
fn unusable_headers_are_typed_errors() {
    assert!(matches!(
        Challenge::parse(r#"Basic realm="r""#),
        Err(DigestError::NotDigest(_))
    ));
    assert_eq!(
        Challenge::parse(r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#),
        Err(DigestError::UnsupportedAlgorithm("SHA-512-256".into()))
    );
    assert_eq!(
        Challenge::parse(r#"Digest realm="r", nonce="n", algorithm=MD5-sess"#),
        Err(DigestError::UnsupportedAlgorithm("MD5-sess".into()))
    );
    assert_eq!(
        Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-int""#),
        Err(DigestError::UnsupportedQop("auth-int".into()))
    );
    assert_eq!(
        Challenge::parse(r#"Digest realm="r""#),
        Err(DigestError::Missing("nonce"))
    );
    assert_eq!(
        Challenge::parse(r#"Digest realm="r", nonce="a", nonce="b""#),
        Err(DigestError::Duplicate)
    );
    assert!(matches!(
        Credentials::parse(
            r#"Digest username="u", realm="r", nonce="n", uri="sip:x", response="0", qop=auth, nc=1, cnonce="c""#
        ),
        Err(DigestError::BadNonceCount(_))
    ));
    assert_eq!(
        Credentials::parse(
            r#"Digest username="u", realm="r", nonce="n", uri="sip:x", response="0", qop=auth, nc=00000001"#
        ),
        Err(DigestError::Missing("cnonce"))
    );
}

fn response_with(code: u16, headers: Vec<rsip::Header>) -> rsip::Response {
    rsip::Response {
        status_code: rsip::StatusCode::from(code),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

#[test]
fn the_first_supported_challenge_of_a_response_is_taken() {
    let r = response_with(
        407,
        vec![
            rsip::Header::WwwAuthenticate(r#"Digest realm="www", nonce="w""#.into()),
            rsip::Header::ProxyAuthenticate(
                r#"Digest realm="p", nonce="1", algorithm=SHA-512-256"#.into(),
            ),
            rsip::Header::ProxyAuthenticate(
                r#"Digest realm="p", nonce="2", algorithm=SHA-256"#.into(),
            ),
            rsip::Header::ProxyAuthenticate(r#"Digest realm="p", nonce="3""#.into()),
        ],
    );
    let (kind, c) = challenge_of(&r).expect("a usable challenge");
    assert_eq!(kind, ChallengeKind::Proxy);
    assert_eq!(kind.credentials_header(), "Proxy-Authorization");
    assert_eq!((c.nonce.as_str(), c.algorithm), ("2", Algorithm::Sha256));

    let only_unsupported = response_with(
        401,
        vec![rsip::Header::WwwAuthenticate(
            r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#.into(),
        )],
    );
    assert!(matches!(
        challenge_of(&only_unsupported),
        Err(DigestError::UnsupportedAlgorithm(_))
    ));
    assert_eq!(
        challenge_of(&response_with(401, vec![])),
        Err(DigestError::NoChallenge)
    );
    assert_eq!(
        challenge_of(&response_with(403, vec![])),
        Err(DigestError::NoChallenge)
    );
}
