//! A minimal WebDriver client (W3C WebDriver over HTTP/JSON, with reqwest) for the console's
//! browser test: starts `chromedriver` on a free port in its own process group, opens a
//! headless Chromium session with a fresh profile, and offers what the test needs (navigate,
//! find by CSS, click, type, run a script, accept a `confirm()`, screenshot). Dropping it takes
//! a screenshot when the test is failing, ends the session (a short wait at most) and kills
//! chromedriver and the browser it started (their process group). Should the test process die
//! without dropping it, `setpriv --pdeathsig` kills chromedriver and the browser with it.
//! Panics with a clear message when Chromium or chromedriver is missing: no silent skip.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The element reference key of the W3C protocol.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// util-linux's `setpriv`: `--pdeathsig KILL` gives a child PR_SET_PDEATHSIG without
/// `unsafe` (`pre_exec`) here. Without it the process group kill in `Drop` is the only cleanup.
const SETPRIV: &str = "/usr/bin/setpriv";
/// How long `Drop` waits for the session's DELETE (the browser closing cleanly).
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// A browser element (its WebDriver reference).
#[derive(Debug, Clone)]
pub struct Element(String);

/// A WebDriver error answer: its `error` code and `message`.
#[derive(Debug)]
pub struct WebDriverError {
    pub error: String,
    pub message: String,
}

pub struct Browser {
    driver: Child,
    base: String,
    session: Option<String>,
    profile: PathBuf,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    /// Where `Drop` saves a screenshot when the test is failing (panicking).
    failure_screenshot: Option<PathBuf>,
}

