//! Test harness: starts a real engine in-process on 127.0.0.1 port 0 (its own actix System on a
//! thread), runs SIPp against it, talks HTTP to its API and raw SIP over UDP. Nothing here sleeps
//! to wait for start-up: `start` returns once every socket is bound and serving. A panic inside
//! an engine fails its test (see `engine_log`); engines lease RTP ports and peers get SIP ports
//! from test-only ranges (see `ports`).
#![allow(dead_code, unreachable_pub)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use activeflow::app::{self, Listeners};
use activeflow::call::CallRegistry;
use activeflow::config::{Config, RouteConfig, DEFAULT_TOML};
use activeflow::engine::{ActiveflowRecord, ActiveflowRegistry, Status};
use activeflow::flow::{Flow, FlowStore};
use serde_json::Value;

pub mod amd;
pub mod cluster;
pub mod cluster_procs;
pub mod conference;
pub mod cpaas;
pub mod engine_log;
pub mod extmedia;
pub mod extmedia_hosts;
pub mod http_server;
pub mod kamailio;
pub mod pcap;
pub mod peers;
pub mod pg;
pub mod ports;
pub mod prometheus;
pub mod queue;
pub mod rtp;
pub mod sse;
pub mod tts_log;
pub mod uas;
pub mod webdriver;

#[allow(unused_imports)] // each test binary uses a different part of the harness
pub use ports::{reserve_port, reserve_ports, rtp_port_range, PortGuard};

pub struct TestEngine {
    pub sip: SocketAddr,
    /// The SIP/TLS listener, when the config sets `sip.tls_listen`.
    pub sip_tls: Option<SocketAddr>,
    pub api: SocketAddr,
    pub registry: Arc<ActiveflowRegistry>,
    pub calls: Arc<CallRegistry>,
    /// This node in its cluster (`[cluster]` set), else `None`.
    pub cluster: Option<activeflow::cluster::Cluster>,
    stop: Option<tokio::sync::oneshot::Sender<Duration>>,
    thread: Option<std::thread::JoinHandle<usize>>,
    /// The engine's own thread name and its actix System id (its arbiters' threads are named
    /// `actix-rt|system:<id>|arbiter:<n>`), to tell its panics from other tests'.
    thread_name: String,
    system_id: usize,
    /// Panics a test plants on purpose (`panic!("test: ...")`) that must not fail it.
    planted_panics: usize,
}

/// Starts an engine with `flows` (JSON documents) and `routes` (number → flow name), applying
/// `env` as `ACTIVEFLOW_*` overrides.
pub fn start(flows: &[Value], routes: &[(&str, &str)], env: &[(&str, &str)]) -> TestEngine {
    start_with(flows, routes, env, |_| {})
}

