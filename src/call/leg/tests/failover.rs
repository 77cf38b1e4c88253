//! RFC 3263 §4.3 failover of our INVITE through the resolved targets, on paused time: 503,
//! the failover timeout, Timer B, transport errors; what stays the same (Call-ID, From tag)
//! and what changes (branch, CSeq, destination).

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::call::outbound::Route;
use crate::sip::resolve::ProxyAddress;
use crate::sip::transport::{Peer, TransportKind};

const FIRST: &str = "10.0.0.7:5080";
const SECOND: &str = "10.0.0.8:5080";
const THIRD: &str = "10.0.0.9:5080";

fn placed(targets: &[&str]) -> Leg {
    let peers = targets.iter().map(|t| udp(t)).collect();
    placed_with(peers, None, &env())
}

fn placed_with(
    peers: Vec<Peer>,
    credentials: Option<std::sync::Arc<crate::call::trunk::TrunkCredentials>>,
    env: &Env,
) -> Leg {
    let route = Route {
        request_uri: "sip:+15550100@carrier.example".into(),
        user: "+15550100".into(),
        next_hop: ProxyAddress::parse("carrier.example").unwrap(),
        transport: None,
        tls_ca: None,
    };
    let mut leg = Leg::outgoing(
        CallId::new(),
        "fo@test".into(),
        "ours".into(),
        Placement {
            route,
            local_uri: "<sip:alice@10.0.0.9>".into(),
            max_forwards: 70,
            ring_timeout: Duration::from_secs(60),
            headers: Vec::new(),
            credentials,
        },
        env,
        Instant::now(),
    );
    leg.local_media = Some(LocalMedia {
        port: 20004,
        session_id: 4,
        offer: true,
    });
    leg.resolved_targets(peers, env, Instant::now());
    leg
}

fn over(addr: &str, transport: TransportKind) -> Peer {
    Peer {
        addr: addr.parse().unwrap(),
        transport,
    }
}

/// The INVITEs in `out`: destination, branch, CSeq line, Call-ID line, From line.
fn invites(out: &[Output]) -> Vec<(String, String, String, String, String)> {
    let header = |m: &str, name: &str| {
        m.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    sent(out)
        .into_iter()
        .filter(|(_, m)| m.starts_with("INVITE "))
        .map(|(to, m)| {
            let via = header(&m, "Via: ");
            let branch = via.split("branch=").nth(1).unwrap_or_default().to_string();
            (
                to,
                branch,
                header(&m, "CSeq: "),
                header(&m, "Call-ID: "),
                header(&m, "From: "),
            )
        })
        .collect()
}

/// A response to the last INVITE in `out` (its Via and CSeq).
fn answer(out: &[Output], code: u16) -> rsip::Response {
    answer_with(out, code, "")
}

/// Like [`answer`], with `extra` header lines (each ending in CRLF).
fn answer_with(out: &[Output], code: u16, extra: &str) -> rsip::Response {
    let (_, invite) = sent(out)
        .into_iter()
        .rfind(|(_, m)| m.starts_with("INVITE "))
        .unwrap();
    let line = |name: &str| {
        invite
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_string()
    };
    response(&format!(
        "SIP/2.0 {code} {}\r\n{}\r\nFrom: <sip:alice@10.0.0.9>;tag=ours\r\n\
         To: <sip:+15550100@carrier.example>;tag=t{code}\r\nCall-ID: fo@test\r\n{}\r\n\
         {extra}Content-Length: 0\r\n\r\n",
        crate::sip::message::reason_phrase(code),
        line("Via: "),
        line("CSeq: "),
    ))
}

/// §4.3: a 503 from the first target sends a new INVITE (new branch, next CSeq, same Call-ID
/// and From tag) to the second, after ACKing the 503 at the first.
#[tokio::test(start_paused = true)]
async fn a_503_moves_the_invite_to_the_next_target() {
    let mut leg = placed(&[FIRST, SECOND]);
    let first = leg.take_outputs();
    leg.on_response(&answer(&first, 503), &env(), Instant::now());
    let second = leg.take_outputs();
    let acks: Vec<_> = sent(&second)
        .into_iter()
        .filter(|(_, m)| m.starts_with("ACK "))
        .collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].0, FIRST);
    let (a, b) = (&invites(&first)[0], &invites(&second)[0]);
    assert_eq!((a.0.as_str(), b.0.as_str()), (FIRST, SECOND));
    assert_ne!(a.1, b.1, "a new branch");
    assert_eq!(
        (a.2.as_str(), b.2.as_str()),
        ("CSeq: 1 INVITE", "CSeq: 2 INVITE")
    );
    assert_eq!(a.3, b.3, "same Call-ID");
    assert_eq!(a.4, b.4, "same From tag");
    assert!(ended_with(&second).is_none());
    assert!(leg.peer.is_some_and(|p| p.addr.to_string() == SECOND));
}

