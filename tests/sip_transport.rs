//! SIP transport on real sockets (RFC 3261 §18): TCP connections of our own, connection holds,
//! bounded write queues, caps and the ACL at accept; then the engine end to end over TCP and
//! UDP with traffic real networks send (IPv6 literals, Latin-1 bytes, 60 Via headers).
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use activeflow::sip::transport::{
    serve_tcp, Inbound, InboundHandler, Peer, SipSender, TcpOptions, TransportError, TransportKind,
};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

struct Collect(mpsc::UnboundedSender<Inbound>);

impl InboundHandler for Collect {
    fn on_message(&self, inbound: Inbound) {
        let _ = self.0.send(inbound);
    }
}

/// A transport serving TCP on 127.0.0.1:0 with `options`; returns once it serves.
async fn transport(
    options: TcpOptions,
    allow: &str,
) -> (SipSender, SocketAddr, mpsc::UnboundedReceiver<Inbound>) {
    let udp = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sender = SipSender::with_tcp_options(udp, addr, options);
    let (tx, rx) = mpsc::unbounded_channel();
    let allow = vec![allow.parse().unwrap()];
    let serving = serve_tcp(
        listener,
        Arc::new(Collect(tx)),
        sender.clone(),
        65_535,
        allow,
    );
    tokio::spawn(serving);
    while !sender.tcp_serving() {
        tokio::task::yield_now().await;
    }
    (sender, addr, rx)
}

fn tcp(addr: SocketAddr) -> Peer {
    Peer {
        addr,
        transport: TransportKind::Tcp,
    }
}

fn options(call_id: &str, pad: usize) -> Bytes {
    let pad = "x".repeat(pad);
    Bytes::from(format!(
        "OPTIONS sip:peer@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK{call_id}\r\n\
         From: <sip:engine@127.0.0.1>;tag=1\r\nTo: <sip:peer@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\nX-Pad: {pad}\r\nContent-Length: 0\r\n\r\n"
    ))
}

/// Reads until `needle` has been seen (or panics after 5 s).
async fn read_until(conn: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let mut buf = [0u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, conn.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in {:?}", String::from_utf8_lossy(&seen)))
            .unwrap();
        assert!(n > 0, "closed before {needle:?}");
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Whether the peer side sees the connection end within `limit` (EOF or reset), reading and
/// discarding whatever was in flight.
async fn closes_within(conn: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

async fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// RFC 3261 §18.1.1 / §18.2.2: with no connection to the peer, the transport opens one; what
/// was sent while connecting is delivered in order, and a response arriving on the new
/// connection reaches the handler like one on an accepted connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_without_a_connection_opens_one_and_reads_responses_on_it() {
    let (sender, _, mut inbound) = transport(TcpOptions::default(), "127.0.0.0/8").await;
    let peer_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = tcp(peer_listener.local_addr().unwrap());
    sender
        .send(&peer, &options("own-1", 0))
        .expect("queued while connecting");
    sender
        .send(&peer, &options("own-2", 0))
        .expect("queued too");
    let (mut conn, _) = peer_listener.accept().await.unwrap();
    let seen = read_until(&mut conn, "Call-ID: own-2").await;
    assert!(seen.find("own-1") < seen.find("own-2"), "in order: {seen}");
    let response = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKown-1\r\n\
        From: <sip:engine@127.0.0.1>;tag=1\r\nTo: <sip:peer@127.0.0.1>;tag=2\r\nCall-ID: own-1\r\n\
        CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    conn.write_all(response.as_bytes()).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), inbound.recv())
        .await
        .expect("the response reached the handler")
        .unwrap();
    assert!(got.message.is_response());
    assert_eq!(got.peer, peer);
    assert_eq!(sender.tcp_connection_count(), 1);
}

