//! The registrar's REGISTER handling (RFC 3261 §10.3) on the location service.

use std::time::{Duration, Instant};

use super::*;
use crate::sip::transport::TransportKind;

fn location() -> LocationService {
    LocationService::new(ExpiryLimits { min: 60, max: 3600 })
}

fn source() -> Peer {
    Peer {
        addr: "198.51.100.9:40000".parse().unwrap(),
        transport: TransportKind::Udp,
    }
}

fn register(aor: &str, call_id: &str, cseq: u32, extra: &str) -> rsip::Request {
    let text = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK{cseq}\r\n\
         From: <sip:{aor}@127.0.0.1>;tag=a\r\nTo: <sip:{aor}@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    rsip::Request::try_from(text.as_bytes()).unwrap()
}

fn run(l: &LocationService, req: &rsip::Request, now: Instant) -> RegisterReply {
    process(l, req, "alice", source(), now)
}

/// §10.3 steps 7–8: a binding is added with the Expires asked for, remembers its source, and
/// the 200 lists it with the seconds left; a longer Expires is cut to the maximum.
#[test]
fn register_binds_and_lists_with_expires() {
    let (l, now) = (location(), Instant::now());
    let r = run(
        &l,
        &register(
            "alice",
            "c1",
            1,
            "Contact: <sip:alice@10.0.0.5:5060>\r\nExpires: 120\r\n",
        ),
        now,
    );
    assert_eq!(r.code, 200);
    assert_eq!(
        r.headers,
        vec![(
            "Contact",
            "<sip:alice@10.0.0.5:5060>;expires=120".to_string()
        )]
    );
    assert_eq!(r.active, Some(1));
    assert_eq!(r.source_until, Some(now + Duration::from_secs(120)));
    let b = &l.lookup("alice", now)[0];
    assert_eq!(b.source, source());
    let r = run(
        &l,
        &register(
            "alice",
            "c1",
            2,
            "Contact: <sip:alice@10.0.0.6>;expires=99999, \"P\" <sip:alice@10.0.0.7>\r\n",
        ),
        now,
    );
    assert_eq!(r.code, 200);
    assert_eq!(r.headers.len(), 3);
    assert!(r
        .headers
        .contains(&("Contact", "<sip:alice@10.0.0.6>;expires=3600".into())));
    // The binding without a parameter or header gets the default (the maximum).
    assert!(r
        .headers
        .contains(&("Contact", "<sip:alice@10.0.0.7>;expires=3600".into())));
    // A query (no Contact) lists without changing.
    let r = run(&l, &register("alice", "c1", 3, ""), now);
    assert_eq!((r.code, r.headers.len()), (200, 3));
    // Bindings expire on their own.
    assert_eq!(l.lookup("alice", now + Duration::from_secs(121)).len(), 2);
    assert_eq!(l.purge(now + Duration::from_secs(3601)), 0);
    assert!(l.all(now).is_empty());
}

/// §10.3 step 7: too short an interval gets 423 with Min-Expires and changes nothing.
#[test]
fn too_brief_gets_423() {
    let (l, now) = (location(), Instant::now());
    let r = run(
        &l,
        &register(
            "alice",
            "c1",
            1,
            "Contact: <sip:alice@10.0.0.5>;expires=10\r\n",
        ),
        now,
    );
    assert_eq!(r.code, 423);
    assert_eq!(r.headers, vec![("Min-Expires", "60".to_string())]);
    assert!(l.all(now).is_empty());
}

/// §10.3 steps 6–7: `Expires: 0` removes one binding, `*` with Expires 0 removes all, and `*`
/// otherwise is a 400.
#[test]
fn expires_zero_and_wildcard_remove() {
    let (l, now) = (location(), Instant::now());
    let two = "Contact: <sip:alice@10.0.0.5>, <sip:alice@10.0.0.6>\r\nExpires: 600\r\n";
    assert_eq!(run(&l, &register("alice", "c1", 1, two), now).code, 200);
    let r = run(
        &l,
        &register(
            "alice",
            "c1",
            2,
            "Contact: <sip:alice@10.0.0.5>\r\nExpires: 0\r\n",
        ),
        now,
    );
    assert_eq!((r.code, r.headers.len()), (200, 1));
    assert_eq!(
        run(&l, &register("alice", "c1", 3, "Contact: *\r\n"), now).code,
        400
    );
    assert_eq!(
        run(
            &l,
            &register(
                "alice",
                "c1",
                3,
                "Contact: *, <sip:alice@h>\r\nExpires: 0\r\n"
            ),
            now
        )
        .code,
        400
    );
    let r = run(
        &l,
        &register("alice", "c1", 3, "Contact: *\r\nExpires: 0\r\n"),
        now,
    );
    assert_eq!((r.code, r.headers.len(), r.active), (200, 0, Some(0)));
    assert_eq!(r.source_until, None);
}

/// §10.3 step 7: the same Call-ID with a CSeq not above the binding's aborts (500); another
/// Call-ID replaces it.
#[test]
fn call_id_and_cseq_ordering() {
    let (l, now) = (location(), Instant::now());
    let c = "Contact: <sip:alice@10.0.0.5>\r\n";
    assert_eq!(run(&l, &register("alice", "c1", 5, c), now).code, 200);
    assert_eq!(run(&l, &register("alice", "c1", 5, c), now).code, 500);
    assert_eq!(run(&l, &register("alice", "c1", 4, c), now).code, 500);
    assert_eq!(run(&l, &register("alice", "c2", 1, c), now).code, 200);
    assert_eq!(l.lookup("alice", now)[0].call_id, "c2");
}

/// §10.3 step 5: a user may register only its own AoR; bad Contacts and Expires are 400.
#[test]
fn other_aors_and_bad_input_are_refused() {
    let (l, now) = (location(), Instant::now());
    let c = "Contact: <sip:bob@10.0.0.5>\r\n";
    assert_eq!(run(&l, &register("bob", "c1", 1, c), now).code, 403);
    for bad in [
        "Contact: <tel:+1555>\r\n",
        "Contact: <sip:alice@h\r\n",
        "Contact: <sip:alice@h>;expires=x\r\n",
        "Contact: <sip:alice@h>\r\nExpires: soon\r\n",
    ] {
        assert_eq!(
            run(&l, &register("alice", "c1", 1, bad), now).code,
            400,
            "{bad}"
        );
    }
    assert!(l.all(now).is_empty());
}

/// A user's bindings are bounded; the request that would pass the bound changes nothing.
#[test]
fn contacts_per_user_are_bounded() {
    let (l, now) = (location(), Instant::now());
    let many: Vec<String> = (0..=MAX_CONTACTS_PER_USER)
        .map(|i| format!("<sip:alice@10.0.0.{i}>"))
        .collect();
    let extra = format!("Contact: {}\r\n", many.join(", "));
    assert_eq!(run(&l, &register("alice", "c1", 1, &extra), now).code, 403);
    assert!(l.all(now).is_empty());
}