/// §4.3: the last target's 503 ends the leg with 503 (no target left).
#[tokio::test(start_paused = true)]
async fn a_503_from_the_last_target_fails_the_leg_with_503() {
    let mut leg = placed(&[FIRST, SECOND]);
    let first = leg.take_outputs();
    leg.on_response(&answer(&first, 503), &env(), Instant::now());
    let second = leg.take_outputs();
    leg.on_response(&answer(&second, 503), &env(), Instant::now());
    let last = leg.take_outputs();
    assert!(invites(&last).is_empty());
    assert_eq!(ended_with(&last), Some(CallEndCause::Rejected(503)));
    // Other failures are final at once: a 486 from the first target is not retried.
    let mut leg = placed(&[FIRST, SECOND]);
    let first = leg.take_outputs();
    leg.on_response(&answer(&first, 486), &env(), Instant::now());
    assert_eq!(
        ended_with(&leg.take_outputs()),
        Some(CallEndCause::Rejected(486))
    );
}

/// `sip.failover_timeout_ms`: silence from a target moves on; once the next one answers
/// (100 Trying), no more failover, and the ring timeout still governs.
#[tokio::test(start_paused = true)]
async fn silence_moves_on_until_a_target_answers() {
    let mut leg = placed(&[FIRST, SECOND, THIRD]);
    leg.take_outputs();
    let out = run_for(&mut leg, env().failover_timeout).await;
    let moved = invites(&out);
    assert_eq!(moved.last().map(|i| i.0.as_str()), Some(SECOND));
    assert_eq!(moved.last().map(|i| i.2.as_str()), Some("CSeq: 2 INVITE"));
    leg.on_response(&answer(&out, 100), &env(), Instant::now());
    let later = run_for(&mut leg, Duration::from_secs(50)).await;
    assert!(
        invites(&later).iter().all(|i| i.0 != THIRD),
        "no failover after a response"
    );
    assert!(ended_with(&later).is_none());
}

/// The last target gets no failover timeout: Timer B (64·T1) still ends the leg.
#[tokio::test(start_paused = true)]
async fn the_last_target_waits_for_timer_b() {
    let start = Instant::now();
    let mut leg = placed(&[FIRST]);
    leg.take_outputs();
    let out = run_for(&mut leg, Duration::from_secs(31)).await;
    assert!(ended_with(&out).is_none());
    assert!(invites(&out).iter().all(|i| i.0 == FIRST));
    tokio::time::advance((start + Duration::from_secs(31)) - Instant::now()).await;
    let out = run_for(&mut leg, Duration::from_secs(2)).await;
    assert_eq!(ended_with(&out), Some(CallEndCause::Failed));
}