/// Like [`start`], with a last change to the config before validation.
pub fn start_with(
    flows: &[Value],
    routes: &[(&str, &str)],
    env: &[(&str, &str)],
    change: impl FnOnce(&mut Config),
) -> TestEngine {
    let mut vars: Vec<(String, String)> = vec![
        ("ACTIVEFLOW_SIP_LISTEN".into(), "127.0.0.1:0".into()),
        ("ACTIVEFLOW_API_LISTEN".into(), "127.0.0.1:0".into()),
        ("ACTIVEFLOW_METRICS_LISTEN".into(), "127.0.0.1:0".into()),
        // Debug builds on a shared 2-core machine lag far more than release: only the overload
        // test wants the guard at its production threshold (it sets its own).
        ("ACTIVEFLOW_SIP_OVERLOAD_LAG_MS".into(), "5000".into()),
        // Never the benchmarks' RTP ports (20000-59999); a test's `env` may still override.
        ("ACTIVEFLOW_MEDIA_RTP_PORTS".into(), rtp_port_range()),
    ];
    let scratch = std::env::temp_dir().join(format!("activeflow-test-{}", std::process::id()));
    for (key, dir) in [
        ("ACTIVEFLOW_MEDIA_RECORDINGS_DIR", "recordings"),
        ("ACTIVEFLOW_MEDIA_CACHE_DIR", "cache"),
    ] {
        vars.push((key.into(), scratch.join(dir).display().to_string()));
    }
    // Every engine its own database: tests never share history or write `data/`.
    vars.push(("ACTIVEFLOW_STORAGE_PATH".into(), temp_db_path()));
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut config = Config::from_toml_with_env(DEFAULT_TOML, vars).expect("config");
    config.routes = routes
        .iter()
        .map(|(number, flow)| RouteConfig {
            number: number.to_string(),
            flow: flow.to_string(),
        })
        .collect();
    change(&mut config);
    let settings = config.validate().expect("valid config");
    let store = Arc::new(FlowStore::new());
    for f in flows {
        let flow = Flow::from_json(f.to_string().as_bytes()).expect("valid flow");
        store.insert(flow).expect("flow inserted");
    }
    let listeners = Listeners::bind(&settings).expect("bind");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<Duration>();
    engine_log::watch_in_process();
    static ENGINES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let thread_name = format!(
        "activeflow-engine-{}",
        ENGINES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let thread = std::thread::Builder::new()
        .name(thread_name.clone())
        .spawn(move || {
            actix_rt::System::new().block_on(async move {
                let system_id = actix_rt::System::current().id();
                let app = app::start(&settings, store, listeners, None)
                    .await
                    .expect("engine starts");
                ready_tx
                    .send((
                        (app.sip_addr, app.sip_tls_addr),
                        app.api_addr,
                        app.registry.clone(),
                        app.calls.clone(),
                        system_id,
                        app.cluster.clone(),
                    ))
                    .expect("harness waiting");
                let grace = stop_rx.await.unwrap_or(Duration::ZERO);
                activeflow::shutdown::drain(app, grace).await
            })
        })
        .expect("engine thread");
    let ((sip, sip_tls), api, registry, calls, system_id, cluster) =
        ready_rx.recv().expect("engine started");
    TestEngine {
        sip,
        sip_tls,
        api,
        registry,
        calls,
        cluster,
        stop: Some(stop_tx),
        thread: Some(thread),
        thread_name,
        system_id,
        planted_panics: 0,
    }
}

impl TestEngine {
    /// Drains like SIGTERM with `grace`; returns how many activeflows ended with `shutdown`.
    pub fn shutdown(mut self, grace: Duration) -> usize {
        self.stop_with(grace)
    }

    fn stop_with(&mut self, grace: Duration) -> usize {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(grace);
        }
        let joined = self.thread.take().map(|t| t.join());
        if std::thread::panicking() {
            return 0;
        }
        let panics = self.panics();
        assert!(
            panics.len() <= self.planted_panics,
            "the engine panicked:\n{}",
            panics.join("\n")
        );
        joined.map_or(0, |r| r.expect("engine thread"))
    }

    /// The test plants `n` panics in the engine on purpose (isolation tests): up to that many
    /// do not fail it; one more does.
    pub fn expect_planted_panics(&mut self, n: usize) {
        self.planted_panics = n;
    }

    /// Panics so far on this engine's threads (its own and its arbiters').
    pub fn panics(&self) -> Vec<String> {
        let arbiter = self.arbiter_thread_prefix();
        engine_log::in_process_panics_of(|t| t == self.thread_name || t.starts_with(&arbiter))
    }

    /// How this engine's arbiter threads' names start.
    pub fn arbiter_thread_prefix(&self) -> String {
        format!("actix-rt|system:{}|", self.system_id)
    }

    /// Every known activeflow, newest first.
    pub fn activeflows(&self) -> Vec<ActiveflowRecord> {
        self.registry.list(None, usize::MAX, None).items
    }

    /// Waits (polling, bounded) until `done` holds for the activeflows; panics with them if not.
    pub fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&[ActiveflowRecord]) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            let all = self.activeflows();
            if done(&all) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; activeflows: {}",
                    summary(&all)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn ended(&self) -> Vec<ActiveflowRecord> {
        self.activeflows()
            .into_iter()
            .filter(|a| a.status == Status::Ended)
            .collect()
    }
}

