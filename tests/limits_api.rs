//! The API is closed by default (issue 16), against the real binary over real sockets: with no
//! token only requests addressed to a loopback host are served (DNS-rebinding guard) and start
//! warns; `api.token_file`; scoped `[[api.tokens]]` (401 without a token, 403 naming the
//! missing scope, RFC 6750 §3.1); `events.max_readers` (503 + Retry-After, a gauge); HTTPS on
//! the API and metrics listeners with a certificate made here (rcgen), trusted by reqwest.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

/// A file in this test process's scratch directory.
fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("activeflow-limits-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// One response: status, lower-cased head lines, JSON body (Null if none).
struct Answer {
    status: u16,
    head: Vec<String>,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}: ", name.to_ascii_lowercase());
        self.head.iter().find_map(|l| l.strip_prefix(&prefix))
    }
}

/// One HTTP/1.1 request with the given `Host` and extra headers, `Connection: close`.
fn request(
    api: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Answer {
    let mut stream = TcpStream::connect(api).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        text.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(&body);
    stream.write_all(text.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw);
    let (head, payload) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let head: Vec<String> = head.lines().map(str::to_ascii_lowercase).collect();
    let status = head
        .first()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    // Error bodies are small JSON; chunked ones arrive in one chunk.
    let payload = if head.iter().any(|l| l == "transfer-encoding: chunked") {
        payload.split_once("\r\n").map_or("", |(_, rest)| rest)
    } else {
        payload
    };
    let body = serde_json::Deserializer::from_str(payload)
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or(Value::Null);
    Answer { status, head, body }
}

/// A request addressed to the API by its own loopback address, as a local client sends it.
fn local(api: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Answer {
    local_with(api, method, path, token, None)
}

fn local_with(
    api: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    request(api, method, path, &api.to_string(), &headers, body)
}

#[test]
fn without_a_token_only_loopback_hosts_are_served_and_start_warns() {
    let engine = common::spawn_engine_with(&[], &[]);
    let api = engine.api;
    let port = api.port();
    assert!(
        engine
            .startup_log
            .iter()
            .any(|l| l.contains("WARN") && l.contains("open to every local process")),
        "no warning that the API is open: {:#?}",
        engine.startup_log
    );
    // A page whose name was rebound to 127.0.0.1 still says its own name in Host.
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_string(),
        format!("localhost.evil.example:{port}"),
        format!("10.1.2.3:{port}"),
        String::new(),
    ] {
        let a = request(api, "GET", "/v1/flows", &host, &[], None);
        assert_eq!(a.status, 403, "Host {host:?}: {}", a.body);
        assert_eq!(a.body["error"]["code"], "host_not_loopback", "{}", a.body);
        let message = a.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("loopback"), "{message}");
    }
    // Writes are refused before they happen.
    let flow = json!({"name": "rebound", "actions": [{"type": "answer"}]});
    let host = format!("evil.example:{port}");
    let a = request(api, "POST", "/v1/flows", &host, &[], Some(&flow));
    assert_eq!(a.status, 403);
    let probe = request(api, "GET", "/readyz", &host, &[], None);
    assert_eq!(probe.status, 403);
    for host in [
        format!("localhost:{port}"),
        "LOCALHOST".to_string(),
        format!("127.0.0.1:{port}"),
        format!("127.0.0.2:{port}"),
        format!("[::1]:{port}"),
    ] {
        let a = request(api, "GET", "/v1/flows", &host, &[], None);
        assert_eq!(a.status, 200, "Host {host:?}: {}", a.body);
        assert!(
            !a.body["result"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["name"] == "rebound"),
            "the refused POST created its flow"
        );
    }
}

