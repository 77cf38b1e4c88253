//! RFC 3261 dialog behaviour on the wire, against raw peers on real sockets: Record-Route and
//! the route set (§12), answers to where a request came from (§18.2.2, RFC 3581), dialogs by
//! Call-ID and tags (a hairpinned call), the trunk ACL on every request, Timer B (§17.1.1.2),
//! the 2xx over TCP (§13.3.1.4), CANCEL's To tag (§9.2), 420, 483 and 481.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use activeflow::engine::{ActiveflowRecord, Status};
use common::{flow, free_port, header, http, start, start_with};
use serde_json::json;

fn hold() -> serde_json::Value {
    flow(
        "hold",
        json!([{"type": "answer"}, {"type": "sleep", "option": {"duration": 60000}}]),
    )
}

/// A flow `name` whose one action connects to the SIP URI `target`.
fn connect_to(name: &str, target: String, ring_timeout: u64) -> serde_json::Value {
    flow(
        name,
        json!([{"type": "connect", "option": {
            "destinations": [{"type": "sip", "target": target}],
            "ring_timeout": ring_timeout}}]),
    )
}

/// An engine listening on `port`, known before it starts, so its flows can dial it back.
fn start_on(port: u16, flows: &[serde_json::Value], routes: &[(&str, &str)]) -> common::TestEngine {
    let listen = format!("127.0.0.1:{port}");
    start(flows, routes, &[("ACTIVEFLOW_SIP_LISTEN", &listen)])
}

/// A UDP socket on `ip` that reads with a timeout.
struct Sock {
    socket: UdpSocket,
}