/// §18.1.1: a failed connect drops what was queued for it, and a later send tries again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_connect_drops_its_queue_and_a_later_send_connects_again() {
    let (sender, _, _inbound) = transport(TcpOptions::default(), "127.0.0.0/8").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = tcp(closed.local_addr().unwrap());
    drop(closed); // nothing listens there now: connect is refused
    sender.send(&peer, &options("lost-1", 0)).expect("queued");
    wait_until("the failed connection gone", Duration::from_secs(5), || {
        sender.tcp_connection_count() == 0
    })
    .await;
    let listener = TcpListener::bind(peer.addr).await.unwrap();
    sender.send(&peer, &options("retry-2", 0)).expect("queued");
    let (mut conn, _) = listener.accept().await.unwrap();
    let seen = read_until(&mut conn, "Call-ID: retry-2").await;
    assert!(
        !seen.contains("lost-1"),
        "the first message was dropped: {seen}"
    );
}

/// §18.3 / issue 13: a connection a dialog holds is not closed for idleness; once the hold is
/// dropped the idle timeout closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_connection_outlives_the_idle_timeout_and_closes_once_released() {
    let opts = TcpOptions {
        idle_timeout: Duration::from_secs(1),
        ..TcpOptions::default()
    };
    let (sender, addr, mut inbound) = transport(opts, "127.0.0.0/8").await;
    let mut held = TcpStream::connect(addr).await.unwrap();
    let mut unheld = TcpStream::connect(addr).await.unwrap();
    held.write_all(&options("held", 0)).await.unwrap();
    let first = inbound.recv().await.unwrap();
    assert_eq!(first.peer.addr, held.local_addr().unwrap());
    let hold = sender.hold(&first.peer).expect("tcp peers can be held");
    assert!(sender
        .hold(&Peer {
            transport: TransportKind::Udp,
            ..first.peer
        })
        .is_none());
    assert!(
        closes_within(&mut unheld, Duration::from_secs(3)).await,
        "unheld idles out"
    );
    assert!(
        !closes_within(&mut held, Duration::from_millis(2500)).await,
        "held stays open"
    );
    drop(hold);
    assert!(
        closes_within(&mut held, Duration::from_secs(3)).await,
        "released idles out"
    );
}

/// Issue 13: a peer that never reads is disconnected once its bounded write queue is full
/// (`WriteQueueFull`), instead of the engine buffering without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_is_disconnected_when_its_queue_fills() {
    let opts = TcpOptions {
        write_queue: 8,
        write_timeout: Duration::from_secs(60),
        ..TcpOptions::default()
    };
    let (sender, _, _inbound) = transport(opts, "127.0.0.0/8").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = tcp(listener.local_addr().unwrap());
    sender.send(&peer, &options("stall-0", 0)).unwrap();
    let (mut conn, _) = listener.accept().await.unwrap(); // and never read from it
    let mut sent = 0usize;
    let error = loop {
        match sender.send(&peer, &options("stall", 64 * 1024)) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        // At most the kernel's socket buffers plus the queue: 64 MiB would mean no bound.
        assert!(sent < 1024, "no write queue bound after {sent} messages");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    assert!(
        matches!(error, TransportError::WriteQueueFull(a) if a == peer.addr),
        "{error}"
    );
    wait_until(
        "the stalled connection closed",
        Duration::from_secs(5),
        || sender.tcp_connection_count() == 0,
    )
    .await;
    assert!(closes_within(&mut conn, Duration::from_secs(10)).await);
}

/// Issue 13: a write that makes no progress for `write_timeout` closes the connection even when
/// the queue never fills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_without_progress_closes_the_connection() {
    let opts = TcpOptions {
        write_timeout: Duration::from_secs(1),
        ..TcpOptions::default()
    };
    let (sender, _, _inbound) = transport(opts, "127.0.0.0/8").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = tcp(listener.local_addr().unwrap());
    sender.send(&peer, &options("slow-0", 0)).unwrap();
    let (_conn, _) = listener.accept().await.unwrap(); // never read
                                                       // 200 × 64 KiB fills the kernel buffers but not the 256-message queue.
    for _ in 0..200 {
        sender.send(&peer, &options("slow", 64 * 1024)).unwrap();
    }
    wait_until(
        "the write timeout closing it",
        Duration::from_secs(8),
        || sender.tcp_connection_count() == 0,
    )
    .await;
}

