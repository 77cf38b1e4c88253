//! Dialog construction, in-dialog requests and where they go (RFC 3261 §12).

use super::*;
use crate::sip::message::parse_datagram;

fn request(text: &str) -> rsip::Request {
    match parse_datagram(text.as_bytes(), 8192).unwrap() {
        rsip::SipMessage::Request(r) => r,
        rsip::SipMessage::Response(_) => panic!("not a request"),
    }
}

const INVITE: &str = "INVITE sip:100@10.0.0.9 SIP/2.0\r\n\
    Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKp1\r\n\
    Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKa\r\n\
    Record-Route: <sip:10.0.0.5;lr;ftag=x>, <sip:10.0.0.6:5070;lr>\r\n\
    Record-Route: <sip:[2001:db8::7]:5080;lr>\r\n\
    Max-Forwards: 69\r\n\
    To: <sip:100@example.com>\r\n\
    From: \"A\" <sip:alice@example.com>;tag=1928\r\n\
    Call-ID: c1@x\r\n\
    CSeq: 7 INVITE\r\n\
    Contact: <sip:alice@10.0.0.1:5062;transport=tcp>\r\n\
    Content-Length: 0\r\n\r\n";

/// §12.1.1: the UAS keeps the Record-Route order, each element of a comma-joined line (an
/// IPv6 reference as the parser masks it for rsip; the builders write it back as `[...]`).
#[test]
fn uas_dialog_keeps_the_route_set_in_order() {
    let d = Dialog::as_uas(&request(INVITE), "lt");
    assert_eq!(
        d.route_set,
        [
            "<sip:10.0.0.5;lr;ftag=x>",
            "<sip:10.0.0.6:5070;lr>",
            "<sip:2001-db8--7.ipv6.invalid:5080;lr>"
        ]
    );
    assert_eq!(d.remote_target, "sip:alice@10.0.0.1:5062;transport=tcp");
    assert_eq!(d.remote_tag.as_deref(), Some("1928"));
    assert_eq!(d.remote_cseq, Some(7));
    assert_eq!(d.local_uri, "<sip:100@example.com>");
}

/// §12.2.1.1: Request-URI is the remote target, Route is the route set, and the request goes
/// to the first route (a loose router).
#[test]
fn bye_follows_the_route_set_and_remote_target() {
    let mut d = Dialog::as_uas(&request(INVITE), "lt");
    let bye = String::from_utf8(d.bye("10.0.0.9:5060", "UDP").to_vec()).unwrap();
    assert!(
        bye.starts_with("BYE sip:alice@10.0.0.1:5062;transport=tcp SIP/2.0\r\n"),
        "{bye}"
    );
    let routes: Vec<&str> = bye
        .lines()
        .filter_map(|l| l.strip_prefix("Route: "))
        .collect();
    assert_eq!(
        routes,
        [
            "<sip:10.0.0.5;lr;ftag=x>",
            "<sip:10.0.0.6:5070;lr>",
            "<sip:[2001:db8::7]:5080;lr>"
        ]
    );
    for part in [
        "From: <sip:100@example.com>;tag=lt",
        "To: \"A\" <sip:alice@example.com>;tag=1928",
        "CSeq: 1 BYE",
    ] {
        assert!(bye.contains(part), "{part} missing in {bye}");
    }
    assert_eq!(d.next_hop(), Some(("10.0.0.5:5060".parse().unwrap(), None)));
}

/// §8.1.2: without a route set the request goes to the remote target, over its transport.
#[test]
fn next_hop_without_routes_is_the_remote_target() {
    let mut d = Dialog::as_uas(&request(INVITE), "lt");
    d.route_set.clear();
    assert_eq!(
        d.next_hop(),
        Some(("10.0.0.1:5062".parse().unwrap(), Some(TransportKind::Tcp)))
    );
    d.remote_target = "sip:bob@[2001:db8::1]:5090".into();
    assert_eq!(
        d.next_hop(),
        Some(("[2001:db8::1]:5090".parse().unwrap(), None))
    );
    d.remote_target = "sip:bob@2001-db8--2.ipv6.invalid:5070".into();
    assert_eq!(
        d.next_hop(),
        Some(("[2001:db8::2]:5070".parse().unwrap(), None))
    );
    d.remote_target = "sip:bob@pbx.example.com".into();
    assert_eq!(d.next_hop(), None);
    // A strict router (no ;lr) is not sent to first: the remote target is.
    d.remote_target = "sip:bob@10.0.0.3".into();
    d.route_set = vec!["<sip:10.0.0.5>".into()];
    assert_eq!(d.next_hop(), Some(("10.0.0.3:5060".parse().unwrap(), None)));
}

/// §12.2.2: a re-INVITE's Contact refreshes the remote target; lower CSeqs are out of order.
#[test]
fn target_refresh_and_remote_cseq() {
    let mut d = Dialog::as_uas(&request(INVITE), "lt");
    let reinvite = request(
        &INVITE
            .replace("CSeq: 7", "CSeq: 8")
            .replace("10.0.0.1:5062;transport=tcp", "10.0.0.2:5064"),
    );
    assert!(d.accept_remote_cseq(&reinvite.headers));
    d.refresh_target(&reinvite);
    assert_eq!(d.remote_target, "sip:alice@10.0.0.2:5064");
    let old = request(&INVITE.replace("CSeq: 7", "CSeq: 6"));
    assert!(!d.accept_remote_cseq(&old.headers));
}

#[test]
fn uri_and_tag_helpers() {
    assert_eq!(
        uri_of("\"A\" <sip:a@h:5060>;tag=1").as_deref(),
        Some("sip:a@h:5060")
    );
    assert_eq!(uri_of("sip:a@h;tag=1").as_deref(), Some("sip:a@h"));
    assert_eq!(strip_tag("<sip:a@h>;tag=abc;x=y"), "<sip:a@h>;x=y");
    assert_eq!(strip_tag("<sip:a@h;tag=in-uri>"), "<sip:a@h;tag=in-uri>");
    assert_eq!(strip_tag("sip:a@h;TAG=abc"), "sip:a@h");
    assert_eq!(
        uri_address("sip:10.1.2.3;lr"),
        Some(("10.1.2.3:5060".parse().unwrap(), None))
    );
    assert!(has_param("sip:p;lr", "lr"));
    assert!(!has_param("sip:lr@p", "lr"));
}
