//! The leg machine on paused time: the races black-box tests cannot hit reliably (CANCEL
//! crossing 200, BYE crossing re-INVITE, ACK lost, BYE while a re-INVITE is pending, 491
//! glare) and the RFC 3261 rules each role must keep.

use std::time::Duration;

use tokio::time::{advance, Instant};

use super::*;

mod auth;
mod failover;
mod incoming;
mod limits;
mod media;
mod outgoing;
mod refer;
mod reliable;
mod timers;
use crate::call::events::HangupCause;
use crate::sip::message::parse_datagram;
use crate::sip::transport::TransportKind;

pub(super) const CALLER: &str = "10.0.0.1:5062";
pub(super) const PROXY: &str = "10.0.0.5:5060";

pub(super) fn env() -> Env {
    Env {
        timers: Timers::default(),
        public_ip: "10.0.0.9".parse().unwrap(),
        port: 5060,
        tls_port: None,
        max_call: None,
        session_expires: None,
        min_se: 90,
        failover_timeout: std::time::Duration::from_secs(4),
    }
}

pub(super) fn udp(addr: &str) -> Peer {
    Peer {
        addr: addr.parse().unwrap(),
        transport: TransportKind::Udp,
    }
}

pub(super) fn request(text: &str) -> rsip::Request {
    match parse_datagram(text.as_bytes(), 8192).unwrap() {
        rsip::SipMessage::Request(r) => r,
        rsip::SipMessage::Response(_) => panic!("not a request"),
    }
}

pub(super) fn response(text: &str) -> rsip::Response {
    match parse_datagram(text.as_bytes(), 8192).unwrap() {
        rsip::SipMessage::Response(r) => r,
        rsip::SipMessage::Request(_) => panic!("not a response"),
    }
}

pub(super) const SDP: &str =
    "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
    m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

/// A request of the caller's: `method`, `branch`, `cseq`, with our tag in To when `to_tag`.
pub(super) fn caller_request(
    method: &str,
    branch: &str,
    cseq: u32,
    to_tag: Option<&str>,
    sdp: bool,
) -> rsip::Request {
    caller_request_with(method, branch, cseq, to_tag, if sdp { SDP } else { "" })
}

/// A request of the caller's carrying `body` as its SDP (none when empty).
pub(super) fn caller_request_with(
    method: &str,
    branch: &str,
    cseq: u32,
    to_tag: Option<&str>,
    body: &str,
) -> rsip::Request {
    let to = match to_tag {
        Some(t) => format!("<sip:100@10.0.0.9>;tag={t}"),
        None => "<sip:100@10.0.0.9>".to_string(),
    };
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    request(&format!(
        "{method} sip:100@10.0.0.9 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {PROXY};branch=z9hG4bKp{branch}\r\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK{branch}\r\n\
         Record-Route: <sip:{PROXY};lr>\r\n\
         Max-Forwards: 69\r\n\
         From: <sip:alice@example.com>;tag=caller\r\n\
         To: {to}\r\n\
         Call-ID: race@test\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:alice@{CALLER}>\r\n\
         {content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

/// A new incoming leg for the caller's INVITE on `branch` (100 sent).
pub(super) fn offered(branch: &str) -> Leg {
    offered_with(caller_request("INVITE", branch, 1, None, true), &env())
}

/// A new incoming leg for `invite` from the caller through the proxy.
pub(super) fn offered_with(invite: rsip::Request, env: &Env) -> Leg {
    let key = TransactionKey::from_request(&invite).unwrap();
    Leg::new_incoming(
        CallId::new(),
        invite,
        key,
        udp(PROXY),
        "us".into(),
        env,
        Instant::now(),
    )
}

/// An answered incoming leg (200 sent, no ACK yet) and the bytes it sent.
pub(super) fn answered() -> (Leg, Vec<Output>) {
    let mut leg = offered("inv");
    leg.ring(&env());
    let media = LocalMedia {
        port: 20000,
        session_id: 1,
        offer: false,
    };
    leg.answer(media, &env(), Instant::now());
    let out = leg.take_outputs();
    (leg, out)
}

/// The caller (through the proxy, inside every trunk's ACL) sends `req`.
pub(super) fn from_caller(leg: &mut Leg, req: rsip::Request) {
    leg.on_request(req, udp(PROXY), true, &env(), Instant::now());
}

pub(super) fn confirmed() -> Leg {
    let (mut leg, _) = answered();
    let ack = caller_request("ACK", "ack1", 1, Some("us"), false);
    leg.on_request(ack, udp(PROXY), true, &env(), Instant::now());
    assert_eq!(leg.phase, Phase::Confirmed);
    leg.take_outputs();
    leg
}

/// What was sent, as text, with its destination.
pub(super) fn sent(out: &[Output]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, bytes, .. } | Output::SendInvite { to, bytes, .. } => Some((
                to.addr.to_string(),
                String::from_utf8_lossy(bytes).into_owned(),
            )),
            _ => None,
        })
        .collect()
}

pub(super) fn first_lines(out: &[Output]) -> Vec<String> {
    sent(out)
        .into_iter()
        .map(|(_, m)| m.lines().next().unwrap_or_default().to_string())
        .collect()
}

pub(super) fn ended_with(out: &[Output]) -> Option<CallEndCause> {
    out.iter().find_map(|o| match o {
        Output::Ended { cause, .. } => Some(*cause),
        _ => None,
    })
}

/// Ticks the leg at each deadline up to `until` after now, collecting its outputs.
pub(super) async fn run_for(leg: &mut Leg, until: Duration) -> Vec<Output> {
    let end = Instant::now() + until;
    let mut out = Vec::new();
    while let Some(at) = leg.next_deadline().filter(|at| *at <= end) {
        advance(at.saturating_duration_since(Instant::now())).await;
        leg.on_tick(&env(), Instant::now());
        out.extend(leg.take_outputs());
    }
    out
}