#[test]
fn a_token_file_is_read_at_start_and_any_host_may_then_call() {
    let file = scratch("api-token", "from-a-file\n");
    let engine = common::spawn_engine_with(
        &[],
        &[("ACTIVEFLOW_API_TOKEN_FILE", file.to_str().unwrap())],
    );
    let api = engine.api;
    assert!(
        !engine
            .startup_log
            .iter()
            .any(|l| l.contains("open to every local process")),
        "a token is configured"
    );
    let a = local(api, "GET", "/v1/flows", None);
    assert_eq!(
        (a.status, a.header("www-authenticate")),
        (401, Some("bearer"))
    );
    assert_eq!(a.body["error"]["scope"], "read", "{}", a.body);
    // The trailing newline is not part of the token.
    assert_eq!(
        local(api, "GET", "/v1/flows", Some("from-a-file\n")).status,
        200
    );
    assert_eq!(
        local(api, "GET", "/v1/flows", Some("from-a-file")).status,
        200
    );
    assert_eq!(
        local(api, "GET", "/v1/flows", Some("from-a-fil")).status,
        401
    );
    // With a token the token is the guard, whatever the Host (a reverse proxy's name).
    let auth = [("Authorization", "Bearer from-a-file")];
    let proxied = request(api, "GET", "/v1/flows", "api.example.com", &auth, None);
    assert_eq!(proxied.status, 200);
    drop(engine);
    // Beyond loopback without TLS, the start says the token travels in clear.
    let public = common::spawn_engine_with(
        &[],
        &[
            ("ACTIVEFLOW_API_TOKEN_FILE", file.to_str().unwrap()),
            ("ACTIVEFLOW_API_LISTEN", "0.0.0.0:0"),
        ],
    );
    assert!(
        public
            .startup_log
            .iter()
            .any(|l| l.contains("WARN") && l.contains("without TLS")),
        "{:#?}",
        public.startup_log
    );
}

#[test]
fn token_and_token_file_together_stop_the_start_naming_both() {
    let file = scratch("both-token", "t\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_activeflow"))
        .arg("serve")
        .env("ACTIVEFLOW_SIP_LISTEN", "127.0.0.1:0")
        .env("ACTIVEFLOW_API_LISTEN", "127.0.0.1:0")
        .env("ACTIVEFLOW_METRICS_LISTEN", "127.0.0.1:0")
        .env("ACTIVEFLOW_STORAGE_PATH", "")
        .env("ACTIVEFLOW_API_TOKEN", "inline")
        .env("ACTIVEFLOW_API_TOKEN_FILE", &file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("api.token_file") && err.contains("api.token and api.token_file"),
        "{err}"
    );
}

/// A config with an all-scopes `api.token` and three scoped tokens, one given by its hash.
fn scoped_config() -> PathBuf {
    let hash = hex_sha256("look");
    let text = format!(
        "{}\n\
         [[api.tokens]]\nname = \"dashboard\"\ntoken_sha256 = \"{hash}\"\nscopes = [\"read\"]\n\
         [[api.tokens]]\nname = \"ops\"\ntoken = \"act\"\nscopes = [\"read\", \"control\"]\n\
         [[api.tokens]]\nname = \"author\"\ntoken = \"write\"\nscopes = [\"flows\"]\n",
        activeflow::config::DEFAULT_TOML
    );
    scratch("scoped.toml", &text)
}

