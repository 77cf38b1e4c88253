//! Library tests for `play` prompts against real files in a temp directory and a real HTTP server
//! on 127.0.0.1:0 (a tokio listener writing raw HTTP/1.1). Also the helpers `tests_speech` uses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::media::wav::WavWriter;

/// A directory removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    pub(super) fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "activeflow-audio-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn config(prompts: &Path, cache: &Path) -> LibraryConfig {
    LibraryConfig {
        fetch_timeout: Duration::from_secs(5),
        max_download_bytes: 64 * 1024,
        ..LibraryConfig::with_dirs(prompts.to_path_buf(), cache.to_path_buf())
    }
}

pub(super) fn write_8k(path: &Path, samples: &[i16]) {
    let mut w = WavWriter::create(path).expect("create wav");
    w.write_samples(samples).expect("write wav");
    w.finalize().expect("finalize wav");
}

/// `frames` of a 16 kHz stereo 16-bit WAV whose channels are `left` and `right` constants.
fn wav_16k_stereo(frames: usize, left: i16, right: i16) -> Vec<u8> {
    let data_len = (frames * 4) as u32;
    let mut f = b"RIFF".to_vec();
    f.extend_from_slice(&(36 + data_len).to_le_bytes());
    f.extend_from_slice(b"WAVEfmt ");
    f.extend_from_slice(&16u32.to_le_bytes());
    f.extend_from_slice(&[1, 0, 2, 0]); // PCM, 2 channels
    f.extend_from_slice(&16_000u32.to_le_bytes());
    f.extend_from_slice(&64_000u32.to_le_bytes());
    f.extend_from_slice(&[4, 0, 16, 0]);
    f.extend_from_slice(b"data");
    f.extend_from_slice(&data_len.to_le_bytes());
    for _ in 0..frames {
        f.extend_from_slice(&left.to_le_bytes());
        f.extend_from_slice(&right.to_le_bytes());
    }
    f
}

#[test]
fn library_is_send_and_sync() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<AudioLibrary>();
    shared::<AudioError>();
}

#[tokio::test]
async fn prompts_load_from_the_prompts_dir_in_every_spelling() {
    let prompts = TempDir::new("prompts");
    let cache = TempDir::new("cache");
    std::fs::write(
        prompts.path().join("welcome.wav"),
        wav_16k_stereo(8000, 1000, 3000),
    )
    .expect("write");
    std::fs::create_dir(prompts.path().join("sub")).expect("mkdir");
    write_8k(&prompts.path().join("sub/x.wav"), &[1, 2, 3]);
    let lib = AudioLibrary::new(config(prompts.path(), cache.path()));

    let welcome = lib.prompt("welcome.wav").await.expect("relative");
    assert_eq!(welcome.len(), 4000); // half a second at 8 kHz
    assert!(welcome[1000..3000].iter().all(|&s| (s - 2000).abs() <= 2));
    assert_eq!(&*lib.prompt("sub/x.wav").await.expect("nested"), &[1, 2, 3]);

    let absolute = prompts.path().join("sub/x.wav");
    let by_path = lib.prompt(&absolute.display().to_string()).await;
    assert_eq!(by_path.expect("absolute").len(), 3);
    let by_url = lib.prompt(&format!("file://{}", absolute.display())).await;
    assert_eq!(by_url.expect("file URL").len(), 3);

    // Cached: the very same allocation comes back.
    let again = lib.prompt("welcome.wav").await.expect("cached");
    assert!(Arc::ptr_eq(&welcome, &again));
}