impl Drop for TestEngine {
    fn drop(&mut self) {
        self.stop_with(Duration::ZERO);
    }
}

fn summary(all: &[ActiveflowRecord]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for a in all {
        *counts
            .entry(format!("{:?}/{:?}", a.status, a.end_reason))
            .or_insert(0) += 1;
    }
    format!("{counts:?}")
}

/// A flow document with the given name and actions.
pub fn flow(name: &str, actions: Value) -> Value {
    serde_json::json!({ "name": name, "actions": actions })
}

/// Flow `name`: `answer`, `sleep` `ms`, `hangup` — a call the engine answers and ends with its
/// own BYE after `ms`, unless the caller's BYE or a stop ends it first.
pub fn answer_hold_hangup(name: &str, ms: u64) -> Value {
    flow(
        name,
        serde_json::json!([
            {"type": "answer"},
            {"type": "sleep", "option": {"duration": ms}},
            {"type": "hangup"}
        ]),
    )
}

/// The action types an activeflow executed, in order.
pub fn executed_types(a: &ActiveflowRecord) -> Vec<String> {
    a.executed_actions
        .iter()
        .map(|e| e.action.kind.clone())
        .collect()
}

// ---- HTTP ----

/// One HTTP/1.1 request with `Connection: close`; returns status and JSON body (Null if none).
/// Waits (up to `limit`) until the engine's activeflows have all ended; the first of them.
pub fn ended_one(engine: &TestEngine, limit: Duration) -> ActiveflowRecord {
    engine.wait_for("the activeflow to end", limit, |all| {
        !all.is_empty() && all.iter().all(|a| a.status == Status::Ended)
    });
    engine.activeflows().remove(0)
}

/// The `result` of the first executed action of type `kind` (panics naming the log when none).
pub fn result_of(record: &ActiveflowRecord, kind: &str) -> Value {
    record
        .executed_actions
        .iter()
        .find(|e| e.action.kind == kind)
        .and_then(|e| e.result.clone())
        .unwrap_or_else(|| panic!("no {kind} result in {:?}", record.executed_actions))
}

/// The RTP payloads of a pcap of RTP over UDP/IPv4/Ethernet, in order (SIPp's pcaps).
pub fn pcap_payloads(path: &str) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).expect("pcap");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let len = u32::from_le_bytes(data[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
        let packet = &data[at + 16..(at + 16 + len).min(data.len())];
        at += 16 + len;
        // Ethernet 14, IPv4 header (IHL words), UDP 8, RTP 12 (no CSRC in these pcaps).
        let Some(ip) = packet.get(14..) else { continue };
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if let Some(rtp) = ip.get(ihl + 8..).filter(|r| r.len() > 12) {
            out.push(rtp[12..].to_vec());
        }
    }
    out
}

pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    http_with(addr, method, path, body, &[])
}

pub fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).expect("connect api");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = body.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    // The server may answer (413) and close before it has read a large body: keep what it said.
    let _ = stream.write_all(req.as_bytes());
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let (head, payload) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let payload = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(payload)
    } else {
        payload.to_string()
    };
    let json = serde_json::from_str(&payload).unwrap_or(Value::Null);
    (status, json)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

// ---- SIPp ----

/// Result of one SIPp run.
pub struct SippRun {
    pub output: Output,
    pub successful: u64,
    pub failed: u64,
    pub errors: String,
}