/// Issue 13: a source outside every trunk's `allow` is closed at accept, before it can send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_outside_the_acl_is_closed_at_accept() {
    let (_sender, addr, _inbound) = transport(TcpOptions::default(), "10.0.0.0/8").await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    assert!(closes_within(&mut conn, Duration::from_secs(2)).await);
    let (_sender, addr, _inbound) = transport(TcpOptions::default(), "127.0.0.0/8").await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    assert!(
        !closes_within(&mut conn, Duration::from_millis(300)).await,
        "allowed stays open"
    );
}

// ---- the engine end to end ----

/// answer, then hold for a minute (the operator stops it).
fn engine(env: &[(&str, &str)]) -> common::TestEngine {
    let hold = common::flow(
        "hold",
        serde_json::json!([
            {"type": "answer"},
            {"type": "sleep", "option": {"duration": 60000}},
            {"type": "hangup"}
        ]),
    );
    common::start(&[hold], &[("200", "hold")], env)
}

/// An INVITE over TCP from `local` (Via and Contact name it; the Contact says TCP).
fn tcp_invite(engine: SocketAddr, local: SocketAddr, call_id: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0\r\n";
    format!(
        "INVITE sip:200@{engine};transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch=z9hG4bK-{call_id}\r\n\
         From: <sip:raw@{local}>;tag=raw-{call_id}\r\nTo: <sip:200@{engine}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:raw@{local};transport=tcp>\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// The `name` header line's value in a raw message.
fn header_of(msg: &str, name: &str) -> String {
    common::header(msg, name)
        .unwrap_or_else(|| panic!("no {name} in {msg}"))
        .to_string()
}

/// A reply to `req` with its Via, From, To, Call-ID and CSeq.
fn reply_to(req: &str, status: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        out.push_str(&format!("{name}: {}\r\n", header_of(req, name)));
    }
    out + "Content-Length: 0\r\n\r\n"
}

/// A TCP socket bound to `addr` that shares the port with other SO_REUSEPORT sockets (so a
/// phone can listen on the port it connects from, as SIP phones over TCP do).
fn shared_port_socket(addr: SocketAddr) -> tokio::net::TcpSocket {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.set_reuseaddr(true).unwrap();
    s.set_reuseport(true).unwrap();
    s.bind(addr).unwrap();
    s
}

/// RFC 3261 §18.2.2 / §18.1.1: the caller closes its TCP connection after the call is set up;
/// the engine's BYE (operator stop) reaches it over a NEW connection the engine opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_sends_bye_over_a_new_connection_after_the_caller_closed_its_own() {
    let e = engine(&[]);
    let listen = shared_port_socket("127.0.0.1:0".parse().unwrap());
    let local = listen.local_addr().unwrap();
    let listener = listen.listen(16).unwrap();
    let mut conn = shared_port_socket(local).connect(e.sip).await.unwrap();
    conn.write_all(tcp_invite(e.sip, local, "tcp-bye-1").as_bytes())
        .await
        .unwrap();
    let ok = read_until(&mut conn, "SIP/2.0 200 OK").await;
    let ok = &ok[ok.find("SIP/2.0 200 OK").unwrap()..];
    let ack = format!(
        "ACK sip:200@{} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-ack-1\r\n\
         From: {}\r\nTo: {}\r\nCall-ID: tcp-bye-1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        e.sip,
        header_of(ok, "From"),
        header_of(ok, "To")
    );
    conn.write_all(ack.as_bytes()).await.unwrap();
    // Close our side and wait until the engine has closed the connection too.
    conn.shutdown().await.unwrap();
    assert!(closes_within(&mut conn, Duration::from_secs(5)).await);
    drop(conn);
    e.wait_for("the call answered", Duration::from_secs(10), |all| {
        all.len() == 1 && common::executed_types(&all[0]).len() == 2
    });
    let id = e.activeflows()[0].id;
    let (status, body) = common::http(e.api, "POST", &format!("/v1/activeflows/{id}/stop"), None);
    assert_eq!(status, 200, "{body}");
    let (mut fresh, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("the engine opened a new connection for its BYE")
        .unwrap();
    let bye = read_until(&mut fresh, "Content-Length").await;
    assert!(bye.starts_with("BYE "), "{bye}");
    assert_eq!(header_of(&bye, "Call-ID"), "tcp-bye-1");
    fresh
        .write_all(reply_to(&bye, "200 OK").as_bytes())
        .await
        .unwrap();
}

/// Issue 13: the trunk ACL is checked at accept: a TCP source outside every trunk's `allow` is
/// closed before it can send anything (today it stays open and gets 403 per INVITE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_closes_a_tcp_source_outside_every_trunk_acl_at_accept() {
    let hold = common::flow("hold", serde_json::json!([{"type": "answer"}]));
    let e = common::start_with(&[hold], &[("200", "hold")], &[], |c| {
        for t in &mut c.trunks {
            t.allow = vec!["10.0.0.0/8".into()];
        }
    });
    let mut conn = TcpStream::connect(e.sip).await.unwrap();
    assert!(closes_within(&mut conn, Duration::from_secs(2)).await);
}