#[tokio::test]
async fn prompts_outside_the_dir_are_refused() {
    let root = TempDir::new("jail");
    let prompts = root.path().join("prompts");
    std::fs::create_dir(&prompts).expect("mkdir");
    let secret = root.path().join("secret.wav");
    write_8k(&secret, &[9, 9, 9]);
    write_8k(&prompts.join("ok.wav"), &[1]);
    std::os::unix::fs::symlink(&secret, prompts.join("link-out.wav")).expect("symlink");
    std::os::unix::fs::symlink(prompts.join("ok.wav"), prompts.join("link-in.wav"))
        .expect("symlink");
    let lib = AudioLibrary::new(config(&prompts, root.path()));

    let secret_shown = secret.display().to_string();
    let file_url = format!("file://{secret_shown}");
    for prompt in [
        "../secret.wav",
        "sub/../../secret.wav",
        "link-out.wav",
        secret_shown.as_str(),
        file_url.as_str(),
        "/etc/passwd",
        "file:///etc/passwd",
        ".",
    ] {
        match lib.prompt(prompt).await {
            Err(e @ AudioError::OutsidePromptsDir { .. }) => {
                assert!(
                    e.to_string().contains("outside the prompts directory"),
                    "{e}"
                );
            }
            other => panic!("{prompt}: expected refusal, got {other:?}"),
        }
    }
    assert_eq!(
        &*lib.prompt("link-in.wav").await.expect("symlink inside"),
        &[1]
    );
}

#[tokio::test]
async fn missing_and_broken_prompts_name_the_file() {
    let prompts = TempDir::new("missing");
    std::fs::write(prompts.path().join("broken.wav"), b"RIFF\x04\0\0\0WAVE").expect("write");
    let lib = AudioLibrary::new(config(prompts.path(), prompts.path()));

    let missing = lib.prompt("nope.wav").await.expect_err("missing");
    assert!(
        matches!(missing, AudioError::PromptNotFound { .. }),
        "{missing:?}"
    );
    assert!(missing.to_string().contains("nope.wav"), "{missing}");

    let broken = lib.prompt("broken.wav").await.expect_err("broken");
    assert!(matches!(broken, AudioError::Decode { .. }), "{broken:?}");
    assert!(broken.to_string().contains("broken.wav"), "{broken}");
    assert!(broken.to_string().contains("no \"fmt \" chunk"), "{broken}");

    let scheme = lib.prompt("ftp://host/x.wav").await.expect_err("scheme");
    assert!(
        matches!(scheme, AudioError::UnsupportedScheme { .. }),
        "{scheme:?}"
    );

    let gone = TempDir::new("gone");
    let gone_path = gone.path().to_path_buf();
    drop(gone);
    let lib = AudioLibrary::new(config(&gone_path, &gone_path));
    let no_dir = lib.prompt("x.wav").await.expect_err("no prompts dir");
    assert!(
        matches!(no_dir, AudioError::PromptsDir { .. }),
        "{no_dir:?}"
    );
}

#[tokio::test]
async fn a_changed_file_is_reloaded() {
    let prompts = TempDir::new("reload");
    let file = prompts.path().join("menu.wav");
    write_8k(&file, &[100; 1000]);
    let lib = AudioLibrary::new(config(prompts.path(), prompts.path()));
    let first = lib.prompt("menu.wav").await.expect("first");
    assert_eq!(first.len(), 1000);
    assert!(Arc::ptr_eq(
        &first,
        &lib.prompt("menu.wav").await.expect("hit")
    ));

    write_8k(&file, &[-100; 1000]); // same size: only the mtime tells
    let later = SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_modified(later))
        .expect("set mtime");
    let second = lib.prompt("menu.wav").await.expect("reloaded");
    assert_eq!(second.len(), 1000);
    assert!(second.iter().all(|&s| s == -100));
}

/// A one-route-per-path HTTP/1.1 server on 127.0.0.1:0 that writes canned raw responses and
/// logs each request's path. A path with no response never answers.
async fn serve(routes: HashMap<&'static str, Vec<u8>>) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let routes = routes
        .into_iter()
        .map(|(path, response)| (path, (Duration::ZERO, response)))
        .collect();
    serve_delayed(routes).await
}