impl SippRun {
    pub fn assert_all_ok(&self, expected: u64) {
        assert!(
            self.output.status.success() && self.successful == expected && self.failed == 0,
            "sipp: status {:?}, {} successful, {} failed (expected {expected})\nstdout tail:\n{}\nerrors:\n{}",
            self.output.status.code(),
            self.successful,
            self.failed,
            tail(&String::from_utf8_lossy(&self.output.stdout), 40),
            tail(&self.errors, 40),
        );
    }
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

pub fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// A port free on 127.0.0.1 for both UDP and TCP, for a peer's own socket: checked by binding
/// both from the test-only peer range (see `ports`), where no `bind(0)` lands. Prefer
/// [`reserve_port`], which keeps the port bound until the peer is about to take it.
pub fn free_port() -> u16 {
    reserve_port().release()
}

/// A fresh scratch path component, unique within this test process.
fn unique() -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// Runs SIPp's scenario file `name` against the engine, dialling `number`, with extra `args`
/// (e.g. `-m 200 -r 50`, `-t t1`). Panics if SIPp is not installed: tests never skip a peer.
pub fn sipp(engine: SocketAddr, name: &str, number: &str, args: &[&str]) -> SippRun {
    let dir = std::env::temp_dir().join(format!("activeflow-sipp-{}", unique()));
    std::fs::create_dir_all(&dir).expect("sipp dir");
    let port = reserve_port();
    let mut cmd = sipp_command(engine, name, number, port.port(), &dir);
    cmd.arg("-trace_err").args(args);
    port.release();
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run sipp ({e}); scripts/test.sh installs sip-tester"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let count = |label: &str| {
        stdout
            .lines()
            .rfind(|l| l.trim_start().starts_with(label))
            .and_then(|l| l.split('|').nth(2))
            .and_then(|c| c.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut errors = String::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            errors.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    SippRun {
        successful: count("Successful call"),
        failed: count("Failed call"),
        output,
        errors,
    }
}

/// SIPp running scenario `name` against `engine` for `number` from local `port`, in `dir`,
/// with the suite's common options (4 MiB socket buffers, no stdin, a 60 s limit as an error).
fn sipp_command(
    engine: SocketAddr,
    name: &str,
    number: &str,
    port: u16,
    dir: &std::path::Path,
) -> Command {
    let mut cmd = Command::new("sipp");
    cmd.current_dir(dir)
        .arg(engine.to_string())
        .args(["-sf", scenario(name).to_str().expect("path")])
        .args(["-s", number, "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-buff_size", "4194304", "-nostdin"])
        .args(["-timeout", "60s", "-timeout_error"]);
    cmd
}

/// Starts SIPp in the background (for tests that act while calls are up).
pub fn sipp_spawn(
    engine: SocketAddr,
    name: &str,
    number: &str,
    args: &[&str],
) -> std::process::Child {
    let port = reserve_port();
    let mut cmd = sipp_command(engine, name, number, port.port(), &std::env::temp_dir());
    cmd.args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    port.release();
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot run sipp ({e}); scripts/test.sh installs sip-tester"))
}

// ---- raw SIP over UDP ----

/// A bare UDP SIP peer for exact-message tests (duplicates, malformed input, no ACK).
pub struct RawPeer {
    pub socket: UdpSocket,
    pub engine: SocketAddr,
}

impl RawPeer {
    pub fn new(engine: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        RawPeer { socket, engine }
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().expect("addr").port()
    }

    pub fn send(&self, msg: &str) {
        self.socket
            .send_to(msg.as_bytes(), self.engine)
            .expect("send");
    }

    /// The next message, or None after the read timeout.
    pub fn recv(&self) -> Option<String> {
        let mut buf = vec![0u8; 65536];
        let (n, _) = self.socket.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Receives until a message whose first line contains `needle`.
    pub fn recv_until(&self, needle: &str) -> String {
        loop {
            let m = self
                .recv()
                .unwrap_or_else(|| panic!("no message containing {needle:?}"));
            if m.lines().next().unwrap_or("").contains(needle) {
                return m;
            }
        }
    }

    /// The next final response (>= 200), skipping provisional ones.
    pub fn recv_final(&self) -> String {
        loop {
            let m = self.recv().expect("a final response");
            if m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 1") {
                return m;
            }
        }
    }

    /// An INVITE with SDP from this peer to `number`.
    pub fn invite(&self, number: &str, call_id: &str, branch: &str) -> String {
        let port = self.port();
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
        format!(
            "INVITE sip:{number}@{engine} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch}\r\n\
             From: <sip:raw@127.0.0.1:{port}>;tag=raw-{call_id}\r\n\
             To: <sip:{number}@{engine}>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:raw@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n\
             Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            engine = self.engine,
            len = sdp.len()
        )
    }
}

/// The value of header `name` in a raw message.
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Runs `python3 -c program` with `stdin` written to it; panics unless it exits 0 (its stderr in
/// the message); its stdout.
pub fn run_python(program: &str, stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("python3")
        .args(["-c", program])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); scripts/test.sh installs it"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3: {out:?}");
    out.stdout
}

// ---- the binary as a subprocess (with its metrics recorder installed) ----

/// Panics unless `tool --version` runs: tests never silently skip a peer.
pub fn require(tool: &str) {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "{tool} not installed; scripts/test.sh installs it");
}

