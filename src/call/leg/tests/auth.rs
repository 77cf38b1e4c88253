//! Digest challenges to an outgoing leg's requests through a trunk with credentials (RFC 3261
//! §22.2–22.3): answered once with the next CSeq and a new branch, refused the second time.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::call::outbound::Route;
use crate::call::trunk::TrunkCredentials;
use crate::sip::auth::Credentials;

fn with_credentials() -> Leg {
    let route = Route {
        request_uri: "sip:bob@10.0.0.7:5080".into(),
        user: "bob".into(),
        next_hop: crate::sip::resolve::ProxyAddress::parse("10.0.0.7:5080").unwrap(),
        transport: None,
        tls_ca: None,
    };
    let mut leg = Leg::outgoing(
        CallId::new(),
        "out@test".into(),
        "ours".into(),
        Placement {
            route,
            local_uri: "<sip:alice@10.0.0.9>".into(),
            max_forwards: 70,
            ring_timeout: Duration::from_secs(60),
            headers: vec![("Privacy".into(), "id".into())],
            credentials: Some(Arc::new(TrunkCredentials {
                username: "alice".into(),
                password: "secret".into(),
                realm: None,
            })),
        },
        &env(),
        Instant::now(),
    );
    leg.local_media = Some(LocalMedia {
        port: 20002,
        session_id: 2,
        offer: true,
    });
    leg.resolved(udp("10.0.0.7:5080"), &env(), Instant::now());
    leg
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

/// The response `code` to the last request of `method` in `out`, with `extra` headers.
fn answer(out: &[Output], method: &str, code: u16, extra: &str) -> rsip::Response {
    let (_, req) = sent(out)
        .into_iter()
        .rev()
        .find(|(_, m)| m.starts_with(&format!("{method} ")))
        .unwrap();
    let h = |n| header(&req, n).unwrap().to_string();
    let body = if code == 200 && method == "INVITE" {
        SDP
    } else {
        ""
    };
    response(&format!(
        "SIP/2.0 {code} {}\r\nVia: {}\r\nFrom: {}\r\nTo: <sip:bob@10.0.0.7:5080>;tag=callee\r\n\
         Call-ID: {}\r\nCSeq: {}\r\nContact: <sip:bob@10.0.0.7:5080>\r\n{extra}\
         Content-Length: {}\r\n\r\n{body}",
        crate::sip::message::reason_phrase(code),
        h("Via"),
        h("From"),
        h("Call-ID"),
        h("CSeq"),
        body.len()
    ))
}

const CHALLENGE: &str =
    "Proxy-Authenticate: Digest realm=\"carrier\", nonce=\"n1\", qop=\"auth\", algorithm=MD5\r\n";

/// §22.3: a 407 to our INVITE is ACKed on its transaction, then the INVITE goes again with
/// CSeq 2, a new branch, the same Call-ID and From tag, our headers and valid
/// Proxy-Authorization; a second 407 with the same nonce ends the leg with 407.
#[tokio::test(start_paused = true)]
async fn a_407_is_answered_once_then_the_leg_fails_with_407() {
    let mut leg = with_credentials();
    let first = leg.take_outputs();
    let first_invite = sent(&first)[0].1.clone();
    assert_eq!(header(&first_invite, "Privacy"), Some("id"));
    assert!(header(&first_invite, "Proxy-Authorization").is_none());
    leg.on_response(
        &answer(&first, "INVITE", 407, CHALLENGE),
        &env(),
        Instant::now(),
    );
    let retry = leg.take_outputs();
    let lines = first_lines(&retry);
    assert!(
        lines[0].starts_with("ACK ") && lines[1].starts_with("INVITE "),
        "{lines:?}"
    );
    let (ack, invite) = (&sent(&retry)[0].1, &sent(&retry)[1].1);
    assert_eq!(header(ack, "CSeq"), Some("1 ACK"));
    assert_eq!(header(ack, "Via"), header(&first_invite, "Via"));
    assert_eq!(header(invite, "CSeq"), Some("2 INVITE"));
    assert_ne!(header(invite, "Via"), header(&first_invite, "Via"));
    assert_eq!(header(invite, "Call-ID"), header(&first_invite, "Call-ID"));
    assert_eq!(header(invite, "From"), header(&first_invite, "From"));
    assert_eq!(header(invite, "Privacy"), Some("id"));
    let creds = Credentials::parse(header(invite, "Proxy-Authorization").unwrap()).unwrap();
    assert_eq!(creds.uri, "sip:bob@10.0.0.7:5080");
    assert!(creds.verify("secret", "INVITE"));
    assert_eq!(leg.phase, Phase::Early);
    leg.on_response(
        &answer(&retry, "INVITE", 407, CHALLENGE),
        &env(),
        Instant::now(),
    );
    let out = leg.take_outputs();
    assert_eq!(
        first_lines(&out).len(),
        1,
        "only the ACK: {:?}",
        first_lines(&out)
    );
    assert_eq!(ended_with(&out), Some(CallEndCause::Rejected(407)));
}

/// The INVITE challenged in realm "carrier" and resent with credentials: its outputs.
fn authenticated_invite(leg: &mut Leg) -> Vec<Output> {
    let out = leg.take_outputs();
    leg.on_response(
        &answer(&out, "INVITE", 407, CHALLENGE),
        &env(),
        Instant::now(),
    );
    leg.take_outputs()
}

/// §22.3: in-dialog challenges are answered only in the realm the INVITE's challenge used;
/// a never-challenged INVITE means no BYE challenge is answered (a callee or a Contact
/// reached directly gets no digest of our credentials). The BYE fails instead.
#[tokio::test(start_paused = true)]
async fn a_bye_challenge_in_another_realm_is_not_answered() {
    let www = "WWW-Authenticate: Digest realm=\"x\", nonce=\"b1\"\r\n";
    let carrier = "WWW-Authenticate: Digest realm=\"carrier\", nonce=\"b1\"\r\n";
    for (challenged, extra) in [(false, carrier), (true, www)] {
        let mut leg = with_credentials();
        let out = if challenged {
            authenticated_invite(&mut leg)
        } else {
            leg.take_outputs()
        };
        leg.on_response(&answer(&out, "INVITE", 200, ""), &env(), Instant::now());
        leg.take_outputs();
        leg.hangup(HangupCause::Normal, &env(), Instant::now());
        let bye = leg.take_outputs();
        leg.on_response(&answer(&bye, "BYE", 401, extra), &env(), Instant::now());
        let again = sent(&leg.take_outputs());
        assert!(
            again.iter().all(|(_, m)| !m.starts_with("BYE ")),
            "{challenged}: {again:?}"
        );
    }
}

/// §22.2: a 401 to our BYE gets a new BYE (next CSeq, new branch) with Authorization; a
/// retransmission of that 401 is not answered again.
#[tokio::test(start_paused = true)]
async fn a_401_to_our_bye_is_answered_with_a_new_bye() {
    let mut leg = with_credentials();
    let out = authenticated_invite(&mut leg);
    leg.on_response(&answer(&out, "INVITE", 200, ""), &env(), Instant::now());
    leg.take_outputs();
    leg.hangup(HangupCause::Normal, &env(), Instant::now());
    let bye = leg.take_outputs();
    let www = "WWW-Authenticate: Digest realm=\"carrier\", nonce=\"b1\", algorithm=SHA-256\r\n";
    let challenge = answer(&bye, "BYE", 401, www);
    leg.on_response(&challenge, &env(), Instant::now());
    let again = leg.take_outputs();
    let (_, second) = sent(&again).pop().unwrap();
    assert!(second.starts_with("BYE "), "{second}");
    let first_bye = &sent(&bye)[0].1;
    assert_eq!(header(first_bye, "CSeq"), Some("3 BYE"));
    assert_eq!(header(&second, "CSeq"), Some("4 BYE"));
    assert_ne!(header(&second, "Via"), header(first_bye, "Via"));
    let creds = Credentials::parse(header(&second, "Authorization").unwrap()).unwrap();
    assert!(creds.verify("secret", "BYE"));
    leg.on_response(&challenge, &env(), Instant::now());
    assert!(sent(&leg.take_outputs()).is_empty());
    leg.on_response(&answer(&again, "BYE", 200, ""), &env(), Instant::now());
    // The new BYE's 200 completes it: nothing is retransmitted any more.
    let later = run_for(&mut leg, Duration::from_secs(5)).await;
    assert!(first_lines(&later).is_empty(), "{:?}", first_lines(&later));
}

/// RFC 4028 refresh through a trunk (§22.3 on a re-INVITE): a 407 to our refreshing
/// re-INVITE is ACKed and the re-INVITE goes again with the next CSeq and credentials; its
/// 2xx keeps the call up.
#[tokio::test(start_paused = true)]
async fn a_407_to_our_refresh_is_answered() {
    let mut leg = with_credentials();
    let out = authenticated_invite(&mut leg);
    let timer = "Session-Expires: 90;refresher=uac\r\n";
    leg.on_response(&answer(&out, "INVITE", 200, timer), &env(), Instant::now());
    leg.take_outputs();
    let refresh = run_for(&mut leg, Duration::from_secs(46)).await;
    let (_, reinvite) = sent(&refresh)
        .into_iter()
        .find(|(_, m)| m.starts_with("INVITE "))
        .expect("a refresh");
    assert!(header(&reinvite, "Proxy-Authorization").is_none());
    let cseq = header(&reinvite, "CSeq").unwrap().to_string();
    leg.on_response(
        &answer(&refresh, "INVITE", 407, CHALLENGE),
        &env(),
        Instant::now(),
    );
    let again = leg.take_outputs();
    let lines = first_lines(&again);
    assert!(
        lines[0].starts_with("ACK ") && lines[1].starts_with("INVITE "),
        "{lines:?}"
    );
    let (_, second) = &sent(&again)[1];
    let number = |c: &str| c.split_whitespace().next().unwrap().parse::<u32>().unwrap();
    assert_eq!(number(header(second, "CSeq").unwrap()), number(&cseq) + 1);
    let creds = Credentials::parse(header(second, "Proxy-Authorization").unwrap()).unwrap();
    assert!(creds.verify("secret", "INVITE"));
    leg.on_response(
        &answer(&again, "INVITE", 200, timer),
        &env(),
        Instant::now(),
    );
    assert_eq!(
        first_lines(&leg.take_outputs()),
        ["ACK sip:bob@10.0.0.7:5080 SIP/2.0"]
    );
    assert_eq!(leg.phase, Phase::Confirmed);
}

/// §17.1.1.2: the challenged INVITE's transaction outlives the resend: a retransmission of
/// its 407 (our ACK was lost) is ACKed again on its branch and does not touch the new INVITE.
#[tokio::test(start_paused = true)]
async fn a_retransmitted_challenge_is_acked_again() {
    let mut leg = with_credentials();
    let first = leg.take_outputs();
    let challenge = answer(&first, "INVITE", 407, CHALLENGE);
    leg.on_response(&challenge, &env(), Instant::now());
    let retry = leg.take_outputs();
    leg.on_response(&challenge, &env(), Instant::now());
    let again = sent(&leg.take_outputs());
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].1, sent(&retry)[0].1, "the same ACK");
    assert_eq!(leg.phase, Phase::Early);
    leg.on_response(&answer(&retry, "INVITE", 200, ""), &env(), Instant::now());
    assert_eq!(leg.phase, Phase::Confirmed);
}
