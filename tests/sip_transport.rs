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
