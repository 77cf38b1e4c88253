//! A SIPp UAS for one call (`-m 1`) on its own port: the callee of a `connect`, a carrier's
//! SBC, a REFER target. Started in its own temporary directory (SIPp writes its logs to the
//! cwd), polled until it holds its port (never a fixed sleep), killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, scenario};

pub struct SippUas {
    child: Child,
    pub port: u16,
    /// Its working directory: `-trace_msg` writes `<scenario>_<pid>_messages.log` here.
    dir: std::path::PathBuf,
}

impl SippUas {
    /// Scenario `name` on 127.0.0.1 over UDP, with `extra` SIPp arguments (`-key rtp_port N`,
    /// `-mp N`, `-d 500`, ...).
    pub fn start(name: &str, extra: &[&str]) -> SippUas {
        SippUas::start_on(name, "127.0.0.1", "u1", extra)
    }

    /// [`SippUas::start`] with `-key rtp_port <rtp_port>`: the port its scenario's SDP names.
    pub fn start_with_rtp(name: &str, rtp_port: u16, extra: &[&str]) -> SippUas {
        let rtp = rtp_port.to_string();
        let mut args = vec!["-key", "rtp_port", rtp.as_str()];
        args.extend_from_slice(extra);
        SippUas::start(name, &args)
    }

    /// Scenario `name` on `ip` over `transport` (`u1` or `t1`). Returns once SIPp itself holds
    /// its port: a port released to SIPp can be taken by another process first (SIPp then exits,
    /// "Unable to bind main socket"), and that one holding it must not pass for SIPp; then SIPp
    /// starts again on a fresh port, up to 5 times.
    pub fn start_on(name: &str, ip: &str, transport: &str, extra: &[&str]) -> SippUas {
        let proto = if transport == "t1" { "tcp" } else { "udp" };
        for _ in 0..5 {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("activeflow-uas-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("dir");
            let mut child = Command::new("sipp")
                .current_dir(&dir)
                .args(["-sf", scenario(name).to_str().expect("path")])
                .args([
                    "-t",
                    transport,
                    "-i",
                    ip,
                    "-p",
                    &port.to_string(),
                    "-m",
                    "1",
                ])
                .args(["-buff_size", "4194304", "-nostdin", "-trace_err"])
                .args(["-timeout", "60s", "-timeout_error"])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run sipp ({e}); scripts/test.sh installs it"));
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if holds(child.id(), proto, port) || Instant::now() > deadline {
                    // At the deadline the test goes on and fails on its own, with SIPp's logs.
                    return SippUas { child, port, dir };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // it could not bind: again on another port
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("sipp could not bind a port for {name} in 5 tries");
    }

    /// Waits until SIPp's message trace holds `needle` (started with `-trace_msg`, which SIPp
    /// writes as each message goes); false at `limit`. For a test that must act only once the
    /// peer really got a request, not when the engine decided to send it.
    pub fn traced(&self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let found = std::fs::read_dir(&self.dir)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| {
                    e.file_name().to_string_lossy().ends_with("_messages.log")
                        && std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(needle))
                });
            if found {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `sip:bob@127.0.0.1:<port>`.
    pub fn uri(&self) -> String {
        format!("sip:bob@127.0.0.1:{}", self.port)
    }

    /// Waits for SIPp to finish its one call; true when it succeeded (killed at `limit`).
    pub fn succeeded(mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SippUas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether process `pid` holds a socket bound to local `port`: the inodes of the sockets on that
/// port in `/proc/net/<proto>` (and `<proto>6`) against the process's file descriptors.
fn holds(pid: u32, proto: &str, port: u16) -> bool {
    let local = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in [format!("/proc/net/{proto}"), format!("/proc/net/{proto}6")] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 && cols[1].ends_with(&local) {
                inodes.push(format!("socket:[{}]", cols[9]));
            }
        }
    }
    !inodes.is_empty()
        && std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|link| inodes.iter().any(|i| link.as_os_str() == i.as_str()))
            })
}