impl Sock {
    fn on(ip: &str) -> Sock {
        let socket = UdpSocket::bind((ip, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Sock { socket }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    fn send(&self, to: SocketAddr, msg: &str) {
        self.socket.send_to(msg.as_bytes(), to).unwrap();
    }

    /// The next message whose first line contains `needle`, with its source.
    fn recv_until(&self, needle: &str) -> (String, SocketAddr) {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = self
                .socket
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("no {needle:?} at {}: {e}", self.addr()));
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if m.lines().next().unwrap_or("").contains(needle) {
                return (m, from);
            }
        }
    }

    /// Whether a message whose first line contains `needle` arrives within `wait`.
    fn gets(&self, needle: &str, wait: Duration) -> bool {
        self.socket.set_read_timeout(Some(wait)).unwrap();
        let mut buf = vec![0u8; 65536];
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            let Ok((n, _)) = self.socket.recv_from(&mut buf) else {
                break;
            };
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .is_some_and(|l| l.contains(needle))
            {
                return true;
            }
        }
        false
    }
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

/// A request from `via` (top Via) for the dialog `call_id`, with optional extra headers.
// A raw request is these eight parts; a builder would only hide them from the reader.
#[allow(clippy::too_many_arguments)]
fn req(
    method: &str,
    uri: &str,
    via: SocketAddr,
    call_id: &str,
    to_tag: Option<&str>,
    cseq: u32,
    extra: &str,
    body: &str,
) -> String {
    let tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let branch = format!("z9hG4bK-{}-{}", method.to_lowercase(), nanos());
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch={branch}\r\n\
         From: <sip:caller@127.0.0.1>;tag=caller\r\nTo: <sip:100@127.0.0.1>{tag}\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{extra}\
         {ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn to_tag_of(msg: &str) -> String {
    let to = header(msg, "To").unwrap();
    to.split(";tag=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// An answered, ACKed call from `from` (its Contact `contact`, an optional Record-Route);
/// returns the engine's To tag.
fn call_up(
    engine: SocketAddr,
    from: &Sock,
    call_id: &str,
    contact: SocketAddr,
    rr: &str,
) -> String {
    let extra = format!("Contact: <sip:caller@{contact}>\r\n{rr}");
    from.send(
        engine,
        &req(
            "INVITE",
            &format!("sip:100@{engine}"),
            from.addr(),
            call_id,
            None,
            1,
            &extra,
            SDP,
        ),
    );
    let (ok, _) = from.recv_until("200 OK");
    let tag = to_tag_of(&ok);
    from.send(
        engine,
        &req(
            "ACK",
            &format!("sip:100@{engine}"),
            from.addr(),
            call_id,
            Some(&tag),
            1,
            "",
            "",
        ),
    );
    tag
}

/// §12.1.1: the 2xx copies Record-Route; §12.2.1.1: the engine's BYE goes to the first route
/// (the proxy), with the route set in Route and the caller's Contact as Request-URI.
#[test]
fn record_route_and_the_route_set_carry_the_engines_bye() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    let proxy = Sock::on("127.0.0.1");
    let contact: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let rr = format!("Record-Route: <sip:{};lr;ftag=caller>\r\n", proxy.addr());
    let extra = format!("Contact: <sip:caller@{contact}>\r\n{rr}");
    proxy.send(
        e.sip,
        &req(
            "INVITE",
            &format!("sip:100@{}", e.sip),
            proxy.addr(),
            "rr-1@t",
            None,
            1,
            &extra,
            SDP,
        ),
    );
    let (ok, _) = proxy.recv_until("200 OK");
    assert_eq!(
        header(&ok, "Record-Route"),
        Some(format!("<sip:{};lr;ftag=caller>", proxy.addr()).as_str()),
        "{ok}"
    );
    let tag = to_tag_of(&ok);
    proxy.send(
        e.sip,
        &req(
            "ACK",
            &format!("sip:caller@{contact}"),
            proxy.addr(),
            "rr-1@t",
            Some(&tag),
            1,
            "",
            "",
        ),
    );
    e.wait_for("the call's activeflow", Duration::from_secs(10), |all| {
        all.len() == 1
    });
    let id = e.activeflows()[0].id;
    let (status, _) = http(e.api, "POST", &format!("/v1/activeflows/{id}/stop"), None);
    assert_eq!(status, 200);
    let (bye, _) = proxy.recv_until("BYE ");
    assert!(
        bye.starts_with(&format!("BYE sip:caller@{contact} SIP/2.0")),
        "{bye}"
    );
    assert_eq!(
        header(&bye, "Route"),
        Some(format!("<sip:{};lr;ftag=caller>", proxy.addr()).as_str())
    );
    // The 200 to our BYE (From: our tag) finds the session, which then goes at once instead of
    // retransmitting its BYE until Timer F (§17.1.2).
    let copied: String = ["Via", "From", "To", "Call-ID", "CSeq"]
        .iter()
        .map(|h| format!("{h}: {}\r\n", header(&bye, h).unwrap()))
        .collect();
    proxy.send(
        e.sip,
        &format!("SIP/2.0 200 OK\r\n{copied}Content-Length: 0\r\n\r\n"),
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while !e.calls.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        e.calls.is_empty(),
        "the session still waits for its BYE's answer"
    );
    assert!(
        !proxy.gets("BYE ", Duration::from_millis(700)),
        "BYE retransmitted after its 200"
    );
}

/// RFC 3581 / §18.2.2: an in-dialog request is answered to where it came from.
#[test]
fn in_dialog_answers_go_to_the_requests_source() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    let caller = Sock::on("127.0.0.1");
    let tag = call_up(e.sip, &caller, "src-1@t", caller.addr(), "");
    let other = Sock::on("127.0.0.1");
    other.send(
        e.sip,
        &req(
            "OPTIONS",
            &format!("sip:100@{}", e.sip),
            other.addr(),
            "src-1@t",
            Some(&tag),
            2,
            "",
            "",
        ),
    );
    let (resp, _) = other.recv_until("SIP/2.0 200");
    assert_eq!(header(&resp, "CSeq"), Some("2 OPTIONS"));
}

/// Every request passes the trunk ACL: a BYE or INFO with the right tags from a source outside
/// every trunk's `allow` gets 403 and the call stays up; so does a request with no dialog.
/// §12.2.2: a BYE with another To tag gets 481 and the call stays up.
#[test]
fn strangers_and_wrong_tags_never_touch_a_dialog() {
    let e = start_with(&[hold()], &[("*", "hold")], &[], |c| {
        c.trunks[0].allow = vec!["127.0.0.1/32".into()];
    });
    let caller = Sock::on("127.0.0.1");
    let tag = call_up(e.sip, &caller, "acl-1@t", caller.addr(), "");
    let stranger = Sock::on("127.0.0.2");
    let uri = format!("sip:100@{}", e.sip);
    for method in ["BYE", "INFO", "INVITE"] {
        let body = if method == "INVITE" { SDP } else { "" };
        stranger.send(
            e.sip,
            &req(
                method,
                &uri,
                stranger.addr(),
                "acl-1@t",
                Some(&tag),
                5,
                "",
                body,
            ),
        );
        let (resp, _) = stranger.recv_until("SIP/2.0");
        assert!(
            resp.starts_with("SIP/2.0 403 Forbidden"),
            "{method}: {resp}"
        );
    }
    stranger.send(
        e.sip,
        &req("OPTIONS", &uri, stranger.addr(), "acl-2@t", None, 1, "", ""),
    );
    assert!(stranger.recv_until("SIP/2.0").0.starts_with("SIP/2.0 403"));
    caller.send(
        e.sip,
        &req(
            "BYE",
            &uri,
            caller.addr(),
            "acl-1@t",
            Some("not-ours"),
            6,
            "",
            "",
        ),
    );
    assert!(caller.recv_until("SIP/2.0").0.starts_with("SIP/2.0 481"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(e.activeflows()[0].status, Status::Running);
    caller.send(
        e.sip,
        &req("BYE", &uri, caller.addr(), "acl-1@t", Some(&tag), 7, "", ""),
    );
    assert!(caller.recv_until("SIP/2.0").0.starts_with("SIP/2.0 200"));
}

/// Dialogs are Call-ID and tags: a `connect` to this engine itself puts both legs under one
/// Call-ID, and the hairpinned call is bridged.
#[test]
fn a_hairpinned_call_is_bridged() {
    let port = free_port();
    let inner = flow(
        "inner",
        json!([{"type": "answer"}, {"type": "sleep", "option": {"duration": 60000}}]),
    );
    let outer = connect_to("outer", format!("sip:200@127.0.0.1:{port}"), 10000);
    let e = start_on(port, &[inner, outer], &[("200", "inner"), ("100", "outer")]);
    let caller = Sock::on("127.0.0.1");
    let tag = call_up(e.sip, &caller, "hairpin-1@t", caller.addr(), "");
    e.wait_for(
        "both activeflows, the inner one answered",
        Duration::from_secs(10),
        |all| {
            all.len() == 2
                && all
                    .iter()
                    .any(|a| a.executed_actions.iter().any(|x| x.action.kind == "sleep"))
        },
    );
    let (_, calls) = http(e.api, "GET", "/v1/calls", None);
    let answered = calls["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "answered")
        .count();
    assert_eq!(
        answered, 3,
        "caller, our leg and the hairpinned call: {calls}"
    );
    let uri = format!("sip:100@{}", e.sip);
    caller.send(
        e.sip,
        &req(
            "BYE",
            &uri,
            caller.addr(),
            "hairpin-1@t",
            Some(&tag),
            2,
            "",
            "",
        ),
    );
    caller.recv_until("SIP/2.0 200");
    e.wait_for("every activeflow ended", Duration::from_secs(10), |all| {
        all.iter().all(|a| a.status == Status::Ended)
    });
}

/// §17.1.1.2: Timer B (64·T1, here 3.2 s) stops at the first provisional: a callee that rings
/// 4.5 s and then answers is bridged; only `connect`'s ring_timeout ends ringing.
#[test]
fn a_callee_that_rings_past_timer_b_is_bridged() {
    let callee = Sock::on("127.0.0.1");
    let outer = connect_to("outer", format!("sip:bob@{}", callee.addr()), 30000);
    let e = start(
        &[outer],
        &[("*", "outer")],
        &[("ACTIVEFLOW_SIP_T1_MS", "50")],
    );
    let caller = Sock::on("127.0.0.1");
    let uri = format!("sip:100@{}", e.sip);
    let extra = format!("Contact: <sip:caller@{}>\r\n", caller.addr());
    caller.send(
        e.sip,
        &req(
            "INVITE",
            &uri,
            caller.addr(),
            "tb-1@t",
            None,
            1,
            &extra,
            SDP,
        ),
    );
    let (invite, from) = callee.recv_until("INVITE ");
    let answer = |code: &str, body: &str| {
        let mut out = String::new();
        for line in invite.lines().take_while(|l| !l.is_empty()) {
            let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
            if ["via", "from", "call-id", "cseq"].contains(&name.as_str()) {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        let to = header(&invite, "To").unwrap();
        format!(
            "SIP/2.0 {code}\r\n{out}To: {to};tag=callee\r\nContact: <sip:bob@{}>\r\n{}Content-Length: {}\r\n\r\n{body}",
            callee.addr(),
            if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" },
            body.len()
        )
    };
    callee.send(from, &answer("180 Ringing", ""));
    std::thread::sleep(Duration::from_millis(4500));
    callee.send(from, &answer("200 OK", SDP));
    callee.recv_until("ACK ");
    let (ok, _) = caller.recv_until("SIP/2.0 200");
    assert_eq!(header(&ok, "CSeq"), Some("1 INVITE"));
}

/// §13.3.1.4: the 2xx goes again until the ACK over TCP too.
#[test]
fn the_2xx_is_retransmitted_over_tcp_until_ack() {
    let e = start(
        &[hold()],
        &[("*", "hold")],
        &[("ACTIVEFLOW_SIP_T1_MS", "100")],
    );
    let mut tcp = TcpStream::connect(e.sip).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let local = tcp.local_addr().unwrap();
    let extra = format!("Contact: <sip:caller@{local};transport=tcp>\r\n");
    let invite = req(
        "INVITE",
        &format!("sip:100@{}", e.sip),
        local,
        "tcp-2xx@t",
        None,
        1,
        &extra,
        SDP,
    )
    .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    tcp.write_all(invite.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = String::new();
    let mut buf = [0u8; 8192];
    while seen.matches("SIP/2.0 200 OK").count() < 2 && Instant::now() < deadline {
        if let Ok(n) = tcp.read(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    assert!(seen.matches("SIP/2.0 200 OK").count() >= 2, "{seen}");
}

/// §9.2: the 200 to CANCEL carries the To tag of the INVITE's responses.
#[test]
fn the_200_to_cancel_carries_our_to_tag() {
    let wait = flow(
        "wait",
        json!([{"type": "sleep", "option": {"duration": 60000}}, {"type": "answer"}]),
    );
    let e = start(&[wait], &[("*", "wait")], &[]);
    let caller = Sock::on("127.0.0.1");
    let uri = format!("sip:100@{}", e.sip);
    let invite = req(
        "INVITE",
        &uri,
        caller.addr(),
        "cancel-1@t",
        None,
        1,
        "",
        SDP,
    );
    caller.send(e.sip, &invite);
    caller.recv_until("100 Trying");
    e.wait_for("the activeflow", Duration::from_secs(10), |all| {
        all.len() == 1
    });
    let cancel = invite
        .replacen("INVITE ", "CANCEL ", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        .replace("Content-Type: application/sdp\r\n", "")
        .replace(
            &format!("Content-Length: {}\r\n\r\n{SDP}", SDP.len()),
            "Content-Length: 0\r\n\r\n",
        );
    caller.send(e.sip, &cancel);
    let (ok, _) = caller.recv_until("SIP/2.0 200");
    let (terminated, _) = caller.recv_until("SIP/2.0 487");
    assert_eq!(to_tag_of(&ok), to_tag_of(&terminated));
}

/// §8.2.2.3: an INVITE requiring an extension we lack gets 420 naming it; §16.3/§8.1.1.6: one
/// with Max-Forwards 0 gets 483; §12.2.2: an in-dialog OPTIONS for no dialog gets 481.
#[test]
fn require_max_forwards_and_in_dialog_options() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    let caller = Sock::on("127.0.0.1");
    let uri = format!("sip:100@{}", e.sip);
    caller.send(
        e.sip,
        &req(
            "INVITE",
            &uri,
            caller.addr(),
            "req-1@t",
            None,
            1,
            "Require: 100rel, precondition\r\n",
            SDP,
        ),
    );
    let (r, _) = caller.recv_until("SIP/2.0 4");
    assert!(r.starts_with("SIP/2.0 420 Bad Extension"), "{r}");
    // 100rel is ours (RFC 3262); preconditions (RFC 3312) are not.
    assert_eq!(header(&r, "Unsupported"), Some("precondition"));
    let zero = req("INVITE", &uri, caller.addr(), "mf-1@t", None, 1, "", SDP)
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    caller.send(e.sip, &zero);
    assert!(caller
        .recv_until("SIP/2.0 4")
        .0
        .starts_with("SIP/2.0 483 Too Many Hops"));
    caller.send(
        e.sip,
        &req(
            "OPTIONS",
            &uri,
            caller.addr(),
            "gone@t",
            Some("t1"),
            1,
            "",
            "",
        ),
    );
    assert!(caller.recv_until("SIP/2.0").0.starts_with("SIP/2.0 481"));
    assert!(!caller.gets("SIP/2.0", Duration::from_millis(200)));
    assert!(e.activeflows().is_empty());
}

/// A leg bridged for a call carries its Max-Forwards less one (RFC 3261 §16.6 step 3, as a
/// B2BUA does), so a flow that connects back to the engine itself dies out after the hops the
/// caller allowed instead of looping for ever.
#[test]
fn max_forwards_is_decremented_onto_legs_and_ends_a_routing_loop() {
    let callee = Sock::on("127.0.0.1");
    let port = free_port();
    let to_callee = connect_to("to-callee", format!("sip:bob@{}", callee.addr()), 2000);
    let looping = connect_to("loop", format!("sip:300@127.0.0.1:{port}"), 10000);
    let e = start_on(
        port,
        &[to_callee, looping],
        &[("200", "to-callee"), ("300", "loop")],
    );
    let caller = Sock::on("127.0.0.1");
    let invite = |number: &str, call_id: &str, hops: u32| {
        req(
            "INVITE",
            &format!("sip:{number}@{}", e.sip),
            caller.addr(),
            call_id,
            None,
            1,
            "",
            SDP,
        )
        .replace("Max-Forwards: 70", &format!("Max-Forwards: {hops}"))
    };
    caller.send(e.sip, &invite("200", "mf-2@t", 5));
    let (leg_invite, _) = callee.recv_until("INVITE ");
    assert_eq!(
        header(&leg_invite, "Max-Forwards"),
        Some("4"),
        "{leg_invite}"
    );

    caller.send(e.sip, &invite("300", "mf-loop@t", 3));
    // caller → loop (3) → leg (2) → loop (2) → leg (1) → loop (1) → no leg (0): three hops.
    let hop = |a: &ActiveflowRecord| {
        a.executed_actions
            .iter()
            .any(|x| x.action.kind == "connect" && x.action.option.to_string().contains("300@"))
    };
    e.wait_for(
        "three hops, every one ended",
        Duration::from_secs(20),
        |all| {
            let hops: Vec<_> = all.iter().filter(|a| hop(a)).collect();
            hops.len() >= 3 && hops.iter().all(|a| a.status == Status::Ended)
        },
    );
    std::thread::sleep(Duration::from_millis(500));
    let hops = e.activeflows().iter().filter(|a| hop(a)).count();
    assert_eq!(hops, 3, "one activeflow per hop the caller allowed");
    let (last, _) = caller.recv_until("SIP/2.0 6");
    assert_eq!(header(&last, "Call-ID"), Some("mf-loop@t"));
}

/// RFC 4028 §8.1: an INVITE asking for a session interval below `sip.min_se_seconds` gets 422
/// with our `Min-SE`; one within it is answered with the agreed `Session-Expires` and, as the
/// caller supports timers, `Require: timer` (§9).
#[test]
fn session_timers_422_and_the_agreed_interval() {
    let e = start(&[hold()], &[("*", "hold")], &[]);
    let caller = Sock::on("127.0.0.1");
    let uri = format!("sip:100@{}", e.sip);
    let short = "Supported: timer\r\nSession-Expires: 60\r\n";
    caller.send(
        e.sip,
        &req("INVITE", &uri, caller.addr(), "se-1@t", None, 1, short, SDP),
    );
    let (r, _) = caller.recv_until("SIP/2.0 4");
    assert!(
        r.starts_with("SIP/2.0 422 Session Interval Too Small"),
        "{r}"
    );
    assert_eq!(header(&r, "Min-SE"), Some("90"));
    let ok = "Supported: timer\r\nSession-Expires: 600;refresher=uac\r\nMin-SE: 90\r\n";
    caller.send(
        e.sip,
        &req("INVITE", &uri, caller.addr(), "se-2@t", None, 1, ok, SDP),
    );
    let (r, _) = caller.recv_until("200 OK");
    assert_eq!(
        header(&r, "Session-Expires"),
        Some("600;refresher=uac"),
        "{r}"
    );
    assert_eq!(header(&r, "Require"), Some("timer"));
}