/// §4.3 transport errors: a failed connect for the current attempt moves on; a stale report
/// (an earlier attempt) is ignored; on the last target the leg fails.
#[tokio::test(start_paused = true)]
async fn transport_errors_move_on_and_stale_ones_are_ignored() {
    let mut leg = placed(&[FIRST, SECOND]);
    leg.take_outputs();
    leg.transport_failed(1, &env(), Instant::now());
    let out = leg.take_outputs();
    assert_eq!(invites(&out)[0].0, SECOND);
    leg.transport_failed(1, &env(), Instant::now());
    assert!(leg.take_outputs().is_empty(), "stale attempt ignored");
    leg.transport_failed(2, &env(), Instant::now());
    assert_eq!(ended_with(&leg.take_outputs()), Some(CallEndCause::Failed));
    // No targets at all: the destination did not resolve.
    let mut leg = placed(&[]);
    assert_eq!(ended_with(&leg.take_outputs()), Some(CallEndCause::Failed));
}

/// A target left for its silence that wakes up: its late 180 gets a CANCEL on its own branch,
/// its late 2xx an ACK and a BYE (no orphaned second call); the leg goes on with the next.
#[tokio::test(start_paused = true)]
async fn a_late_answer_from_an_abandoned_target_is_cancelled_and_hung_up() {
    let mut leg = placed(&[FIRST, SECOND]);
    let first = leg.take_outputs();
    let old_branch = invites(&first)[0].1.clone();
    let moved = run_for(&mut leg, env().failover_timeout).await;
    assert_eq!(invites(&moved).last().unwrap().0, SECOND);
    leg.on_response(&answer(&first, 180), &env(), Instant::now());
    let out = sent(&leg.take_outputs());
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].0, FIRST);
    assert!(out[0].1.starts_with("CANCEL "), "{}", out[0].1);
    assert!(out[0].1.contains(&old_branch));
    assert!(out[0].1.contains("CSeq: 1 CANCEL"));
    leg.on_response(&answer(&first, 200), &env(), Instant::now());
    let outputs = leg.take_outputs();
    let methods: Vec<(String, String)> = sent(&outputs)
        .into_iter()
        .map(|(to, m)| (to, m.split(' ').next().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(
        methods,
        vec![
            (FIRST.to_string(), "ACK".to_string()),
            (FIRST.to_string(), "BYE".to_string())
        ]
    );
    assert!(ended_with(&outputs).is_none(), "the leg itself goes on");
    assert!(!outputs.iter().any(|o| matches!(o, Output::Answered)));
    // The second target still answers the leg.
    leg.on_response(&answer(&moved, 180), &env(), Instant::now());
    assert!(leg
        .take_outputs()
        .iter()
        .any(|o| matches!(o, Output::Event(CallEvent::Progress { .. }))));
}

/// RFC 3261 §17.1.1.2: the 503's INVITE transaction is kept after failing over; a
/// retransmitted 503 is ACKed again, at the target that sent it.
#[tokio::test(start_paused = true)]
async fn a_retransmitted_503_is_acked_again_at_its_target() {
    let mut leg = placed(&[FIRST, SECOND]);
    let first = leg.take_outputs();
    leg.on_response(&answer(&first, 503), &env(), Instant::now());
    leg.take_outputs();
    leg.on_response(&answer(&first, 503), &env(), Instant::now());
    let again = sent(&leg.take_outputs());
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].0, FIRST);
    assert!(again[0].1.starts_with("ACK "), "{}", again[0].1);
}

/// RFC 3263 §4.3 with RFC 3261 §9.1: over TCP (Timer D = 0) a target left for its silence
/// keeps the leg alive for 64·T1 after its INVITE, even when the next target's 486 ended
/// the leg: its late 180 still gets a CANCEL. Then the leg is done.
#[tokio::test(start_paused = true)]
async fn an_abandoned_target_keeps_an_ended_leg_alive_until_64_t1() {
    let start = Instant::now();
    let peers = vec![
        over(FIRST, TransportKind::Tcp),
        over(SECOND, TransportKind::Tcp),
    ];
    let mut leg = placed_with(peers, None, &env());
    let first = leg.take_outputs();
    let moved = run_for(&mut leg, env().failover_timeout).await;
    leg.on_response(&answer(&moved, 486), &env(), Instant::now());
    assert_eq!(
        ended_with(&leg.take_outputs()),
        Some(CallEndCause::Rejected(486))
    );
    run_for(&mut leg, Duration::from_secs(1)).await;
    assert!(!leg.is_done(), "target 1 may still answer");
    leg.on_response(&answer(&first, 180), &env(), Instant::now());
    let out = sent(&leg.take_outputs());
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].1.starts_with("CANCEL "), "{}", out[0].1);
    tokio::time::advance((start + env().timers.t1 * 64) - Instant::now()).await;
    run_for(&mut leg, Duration::from_secs(1)).await;
    assert!(leg.is_done());
}

