//! The registration machine on paused time (RFC 3261 §10.2): challenge, refresh at half the
//! granted interval, backoff after failures, unregistering.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{advance, Instant};

use super::machine::{
    Registration, RegistrationOutput, RegistrationSpec, RegistrationState, BACKOFF_CAP,
};
use crate::call::trunk::TrunkCredentials;
use crate::sip::auth::Credentials;
use crate::sip::transaction::Timers;

fn machine() -> Registration {
    Registration::new(
        RegistrationSpec {
            registrar_uri: "sip:10.0.0.5:5060".into(),
            aor: "sip:alice@carrier.example".into(),
            contact: "sip:alice@10.0.0.9:5060".into(),
            sent_by: "10.0.0.9:5060".into(),
            via: "UDP",
            reliable: false,
            expires: 3600,
            credentials: Arc::new(TrunkCredentials {
                username: "alice".into(),
                password: "secret".into(),
                realm: None,
            }),
        },
        Timers::default(),
        "reg@test".into(),
        "ourtag".into(),
        42,
    )
}

fn sent(m: &mut Registration) -> Vec<String> {
    m.take_outputs()
        .into_iter()
        .filter_map(|o| match o {
            RegistrationOutput::Send(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            RegistrationOutput::Failure => None,
        })
        .collect()
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

fn reply(request: &str, code: u16, extra: &str) -> rsip::Response {
    let h = |n| header(request, n).unwrap();
    let text = format!(
        "SIP/2.0 {code} {}\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=reg\r\nCall-ID: {}\r\n\
         CSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n",
        crate::sip::message::reason_phrase(code),
        h("Via"),
        h("From"),
        h("To"),
        h("Call-ID"),
        h("CSeq"),
    );
    rsip::Response::try_from(text.as_bytes()).unwrap()
}

const WWW: &str = "WWW-Authenticate: Digest realm=\"carrier\", nonce=\"r1\", qop=\"auth\"\r\n";

/// Registers (401 answered) and returns the machine with its last REGISTER.
fn registered(granted: &str) -> (Registration, String) {
    let mut m = machine();
    m.start(Instant::now());
    let first = sent(&mut m).remove(0);
    m.on_response(&reply(&first, 401, WWW), Instant::now());
    let second = sent(&mut m).remove(0);
    m.on_response(&reply(&second, 200, granted), Instant::now());
    (m, second)
}

/// §10.2 + §22.2: REGISTER of the AoR with our Contact; the 401 is answered with the next
/// CSeq, the same Call-ID and valid Authorization; the 2xx's Contact `expires` is what holds.
#[tokio::test(start_paused = true)]
async fn registers_through_a_challenge() {
    let mut m = machine();
    m.start(Instant::now());
    assert_eq!(m.state(), RegistrationState::Registering);
    let first = sent(&mut m).remove(0);
    assert!(
        first.starts_with("REGISTER sip:10.0.0.5:5060 SIP/2.0"),
        "{first}"
    );
    assert!(header(&first, "From")
        .unwrap()
        .starts_with("<sip:alice@carrier.example>;tag=ourtag"));
    assert_eq!(header(&first, "To"), Some("<sip:alice@carrier.example>"));
    assert_eq!(
        header(&first, "Contact"),
        Some("<sip:alice@10.0.0.9:5060>;expires=3600")
    );
    assert_eq!(header(&first, "Expires"), Some("3600"));
    assert_eq!(header(&first, "CSeq"), Some("1 REGISTER"));
    m.on_response(&reply(&first, 401, WWW), Instant::now());
    let second = sent(&mut m).remove(0);
    assert_eq!(header(&second, "CSeq"), Some("2 REGISTER"));
    assert_eq!(header(&second, "Call-ID"), header(&first, "Call-ID"));
    assert_ne!(header(&second, "Via"), header(&first, "Via"));
    let creds = Credentials::parse(header(&second, "Authorization").unwrap()).unwrap();
    assert_eq!(creds.uri, "sip:10.0.0.5:5060");
    assert!(creds.verify("secret", "REGISTER"));
    let granted = "Contact: <sip:other@10.0.0.1>;expires=99, <sip:alice@10.0.0.9:5060>;expires=4\r\nExpires: 3600\r\n";
    m.on_response(&reply(&second, 200, granted), Instant::now());
    assert_eq!(m.state(), RegistrationState::Registered);
    assert_eq!(
        m.expires_at(),
        Some(Instant::now() + Duration::from_secs(4))
    );
    assert_eq!(
        m.next_deadline(),
        Some(Instant::now() + Duration::from_secs(2))
    );
}

/// §10.2.4: the binding is refreshed at half the granted interval, in a new chain (CSeq up,
/// no stale credentials), answered again if challenged.
#[tokio::test(start_paused = true)]
async fn refreshes_at_half_the_granted_interval() {
    let (mut m, _) = registered("Expires: 4\r\n");
    advance(Duration::from_millis(1999)).await;
    m.on_tick(Instant::now());
    assert!(sent(&mut m).is_empty());
    advance(Duration::from_millis(1)).await;
    m.on_tick(Instant::now());
    let refresh = sent(&mut m).remove(0);
    assert_eq!(header(&refresh, "CSeq"), Some("3 REGISTER"));
    assert!(header(&refresh, "Authorization").is_none());
    let www = WWW.replace("r1", "r2");
    m.on_response(&reply(&refresh, 401, &www), Instant::now());
    let answered = sent(&mut m).remove(0);
    assert!(header(&answered, "Authorization")
        .unwrap()
        .contains("\"r2\""));
    m.on_response(&reply(&answered, 200, "Expires: 4\r\n"), Instant::now());
    assert_eq!(m.state(), RegistrationState::Registered);
}

/// A refused registration (403, or our credentials challenged again) is a failure, retried
/// after a jittered exponential backoff capped at [`BACKOFF_CAP`].
#[tokio::test(start_paused = true)]
async fn failures_back_off_exponentially_with_jitter() {
    let mut m = machine();
    m.start(Instant::now());
    let mut previous = Duration::ZERO;
    for attempt in 1..=12u32 {
        let req = sent(&mut m).remove(0);
        m.on_response(&reply(&req, 403, ""), Instant::now());
        assert_eq!(m.state(), RegistrationState::Failed);
        assert_eq!(m.last_code(), Some(403));
        assert!(m.last_error().unwrap().contains("403"));
        let wait = m.next_deadline().unwrap() - Instant::now();
        let full = (Duration::from_secs(2) * 2u32.pow(attempt - 1)).min(BACKOFF_CAP);
        assert!(
            wait >= full / 2 && wait <= full,
            "attempt {attempt}: {wait:?} of {full:?}"
        );
        assert!(wait >= previous / 2 || full == BACKOFF_CAP);
        previous = wait;
        advance(wait).await;
        m.on_tick(Instant::now());
    }
    // Credentials refused: the same nonce again after our answer.
    let req = sent(&mut m).remove(0);
    m.on_response(&reply(&req, 401, WWW), Instant::now());
    let answered = sent(&mut m).remove(0);
    m.on_response(&reply(&answered, 401, WWW), Instant::now());
    assert!(sent(&mut m).is_empty());
    assert_eq!(m.state(), RegistrationState::Failed);
    assert_eq!(m.last_code(), Some(401));
}

/// Timer F: a registrar that never answers is a failure too.
#[tokio::test(start_paused = true)]
async fn a_silent_registrar_times_out() {
    let mut m = machine();
    m.start(Instant::now());
    while m.state() == RegistrationState::Registering {
        let at = m.next_deadline().unwrap();
        advance(at - Instant::now()).await;
        m.on_tick(Instant::now());
    }
    assert_eq!(m.state(), RegistrationState::Failed);
    assert!(m.last_error().unwrap().contains("Timer F"));
    assert!(m.take_outputs().contains(&RegistrationOutput::Failure));
}

/// §10.2.2: at shutdown the binding is removed with Expires 0 (answered once if challenged);
/// nothing is sent after.
#[tokio::test(start_paused = true)]
async fn unregisters_with_expires_zero() {
    let (mut m, _) = registered("Expires: 60\r\n");
    m.unregister(Instant::now());
    assert!(!m.is_done());
    let remove = sent(&mut m).remove(0);
    assert_eq!(header(&remove, "Expires"), Some("0"));
    assert_eq!(
        header(&remove, "Contact"),
        Some("<sip:alice@10.0.0.9:5060>;expires=0")
    );
    m.on_response(
        &reply(&remove, 401, &WWW.replace("r1", "r9")),
        Instant::now(),
    );
    let answered = sent(&mut m).remove(0);
    assert_eq!(header(&answered, "Expires"), Some("0"));
    assert!(header(&answered, "Authorization").is_some());
    m.on_response(&reply(&answered, 200, ""), Instant::now());
    assert_eq!(m.state(), RegistrationState::Unregistered);
    assert!(m.is_done());
    advance(Duration::from_secs(120)).await;
    m.on_tick(Instant::now());
    assert!(sent(&mut m).is_empty());
    // Never registered: nothing to remove.
    let mut idle = machine();
    idle.unregister(Instant::now());
    assert!(idle.is_done() && sent(&mut idle).is_empty());
}

/// A registrar that cannot be reached (its name does not resolve, TLS fails) is a failure
/// with its reason, retried after the backoff.
#[tokio::test(start_paused = true)]
async fn an_unreachable_registrar_is_a_failure_retried_later() {
    let mut m = machine();
    m.unreachable("sbc.example.com did not resolve".into(), Instant::now());
    assert_eq!(m.state(), RegistrationState::Failed);
    assert_eq!(m.last_error(), Some("sbc.example.com did not resolve"));
    assert_eq!(m.take_outputs(), [RegistrationOutput::Failure]);
    let wait = m.next_deadline().unwrap() - Instant::now();
    assert!(
        wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2),
        "{wait:?}"
    );
}

/// §10.2.2: a registrar lookup finishing after shutdown's unregister sends no REGISTER.
#[tokio::test(start_paused = true)]
async fn start_after_unregister_sends_nothing() {
    let mut m = machine();
    m.unregister(Instant::now());
    m.start(Instant::now());
    assert!(sent(&mut m).is_empty());
    assert!(m.is_done());
}

/// §10.2.2: a refresh that failed leaves the binding live until it expires; shutdown still
/// removes it with Expires: 0.
#[tokio::test(start_paused = true)]
async fn a_live_binding_after_a_failed_refresh_is_removed() {
    let (mut m, _) = registered("Expires: 600\r\n");
    advance(Duration::from_secs(300)).await;
    m.on_tick(Instant::now());
    let refresh = sent(&mut m).remove(0);
    m.on_response(&reply(&refresh, 500, ""), Instant::now());
    assert_eq!(m.state(), RegistrationState::Failed);
    sent(&mut m);
    m.unregister(Instant::now());
    let out = sent(&mut m);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(header(&out[0], "Expires"), Some("0"));
}

/// §10.2.8: a 423's Min-Expires holds for later refreshes too, and the resend does not reuse
/// the answered nonce's credentials (nc/cnonce, RFC 7616 §3.4): the registrar challenges again.
#[tokio::test(start_paused = true)]
async fn min_expires_is_kept_and_credentials_are_not_reused() {
    let (mut m, second) = registered("Expires: 600\r\n");
    assert!(header(&second, "Authorization").is_some());
    advance(Duration::from_secs(300)).await;
    m.on_tick(Instant::now());
    let refresh = sent(&mut m).remove(0);
    m.on_response(&reply(&refresh, 401, WWW), Instant::now());
    let answered = sent(&mut m).remove(0);
    let brief = reply(&answered, 423, "Min-Expires: 7200\r\n");
    m.on_response(&brief, Instant::now());
    let again = sent(&mut m).remove(0);
    assert_eq!(header(&again, "Expires"), Some("7200"));
    assert!(header(&again, "Authorization").is_none(), "{again}");
    m.on_response(&reply(&again, 401, WWW), Instant::now());
    let fresh = sent(&mut m).remove(0);
    assert!(header(&fresh, "Authorization").is_some());
    m.on_response(&reply(&fresh, 200, "Expires: 7200\r\n"), Instant::now());
    advance(Duration::from_secs(3600)).await;
    m.on_tick(Instant::now());
    let next = sent(&mut m).remove(0);
    assert_eq!(header(&next, "Expires"), Some("7200"));
}
