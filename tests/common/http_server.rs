//! Loopback HTTP servers tests point `fetch`, `webhook_send` and webhooks at: each records
//! every request it gets and answers one JSON body. Blocking std sockets on a thread; no
//! engine code.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// Requests a test server saw: (method, path, body).
pub type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A server answering `200` with `answer(its address)` (a JSON body) to every request, after
/// `delay`.
pub fn http_server_answering(
    delay: Duration,
    answer: impl Fn(SocketAddr) -> String + Send + 'static,
) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (method, path, body) = super::read_http_request(&stream);
            log.lock()
                .unwrap()
                .push((method, path, String::from_utf8_lossy(&body).into()));
            std::thread::sleep(delay);
            let answer = answer(addr);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (addr, seen)
}

/// The `(type, result)` of every executed action of an activeflow as the API shows it.
pub fn executed_results(a: &Value) -> Vec<(String, Value)> {
    a["executed_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["type"].as_str().unwrap().to_owned(), x["result"].clone()))
        .collect()
}