/// RFC 3261 §9.1/§18.2.1: the CANCEL to an abandoned TLS target carries the Via sent-by its
/// INVITE carried (the TLS listener's port), not the UDP one.
#[tokio::test(start_paused = true)]
async fn an_abandoned_tls_targets_cancel_uses_the_invites_sent_by() {
    let env = Env {
        tls_port: Some(5061),
        ..env()
    };
    let peers = vec![
        over(FIRST, TransportKind::Tls),
        over(SECOND, TransportKind::Tls),
    ];
    let mut leg = placed_with(peers, None, &env);
    let first = leg.take_outputs();
    assert!(sent(&first)[0].1.contains("SIP/2.0/TLS 10.0.0.9:5061;"));
    let mut moved = Vec::new();
    let end = Instant::now() + env.failover_timeout;
    while Instant::now() < end {
        tokio::time::advance(Duration::from_millis(100)).await;
        leg.on_tick(&env, Instant::now());
        moved.extend(leg.take_outputs());
    }
    assert_eq!(invites(&moved).last().unwrap().0, SECOND);
    leg.on_response(&answer(&first, 180), &env, Instant::now());
    let out = sent(&leg.take_outputs());
    assert!(out[0].1.starts_with("CANCEL "), "{}", out[0].1);
    assert!(
        out[0].1.contains("SIP/2.0/TLS 10.0.0.9:5061;"),
        "{}",
        out[0].1
    );
}

/// RFC 3263 §4.3 with RFC 3261 §22.2: after failing over, the next target's own challenge is
/// answered (its nonce), not refused as a repeat of the first target's.
#[tokio::test(start_paused = true)]
async fn a_new_target_gets_its_own_challenge_answered() {
    let creds = std::sync::Arc::new(crate::call::trunk::TrunkCredentials {
        username: "alice".into(),
        password: "secret".into(),
        realm: None,
    });
    let peers = vec![udp(FIRST), udp(SECOND)];
    let mut leg = placed_with(peers, Some(creds), &env());
    let first = leg.take_outputs();
    let sbc1 = "Proxy-Authenticate: Digest realm=\"carrier\", nonce=\"sbc1\"\r\n";
    leg.on_response(&answer_with(&first, 407, sbc1), &env(), Instant::now());
    let resent = leg.take_outputs();
    assert!(invites(&resent).iter().all(|i| i.0 == FIRST));
    leg.on_response(&answer(&resent, 503), &env(), Instant::now());
    let second = leg.take_outputs();
    let invite = sent(&second)
        .into_iter()
        .rfind(|(_, m)| m.starts_with("INVITE "))
        .unwrap();
    assert_eq!(invite.0, SECOND);
    assert!(!invite.1.contains("Proxy-Authorization"), "{}", invite.1);
    let sbc2 = "Proxy-Authenticate: Digest realm=\"carrier\", nonce=\"sbc2\"\r\n";
    leg.on_response(&answer_with(&second, 407, sbc2), &env(), Instant::now());
    let out = leg.take_outputs();
    assert!(ended_with(&out).is_none());
    let invite = sent(&out)
        .into_iter()
        .rfind(|(_, m)| m.starts_with("INVITE "))
        .unwrap();
    assert_eq!(invite.0, SECOND);
    assert!(invite.1.contains("nonce=\"sbc2\""), "{}", invite.1);
}