/// Panics unless Chromium and chromedriver are installed.
pub fn require_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} not found: the console's browser test needs Debian's chromium \
         (scripts/test.sh installs chromium and chromium-driver)"
    );
    let driver = Command::new("chromedriver").arg("--version").output();
    assert!(
        driver.is_ok_and(|o| o.status.success()),
        "chromedriver not found: the console's browser test needs Debian's chromium-driver \
         (scripts/test.sh installs it)"
    );
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session (window `width`×`height`).
    pub fn start(width: u32, height: u32) -> Browser {
        require_chromium();
        let port = super::reserve_port();
        let profile = std::env::temp_dir().join(format!(
            "activeflow-chromium-{}-{}",
            std::process::id(),
            port.port()
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("profile dir");
        let pdeathsig = Path::new(SETPRIV).exists();
        let mut command = if pdeathsig {
            // Killed when the thread that started it (the test's) ends, however it ends.
            let mut c = Command::new(SETPRIV);
            c.args(["--pdeathsig", "KILL", "chromedriver"]);
            c
        } else {
            Command::new("chromedriver")
        };
        command
            .arg(format!("--port={}", port.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: chromedriver and every browser process it starts are killed
            // together, even when the test fails before the session ends.
            .process_group(0);
        let port = port.release();
        let driver = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver: {e}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .expect("client");
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: None,
            profile,
            runtime,
            client,
            failure_screenshot: None,
        };
        browser.wait_ready();
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", browser.profile.display()),
        ];
        let binary = if pdeathsig {
            browser.chromium_wrapper()
        } else {
            CHROMIUM.to_string()
        };
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": binary, "args": args},
            // confirm() stays open until the test accepts or dismisses it.
            "unhandledPromptBehavior": "ignore",
        }}});
        let created = browser
            .call("POST", "/session", Some(capabilities))
            .unwrap_or_else(|e| panic!("no browser session: {e:?}"));
        browser.session = Some(
            created["sessionId"]
                .as_str()
                .expect("sessionId")
                .to_string(),
        );
        browser
    }

    /// A script in the profile directory that runs Chromium with PR_SET_PDEATHSIG (killed
    /// when chromedriver dies); its path.
    fn chromium_wrapper(&self) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = self.profile.with_extension("chromium.sh");
        let script = format!("#!/bin/sh\nexec {SETPRIV} --pdeathsig KILL {CHROMIUM} \"$@\"\n");
        std::fs::write(&path, script).expect("chromium wrapper");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chromium wrapper mode");
        path.display().to_string()
    }

    /// When the test fails (panics) while this browser is up, `Drop` saves a screenshot of
    /// the page at `path`.
    pub fn screenshot_on_failure(&mut self, path: PathBuf) {
        self.failure_screenshot = Some(path);
    }

    /// Polls chromedriver's `/status` until it is ready (bounded).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(status) = self.call("GET", "/status", None) {
                if status["ready"] == true {
                    return;
                }
            }
            if let Ok(Some(exit)) = self.driver.try_wait() {
                panic!("chromedriver exited at start: {exit}");
            }
            assert!(Instant::now() < deadline, "chromedriver not ready in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One WebDriver command; the answer's `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WebDriverError> {
        self.call_within(method, path, body, None)
    }

    /// One WebDriver command, waiting at most `limit` (else the client's 90 s).
    fn call_within(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        limit: Option<Duration>,
    ) -> Result<Value, WebDriverError> {
        let url = format!("{}{path}", self.base);
        let method: reqwest::Method = method.parse().expect("method");
        self.runtime.block_on(async {
            let mut request = self.client.request(method, &url);
            if let Some(limit) = limit {
                request = request.timeout(limit);
            }
            if let Some(body) = body {
                request = request
                    .header("Content-Type", "application/json")
                    .body(body.to_string());
            }
            let response = request.send().await.map_err(|e| WebDriverError {
                error: "transport".into(),
                message: e.to_string(),
            })?;
            let ok = response.status().is_success();
            let text = response.text().await.map_err(|e| WebDriverError {
                error: "transport".into(),
                message: e.to_string(),
            })?;
            let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let value = answer["value"].clone();
            if ok {
                Ok(value)
            } else {
                Err(WebDriverError {
                    error: value["error"].as_str().unwrap_or("unknown").to_string(),
                    message: value["message"].as_str().unwrap_or(&text).to_string(),
                })
            }
        })
    }

    /// A command of this session; panics with the driver's error.
    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_session_call(method, path, body)
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e:?}"))
    }

    fn try_session_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let session = self.session.as_deref().expect("session");
        self.call(method, &format!("/session/{session}{path}"), body)
    }

    pub fn navigate(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Every element matching the CSS `selector` now (possibly none).
    pub fn find_all(&self, selector: &str) -> Vec<Element> {
        let found = self.session_call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": selector})),
        );
        found
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str())
                    .map(|id| Element(id.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching `selector`; panics when there is none.
    pub fn find(&self, selector: &str) -> Element {
        self.find_all(selector)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element matches {selector:?}"))
    }

    /// Waits (bounded) until `selector` matches a displayed element; returns it.
    pub fn wait_for(&self, selector: &str, limit: Duration) -> Element {
        let deadline = Instant::now() + limit;
        loop {
            for e in self.find_all(selector) {
                if self.displayed(&e) {
                    return e;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no displayed {selector:?} within {limit:?}; page text:\n{}",
                self.page_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn click(&self, e: &Element) {
        self.session_call("POST", &format!("/element/{}/click", e.0), Some(json!({})));
    }

    pub fn send_keys(&self, e: &Element, text: &str) {
        self.session_call(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        );
    }

    pub fn clear(&self, e: &Element) {
        self.session_call("POST", &format!("/element/{}/clear", e.0), Some(json!({})));
    }

    pub fn text(&self, e: &Element) -> String {
        let v = self.session_call("GET", &format!("/element/{}/text", e.0), None);
        v.as_str().unwrap_or_default().to_string()
    }

    /// An attribute (`data-index`, `href`, ...); `None` when absent.
    pub fn attribute(&self, e: &Element, name: &str) -> Option<String> {
        let v = self.session_call("GET", &format!("/element/{}/attribute/{name}", e.0), None);
        v.as_str().map(str::to_string)
    }

    pub fn displayed(&self, e: &Element) -> bool {
        // A stale element (the page redrew) counts as not displayed.
        self.try_session_call("GET", &format!("/element/{}/displayed", e.0), None)
            .is_ok_and(|v| v == true)
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its value.
    pub fn execute(&self, script: &str, args: &[Value]) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// An element as a script argument.
    pub fn arg(e: &Element) -> Value {
        json!({ ELEMENT_KEY: e.0 })
    }

    /// Waits (bounded) for a `confirm()`/`alert()`; returns its text and accepts it.
    pub fn accept_alert(&self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(text) = self.try_session_call("GET", "/alert/text", None) {
                self.session_call("POST", "/alert/accept", Some(json!({})));
                return text.as_str().unwrap_or_default().to_string();
            }
            assert!(Instant::now() < deadline, "no dialog within {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The page's visible text (for failure messages).
    pub fn page_text(&self) -> String {
        self.try_session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": "return document.body ? document.body.innerText : '';", "args": []})),
        )
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
    }

    /// A PNG of the viewport, written to `path` (its directory is made).
    pub fn screenshot(&self, path: &Path) {
        self.try_screenshot(path, None)
            .unwrap_or_else(|e| panic!("screenshot {}: {e}", path.display()));
    }

    /// [`Browser::screenshot`] that never panics (for `Drop`), waiting at most `limit`.
    fn try_screenshot(&self, path: &Path, limit: Option<Duration>) -> Result<(), String> {
        let session = self.session.as_deref().ok_or("no session")?;
        let v = self
            .call_within(
                "GET",
                &format!("/session/{session}/screenshot"),
                None,
                limit,
            )
            .map_err(|e| format!("{e:?}"))?;
        let png = decode_base64(v.as_str().ok_or("no base64 in the answer")?);
        if !png.starts_with(b"\x89PNG") {
            return Err("not a PNG".into());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, png).map_err(|e| e.to_string())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(path) = self.failure_screenshot.take() {
                match self.try_screenshot(&path, Some(CLOSE_WAIT)) {
                    Ok(()) => eprintln!("the page when the test failed: {}", path.display()),
                    Err(e) => eprintln!("no screenshot of the failure: {e}"),
                }
            }
        }
        if let Some(session) = self.session.take() {
            // Closes the browser cleanly when the driver still answers, briefly: the group
            // kill below ends it anyway.
            let path = format!("/session/{session}");
            let _ = self.call_within("DELETE", &path, None, Some(CLOSE_WAIT));
        }
        // The driver's whole group: chromedriver and any browser process left behind.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
        let _ = std::fs::remove_file(self.profile.with_extension("chromium.sh"));
    }
}

/// Standard base64 (RFC 4648 §4) to bytes; padding and whitespace ignored.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
