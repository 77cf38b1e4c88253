//! Load tool: operator stop → BYE on the wire, with N calls up. Acts as a raw-UDP UAC against a
//! running engine (INVITE with SDP, ACK), maps activeflows to calls over the REST API, then stops
//! activeflows one at a time and times `POST /v1/activeflows/{id}/stop` → the engine's BYE as seen
//! by the receive thread. Prints p50/p90/p99/max. Driven by `bench/stop-latency.sh`.
#![allow(clippy::unwrap_used)] // a load tool: a poisoned lock or bad constant should abort loudly

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::Value;
use socket2::{Domain, Protocol, Socket, Type};

#[derive(Parser)]
#[command(about = "Operator stop → BYE latency with N calls up")]
struct Args {
    /// The engine's SIP (UDP) address.
    #[arg(long, default_value = "127.0.0.1:5060")]
    sip: SocketAddr,
    /// The engine's REST API address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    api: SocketAddr,
    /// Calls to bring up (and keep up) before stopping any.
    #[arg(long, default_value_t = 10_000)]
    calls: usize,
    /// INVITEs per second.
    #[arg(long, default_value_t = 2_000)]
    rate: u32,
    /// Activeflows to stop, one at a time.
    #[arg(long, default_value_t = 1_000)]
    stops: usize,
    /// Number dialled (Request-URI user).
    #[arg(long, default_value = "200")]
    number: String,
    /// Bearer token for the API, if it requires one.
    #[arg(long, default_value = "")]
    token: String,
    /// Seconds to wait for all calls to be answered.
    #[arg(long, default_value_t = 120)]
    setup_timeout: u64,
}

/// What the receive thread tells the main thread.
enum Event {
    Answered(String),
    Failed(String, u16),
    /// An engine BYE for this Call-ID, timestamped when the datagram was read.
    Bye(String, Instant),
    ByeAnswered,
}

/// The dialog state needed to ACK and to send our own BYE.
#[derive(Clone)]
struct Dialog {
    from: String,
    to: String,
    target: String,
}

struct Uac {
    socket: Arc<UdpSocket>,
    engine: SocketAddr,
    local: SocketAddr,
    uri: String,
    dialogs: Mutex<HashMap<String, Dialog>>,
}

impl Uac {
    fn send(&self, msg: &str) {
        if let Err(e) = self.socket.send_to(msg.as_bytes(), self.engine) {
            eprintln!("send: {e}");
        }
    }

    fn invite(&self, call_id: &str, branch: &str) -> String {
        let local = self.local;
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n",
            ip = local.ip()
        );
        format!(
            "INVITE {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch}\r\n\
             From: <sip:stoplat@{local}>;tag=t-{call_id}\r\n\
             To: <{uri}>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:stoplat@{local}>\r\nMax-Forwards: 70\r\n\
             Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            uri = self.uri,
            len = sdp.len()
        )
    }

    /// Our own BYE inside an answered dialog (used to clean up after the measurement).
    fn bye(&self, call_id: &str, d: &Dialog, n: usize) -> String {
        format!(
            "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-cb-{n}\r\n\
             From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            target = d.target,
            local = self.local,
            from = d.from,
            to = d.to,
        )
    }
}

/// Header value by (case-insensitive) name or compact form.
fn header<'a>(head: &'a str, name: &str, compact: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        let k = k.trim();
        (k.eq_ignore_ascii_case(name) || k.eq_ignore_ascii_case(compact)).then(|| v.trim())
    })
}

fn all_headers<'a>(head: &'a str, name: &str, compact: &str) -> Vec<&'a str> {
    head.lines()
        .skip(1)
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let k = k.trim();
            (k.eq_ignore_ascii_case(name) || k.eq_ignore_ascii_case(compact)).then(|| v.trim())
        })
        .collect()
}

/// The URI of a name-addr or addr-spec.
fn uri_of(value: &str) -> String {
    match (value.find('<'), value.find('>')) {
        (Some(s), Some(e)) if s < e => value[s + 1..e].to_string(),
        _ => value.split(';').next().unwrap_or(value).trim().to_string(),
    }
}

