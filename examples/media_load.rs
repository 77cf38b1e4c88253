//! Media pacing load (bench/media.sh): brings N calls up over raw SIP/UDP, each with its own RTP
//! socket, and measures how regularly the engine's RTP arrives while every call plays a prompt
//! (arrival times are the kernel's receive timestamps, SO_TIMESTAMPNS, so the receiver's own
//! scheduling does not count):
//! the deviation of each inter-packet interval from 20 ms (p50/p99/max), packets per call, and
//! the engine's CPU (from /proc). `--reference` measures the same receiver against N senders of
//! its own, paced by tokio timers on a thread of their own (not the receiver's), in the same
//! run: the floor the machine and receiver impose.
//!
//! Usage: media_load <engine-sip-addr> <calls> <rate/s> <number> <measure-seconds> <engine-pid>
//!        media_load --reference <calls> <measure-seconds>

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use tokio::io::Interest;

/// Kernel receive times (seconds) per call.
type Arrivals = Rc<std::cell::RefCell<Vec<Vec<f64>>>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    if args.first().map(String::as_str) == Some("--reference") {
        let calls: usize = arg(&args, 1, "calls");
        let seconds: u64 = arg(&args, 2, "seconds");
        local.block_on(&rt, reference(calls, seconds));
    } else {
        let sip: SocketAddr = arg(&args, 0, "engine sip address");
        let calls: usize = arg(&args, 1, "calls");
        let rate: u64 = arg(&args, 2, "rate");
        let number = args.get(3).cloned().unwrap_or_else(|| "play".into());
        let seconds: u64 = arg(&args, 4, "seconds");
        let pid: u32 = arg(&args, 5, "engine pid");
        local.block_on(&rt, engine(sip, calls, rate, number, seconds, pid));
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("argument {i}: {what}"))
}

/// Binds `n` receivers that timestamp every packet while `measuring` is set.
async fn receivers(n: usize, measuring: Rc<AtomicBool>) -> (Vec<SocketAddr>, Arrivals) {
    let arrivals: Arrivals = Rc::new(std::cell::RefCell::new(vec![Vec::new(); n]));
    let mut addrs = Vec::with_capacity(n);
    for i in 0..n {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind rtp");
        addrs.push(socket.local_addr().expect("addr"));
        let (arrivals, measuring) = (arrivals.clone(), measuring.clone());
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true).expect("SO_TIMESTAMPNS");
        tokio::task::spawn_local(async move {
            loop {
                if socket.readable().await.is_err() {
                    return;
                }
                while let Ok(at) = socket.try_io(Interest::READABLE, || kernel_time(&socket)) {
                    if measuring.load(Ordering::Relaxed) {
                        arrivals.borrow_mut()[i].push(at);
                    }
                }
            }
        });
    }
    (addrs, arrivals)
}

/// Reads one datagram; its kernel receive time in seconds.
fn kernel_time(socket: &UdpSocket) -> std::io::Result<f64> {
    let mut buf = [0u8; 2048];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(std::io::Error::from)?;
    let mut at = None;
    for cmsg in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmTimestampns(ts) = cmsg {
            at = Some(ts.tv_sec() as f64 + ts.tv_nsec() as f64 / 1e9);
        }
    }
    at.ok_or_else(|| std::io::Error::other("no receive timestamp"))
}

