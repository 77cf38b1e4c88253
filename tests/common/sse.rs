//! A Server-Sent Events reader for `GET /v1/events` on a raw TCP connection (HTTP/1.1,
//! chunked): blocking, with a read timeout, so a missing event fails its test instead of hanging.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One SSE message (comments are skipped by `next`, counted by `comments`).
#[derive(Debug, Clone)]
pub struct Message {
    pub id: Option<u64>,
    pub event: String,
    pub data: Value,
}

/// A Server-Sent Events reader on a raw TCP connection (HTTP/1.1, chunked).
pub struct SseReader {
    reader: BufReader<TcpStream>,
    /// Decoded body bytes not yet split into messages.
    pending: String,
    pub comments: Vec<String>,
}

impl SseReader {
    /// Connects and reads the response head; panics unless 200 `text/event-stream`.
    pub fn connect(api: SocketAddr, query: &str, last_event_id: Option<u64>) -> SseReader {
        let stream = TcpStream::connect(api).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut head = format!("GET /v1/events{query} HTTP/1.1\r\nHost: {api}\r\n");
        if let Some(id) = last_event_id {
            head.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        head.push_str("\r\n");
        (&stream).write_all(head.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            lines.push(line.trim().to_ascii_lowercase());
        }
        assert!(lines[0].starts_with("http/1.1 200"), "{lines:?}");
        assert!(
            lines.iter().any(|l| l == "content-type: text/event-stream"),
            "{lines:?}"
        );
        assert!(lines.iter().any(|l| l == "transfer-encoding: chunked"));
        let mut sse = SseReader {
            reader,
            pending: String::new(),
            comments: Vec::new(),
        };
        // The stream opens with a comment: from here on the subscription exists.
        sse.read_block();
        assert_eq!(sse.comments, [": activeflow events"]);
        sse
    }

    /// Reads one HTTP chunk into `pending`.
    pub fn read_chunk(&mut self) {
        let mut size = String::new();
        self.reader.read_line(&mut size).unwrap();
        let n = usize::from_str_radix(size.trim(), 16)
            .unwrap_or_else(|_| panic!("chunk size {size:?}"));
        assert!(n > 0, "the stream ended");
        let mut buf = vec![0u8; n + 2];
        self.reader.read_exact(&mut buf).unwrap();
        self.pending
            .push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }

    /// The next block (message or comment), blocking; comments are recorded and returned as
    /// `None`.
    pub fn read_block(&mut self) -> Option<Message> {
        while !self.pending.contains("\n\n") {
            self.read_chunk();
        }
        let end = self.pending.find("\n\n").unwrap();
        let block: String = self.pending.drain(..end + 2).collect();
        let (mut id, mut event, mut data) = (None, String::new(), String::new());
        for line in block.lines() {
            if line.starts_with(':') {
                self.comments.push(line.to_owned());
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse().unwrap());
            } else if let Some(v) = line.strip_prefix("event: ") {
                event = v.to_owned();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = v.to_owned();
            }
        }
        (!event.is_empty()).then(|| Message {
            id,
            event,
            data: serde_json::from_str(&data).unwrap(),
        })
    }

    /// The next message, skipping comments.
    pub fn next(&mut self) -> Message {
        loop {
            if let Some(m) = self.read_block() {
                return m;
            }
        }
    }

    /// Messages until `done` holds for the list (bounded by the socket's read timeout).
    pub fn until(&mut self, done: impl Fn(&[Message]) -> bool) -> Vec<Message> {
        let mut got = Vec::new();
        while !done(&got) {
            got.push(self.next());
        }
        got
    }

    /// Asserts nothing but comments arrive within `wait`.
    pub fn assert_quiet(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if self.pending.contains("\n\n") || !self.reader.buffer().is_empty() {
                if let Some(m) = self.read_block() {
                    panic!("unexpected {m:?}");
                }
                continue;
            }
            self.reader.get_ref().set_read_timeout(Some(left)).unwrap();
            let mut byte = [0u8; 1];
            let arrived = self.reader.get_ref().peek(&mut byte);
            self.reader
                .get_ref()
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            match arrived {
                Ok(0) => panic!("the stream closed"),
                Ok(_) => {
                    if let Some(m) = self.read_block() {
                        panic!("unexpected {m:?}");
                    }
                }
                Err(_) => break,
            }
        }
    }
}
