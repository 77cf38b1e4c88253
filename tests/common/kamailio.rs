//! Kamailio as a test peer: where its binary is, the readiness probe (OPTIONS answered by its
//! own config), and the shipped cluster front (`deploy/kamailio/kamailio.cfg`, the `dispatcher`
//! module) run privately in front of engine nodes. Used by tests/kamailio.rs (its own
//! record-routing proxy config) and tests/cluster_kamailio.rs.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::peers::{private_dir, Peer};

/// How long Kamailio may take to answer its first OPTIONS on a loaded 2-core machine.
const READY_PATIENCE: Duration = Duration::from_secs(20);

/// Debian installs Kamailio in /usr/sbin, which a non-root PATH may lack.
pub fn kamailio_bin() -> &'static str {
    let on_path = Command::new("kamailio")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if on_path {
        "kamailio"
    } else {
        "/usr/sbin/kamailio"
    }
}

/// Polls the proxy with OPTIONS (answered by its own config) until it answers: no fixed sleep.
pub fn wait_ready(kamailio: &Peer, addr: SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let me = socket.local_addr().expect("addr");
    let deadline = Instant::now() + READY_PATIENCE;
    for n in 0.. {
        let probe = format!(
            "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-probe-{n}\r\n\
             From: <sip:probe@{me}>;tag=probe\r\nTo: <sip:{addr}>\r\nCall-ID: probe-{n}@{me}\r\n\
             CSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            n = n + 1
        );
        socket.send_to(probe.as_bytes(), addr).expect("send");
        let mut buf = [0u8; 4096];
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            if buf[..len].starts_with(b"SIP/2.0 200") {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "kamailio did not answer OPTIONS on {addr}; its output:\n{}",
            kamailio.output().join("\n")
        );
    }
}

/// A private Kamailio running `config` in `dir` with `defines` (each passed as `-A`), on a
/// free UDP port of 127.0.0.1 and on the ports `also`, with `memory` (shared, private) MiB.
/// The config is checked (`kamailio -c`) first: it must be valid as shipped, before we rely on
/// it. Returns once it answers OPTIONS; SIGTERM on drop (its main process then stops the workers
/// it forked).
pub fn spawn(
    config: &Path,
    dir: &Path,
    defines: &[String],
    also: &[u16],
    memory: (u32, u32),
) -> (Peer, SocketAddr) {
    let bin = kamailio_bin();
    super::require(bin);
    let defines: Vec<&str> = defines.iter().flat_map(|d| ["-A", d.as_str()]).collect();
    let check = Command::new(bin)
        .current_dir(dir)
        .args(["-c", "-f"])
        .arg(config)
        .args(&defines)
        .output()
        .expect("kamailio -c");
    assert!(
        check.status.success(),
        "kamailio -c -f {}: {}",
        config.display(),
        String::from_utf8_lossy(&check.stderr)
    );
    let port = super::free_port();
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir)
        .args(["-DD", "-E", "-f"])
        .arg(config)
        .args(["-l", &format!("udp:127.0.0.1:{port}")])
        .args(&defines)
        .args(
            also.iter()
                .flat_map(|p| ["-l".to_string(), format!("udp:127.0.0.1:{p}")]),
        )
        .arg("-Y")
        .arg(dir)
        .arg("-P")
        .arg(dir.join("kamailio.pid"))
        .args(["-m", &memory.0.to_string(), "-M", &memory.1.to_string()]);
    let kamailio = Peer::spawn("kamailio", cmd).terminate_on_drop();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_ready(&kamailio, addr);
    (kamailio, addr)
}

/// The shipped cluster front, `deploy/kamailio/kamailio.cfg`, on its own UDP port, dispatching
/// to `nodes` (dispatcher set 1), with `WITH_TRACE` on: one `RELAY`/`REPLY` line per message
/// it sends, plus `DST-DOWN`/`DST-UP`/`FAILOVER` lines, which the tests read.
pub struct Dispatcher {
    pub kamailio: Peer,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Dispatcher {
    pub fn start(nodes: &[SocketAddr]) -> Dispatcher {
        let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/kamailio/kamailio.cfg");
        let dir = private_dir("dispatcher");
        let list = dir.join("dispatcher.list");
        let lines: String = nodes.iter().map(|n| format!("1 sip:{n} 0 0\n")).collect();
        std::fs::write(&list, lines).expect("dispatcher.list");
        let defines = [
            format!("DISPATCHER_LIST=\"{}\"", list.display()),
            "WITH_TRACE".to_string(),
        ];
        let (kamailio, addr) = spawn(&config, &dir, &defines, &[], (64, 8));
        Dispatcher {
            kamailio,
            addr,
            dir,
        }
    }

    /// Waits (bounded) for the dispatcher to log `DST-DOWN` (or `DST-UP`) for `node`.
    pub fn wait_state(&self, up: bool, node: SocketAddr, limit: Duration) -> Option<String> {
        let what = if up { "DST-UP " } else { "DST-DOWN " };
        self.kamailio
            .try_wait_line(&[what, &format!("sip:{node}")], limit)
    }

    /// INVITEs relayed to `node` whose Call-ID holds `-{tag}-` (SIPp run with
    /// `-cid_str %u-TAG-%p@%s`: one SIPp run's calls).
    pub fn invites_to(&self, node: SocketAddr, tag: &str) -> usize {
        self.kamailio
            .matching(&[
                "RELAY INVITE ",
                &format!(" to {node} cid "),
                &format!("-{tag}-"),
            ])
            .len()
    }

    pub fn log(&self) -> String {
        self.kamailio.output().join("\n")
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