/// Issue 13: TCP connections from one source IP are capped (`sip.tcp_max_connections_per_ip`);
/// the one over the cap is closed at once and a slot freed by a close is usable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_per_source_ip_are_capped() {
    let e = engine(&[("ACTIVEFLOW_SIP_TCP_MAX_CONNECTIONS_PER_IP", "2")]);
    let options = |conn: &TcpStream, n: u32| {
        let local = conn.local_addr().unwrap();
        format!(
            "OPTIONS sip:200@{} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-cap-{n}\r\n\
             From: <sip:raw@{local}>;tag=cap-{n}\r\nTo: <sip:200@{0}>\r\nCall-ID: cap-{n}\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            e.sip
        )
    };
    let mut open = Vec::new();
    for n in 0..2 {
        let mut conn = TcpStream::connect(e.sip).await.unwrap();
        conn.write_all(options(&conn, n).as_bytes()).await.unwrap();
        read_until(&mut conn, "SIP/2.0 200 OK").await;
        open.push(conn);
    }
    let mut over = TcpStream::connect(e.sip).await.unwrap();
    assert!(
        closes_within(&mut over, Duration::from_secs(2)).await,
        "third refused"
    );
    let mut first = open.remove(0);
    first.shutdown().await.unwrap();
    assert!(closes_within(&mut first, Duration::from_secs(5)).await);
    let mut again = TcpStream::connect(e.sip).await.unwrap();
    again
        .write_all(options(&again, 3).as_bytes())
        .await
        .unwrap();
    read_until(&mut again, "SIP/2.0 200 OK").await;
}

/// RFC 3261 §25.1 wants UTF-8, but PBXes send Latin-1 display names: such an INVITE is
/// answered like any other (today rsip refuses it and the call is dropped unanswered).
#[test]
fn an_invite_with_a_latin1_display_name_is_answered() {
    let e = engine(&[]);
    let peer = common::RawPeer::new(e.sip);
    let invite = peer
        .invite("200", "latin1-1@test", "z9hG4bK-latin1-1")
        .replace("From: <sip:raw@", "From: \"Jos\u{1}\" <sip:raw@");
    let mut bytes = invite.into_bytes();
    let at = bytes.iter().position(|&b| b == 1).unwrap();
    bytes[at] = 0xe9;
    peer.socket.send_to(&bytes, e.sip).unwrap();
    peer.recv_until("100 Trying");
    let ok = peer.recv_until("200 OK");
    assert!(
        header_of(&ok, "From").contains(";tag=raw-latin1-1@test"),
        "{ok}"
    );
}