/// Kills the child when the test ends, pass or fail; if the child is an engine from
/// [`spawn_engine_with`] whose stderr said "panicked at", the test fails with its stderr tail.
pub struct Reaper(pub Child);

impl Reaper {
    /// Fails now (rather than at drop) if the spawned engine has panicked so far.
    pub fn assert_no_panic(&self) {
        if let Some(log) = engine_log::of(self.0.id()) {
            let panics = log.panics();
            assert!(
                panics.is_empty(),
                "the engine panicked:\n{}\n--- its last stderr lines ---\n{}",
                panics.join("\n"),
                log.tail().join("\n")
            );
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        engine_log::check_exited(self.0.id());
    }
}

/// Starts the binary on port 0 everywhere and reads its addresses from the start-up log line.
pub fn spawn_engine(env: &[(&str, &str)]) -> (Reaper, SocketAddr, SocketAddr, SocketAddr) {
    let e = spawn_engine_with(&[], env);
    (e.reaper, e.sip, e.api, e.metrics)
}

/// A fresh SQLite path under the temp dir, unique per call (the file does not exist yet).
pub fn temp_db_path() -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir()
        .join(format!(
            "activeflow-test-db-{}-{n}-{nanos}",
            std::process::id()
        ))
        .join("activeflow.db")
        .display()
        .to_string()
}

/// A binary started by [`spawn_engine_with`].
pub struct Spawned {
    pub reaper: Reaper,
    pub sip: SocketAddr,
    pub api: SocketAddr,
    pub metrics: SocketAddr,
    /// Log lines printed before the engine said it was listening (ANSI stripped).
    pub startup_log: Vec<String>,
}

/// `activeflow serve ARGS...` on port 0 everywhere, with `env` overrides; returns once it listens.
pub fn spawn_engine_with(args: &[&str], env: &[(&str, &str)]) -> Spawned {
    spawn_engine_logging(args, env, false)
}

/// [`spawn_engine_with`], keeping every stderr line for [`Spawned::stderr_lines`].
pub fn spawn_engine_keeping_log(args: &[&str], env: &[(&str, &str)]) -> Spawned {
    spawn_engine_logging(args, env, true)
}

impl Spawned {
    /// Every line printed on stderr so far, start-up included (an engine from
    /// [`spawn_engine_keeping_log`]; otherwise none).
    pub fn stderr_lines(&self) -> Vec<String> {
        engine_log::of(self.reaper.0.id()).map_or_else(Vec::new, |log| log.all())
    }
}

