//! A SIPp UAS for one call (`-m 1`) on its own port: the callee of a `connect`, a carrier's
//! SBC, a REFER target. Started in its own temporary directory (SIPp writes its logs to the
//! cwd), polled until it holds its port (never a fixed sleep), killed when dropped.

use std::net::{TcpListener, UdpSocket};
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

    /// Scenario `name` on `ip` over `transport` (`u1` or `t1`).
    pub fn start_on(name: &str, ip: &str, transport: &str, extra: &[&str]) -> SippUas {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("activeflow-uas-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let child = Command::new("sipp")
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
        let held = |p: u16| match transport {
            "t1" => TcpListener::bind((ip, p)).is_err(),
            _ => UdpSocket::bind((ip, p)).is_err(),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !held(port) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        SippUas { child, port, dir }
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