/// RFC 3261 §19.1.1 / RFC 5118: IPv6 references in the Request-URI, Via, From, To and
/// Contact; the call is answered and the 200 echoes them as sent.
#[test]
fn an_invite_with_ipv6_references_is_answered_and_echoed() {
    let e = engine(&[]);
    let peer = common::RawPeer::new(e.sip);
    let invite = peer
        .invite("200", "v6-1@test", "z9hG4bK-v6-1")
        .replacen(&format!("sip:200@{}", e.sip), "sip:200@[2001:db8::10]", 2)
        .replace("From: <sip:raw@127.0.0.1", "From: <sip:raw@[2001:db8::20]")
        .replace(
            "Contact: <sip:raw@127.0.0.1",
            "Contact: <sip:raw@[2001:db8::20]",
        )
        .replace(
            "Via: SIP/2.0/UDP 127.0.0.1",
            "Via: SIP/2.0/UDP [2001:db8::20]",
        );
    assert!(
        invite.starts_with("INVITE sip:200@[2001:db8::10] SIP/2.0"),
        "{invite}"
    );
    peer.send(&invite);
    let ok = peer.recv_until("200 OK");
    assert_eq!(
        header_of(&ok, "To").split(";tag").next(),
        Some("<sip:200@[2001:db8::10]>")
    );
    assert!(
        header_of(&ok, "From").starts_with("<sip:raw@[2001:db8::20]:"),
        "{ok}"
    );
}

/// Issue 13 (no amplification): a malformed request with 60 Via headers gets a 400 that
/// carries at most 10 of them (every hop of a real path) and is a fraction of the request.
#[test]
fn a_request_with_60_vias_gets_a_small_stateless_400() {
    let e = engine(&[]);
    let peer = common::RawPeer::new(e.sip);
    let port = peer.port();
    let vias: String = (1..60)
        .map(|i| {
            format!(
                "Via: SIP/2.0/UDP 10.0.{}.{};branch=z9hG4bK-amp-{i}\r\n",
                i / 250,
                i % 250
            )
        })
        .collect();
    let request = format!(
        "OPTIONS sip:200@{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-amp-0\r\n\
         {vias}From: <sip:raw@127.0.0.1:{port}>;tag=amp\r\nTo: <sip:200@{0}>\r\nCall-ID: amp-1\r\n\
         CSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        e.sip
    );
    peer.send(&request);
    let reply = peer.recv_until("400");
    assert_eq!(reply.matches("Via:").count(), 10, "{reply}");
    assert!(
        reply.len() * 4 < request.len(),
        "{} vs {} bytes",
        reply.len(),
        request.len()
    );
}

/// Issue 13: a TCP peer that sends requests but never reads the responses is disconnected once
/// its write queue (`sip.tcp_write_queue`) fills behind the full socket, instead of the engine
/// buffering every response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_disconnects_a_tcp_peer_that_never_reads() {
    let e = engine(&[("ACTIVEFLOW_SIP_TCP_WRITE_QUEUE", "16")]);
    let mut conn = TcpStream::connect(e.sip).await.unwrap();
    let local = conn.local_addr().unwrap();
    let batch: String = (0..200)
        .map(|n| {
            format!(
                "OPTIONS sip:200@{0} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-nr-{n}\r\n\
                 From: <sip:raw@{local}>;tag=nr\r\nTo: <sip:200@{0}>\r\nCall-ID: nr-{n}\r\n\
                 CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nX-Pad: {1}\r\nContent-Length: 0\r\n\r\n",
                e.sip,
                "p".repeat(600)
            )
        })
        .collect();
    // 500 batches = 100,000 responses (~40 MB): far beyond any socket buffer.
    let mut disconnected = false;
    for _ in 0..500 {
        match tokio::time::timeout(Duration::from_secs(5), conn.write_all(batch.as_bytes())).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                disconnected = true;
                break;
            }
        }
    }
    // Either our writes already failed, or the engine closed it and reading hits the end.
    assert!(disconnected || closes_within(&mut conn, Duration::from_secs(20)).await);
}