fn spawn_engine_logging(args: &[&str], env: &[(&str, &str)], keep_all: bool) -> Spawned {
    let mut child = Command::new(env!("CARGO_BIN_EXE_activeflow"))
        .arg("serve")
        .args(args)
        .env("ACTIVEFLOW_SIP_LISTEN", "127.0.0.1:0")
        .env("ACTIVEFLOW_API_LISTEN", "127.0.0.1:0")
        .env("ACTIVEFLOW_METRICS_LISTEN", "127.0.0.1:0")
        .env(
            "ACTIVEFLOW_FLOWS_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/flows"),
        )
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env("ACTIVEFLOW_SIP_OVERLOAD_LAG_MS", "5000")
        .env(
            "ACTIVEFLOW_MEDIA_RECORDINGS_DIR",
            std::env::temp_dir().join("activeflow-test-recordings"),
        )
        .env(
            "ACTIVEFLOW_MEDIA_CACHE_DIR",
            std::env::temp_dir().join("activeflow-test-cache"),
        )
        .env("ACTIVEFLOW_STORAGE_PATH", temp_db_path())
        // Never the benchmarks' RTP ports (20000-59999); `env` may still override.
        .env("ACTIVEFLOW_MEDIA_RTP_PORTS", rtp_port_range())
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start activeflow");
    let stderr = child.stderr.take().unwrap();
    let mut lines = engine_log::lines(BufReader::new(stderr)).map(|l| strip_ansi(&l));
    let mut startup_log = Vec::new();
    let line = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("engine exited before listening: {startup_log:#?}"));
        if line.contains("activeflow listening") {
            break line;
        }
        startup_log.push(line);
    };
    // Keep draining the log (so the engine never blocks on a full pipe) into the panic check.
    if keep_all {
        let mut before = startup_log.clone();
        before.push(line.clone());
        engine_log::collect_all(child.id(), before, lines);
    } else {
        engine_log::collect(child.id(), lines);
    }
    // `log.format` "json" prints the line as an object, "text" as `key=value` words.
    let json: Option<Value> = serde_json::from_str(&line).ok();
    let addr = |key: &str| -> SocketAddr {
        match &json {
            Some(object) => object[key].as_str().map(str::to_owned),
            None => line
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{key}=")))
                .map(str::to_owned),
        }
        .unwrap_or_else(|| panic!("{key}= in {line}"))
        .parse()
        .unwrap()
    };
    Spawned {
        sip: addr("sip"),
        api: addr("api"),
        metrics: addr("metrics"),
        reaper: Reaper(child),
        startup_log,
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// GET over a fresh connection; the body as text.
pub fn raw_get(addr: SocketAddr, path: &str) -> String {
    String::from_utf8_lossy(&raw_get_bytes(addr, path)).into_owned()
}

/// GET over a fresh connection; the body as bytes (panics unless the status is 200).
pub fn raw_get_bytes(addr: SocketAddr, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    assert!(
        buf.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..split])
    );
    buf[split + 4..].to_vec()
}

/// Polls `probe` every 10 ms until it returns Some (returned), or panics naming `what` after
/// `limit`: a wait on a condition, never a fixed sleep.
pub fn wait_until<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One series scraped from a metrics endpoint now (0 when absent).
pub fn scrape(metrics: SocketAddr, series: &str) -> f64 {
    metric(&raw_get(metrics, "/metrics"), series).unwrap_or(0.0)
}

/// The value of an unlabelled or fully labelled sample in a Prometheus exposition.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// One HTTP/1.1 request read from `stream` (the test servers' side): method, path and body (by
/// `Content-Length`).
pub fn read_http_request(stream: &std::net::TcpStream) -> (String, String, Vec<u8>) {
    let request = read_http_request_with_headers(stream);
    (request.method, request.path, request.body)
}

/// A request as a test server read it.
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// In order, names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// As [`read_http_request`], with the headers.
pub fn read_http_request_with_headers(stream: &std::net::TcpStream) -> HttpRequest {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("request line");
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut length = 0;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).expect("header");
        if h.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().expect("content-length");
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).expect("body");
    HttpRequest {
        method,
        path,
        headers,
        body,
    }
}

/// Panics unless `tool` is an executable on `PATH`, for peers without a harmless `--version`
/// (baresip starts a user agent on any option it does not know): tests never skip a peer.
pub fn require_on_path(tool: &str) {
    use std::os::unix::fs::PermissionsExt;
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    assert!(found, "{tool} not installed; scripts/test.sh installs it");
}