/// Receive loop: ACKs final responses to INVITE (re-ACKs retransmitted 200s), answers every BYE
/// with 200 and reports it with the time the datagram was read.
fn receive(uac: Arc<Uac>, events: Sender<Event>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 65_536];
    let mut answered: HashSet<String> = HashSet::new();
    let mut acks = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let n = match uac.socket.recv_from(&mut buf) {
            Ok((n, _)) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                eprintln!("recv: {e}");
                continue;
            }
        };
        let at = Instant::now();
        let msg = String::from_utf8_lossy(&buf[..n]);
        let head = msg.split("\r\n\r\n").next().unwrap_or("");
        let first = head.lines().next().unwrap_or("");
        let Some(call_id) = header(head, "Call-ID", "i").map(str::to_string) else {
            continue;
        };
        let cseq = header(head, "CSeq", "").unwrap_or("");
        let mut cseq_parts = cseq.split_whitespace();
        let (cseq_num, cseq_method) = (cseq_parts.next().unwrap_or("1"), cseq_parts.next());
        if let Some(status) = first.strip_prefix("SIP/2.0 ") {
            let code: u16 = status.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            match (cseq_method, code) {
                (Some("INVITE"), 100..=199) => {}
                (Some("INVITE"), 200..=299) => {
                    let from = header(head, "From", "f").unwrap_or("").to_string();
                    let to = header(head, "To", "t").unwrap_or("").to_string();
                    let target = header(head, "Contact", "m")
                        .map(uri_of)
                        .unwrap_or_else(|| uac.uri.clone());
                    acks += 1;
                    let ack = format!(
                        "ACK {target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-ack-{acks}\r\n\
                         From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq_num} ACK\r\n\
                         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                        local = uac.local
                    );
                    uac.send(&ack);
                    if answered.insert(call_id.clone()) {
                        uac.dialogs
                            .lock()
                            .unwrap()
                            .insert(call_id.clone(), Dialog { from, to, target });
                        let _ = events.send(Event::Answered(call_id));
                    }
                }
                (Some("INVITE"), _) => {
                    // Non-2xx final: ACK in the INVITE's transaction (same branch, RFC 3261 §17.1.1.3).
                    let via = header(head, "Via", "v").unwrap_or("");
                    let to = header(head, "To", "t").unwrap_or("");
                    let from = header(head, "From", "f").unwrap_or("");
                    let ack = format!(
                        "ACK {uri} SIP/2.0\r\nVia: {via}\r\nFrom: {from}\r\nTo: {to}\r\n\
                         Call-ID: {call_id}\r\nCSeq: {cseq_num} ACK\r\nMax-Forwards: 70\r\n\
                         Content-Length: 0\r\n\r\n",
                        uri = uac.uri
                    );
                    uac.send(&ack);
                    if !answered.contains(&call_id) {
                        let _ = events.send(Event::Failed(call_id, code));
                    }
                }
                (Some("BYE"), _) => {
                    let _ = events.send(Event::ByeAnswered);
                }
                _ => {}
            }
        } else if first.starts_with("BYE ") || first.starts_with("OPTIONS ") {
            let mut resp = String::from("SIP/2.0 200 OK\r\n");
            for via in all_headers(head, "Via", "v") {
                resp.push_str(&format!("Via: {via}\r\n"));
            }
            for (name, compact) in [("From", "f"), ("To", "t"), ("Call-ID", "i"), ("CSeq", "")] {
                if let Some(v) = header(head, name, compact) {
                    resp.push_str(&format!("{name}: {v}\r\n"));
                }
            }
            resp.push_str("Content-Length: 0\r\n\r\n");
            uac.send(&resp);
            if first.starts_with("BYE ") {
                let _ = events.send(Event::Bye(call_id, at));
            }
        }
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns the status and the body.
fn http(api: SocketAddr, token: &str, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect(api).with_context(|| format!("connect {api}"))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\n{auth}Connection: close\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status")?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Every item of a paginated list endpoint.
fn list_all(args: &Args, path: &str) -> anyhow::Result<Vec<Value>> {
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!("{path}{sep}page_size=1000&page_token={token}");
        let (status, body) = http(args.api, &args.token, "GET", &url)?;
        if status != 200 {
            bail!("GET {url}: {status} {body}");
        }
        let page: Value = serde_json::from_str(&body)?;
        if let Some(result) = page["result"].as_array() {
            items.extend(result.iter().cloned());
        }
        token = page["next_page_token"].as_str().unwrap_or("").to_string();
        if token.is_empty() {
            return Ok(items);
        }
    }
}

