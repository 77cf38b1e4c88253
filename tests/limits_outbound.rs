//! Limits on the work flows send out of the engine (issue 16), against real peers on loopback:
//! HTTP servers that count and hold requests, a proxy listener that must hear nothing, a
//! silent UDP peer for SIP MESSAGE, the default `[http]` policy against every spelling of the
//! host. Loopback is denied by default, so engines that must reach a test server allow
//! 127.0.0.1 explicitly (`ACTIVEFLOW_HTTP_ALLOW`). Media limits: `limits_outbound_media.rs`.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http;
use serde_json::{json, Value};

/// Starts an activeflow with `actions` over the API at `api` and waits for it to end.
fn run(api: SocketAddr, actions: Value) -> Value {
    let (status, a) = http(
        api,
        "POST",
        "/v1/activeflows",
        Some(&json!({ "actions": actions }).to_string()),
    );
    assert_eq!(status, 200, "{a}");
    let id = a["id"].as_str().unwrap().to_owned();
    common::wait_until("the activeflow to end", Duration::from_secs(30), || {
        let (_, a) = http(api, "GET", &format!("/v1/activeflows/{id}"), None);
        (a["status"] == "ended").then_some(a)
    })
}

fn results(a: &Value) -> Vec<Value> {
    a["executed_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["result"].clone())
        .collect()
}

/// A listener that counts connections and never answers (a proxy that must stay unused).
fn silent_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (addr, count)
}

/// An HTTP server answering 200 `{}` to everything; returns the paths it saw.
fn ok_server() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    use std::io::Write;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let (_, path, _) = common::read_http_request(&s);
            log.lock().unwrap().push(path);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            );
        }
    });
    (addr, seen)
}

/// `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` in the engine's environment are ignored: a proxy
/// would get the request with the name unresolved, so the `[http]` policy (which checks the
/// address actually connected to) could not see where it goes. The proxy hears nothing; a name
/// that does not resolve fails; an allowed server is reached directly.
#[test]
fn proxy_variables_cannot_carry_flow_http_past_the_policy() {
    let (proxy, connections) = silent_listener();
    let (server, seen) = ok_server();
    let proxy_url = format!("http://{proxy}");
    let mut env: Vec<(&str, &str)> = vec![
        ("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32"),
        ("ACTIVEFLOW_HTTP_TIMEOUT_MS", "1000"),
    ];
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        env.push((var, &proxy_url));
    }
    let engine = common::spawn_engine_with(&[], &env);
    let a = run(
        engine.api,
        json!([
            // A name only a proxy would "resolve": it must fail here, not reach the proxy.
            {"type": "webhook_send", "option": {"sync": true, "uri": "http://metadata.invalid/latest", "method": "GET"}},
            {"type": "webhook_send", "option": {"sync": true, "uri": format!("http://{server}/direct"), "method": "GET"}}
        ]),
    );
    let r = results(&a);
    assert!(r[0]["error"].is_string(), "{a}");
    assert_eq!(r[1]["status"], 200, "{a}");
    assert_eq!(*seen.lock().unwrap(), ["/direct"]);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the proxy from the environment was used"
    );
}

/// Non-`sync` `webhook_send` joins its destination's bounded queue (`http.webhook_queue`): with
/// a destination that never answers, one request in flight and two waiting, the rest of a burst
/// fail as action errors at once (the flow goes on), counted in
/// `activeflow_outbound_refused_total`.
#[test]
fn a_full_webhook_queue_fails_the_action_and_the_flow_goes_on() {
    let (stuck, connections) = silent_listener();
    let engine = common::spawn_engine_with(
        &[],
        &[
            ("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32"),
            ("ACTIVEFLOW_HTTP_TIMEOUT_MS", "2000"),
            ("ACTIVEFLOW_HTTP_WEBHOOK_QUEUE", "2"),
            ("ACTIVEFLOW_HTTP_WEBHOOK_CONCURRENCY", "1"),
        ],
    );
    let hook = json!({"type": "webhook_send", "option": {"uri": format!("http://{stuck}/hook"), "data": "{}"}});
    let mut actions: Vec<Value> = (0..8).map(|_| hook.clone()).collect();
    actions.push(json!({"type": "variable_set", "option": {"key": "after", "value": "yes"}}));
    let a = run(engine.api, Value::Array(actions));
    assert_eq!(a["end_reason"], "completed", "{a}");
    let r = results(&a);
    let refused: Vec<&Value> = r[..8].iter().filter(|x| x["error"].is_string()).collect();
    // At most one in flight plus two queued were taken: five or more refused.
    assert!(refused.len() >= 5, "{a}");
    assert!(
        refused[0]["error"]
            .as_str()
            .unwrap()
            .contains("queue is full"),
        "{a}"
    );
    assert_eq!(r.len(), 9, "the flow went on: {a}");
    let counted = common::scrape(
        engine.metrics,
        "activeflow_outbound_refused_total{work=\"webhook_send\"}",
    );
    assert_eq!(counted, refused.len() as f64);
    assert!(
        connections.load(Ordering::SeqCst) >= 1,
        "the first one was sent"
    );
    assert_eq!(
        common::scrape(
            engine.metrics,
            "activeflow_webhook_workers_active{queue=\"webhook_send\"}"
        ),
        1.0
    );
}

