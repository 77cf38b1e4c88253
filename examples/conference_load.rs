//! Conference load (bench/conference.sh): brings N calls up over raw SIP/UDP, dialling
//! `<prefix><i mod rooms>` so that a flow joining `${call.destination.target}` spreads them over
//! `rooms` rooms; every leg talks (a tone packet every 20 ms from its own RTP socket: the worst
//! case, no leg idle) and counts what the engine sends back: packets, and mixed frames (packets
//! whose decoded µ-law is not silence, i.e. carry the other legs' tones: a room that mixed
//! nothing would still send 50 silent packets/s). Over a window of SECONDS it reports both per
//! leg, the engine's CPU (from /proc) and the p50/p99 of the engine's mixing-tick lateness
//! (`activeflow_conference_mix_tick_lateness_seconds` buckets from /metrics, window delta).
//!
//! Usage: conference_load <engine-sip> <calls> <rooms> <rate/s> <prefix> <seconds> <engine-pid>
//!        <engine-metrics-addr>

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use activeflow::conference::mix::SILENCE_PEAK;
use activeflow::media::g711::{ulaw_decode, ulaw_encode};
use tokio::net::UdpSocket;

struct Leg {
    socket: Rc<UdpSocket>,
    /// Packets received, and those of them that carried sound (a mix).
    received: Rc<RefCell<(u64, u64)>>,
}