/// `sha256sum` of `text`, in hex.
fn hex_sha256(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn scoped_tokens_grant_exactly_their_scopes() {
    let config = scoped_config();
    let engine = common::spawn_engine_with(
        &["--config", config.to_str().unwrap()],
        &[("ACTIVEFLOW_API_TOKEN", "root")],
    );
    let api = engine.api;
    let sleeper = json!({"actions": [{"type": "sleep", "option": {"duration": 60000}}]});
    // Starting an activeflow runs flow code: `flows`, not `control`.
    let refused = local_with(api, "POST", "/v1/activeflows", Some("act"), Some(&sleeper));
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.body["error"]["scope"], "flows");
    let started = local_with(
        api,
        "POST",
        "/v1/activeflows",
        Some("write"),
        Some(&sleeper),
    );
    assert_eq!(started.status, 200, "{}", started.body);
    let id = started.body["id"].as_str().unwrap().to_owned();
    let stop = format!("/v1/activeflows/{id}/stop");

    // The dashboard reads everything and changes nothing.
    for path in [
        "/v1/activeflows",
        "/v1/flows",
        "/v1/calls",
        "/v1/recordings",
    ] {
        let a = local(api, "GET", path, Some("look"));
        assert_eq!(a.status, 200, "{path}: {}", a.body);
    }
    let a = local(api, "POST", &stop, Some("look"));
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "forbidden");
    assert_eq!(a.body["error"]["scope"], "control");
    let message = a.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("dashboard") && message.contains("control"),
        "{message}"
    );
    assert!(a
        .header("www-authenticate")
        .is_some_and(|h| h.contains("insufficient_scope")));
    let flow = json!({"name": "new", "actions": [{"type": "answer"}]});
    let a = local_with(api, "POST", "/v1/flows", Some("look"), Some(&flow));
    assert_eq!(
        (a.status, &a.body["error"]["scope"]),
        (403, &json!("flows"))
    );
    // The author writes flows but cannot read them back or stop anything.
    let a = local(api, "GET", "/v1/flows", Some("write"));
    assert_eq!((a.status, &a.body["error"]["scope"]), (403, &json!("read")));
    assert_eq!(local(api, "POST", &stop, Some("write")).status, 403);
    // VoIPBIN's `?token=` and `/v1.0`: the same tokens with the same scopes.
    let v1_0_stop = format!("/v1.0/activeflows/{id}/stop");
    let a = local(api, "POST", &format!("{v1_0_stop}?token=look"), None);
    assert_eq!(
        (a.status, &a.body["error"]["scope"]),
        (403, &json!("control"))
    );
    let a = local(api, "GET", "/v1.0/flows?token=write", None);
    assert_eq!((a.status, &a.body["error"]["scope"]), (403, &json!("read")));
    assert_eq!(
        local(api, "GET", "/v1.0/flows?token=look", None).status,
        200
    );
    let a = local_with(api, "POST", "/v1/flows", Some("write"), Some(&flow));
    assert_eq!(a.status, 201, "{}", a.body);
    let flow_id = a.body["id"].as_str().unwrap().to_owned();

    // No token or a wrong one: 401 naming the scope the route needs.
    let a = local(api, "POST", &stop, None);
    assert_eq!(
        (a.status, &a.body["error"]["scope"]),
        (401, &json!("control"))
    );
    let a = local(api, "GET", "/v1/activeflows", Some("looK"));
    assert_eq!((a.status, &a.body["error"]["scope"]), (401, &json!("read")));
    // A write no scope names needs admin, before any route is looked up.
    let a = local(api, "POST", "/v1/maintenance", Some("act"));
    assert_eq!(
        (a.status, &a.body["error"]["scope"]),
        (403, &json!("admin"))
    );
    assert_eq!(
        local(api, "POST", "/v1/maintenance", Some("root")).status,
        404
    );

    // Operations stops the activeflow; api.token can do everything.
    let a = local(api, "POST", &stop, Some("act"));
    assert!(a.status < 300, "{} {}", a.status, a.body);
    let a = local(api, "DELETE", &format!("/v1/flows/{flow_id}"), Some("root"));
    assert!(a.status < 300, "{} {}", a.status, a.body);
    // Probes stay open for orchestrators.
    assert_eq!(local(api, "GET", "/readyz", None).status, 200);
}

/// An SSE stream opened on a raw socket; the response head is read, the body never is.
fn open_stream(api: SocketAddr) -> (TcpStream, Vec<String>) {
    let stream = TcpStream::connect(api).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(&stream, "GET /v1/events HTTP/1.1\r\nHost: {api}\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        head.push(line.trim().to_ascii_lowercase());
    }
    (stream, head)
}

#[test]
fn event_stream_readers_beyond_the_cap_get_503_with_retry_after() {
    // A reader that hangs up is noticed at the next write: keep-alives come often here.
    let engine = common::spawn_engine_with(
        &[],
        &[
            ("ACTIVEFLOW_EVENTS_MAX_READERS", "2"),
            ("ACTIVEFLOW_EVENTS_KEEPALIVE_MS", "100"),
        ],
    );
    let (api, metrics) = (engine.api, engine.metrics);
    let (first, head) = open_stream(api);
    assert!(head[0].starts_with("http/1.1 200"), "{head:?}");
    let (_second, head) = open_stream(api);
    assert!(head[0].starts_with("http/1.1 200"), "{head:?}");
    common::wait_until("2 readers counted", Duration::from_secs(5), || {
        (common::scrape(metrics, "activeflow_events_readers") == 2.0).then_some(())
    });
    let refused = local(api, "GET", "/v1/events", None);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("5"));
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("events.max_readers"), "{message}");
    assert_eq!(
        common::scrape(metrics, "activeflow_events_readers_refused_total"),
        1.0
    );
    // A reader that leaves frees its place.
    drop(first);
    common::wait_until("a reader gone", Duration::from_secs(10), || {
        (common::scrape(metrics, "activeflow_events_readers") == 1.0).then_some(())
    });
    let (_third, head) = open_stream(api);
    assert!(head[0].starts_with("http/1.1 200"), "{head:?}");
}