/// [`serve`] with each response written after its route's delay.
pub(super) async fn serve_delayed(
    routes: HashMap<&'static str, (Duration, Vec<u8>)>,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let routes = Arc::new(routes);
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let routes = Arc::clone(&routes);
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("").to_owned();
                log.lock().expect("log").push(path.clone());
                match routes.get(path.as_str()) {
                    Some((delay, response)) => {
                        tokio::time::sleep(*delay).await;
                        let _ = conn.write_all(response).await;
                        let _ = conn.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    (addr, seen)
}

fn response(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status}\r\n{headers}Connection: close\r\n\r\n").into_bytes();
    r.extend_from_slice(body);
    r
}

pub(super) fn with_length(status: &str, body: &[u8]) -> Vec<u8> {
    response(status, &format!("Content-Length: {}\r\n", body.len()), body)
}

#[tokio::test]
async fn http_prompts_fetch_once_and_report_failures() {
    let wav = wav_16k_stereo(1600, 500, 500);
    let big = wav_16k_stereo(20_000, 1, 1); // 80 KB > the 64 KiB test limit
    let routes = HashMap::from([
        ("/ok.wav", with_length("200 OK", &wav)),
        (
            "/moved.wav",
            response(
                "302 Found",
                "Location: /ok.wav\r\nContent-Length: 0\r\n",
                b"",
            ),
        ),
        ("/missing.wav", with_length("404 Not Found", b"no")),
        ("/big.wav", with_length("200 OK", &big)),
        ("/big-streamed.wav", response("200 OK", "", &big)),
        ("/text", with_length("200 OK", b"hello")),
    ]);
    let (addr, seen) = serve(routes).await;
    let dir = TempDir::new("http");
    let lib = AudioLibrary::new(config(dir.path(), dir.path()));
    let url = |path: &str| format!("http://{addr}{path}");

    let first = lib.prompt(&url("/ok.wav")).await.expect("fetch");
    assert_eq!(first.len(), 800);
    let again = lib.prompt(&url("/ok.wav")).await.expect("cached");
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(
        lib.prompt(&url("/moved.wav"))
            .await
            .expect("redirect")
            .len(),
        800
    );
    let hits = seen
        .lock()
        .expect("log")
        .iter()
        .filter(|p| *p == "/ok.wav")
        .count();
    assert_eq!(hits, 2, "once directly, once through the redirect");

    let missing = lib.prompt(&url("/missing.wav")).await.expect_err("404");
    assert!(
        matches!(missing, AudioError::HttpStatus { status: 404, .. }),
        "{missing:?}"
    );
    assert!(missing.to_string().contains("HTTP 404"), "{missing}");
    assert!(missing.to_string().contains("/missing.wav"), "{missing}");

    for path in ["/big.wav", "/big-streamed.wav"] {
        let big = lib.prompt(&url(path)).await.expect_err("too big");
        assert!(
            matches!(big, AudioError::TooLarge { limit: 65_536, .. }),
            "{path}: {big:?}"
        );
    }
    let text = lib.prompt(&url("/text")).await.expect_err("not a wav");
    assert!(matches!(text, AudioError::Decode { .. }), "{text:?}");
    assert!(text.to_string().contains("/text"), "{text}");
}

#[tokio::test]
async fn http_timeouts_and_refused_connections_are_errors() {
    let (addr, _) = serve(HashMap::new()).await; // never answers
    let dir = TempDir::new("http-timeout");
    let lib = AudioLibrary::new(LibraryConfig {
        fetch_timeout: Duration::from_millis(300),
        ..config(dir.path(), dir.path())
    });
    let started = std::time::Instant::now();
    let hang = lib
        .prompt(&format!("http://{addr}/hang.wav"))
        .await
        .expect_err("timeout");
    assert!(matches!(hang, AudioError::FetchTimeout { .. }), "{hang:?}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // A port nobody listens on: bind, note it, close.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let refused = lib.prompt(&format!("http://127.0.0.1:{port}/x.wav")).await;
    assert!(
        matches!(refused, Err(AudioError::Fetch { .. })),
        "{refused:?}"
    );
}