fn report(label: &str, arrivals: &[Vec<f64>], seconds: u64, cpu: Option<f64>) {
    let mut deviations: Vec<f64> = Vec::new();
    let mut packets = Vec::new();
    for call in arrivals {
        packets.push(call.len());
        for w in call.windows(2) {
            let gap = (w[1] - w[0]) * 1000.0;
            deviations.push((gap - 20.0).abs());
        }
    }
    deviations.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        deviations
            .get(((deviations.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let expected = seconds * 50;
    let short = packets
        .iter()
        .filter(|p| (**p as u64) < expected * 95 / 100)
        .count();
    println!(
        "{label}: calls {} intervals {} deviation_ms p50 {:.3} p99 {:.3} max {:.3}; \
         packets/call min {} max {} (expected {expected}); calls short of 95%: {short}{}",
        arrivals.len(),
        deviations.len(),
        pct(0.5),
        pct(0.99),
        deviations.last().copied().unwrap_or(f64::NAN),
        packets.iter().min().copied().unwrap_or(0),
        packets.iter().max().copied().unwrap_or(0),
        cpu.map(|c| format!("; engine CPU {c:.1}% of one core"))
            .unwrap_or_default(),
    );
}

/// N local senders paced by tokio intervals, measured by the same receivers.
async fn reference(calls: usize, seconds: u64) {
    let measuring = Rc::new(AtomicBool::new(false));
    let (addrs, arrivals) = receivers(calls, measuring.clone()).await;
    // The senders run on their own OS thread and runtime, as the engine's media does on its
    // own threads: the receiving thread that measures never also paces the packets.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("sender runtime");
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            for (i, to) in addrs.into_iter().enumerate() {
                tokio::task::spawn_local(async move {
                    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
                    // Spread the senders over the 20 ms like calls answered at different moments.
                    let offset = (i as u64 * 20_000) / calls as u64;
                    tokio::time::sleep(Duration::from_micros(offset)).await;
                    let mut tick = tokio::time::interval(Duration::from_millis(20));
                    let packet = [0x80u8; 172];
                    loop {
                        tick.tick().await;
                        let _ = socket.send_to(&packet, to).await;
                    }
                });
            }
            std::future::pending::<()>().await
        });
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    report("reference", &arrivals.borrow(), seconds, None);
}

/// CPU seconds (user + system) the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

async fn engine(sip: SocketAddr, calls: usize, rate: u64, number: String, seconds: u64, pid: u32) {
    let measuring = Rc::new(AtomicBool::new(false));
    let (addrs, arrivals) = receivers(calls, measuring.clone()).await;
    let socket = Rc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind sip"));
    let local = socket.local_addr().expect("addr");
    let up = Rc::new(std::cell::RefCell::new(HashMap::<String, String>::new()));
    {
        let (socket, up) = (socket.clone(), up.clone());
        tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = socket.recv(&mut buf).await {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                on_sip(&socket, sip, local, &msg, &up).await;
            }
        });
    }
    let gap = Duration::from_micros(1_000_000 / rate.max(1));
    for (i, rtp) in addrs.iter().enumerate() {
        let invite = invite(sip, local, &number, &format!("media-load-{i}"), rtp.port());
        let _ = socket.send_to(invite.as_bytes(), sip).await;
        tokio::time::sleep(gap).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while up.borrow().len() < calls && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answered = up.borrow().len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_start = cpu_seconds(pid);
    let started = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let cpu = (cpu_seconds(pid) - cpu_start) / started.elapsed().as_secs_f64() * 100.0;
    println!("answered {answered} of {calls}");
    report("engine", &arrivals.borrow(), seconds, Some(cpu));
    let calls_up: Vec<(String, String)> = up.borrow().clone().into_iter().collect();
    for (call_id, to) in &calls_up {
        let bye = format!(
            "BYE sip:activeflow@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-bye-{call_id}\r\n\
             From: <sip:load@{local}>;tag=load\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = socket.send_to(bye.as_bytes(), sip).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

fn invite(sip: SocketAddr, local: SocketAddr, number: &str, call_id: &str, rtp: u16) -> String {
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    );
    format!(
        "INVITE sip:{number}@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-inv-{call_id}\r\n\
         From: <sip:load@{local}>;tag=load\r\nTo: <sip:{number}@{sip}>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:load@{local}>\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// ACKs 200 OKs to our INVITEs and answers the engine's BYEs.
async fn on_sip(
    socket: &UdpSocket,
    sip: SocketAddr,
    local: SocketAddr,
    msg: &str,
    up: &std::cell::RefCell<HashMap<String, String>>,
) {
    let (Some(call_id), Some(cseq)) = (header(msg, "Call-ID"), header(msg, "CSeq")) else {
        return;
    };
    if msg.starts_with("SIP/2.0 200") && cseq.ends_with("INVITE") {
        let to = header(msg, "To").unwrap_or_default().to_owned();
        let ack = format!(
            "ACK sip:activeflow@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-ack-{call_id}\r\n\
             From: <sip:load@{local}>;tag=load\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = socket.send_to(ack.as_bytes(), sip).await;
        up.borrow_mut().insert(call_id.to_owned(), to);
    } else if msg.starts_with("BYE ") {
        let mut ok = String::from("SIP/2.0 200 OK\r\n");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            ok.push_str(&format!(
                "{name}: {}\r\n",
                header(msg, name).unwrap_or_default()
            ));
        }
        ok.push_str("Content-Length: 0\r\n\r\n");
        let _ = socket.send_to(ok.as_bytes(), sip).await;
    }
}