/// RFC 3428 §4: each MESSAGE is a non-INVITE client transaction, outstanding until a final
/// response or Timer F. Outstanding MESSAGEs count against the engine's capacity
/// (`engine.max_activeflows`): to a peer that never answers, a `message_send` to five
/// destinations with a capacity of three sends three and refuses two, counted.
#[test]
fn outstanding_messages_count_against_capacity() {
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = peer.local_addr().unwrap().port();
    let engine = common::spawn_engine_with(
        &[],
        &[
            ("ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS", "3"),
            // Timer F = 64·T1 = 3.2 s: the unanswered MESSAGEs time out soon.
            ("ACTIVEFLOW_SIP_T1_MS", "50"),
        ],
    );
    let destinations: Vec<Value> = (0..5)
        .map(|i| json!({"type": "sip", "target": format!("sip:user{i}@127.0.0.1:{port}")}))
        .collect();
    let a = run(
        engine.api,
        json!([{"type": "message_send", "option": {"destinations": destinations, "text": "hi"}}]),
    );
    let r = &results(&a)[0];
    let errors: Vec<&str> = r["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["error"].as_str())
        .collect();
    assert_eq!(errors.len(), 5, "none answered: {a}");
    let refused = errors.iter().filter(|e| e.contains("capacity")).count();
    assert_eq!(refused, 2, "{a}");
    // The peer saw three transactions (Call-IDs), whatever their retransmissions.
    let mut call_ids = std::collections::HashSet::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = peer.recv(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if let Some(id) = common::header(&text, "Call-ID") {
            call_ids.insert(id.to_owned());
        }
    }
    assert_eq!(call_ids.len(), 3, "{call_ids:?}");
    assert_eq!(
        common::scrape(
            engine.metrics,
            "activeflow_outbound_refused_total{work=\"message_send\"}"
        ),
        2.0
    );
}

/// An incoming INVITE is admitted against the same number as `dial` and `message_send`: calls
/// not yet ended plus MESSAGEs outstanding. With a capacity of two, two MESSAGEs outstanding to
/// a peer that never answers make an INVITE get 503; once they time out (Timer F), the next
/// INVITE is not refused for capacity.
#[test]
fn outstanding_messages_make_incoming_calls_busy() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    silent
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = silent.local_addr().unwrap().port();
    let engine = common::spawn_engine_with(
        &[],
        &[
            ("ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS", "2"),
            // Timer F = 64·T1 = 3.2 s: long enough to call in, short enough to wait out.
            ("ACTIVEFLOW_SIP_T1_MS", "50"),
        ],
    );
    let destinations: Vec<Value> = (0..2)
        .map(|i| json!({"type": "sip", "target": format!("sip:user{i}@127.0.0.1:{port}")}))
        .collect();
    let actions =
        json!([{"type": "message_send", "option": {"destinations": destinations, "text": "hi"}}]);
    let (status, a) = http(
        engine.api,
        "POST",
        "/v1/activeflows",
        Some(&json!({ "actions": actions }).to_string()),
    );
    assert_eq!(status, 200, "{a}");
    let id = a["id"].as_str().unwrap().to_owned();
    // Both MESSAGEs are out (and unanswered) once the peer has seen both Call-IDs.
    let mut call_ids = std::collections::HashSet::new();
    let mut buf = [0u8; 4096];
    common::wait_until("both MESSAGEs sent", Duration::from_secs(3), || {
        if let Ok(n) = silent.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if let Some(id) = common::header(&text, "Call-ID") {
                call_ids.insert(id.to_owned());
            }
        }
        (call_ids.len() == 2).then_some(())
    });

    let caller = common::RawPeer::new(engine.sip);
    caller.send(&caller.invite("100", "busy-1", "z9hG4bK-busy-1"));
    let refused = caller.recv_final();
    assert!(refused.starts_with("SIP/2.0 503"), "{refused}");

    common::wait_until("the MESSAGEs to time out", Duration::from_secs(30), || {
        let (_, a) = http(engine.api, "GET", &format!("/v1/activeflows/{id}"), None);
        (a["status"] == "ended").then_some(())
    });
    caller.send(&caller.invite("100", "free-1", "z9hG4bK-free-1"));
    let answered = caller.recv_final();
    assert!(!answered.starts_with("SIP/2.0 503"), "{answered}");
}

/// The default `[http]` policy (nothing allowed) refuses every spelling of the host itself:
/// the unspecified addresses (`0.0.0.0`, `[::]`, which connect to the local host), IPv4-mapped,
/// IPv4-compatible, NAT64 and 6to4 forms of 127.0.0.1, and the host's own interface
/// addresses. A dual-stack server on the port hears nothing.
#[test]
fn the_default_policy_refuses_every_spelling_of_the_host_itself() {
    let listener = TcpListener::bind("[::]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let heard = Arc::new(AtomicUsize::new(0));
    let count = heard.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    let mut hosts: Vec<String> = [
        "0.0.0.0",
        "[::]",
        "[::ffff:127.0.0.1]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::1]",
    ]
    .map(String::from)
    .to_vec();
    // Every address of this host's interfaces, whatever network it is in.
    for interface in nix::ifaddrs::getifaddrs().unwrap() {
        let Some(address) = interface.address else {
            continue;
        };
        if let Some(v4) = address.as_sockaddr_in() {
            hosts.push(v4.ip().to_string());
        } else if let Some(v6) = address.as_sockaddr_in6() {
            if v6.scope_id() == 0 {
                hosts.push(format!("[{}]", v6.ip()));
            }
        }
    }
    let engine = common::spawn_engine_with(&[], &[("ACTIVEFLOW_HTTP_TIMEOUT_MS", "1000")]);
    let actions: Vec<Value> = hosts
        .iter()
        .map(|h| {
            json!({"type": "webhook_send", "option": {"sync": true, "method": "GET", "uri": format!("http://{h}:{port}/")}})
        })
        .collect();
    let a = run(engine.api, Value::Array(actions));
    for (host, result) in hosts.iter().zip(results(&a)) {
        let error = result["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("not allowed by the [http] policy"),
            "{host}: {result}"
        );
    }
    assert_eq!(heard.load(Ordering::SeqCst), 0, "the host was reached");
}