fn udp_socket(engine: SocketAddr) -> anyhow::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(engine),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    // Thousands of 200 OKs arrive in bursts; the default buffer would drop some.
    let _ = socket.set_recv_buffer_size(32 << 20);
    let _ = socket.set_send_buffer_size(8 << 20);
    let bind: SocketAddr = match engine {
        SocketAddr::V4(a) => SocketAddr::new((*a.ip()).into(), 0),
        SocketAddr::V6(a) => SocketAddr::new((*a.ip()).into(), 0),
    };
    socket.bind(&bind.into())?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    Ok(socket)
}

/// Nearest-rank percentile of sorted milliseconds.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "{name}: n={} p50={:.3} ms p90={:.3} ms p99={:.3} ms max={:.3} ms (min {:.3} ms, mean {:.3} ms)",
        ms.len(),
        pct(&ms, 50.0),
        pct(&ms, 90.0),
        pct(&ms, 99.0),
        ms.last().copied().unwrap_or(f64::NAN),
        ms.first().copied().unwrap_or(f64::NAN),
        ms.iter().sum::<f64>() / ms.len().max(1) as f64,
    );
}

/// Brings `args.calls` calls up at `args.rate`, retransmitting lost INVITEs and replacing
/// rejected calls (backing off 500 ms after a 503, the engine's overload hold).
fn set_up_calls(
    args: &Args,
    uac: &Uac,
    events: &Receiver<Event>,
) -> anyhow::Result<HashSet<String>> {
    let run = std::process::id();
    let tick = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.setup_timeout);
    let mut answered: HashSet<String> = HashSet::new();
    // call-id → (INVITE bytes, last sent, retransmissions)
    let mut inflight: HashMap<String, (String, Instant, u32)> = HashMap::new();
    let mut retransmit: VecDeque<String> = VecDeque::new();
    let (mut next_seq, mut rejected, mut lost_early) = (0usize, 0usize, 0usize);
    let mut codes: HashMap<u16, usize> = HashMap::new();
    let mut next_send = start;
    let mut last_report = start;
    let mut last_scan = start;
    while answered.len() < args.calls {
        if Instant::now() > deadline {
            eprintln!(
                "setup timed out: {} answered, {} in flight, {rejected} rejected {codes:?}",
                answered.len(),
                inflight.len()
            );
            break;
        }
        // Drain outcomes.
        while let Ok(ev) = events.try_recv() {
            match ev {
                Event::Answered(cid) => {
                    if inflight.remove(&cid).is_some() {
                        answered.insert(cid);
                    }
                }
                Event::Failed(cid, code) => {
                    if inflight.remove(&cid).is_some() {
                        rejected += 1;
                        *codes.entry(code).or_default() += 1;
                        if code == 503 {
                            next_send = Instant::now() + Duration::from_millis(500);
                        }
                    }
                }
                Event::Bye(cid, _) => {
                    if answered.remove(&cid) {
                        lost_early += 1;
                    }
                }
                Event::ByeAnswered => {}
            }
        }
        let now = Instant::now();
        if now.duration_since(last_report) >= Duration::from_secs(5) {
            last_report = now;
            eprintln!(
                "  {:>5.1} s: {} answered, {} in flight, {rejected} rejected",
                now.duration_since(start).as_secs_f64(),
                answered.len(),
                inflight.len()
            );
        }
        if now < next_send {
            std::thread::sleep((next_send - now).min(Duration::from_millis(5)));
            continue;
        }
        // Timer A-like retransmission of INVITEs with no answer for 2 s (at most 4 times).
        if retransmit.is_empty() && now.duration_since(last_scan) >= Duration::from_millis(100) {
            last_scan = now;
            retransmit.extend(
                inflight
                    .iter()
                    .filter(|(_, (_, sent, n))| {
                        now.duration_since(*sent) > Duration::from_secs(2) && *n < 4
                    })
                    .map(|(cid, _)| cid.clone()),
            );
        }
        if let Some(cid) = retransmit.pop_front() {
            if let Some((bytes, sent, n)) = inflight.get_mut(&cid) {
                uac.send(bytes);
                *sent = now;
                *n += 1;
            }
        } else if answered.len() + inflight.len() < args.calls {
            next_seq += 1;
            let call_id = format!("stoplat-{run}-{next_seq}@{}", uac.local.ip());
            let invite = uac.invite(&call_id, &format!("z9hG4bK-{run}-{next_seq}"));
            uac.send(&invite);
            inflight.insert(call_id, (invite, now, 0));
        } else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        next_send += tick;
        if next_send + Duration::from_millis(50) < now {
            // Fell behind (e.g. after a back-off): do not burst to catch up.
            next_send = now;
        }
    }
    println!(
        "setup: {} calls answered in {:.2} s ({} INVITEs sent, {rejected} rejected {codes:?}, \
         {lost_early} ended early)",
        answered.len(),
        start.elapsed().as_secs_f64(),
        next_seq,
    );
    Ok(answered)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let socket = Arc::new(udp_socket(args.sip)?);
    let local = socket.local_addr()?;
    let uac = Arc::new(Uac {
        socket,
        engine: args.sip,
        local,
        uri: format!("sip:{}@{}", args.number, args.sip),
        dialogs: Mutex::new(HashMap::new()),
    });
    let (tx, events) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (uac, stop) = (uac.clone(), stop.clone());
        std::thread::spawn(move || receive(uac, tx, stop))
    };

    println!(
        "stop_latency: {} calls at {}/s to {} (api {}), {} stops",
        args.calls, args.rate, args.sip, args.api, args.stops
    );
    let mut answered = set_up_calls(&args, &uac, &events)?;
    if answered.is_empty() {
        bail!("no call was answered");
    }

    // activeflow id → call id → SIP Call-ID.
    let t = Instant::now();
    let flows = list_all(&args, "/v1/activeflows?status=running")?;
    let calls = list_all(&args, "/v1/calls?status=answered")?;
    let sip_ids: HashMap<&str, &str> = calls
        .iter()
        .filter_map(|c| Some((c["id"].as_str()?, c["sip_call_id"].as_str()?)))
        .collect();
    let targets: Vec<(String, String)> = flows
        .iter()
        .filter_map(|f| {
            let cid = sip_ids.get(f["reference_id"].as_str()?)?;
            let id = f["id"].as_str()?;
            answered
                .contains(*cid)
                .then(|| (id.to_string(), cid.to_string()))
        })
        .collect();
    println!(
        "api: {} running activeflows, {} answered calls, {} mapped to our calls (listing took {:.0} ms)",
        flows.len(),
        calls.len(),
        targets.len(),
        t.elapsed().as_secs_f64() * 1e3
    );

    // Stops, one at a time.
    let up_at_start = answered.len();
    let (mut bye_ms, mut http_ms) = (Vec::new(), Vec::new());
    let (mut missing, mut http_errors) = (0usize, 0usize);
    for (flow_id, call_id) in targets.iter().take(args.stops) {
        let t0 = Instant::now();
        match http(
            args.api,
            &args.token,
            "POST",
            &format!("/v1/activeflows/{flow_id}/stop"),
        ) {
            Ok((200, _)) => http_ms.push(t0.elapsed().as_secs_f64() * 1e3),
            Ok((status, body)) => {
                http_errors += 1;
                eprintln!("stop {flow_id}: {status} {body}");
            }
            Err(e) => {
                http_errors += 1;
                eprintln!("stop {flow_id}: {e:#}");
            }
        }
        let wait_until = Instant::now() + Duration::from_secs(5);
        loop {
            let left = wait_until.saturating_duration_since(Instant::now());
            match events.recv_timeout(left) {
                Ok(Event::Bye(cid, at)) => {
                    answered.remove(&cid);
                    if cid == *call_id {
                        bye_ms.push(at.duration_since(t0).as_secs_f64() * 1e3);
                        break;
                    }
                    eprintln!("unexpected BYE for {cid}");
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    missing += 1;
                    eprintln!("no BYE within 5 s for {call_id}");
                    break;
                }
            }
        }
    }
    println!(
        "stops: {} with {} calls up at the start ({} without BYE, {} HTTP errors)",
        bye_ms.len(),
        up_at_start,
        missing,
        http_errors
    );
    summary("stop→BYE latency", bye_ms);
    summary("stop HTTP response", http_ms);

    // Hang up the rest ourselves so the engine is left idle.
    let rest: Vec<(String, Dialog)> = {
        let dialogs = uac.dialogs.lock().unwrap();
        answered
            .iter()
            .filter_map(|cid| Some((cid.clone(), dialogs.get(cid)?.clone())))
            .collect()
    };
    let tick = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let mut next = Instant::now();
    for (n, (cid, dialog)) in rest.iter().enumerate() {
        uac.send(&uac.bye(cid, dialog, n));
        next += tick;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let (mut ok, deadline) = (0usize, Instant::now() + Duration::from_secs(5));
    while ok < rest.len() {
        match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Event::ByeAnswered) => ok += 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    println!("cleanup: {ok}/{} remaining calls hung up", rest.len());
    stop.store(true, Ordering::Relaxed);
    let _ = receiver.join();
    Ok(())
}
