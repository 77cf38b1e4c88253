//! Events of an outbound call at the flow's webhook, and the placement figure (ignored by
//! default).

use super::*;

/// A figure, not a check run by default: 320 outbound calls (20 requests × 16 destinations)
/// to SIPp's built-in UAS, each flow a `hangup` after the answer; every one must complete.
/// `cargo test --test outbound_calls -- --ignored --nocapture placement_rate`
#[test]
#[ignore]
fn placement_rate() {
    const REQUESTS: usize = 20;
    const PER_REQUEST: usize = 16;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("activeflow-uas-rate-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let total = (REQUESTS * PER_REQUEST).to_string();
    let mut uas = std::process::Command::new("sipp")
        .current_dir(&dir)
        .args([
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            &total,
        ])
        .args(["-buff_size", "4194304", "-nostdin", "-timeout", "120s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_until("sipp to bind", LIMIT, || {
        UdpSocket::bind(("127.0.0.1", port)).is_err().then_some(())
    });
    let engine = engine(&[], &[]);
    let uri = format!("sip:bob@127.0.0.1:{port}");
    let started = Instant::now();
    for _ in 0..REQUESTS {
        let (status, body) = post_calls(
            &engine,
            json!({"destinations": vec![json!({"type": "sip", "target": uri}); PER_REQUEST],
                   "actions": [{"type": "hangup"}]}),
        );
        assert_eq!(status, 200, "{body}");
    }
    let posted = started.elapsed();
    engine.wait_for("every call to end", Duration::from_secs(120), |all| {
        all.len() == REQUESTS * PER_REQUEST && all.iter().all(|a| a.status == Status::Ended)
    });
    let done = started.elapsed();
    let completed = engine
        .activeflows()
        .iter()
        .filter(|a| a.end_reason == Some(EndReason::Completed))
        .count();
    let _ = uas.wait();
    println!(
        "{} calls: requests answered in {:.2} s, all ended in {:.2} s ({:.0} calls/s), {completed} completed",
        REQUESTS * PER_REQUEST,
        posted.as_secs_f64(),
        done.as_secs_f64(),
        (REQUESTS * PER_REQUEST) as f64 / done.as_secs_f64()
    );
    assert_eq!(completed, REQUESTS * PER_REQUEST);
}

type Hooks = std::sync::Arc<std::sync::Mutex<Vec<Value>>>;

/// An HTTP server that answers 200 and keeps every JSON body.
fn hook_server() -> (std::net::SocketAddr, Hooks) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Hooks = Default::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (_, _, body) = common::read_http_request(&stream);
            log.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (addr, seen)
}

/// The flow's webhook gets an outbound call's events as an inbound call's: the activeflow's
/// (created with `reference_type` `call`, one update per action, ended) and its call's from
/// the answer on (`direction` `outgoing`).
#[test]
fn the_flows_webhook_gets_the_outbound_calls_events() {
    let (server, hooks) = hook_server();
    let callee = SippUas::start_with_rtp("uas_answer_wait_bye.xml", free_port(), &[]);
    let mut f = flow(
        "hooked",
        json!([{"type": "sleep", "option": {"duration": 100}}, {"type": "hangup"}]),
    );
    f["webhook_uri"] = json!(format!("http://{server}/flow"));
    let engine = start(&[f], &[], &[("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32")]);
    let flow_id = engine_flow_id(&engine, "hooked");
    let (status, body) = post_calls(
        &engine,
        json!({"destinations": [{"type": "sip", "target": callee.uri()}], "flow_id": flow_id}),
    );
    assert_eq!(status, 200, "{body}");
    let (call_id, af) = (
        body["calls"][0]["id"].clone(),
        body["calls"][0]["activeflow_id"].clone(),
    );
    assert!(callee.succeeded(LIMIT));
    let kinds = || -> Vec<String> {
        let mut k: Vec<String> = hooks
            .lock()
            .unwrap()
            .iter()
            .map(|b| b["type"].as_str().unwrap_or_default().to_owned())
            .collect();
        k.sort();
        k
    };
    common::wait_until("six webhook events", LIMIT, || {
        (kinds().len() >= 6).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        kinds(),
        [
            "activeflow_created",
            "activeflow_ended",
            "activeflow_updated",
            "activeflow_updated",
            "call_answered",
            "call_ended"
        ]
    );
    for b in hooks.lock().unwrap().iter() {
        let kind = b["type"].as_str().unwrap();
        if kind.starts_with("call_") {
            assert_eq!(
                (&b["id"], &b["direction"]),
                (&call_id, &json!("outgoing")),
                "{b}"
            );
        } else {
            assert_eq!(
                (&b["id"], &b["reference_type"]),
                (&af, &json!("call")),
                "{b}"
            );
            assert_eq!(b["reference_id"], call_id, "{b}");
        }
    }
}