/// A self-signed certificate for 127.0.0.1 and localhost: (cert path, key path, cert PEM).
fn self_signed(name: &str) -> (PathBuf, PathBuf, String) {
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert = made.cert.pem();
    let cert_path = scratch(&format!("{name}-cert.pem"), &cert);
    let key_path = scratch(
        &format!("{name}-key.pem"),
        &made.signing_key.serialize_pem(),
    );
    (cert_path, key_path, cert)
}

#[tokio::test]
async fn api_and_metrics_listen_https_with_the_configured_certificate() {
    let (api_cert, api_key, api_pem) = self_signed("api");
    let (metrics_cert, metrics_key, metrics_pem) = self_signed("metrics");
    let engine = common::spawn_engine_with(
        &[],
        &[
            ("ACTIVEFLOW_API_TLS_CERT", api_cert.to_str().unwrap()),
            ("ACTIVEFLOW_API_TLS_KEY", api_key.to_str().unwrap()),
            (
                "ACTIVEFLOW_METRICS_TLS_CERT",
                metrics_cert.to_str().unwrap(),
            ),
            ("ACTIVEFLOW_METRICS_TLS_KEY", metrics_key.to_str().unwrap()),
        ],
    );
    let trusting = reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(api_pem.as_bytes()).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(metrics_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let api = format!("https://127.0.0.1:{}", engine.api.port());
    let flows = trusting
        .get(format!("{api}/v1/flows"))
        .send()
        .await
        .unwrap();
    assert_eq!(flows.status(), 200);
    let body: Value = serde_json::from_str(&flows.text().await.unwrap()).unwrap();
    assert!(body["result"].is_array(), "{body}");
    let metrics = format!("https://127.0.0.1:{}/metrics", engine.metrics.port());
    let scraped = trusting.get(&metrics).send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    let content_type = scraped.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = scraped.text().await.unwrap();
    assert!(text.contains("# TYPE activeflow_running gauge"), "{text}");

    // Plain HTTP to either TLS listener gets no HTTP answer.
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    for port in [engine.api.port(), engine.metrics.port()] {
        let url = format!("http://127.0.0.1:{port}/healthz");
        let answer = plain.get(&url).send().await;
        assert!(answer.is_err(), "plain HTTP answered on {port}: {answer:?}");
    }
    // A client that does not trust the certificate refuses it: it is the configured one.
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .build()
        .unwrap();
    let refused = untrusting.get(format!("{api}/healthz")).send().await;
    assert!(refused.is_err(), "{refused:?}");
}

/// An SSE stream on a socket with a tiny receive buffer, whose body is never read.
fn open_stalled_stream(api: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&api.into()).unwrap();
    let stream: TcpStream = socket.into();
    write!(&stream, "GET /v1/events HTTP/1.1\r\nHost: {api}\r\n\r\n").unwrap();
    stream
}

#[test]
fn a_reader_that_never_reads_is_dropped_and_resumes_behind_the_window() {
    let engine = common::spawn_engine_with(
        &[],
        &[
            ("ACTIVEFLOW_EVENTS_MAX_READERS", "1"),
            ("ACTIVEFLOW_EVENTS_WINDOW", "2000"),
            ("ACTIVEFLOW_EVENTS_READER_STALL_TIMEOUT_MS", "500"),
        ],
    );
    let (api, metrics) = (engine.api, engine.metrics);
    let stalled = open_stalled_stream(api);
    common::wait_until(
        "the stalled reader subscribed",
        Duration::from_secs(5),
        || (common::scrape(metrics, "activeflow_events_readers") == 1.0).then_some(()),
    );
    // Each activeflow publishes ~800 updates carrying a 4 KiB option: megabytes of events,
    // far beyond the socket buffers, for a reader that takes none of them.
    let first = uuid::Uuid::new_v4();
    let looping = json!({"actions": [
        {"id": first, "type": "variable_set", "option": {"key": "pad", "value": "x".repeat(4096)}},
        {"type": "goto", "option": {"target_id": first, "loop_count": 399}}
    ]});
    for _ in 0..8 {
        let a = local_with(api, "POST", "/v1/activeflows", None, Some(&looping));
        assert_eq!(a.status, 200, "{}", a.body);
    }
    common::wait_until(
        "the stalled reader dropped",
        Duration::from_secs(30),
        || {
            (common::scrape(metrics, "activeflow_events_readers_dropped_total") == 1.0)
                .then_some(())
        },
    );
    // Dropped, but its connection (and its buffers) are still held, and so is its place
    // among max_readers: actix polls no body whose socket takes nothing.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(common::scrape(metrics, "activeflow_events_readers"), 1.0);
    }
    let refused = local(api, "GET", "/v1/events", None);
    assert_eq!(refused.status, 503, "{}", refused.body);
    // The client closes: the place is free.
    drop(stalled);
    common::wait_until(
        "the stalled reader's place freed",
        Duration::from_secs(10),
        || (common::scrape(metrics, "activeflow_events_readers") == 0.0).then_some(()),
    );
    // Its place is free (max_readers 1); resuming from an id long gone says so, then goes on.
    let stream = TcpStream::connect(api).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        &stream,
        "GET /v1/events HTTP/1.1\r\nHost: {api}\r\nLast-Event-ID: 1\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.starts_with("event: ")) {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "closed: {seen:?}");
        seen.push(line.trim().to_owned());
    }
    assert!(seen[0].starts_with("HTTP/1.1 200"), "{seen:?}");
    assert_eq!(
        seen.last().map(String::as_str),
        Some("event: window_exceeded"),
        "{seen:?}"
    );
}

