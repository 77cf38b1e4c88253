//! A test RTP echo server for external media: a UDP socket on its own thread that records every
//! datagram it receives (parsed as RTP by this file, not the engine) and sends it straight
//! back to its source, as a speech bot that repeats the caller would (or, as a sink, answers
//! nothing).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::rtp::Packet;

pub struct RtpEchoServer {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<(SocketAddr, Packet)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RtpEchoServer {
    /// Records and echoes every datagram.
    pub fn start() -> Self {
        Self::spawn(true)
    }

    /// Records and answers nothing: the ears of a caller whose SDP points here.
    pub fn sink() -> Self {
        Self::spawn(false)
    }

    fn spawn(echo: bool) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("echo server bind");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let addr = socket.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    if let Some(p) = parse(&buf[..n]) {
                        r.lock().expect("lock").push((from, p));
                    }
                    if echo {
                        let _ = socket.send_to(&buf[..n], from);
                    }
                }
            }
        });
        RtpEchoServer {
            addr,
            received,
            stop,
            thread: Some(thread),
        }
    }

    /// Every RTP packet received so far, in order.
    pub fn packets(&self) -> Vec<Packet> {
        let all = self.received.lock().expect("lock");
        all.iter().map(|(_, p)| p.clone()).collect()
    }

    pub fn count(&self) -> usize {
        self.received.lock().expect("lock").len()
    }

    /// Where the packets came from (the engine's external media socket).
    pub fn sources(&self) -> Vec<SocketAddr> {
        let all = self.received.lock().expect("lock");
        let mut s: Vec<SocketAddr> = all.iter().map(|(a, _)| *a).collect();
        s.dedup();
        s
    }
}

impl Drop for RtpEchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn parse(b: &[u8]) -> Option<Packet> {
    if b.len() < 12 || b[0] >> 6 != 2 {
        return None;
    }
    let start = 12 + usize::from(b[0] & 0x0f) * 4;
    Some(Packet {
        at: std::time::Instant::now(),
        payload_type: b[1] & 0x7f,
        marker: b[1] & 0x80 != 0,
        sequence: u16::from_be_bytes([b[2], b[3]]),
        timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        payload: b.get(start..)?.to_vec(),
    })
}

/// A test WebSocket media server (RFC 6455, tokio-tungstenite on its own thread): records the
/// first text frame (the engine's metadata) and every binary frame, and sends each binary frame
/// straight back, as a bot that repeats the caller would; one connection at a time.
pub struct WsEchoServer {
    pub url: String,
    texts: Arc<Mutex<Vec<String>>>,
    frames: Arc<Mutex<Vec<Vec<u8>>>>,
    closed: Arc<AtomicBool>,
}

impl WsEchoServer {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("ws bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("ws://{}/media", listener.local_addr().expect("addr"));
        let texts = Arc::new(Mutex::new(Vec::new()));
        let frames = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(AtomicBool::new(false));
        let (t, f, c) = (texts.clone(), frames.clone(), closed.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(serve(listener, t, f, c));
        });
        WsEchoServer {
            url,
            texts,
            frames,
            closed,
        }
    }

    pub fn texts(&self) -> Vec<String> {
        self.texts.lock().expect("lock").clone()
    }

    pub fn frames(&self) -> Vec<Vec<u8>> {
        self.frames.lock().expect("lock").clone()
    }

    pub fn count(&self) -> usize {
        self.frames.lock().expect("lock").len()
    }

    /// The engine closed the connection (a close frame or the end of the TCP stream).
    pub fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

async fn serve(
    listener: std::net::TcpListener,
    texts: Arc<Mutex<Vec<String>>>,
    frames: Arc<Mutex<Vec<Vec<u8>>>>,
    closed: Arc<AtomicBool>,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
    while let Ok((tcp, _)) = listener.accept().await {
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            continue;
        };
        closed.store(false, Ordering::Relaxed);
        while let Some(Ok(message)) = ws.next().await {
            match message {
                Message::Text(t) => texts.lock().expect("lock").push(t.to_string()),
                Message::Binary(b) => {
                    frames.lock().expect("lock").push(b.to_vec());
                    if ws.send(Message::Binary(b)).await.is_err() {
                        break;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        closed.store(true, Ordering::Relaxed);
    }
}