/// Whether an RTP packet's µ-law payload holds sound (any sample beyond the mixer's silence).
fn is_mix(packet: &[u8]) -> bool {
    let Some(first) = packet.first() else {
        return false;
    };
    let header = 12 + 4 * usize::from(first & 0x0f);
    packet.get(header..).is_some_and(|p| {
        p.iter()
            .any(|c| ulaw_decode(*c).unsigned_abs() > SILENCE_PEAK)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, what: &str| -> String {
        args.get(i)
            .cloned()
            .unwrap_or_else(|| panic!("argument {i}: {what}"))
    };
    let sip: SocketAddr = arg(0, "engine sip").parse().expect("sip addr");
    let calls: usize = arg(1, "calls").parse().expect("calls");
    let rooms: usize = arg(2, "rooms").parse().expect("rooms");
    let rate: u64 = arg(3, "rate").parse().expect("rate");
    let prefix = arg(4, "prefix");
    let seconds: u64 = arg(5, "seconds").parse().expect("seconds");
    let pid: u32 = arg(6, "engine pid").parse().expect("pid");
    let metrics: SocketAddr = arg(7, "metrics addr").parse().expect("metrics addr");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(
        &rt,
        run(sip, calls, rooms, rate, prefix, seconds, pid, metrics),
    );
}

#[allow(clippy::too_many_arguments)] // a CLI's positional arguments, passed on once
async fn run(
    sip: SocketAddr,
    calls: usize,
    rooms: usize,
    rate: u64,
    prefix: String,
    seconds: u64,
    pid: u32,
    metrics: SocketAddr,
) {
    let mut legs = Vec::with_capacity(calls);
    for _ in 0..calls {
        let socket = Rc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind rtp"));
        let received = Rc::new(RefCell::new((0u64, 0u64)));
        let (s, r) = (socket.clone(), received.clone());
        tokio::task::spawn_local(async move {
            let mut buf = [0u8; 2048];
            while let Ok(n) = s.recv(&mut buf).await {
                let mut r = r.borrow_mut();
                r.0 += 1;
                r.1 += u64::from(is_mix(&buf[..n]));
            }
        });
        legs.push(Leg { socket, received });
    }
    let sip_socket = Rc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind sip"));
    let local = sip_socket.local_addr().expect("addr");
    // Call-ID → (To with tag, leg index); a leg starts talking when its 200 OK comes.
    let up = Rc::new(RefCell::new(HashMap::<String, String>::new()));
    let index: HashMap<String, usize> = (0..calls).map(|i| (call_id(i), i)).collect();
    let sockets: Vec<Rc<UdpSocket>> = legs.iter().map(|l| l.socket.clone()).collect();
    {
        let (socket, up) = (sip_socket.clone(), up.clone());
        tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = socket.recv(&mut buf).await {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let Some(cid) = header(&msg, "Call-ID").map(str::to_owned) else {
                    continue;
                };
                let cseq = header(&msg, "CSeq").unwrap_or_default();
                if msg.starts_with("SIP/2.0 200") && cseq.ends_with("INVITE") {
                    if up.borrow().contains_key(&cid) {
                        continue;
                    }
                    let to = header(&msg, "To").unwrap_or_default().to_owned();
                    let ack = format!(
                        "ACK sip:activeflow@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-ack-{cid}\r\n\
                         From: <sip:load@{local}>;tag=load\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: 1 ACK\r\n\
                         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                    );
                    let _ = socket.send_to(ack.as_bytes(), sip).await;
                    up.borrow_mut().insert(cid.clone(), to);
                    if let (Some(i), Some(rtp)) = (index.get(&cid), sdp_address(&msg)) {
                        tokio::task::spawn_local(talk(sockets[*i].clone(), rtp, *i));
                    }
                } else if msg.starts_with("BYE ") {
                    let mut ok = String::from("SIP/2.0 200 OK\r\n");
                    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
                        ok.push_str(&format!(
                            "{name}: {}\r\n",
                            header(&msg, name).unwrap_or_default()
                        ));
                    }
                    ok.push_str("Content-Length: 0\r\n\r\n");
                    let _ = socket.send_to(ok.as_bytes(), sip).await;
                }
            }
        });
    }
    let gap = Duration::from_micros(1_000_000 / rate.max(1));
    for (i, leg) in legs.iter().enumerate() {
        let number = format!("{prefix}{}", i % rooms.max(1));
        let rtp = leg.socket.local_addr().expect("addr").port();
        let invite = invite(sip, local, &number, &call_id(i), rtp);
        let _ = sip_socket.send_to(invite.as_bytes(), sip).await;
        tokio::time::sleep(gap).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while up.borrow().len() < calls && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answered = up.borrow().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before: Vec<(u64, u64)> = legs.iter().map(|l| *l.received.borrow()).collect();
    let buckets_before = lateness_buckets(metrics);
    let cpu_start = cpu_seconds(pid);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_start;
    let buckets_after = lateness_buckets(metrics);
    let delta: Vec<(u64, u64)> = legs
        .iter()
        .zip(&before)
        .map(|(l, b)| {
            let now = *l.received.borrow();
            (now.0 - b.0, now.1 - b.1)
        })
        .collect();
    let mut packets: Vec<u64> = delta.iter().map(|d| d.0).collect();
    let mut mixed: Vec<u64> = delta.iter().map(|d| d.1).collect();
    packets.sort_unstable();
    mixed.sort_unstable();
    let (p50, p99, ticks) = quantiles(&buckets_before, &buckets_after);
    println!("answered {answered} of {calls} in {rooms} rooms");
    println!(
        "engine: legs {calls} rooms {rooms} | mixing ticks {ticks} lateness p50 <= {} p99 <= {} | \
         packets/leg in {seconds}s min {} median {} (expected {}) | mixed frames/leg min {} \
         median {} | engine CPU {:.1}% of one core, {:.3} ms CPU per leg-second",
        fmt_le(p50),
        fmt_le(p99),
        packets.first().copied().unwrap_or(0),
        packets.get(packets.len() / 2).copied().unwrap_or(0),
        seconds * 50,
        mixed.first().copied().unwrap_or(0),
        mixed.get(mixed.len() / 2).copied().unwrap_or(0),
        cpu / elapsed * 100.0,
        cpu / elapsed / calls.max(1) as f64 * 1000.0,
    );
    let calls_up: Vec<(String, String)> = up.borrow().clone().into_iter().collect();
    for (cid, to) in &calls_up {
        let bye = format!(
            "BYE sip:activeflow@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-bye-{cid}\r\n\
             From: <sip:load@{local}>;tag=load\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: 2 BYE\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = sip_socket.send_to(bye.as_bytes(), sip).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

fn call_id(i: usize) -> String {
    format!("conference-load-{i}")
}

/// A 20 ms µ-law tone packet every 20 ms (each leg its own frequency band).
async fn talk(socket: Rc<UdpSocket>, to: SocketAddr, i: usize) {
    let frequency = 300.0 + (i % 16) as f64 * 100.0;
    let payload: Vec<u8> = (0..160)
        .map(|n| {
            let t = n as f64 / 8000.0;
            ulaw_encode((3000.0 * (2.0 * std::f64::consts::PI * frequency * t).sin()) as i16)
        })
        .collect();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut k: u32 = 0;
    loop {
        tick.tick().await;
        let mut p = vec![0x80, 0];
        p.extend_from_slice(&(k as u16).to_be_bytes());
        p.extend_from_slice(&(k.wrapping_mul(160)).to_be_bytes());
        p.extend_from_slice(&(i as u32).to_be_bytes());
        p.extend_from_slice(&payload);
        if socket.send_to(&p, to).await.is_err() {
            return;
        }
        k = k.wrapping_add(1);
    }
}

/// The lateness histogram's cumulative buckets, `(le, count)`, from the engine's /metrics.
fn lateness_buckets(metrics: SocketAddr) -> Vec<(f64, f64)> {
    let mut text = String::new();
    if let Ok(mut s) = std::net::TcpStream::connect(metrics) {
        let _ =
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let _ = s.read_to_string(&mut text);
    }
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("activeflow_conference_mix_tick_lateness_seconds_bucket{le=\"")
        })
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The bucket bounds holding the 50th and 99th percentile of the window, and its tick count.
fn quantiles(before: &[(f64, f64)], after: &[(f64, f64)]) -> (f64, f64, u64) {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let b = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, c)| *c);
            (*le, n - b)
        })
        .collect();
    let total = delta.iter().map(|(_, n)| *n).fold(0.0, f64::max);
    let at = |q: f64| {
        delta
            .iter()
            .find(|(_, n)| *n >= q * total)
            .map_or(f64::NAN, |(le, _)| *le)
    };
    (at(0.5), at(0.99), total as u64)
}

fn fmt_le(le: f64) -> String {
    if le.is_finite() {
        format!("{:.2} ms", le * 1000.0)
    } else {
        format!("{le}")
    }
}

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

/// The `c=` address and `m=audio` port of the SDP in a SIP message.
fn sdp_address(msg: &str) -> Option<SocketAddr> {
    let ip = msg
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))?
        .trim();
    let port = msg
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))?
        .split_whitespace()
        .next()?;
    format!("{ip}:{port}").parse().ok()
}