#[test]
fn every_route_in_the_spec_is_behind_the_guard() {
    let engine = common::spawn_engine_with(&[], &[("ACTIVEFLOW_API_TOKEN", "root")]);
    let api = engine.api;
    let spec = local(api, "GET", "/v1/openapi.json", None);
    assert_eq!(spec.status, 200, "the spec stays open");
    let paths = spec.body["paths"].as_object().unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    let mut checked = 0;
    for (path, operations) in paths {
        if path == "/v1/openapi.json" || !path.starts_with("/v1") {
            continue;
        }
        let concrete = path.replace("{id}", &id);
        for (method, operation) in operations.as_object().unwrap() {
            let method = method.to_ascii_uppercase();
            let a = local(api, &method, &concrete, None);
            assert_eq!(a.status, 401, "{method} {path} without a token: {}", a.body);
            let scope = a.body["error"]["scope"].as_str().unwrap();
            assert_eq!(scope == "read", method == "GET", "{method} {path}: {scope}");
            // The spec documents the scope the guard asks for.
            assert_eq!(
                operation["security"],
                json!([{ "bearer": [scope] }, { "token": [scope] }]),
                "{method} {path}"
            );
            // VoIPBIN's `/v1.0` alias of it is guarded the same way.
            let alias = concrete.replacen("/v1/", "/v1.0/", 1);
            let a = local(api, &method, &alias, None);
            assert_eq!(
                (a.status, a.body["error"]["scope"].as_str()),
                (401, Some(scope)),
                "{method} {alias}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} operations in the spec");

    // The guard classifies the path the router matches (percent-decoded), and what it does not
    // know needs a token all the same: `/%761/flows` is routed to `POST /v1/flows`.
    let flow = json!({"name": "sneaky", "actions": [{"type": "answer"}]});
    let stop = format!("/%76%31/activeflows/{id}/stop");
    for (method, path) in [
        ("POST", "/%761/flows"),
        ("POST", "/%76%31/flows"),
        ("POST", "/v1/%66lows"),
        ("POST", stop.as_str()),
        ("POST", "//v1/flows"),
        ("POST", "/v1//flows"),
        ("POST", "/v1/flows/"),
        ("GET", "/%761/flows"),
        ("GET", "//v1/flows"),
        ("GET", "/v1/openapi.json/"),
        ("GET", "/healthz/"),
        ("POST", "/healthz"),
        ("DELETE", "/elsewhere"),
    ] {
        let a = local_with(api, method, path, None, Some(&flow));
        assert_eq!(a.status, 401, "{method} {path} without a token: {}", a.body);
    }
    let a = local(api, "GET", "/v1/flows", Some("root"));
    assert_eq!(a.status, 200, "{}", a.body);
    let names: Vec<&Value> = a.body["result"]
        .as_array()
        .map(|items| items.iter().map(|f| &f["name"]).collect())
        .unwrap_or_default();
    assert!(!names.contains(&&json!("sneaky")), "{}", a.body);
}
