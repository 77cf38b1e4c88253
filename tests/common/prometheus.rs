//! A private, real Prometheus for tests: scrapes one engine's `/metrics` every second from its
//! own temp dir and port, optionally with rule files evaluated every second; plus its HTTP
//! query API. Killed with the test (a [`Reaper`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::{free_port, http, Reaper};

/// A running Prometheus: its API address and its directory (config, data).
pub struct Prometheus {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    _process: Reaper,
}

/// Prometheus scraping `metrics` (job `activeflow`) every second.
pub fn start(metrics: SocketAddr) -> Prometheus {
    start_with_rules(metrics, &[])
}

/// Prometheus scraping `metrics` (job `activeflow`) every second and evaluating `rules` (rule
/// files, copied into its directory) every second.
pub fn start_with_rules(metrics: SocketAddr, rules: &[(&str, String)]) -> Prometheus {
    let dir = std::env::temp_dir().join(format!(
        "activeflow-prom-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("prometheus dir");
    let mut rule_files = String::new();
    for (name, text) in rules {
        std::fs::write(dir.join(name), text).expect("rule file");
        rule_files.push_str(&format!("  - {name}\n"));
    }
    let rule_files = match rule_files.is_empty() {
        true => String::new(),
        false => format!("rule_files:\n{rule_files}"),
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rule_files}scrape_configs:\n  \
         - job_name: activeflow\n    metrics_path: /metrics\n    static_configs:\n      \
         - targets: ['{metrics}']\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).expect("prometheus config");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            path(&dir.join("prometheus.yml"))
        ))
        .arg(format!("--storage.tsdb.path={}", path(&dir.join("data"))))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    Prometheus {
        addr,
        dir,
        _process: Reaper(child),
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

impl Prometheus {
    /// Whether its HTTP API answers (it may not listen yet, or still be starting: 503).
    pub fn is_up(&self) -> bool {
        std::net::TcpStream::connect(self.addr).is_ok()
            && http(self.addr, "GET", "/-/ready", None).0 == 200
    }

    /// An instant query's whole answer (asserts HTTP 200).
    pub fn query(&self, q: &str) -> Value {
        query(self.addr, q)
    }

    /// GET `path` of its API (e.g. `/api/v1/rules`): the JSON answer, when 200.
    pub fn api(&self, path: &str) -> Option<Value> {
        if std::net::TcpStream::connect(self.addr).is_err() {
            return None;
        }
        let (status, body) = http(self.addr, "GET", path, None);
        (status == 200).then_some(body)
    }
}

/// Percent-encodes a query for a URL.
pub fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An instant query against the Prometheus at `prom` (asserts HTTP 200).
pub fn query(prom: SocketAddr, q: &str) -> Value {
    let (status, body) = http(
        prom,
        "GET",
        &format!("/api/v1/query?query={}", encode(q)),
        None,
    );
    assert_eq!(status, 200, "{q}: {body}");
    body
}
