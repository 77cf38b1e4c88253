//! Misbehaving external media hosts for tests (each on its own thread, real sockets): a
//! WebSocket host that completes the handshake and then never reads (a tiny receive buffer, so
//! the engine's writes back up quickly), one that closes after the first audio frame, and an
//! RTP host that answers the first packet with a flood. Plus a reader of /proc/net/tcp to see
//! whether the engine still holds a connection's file descriptor.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a [`WsHost`] does after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsBehaviour {
    /// Never reads again (keeps the connection open, unread, until the test ends).
    Deaf,
    /// Reads the metadata and the first binary frame, then closes (RFC 6455 §5.5.1).
    CloseAfterFirstFrame,
}

pub struct WsHost {
    pub url: String,
    pub port: u16,
    accepted: Arc<AtomicUsize>,
}

impl WsHost {
    pub fn start(behaviour: WsBehaviour) -> Self {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        // Inherited by accepted connections: the kernel keeps only a few KB of ours unread.
        socket.set_recv_buffer_size(2048).expect("rcvbuf");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        socket.bind(&any.into()).expect("bind");
        socket.listen(16).expect("listen");
        let listener: std::net::TcpListener = socket.into();
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(serve(listener, behaviour, count));
        });
        WsHost {
            url: format!("ws://127.0.0.1:{port}/media"),
            port,
            accepted,
        }
    }

    /// Connections that completed the handshake.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

async fn serve(listener: std::net::TcpListener, behaviour: WsBehaviour, count: Arc<AtomicUsize>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
    // Deaf connections are kept here, never polled.
    let mut kept = Vec::new();
    while let Ok((tcp, _)) = listener.accept().await {
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            continue;
        };
        count.fetch_add(1, Ordering::Relaxed);
        match behaviour {
            WsBehaviour::Deaf => kept.push(ws),
            WsBehaviour::CloseAfterFirstFrame => {
                while let Some(Ok(message)) = ws.next().await {
                    if matches!(message, Message::Binary(_)) {
                        let _ = ws.send(Message::Close(None)).await;
                        break;
                    }
                }
                // Drain until the engine answers the close or drops the connection.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
            }
        }
    }
}

/// An RTP host that waits for the engine's first packet, then sends `valid` PCMU packets of
/// 20 ms and `bad` packets of wrong sizes back at once (a flood, no pacing).
pub struct FloodingRtpHost {
    pub addr: SocketAddr,
    pub sent: Arc<Mutex<Option<usize>>>,
}

impl FloodingRtpHost {
    pub fn start(valid: usize, bad: usize) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = socket.local_addr().expect("addr");
        let sent = Arc::new(Mutex::new(None));
        let done = sent.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let Ok((_, engine)) = socket.recv_from(&mut buf) else {
                return;
            };
            let packet = |seq: u16, len: usize| {
                let mut p = vec![0x80, 0];
                p.extend_from_slice(&seq.to_be_bytes());
                p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                p.extend_from_slice(&0xabcd_u32.to_be_bytes());
                p.extend(std::iter::repeat_n(0x55u8, len));
                p
            };
            let mut n = 0;
            for i in 0..valid {
                n += usize::from(socket.send_to(&packet(i as u16, 160), engine).is_ok());
            }
            for i in 0..bad {
                let len = if i % 2 == 0 { 600 } else { 100 };
                n += usize::from(
                    socket
                        .send_to(&packet(9000 + i as u16, len), engine)
                        .is_ok(),
                );
            }
            *done.lock().expect("lock") = Some(n);
            // Keep the socket (and its address) until the test ends.
            std::thread::sleep(Duration::from_secs(30));
        });
        FloodingRtpHost { addr, sent }
    }
}

/// The engine's TCP connection from `local` (its address in the stream's result): `None`
/// when no socket has that address, else `(inode, unsent bytes)`. Inode 0 means the engine
/// closed its file descriptor (the kernel may still be finishing the connection).
pub fn tcp_socket(local: SocketAddr) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let SocketAddr::V4(v4) = local else {
        return None;
    };
    let want = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(v4.ip().octets()),
        v4.port()
    );
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&want.as_str()) {
            return None;
        }
        let queues = fields.get(4)?;
        let tx = u64::from_str_radix(queues.split(':').next()?, 16).ok()?;
        let inode = fields.get(9)?.parse().ok()?;
        Some((inode, tx))
    })
}

/// Whether this process (the test, with the engine inside it) still has a file descriptor on
/// the socket with `inode`.
pub fn fd_open(inode: u64) -> bool {
    let want = format!("socket:[{inode}]");
    std::fs::read_dir("/proc/self/fd").is_ok_and(|dir| {
        dir.flatten().any(|entry| {
            std::fs::read_link(entry.path()).is_ok_and(|target| target.to_string_lossy() == want)
        })
    })
}
