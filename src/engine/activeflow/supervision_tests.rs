//! An activeflow actor that panics in a handler, or is stopped without an end, on a running
//! engine (real sockets, real SIP peer, real storage and metrics recorder): ARCHITECTURE §8 "a panic
//! anywhere in an activeflow ... the supervisor cleans up". Each case runs in its own process,
//! because the metrics recorder is global and its handles are cached on first use.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::Activeflow;
use crate::engine::{ActiveflowId, ActiveflowRegistry, EndReason, Status};
use crate::events::{Batch, EventBody, EventBus};
use crate::storage::Storage;

/// Test-only: panics inside a handler of a live activeflow actor.
#[derive(Message)]
#[rtype(result = "()")]
struct Crash;

impl Handler<Crash> for Activeflow {
    type Result = ();
    fn handle(&mut self, _: Crash, _ctx: &mut Self::Context) {
        panic!("test: activeflow handler panics");
    }
}

/// Test-only: stops the actor without ending the activeflow.
#[derive(Message)]
#[rtype(result = "()")]
struct StopWithoutEnd;

impl Handler<StopWithoutEnd> for Activeflow {
    type Result = ();
    fn handle(&mut self, _: StopWithoutEnd, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

const WAIT: Duration = Duration::from_secs(10);

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `name` (an ignored test of this module) alone in a fresh test process.
fn run_alone(name: &str) {
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args([&format!("{module}::{name}"), "--exact", "--ignored"])
        .args(["--test-threads=1", "--nocapture"])
        .output()
        .expect("test binary runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{name} failed:\n{text}"
    );
}

struct Engine {
    sip: SocketAddr,
    registry: Arc<ActiveflowRegistry>,
    storage: Storage,
    events: EventBus,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Engine {
    /// One arbiter, room for one activeflow, a flow that answers and holds.
    fn start(metrics: metrics_exporter_prometheus::PrometheusHandle) -> Engine {
        let scratch = std::env::temp_dir().join(format!("activeflow-sup-{}", uuid::Uuid::new_v4()));
        let dir = |d: &str| scratch.join(d).display().to_string();
        let vars = [
            ("ACTIVEFLOW_SIP_LISTEN", "127.0.0.1:0".to_string()),
            ("ACTIVEFLOW_API_LISTEN", "127.0.0.1:0".into()),
            ("ACTIVEFLOW_METRICS_LISTEN", "127.0.0.1:0".into()),
            ("ACTIVEFLOW_SIP_OVERLOAD_LAG_MS", "5000".into()),
            ("ACTIVEFLOW_ENGINE_WORKERS", "1".into()),
            ("ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS", "1".into()),
            ("ACTIVEFLOW_MEDIA_RECORDINGS_DIR", dir("recordings")),
            ("ACTIVEFLOW_MEDIA_CACHE_DIR", dir("cache")),
            ("ACTIVEFLOW_STORAGE_PATH", dir("af.db")),
        ];
        let vars = vars.into_iter().map(|(k, v)| (k.to_string(), v));
        let mut config =
            crate::config::Config::from_toml_with_env(crate::config::DEFAULT_TOML, vars)
                .expect("config");
        config.routes = vec![crate::config::RouteConfig {
            number: "*".into(),
            flow: "hold".into(),
        }];
        let settings = config.validate().expect("valid config");
        let flows = Arc::new(crate::flow::FlowStore::new());
        let hold = serde_json::json!({"name": "hold", "actions": [
            {"type": "answer"}, {"type": "sleep", "option": {"duration": 60000}}]});
        flows
            .insert(crate::flow::Flow::from_json(hold.to_string().as_bytes()).expect("flow"))
            .expect("flow inserted");
        let listeners = crate::app::Listeners::bind(&settings).expect("bind");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let app = crate::app::start(&settings, flows, listeners, Some(metrics))
                    .await
                    .expect("engine starts");
                let parts = (
                    app.sip_addr,
                    app.registry.clone(),
                    app.storage.clone(),
                    app.events.clone(),
                );
                ready_tx.send(parts).expect("test waiting");
                let _ = stopped.await;
                crate::shutdown::drain(app, Duration::ZERO).await;
            })
        });
        let (sip, registry, storage, events) = ready_rx.recv().expect("engine started");
        Engine {
            sip,
            registry,
            storage,
            events,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A bare UDP SIP caller.
struct Caller {
    socket: UdpSocket,
    engine: SocketAddr,
}

impl Caller {
    fn new(engine: SocketAddr) -> Caller {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_read_timeout(Some(WAIT)).expect("timeout");
        Caller { socket, engine }
    }

    fn send(&self, msg: &str) {
        self.socket
            .send_to(msg.as_bytes(), self.engine)
            .expect("send");
    }

    /// The next message whose first line contains `needle`.
    fn recv_until(&self, needle: &str) -> String {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, _) = self
                .socket
                .recv_from(&mut buf)
                .unwrap_or_else(|e| panic!("no {needle:?}: {e}"));
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.lines().next().unwrap_or("").contains(needle) {
                return msg;
            }
        }
    }

    /// INVITE, its final response and (for a 200) the ACK; answers the final response.
    fn call(&self, call_id: &str) -> String {
        let port = self.socket.local_addr().expect("addr").port();
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
        self.send(&format!(
            "INVITE sip:100@{engine} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id}\r\n\
             From: <sip:caller@127.0.0.1:{port}>;tag=c-{call_id}\r\nTo: <sip:100@{engine}>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:{port}>\r\n\
             Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            engine = self.engine,
            len = sdp.len()
        ));
        let final_response = loop {
            let m = self.recv_until("SIP/2.0 ");
            if !m.starts_with("SIP/2.0 1") {
                break m;
            }
        };
        if final_response.starts_with("SIP/2.0 200") {
            self.send(&format!(
                "ACK sip:100@{engine} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-ack-{call_id}\r\n\
                 From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n\
                 Content-Length: 0\r\n\r\n",
                engine = self.engine,
                from = header(&final_response, "From"),
                to = header(&final_response, "To"),
            ));
        }
        final_response
    }

    /// Answers an in-dialog request 200.
    fn ok(&self, request: &str) {
        let mut response = String::from("SIP/2.0 200 OK\r\n");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            response.push_str(&format!("{name}: {}\r\n", header(request, name)));
        }
        response.push_str("Content-Length: 0\r\n\r\n");
        self.send(&response);
    }
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {msg}"))
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// The engine running one answered call; `hook` then breaks its activeflow's actor. Checks
/// every part of the clean-up: BYE to the caller, the record, storage, the event, metrics,
/// the registry, and the capacity slot (the engine admits one activeflow only).
fn broken_actor_is_cleaned_up(hook: impl FnOnce(&Addr<Activeflow>)) {
    let metrics = crate::metrics::install().expect("the only recorder in this process");
    let engine = Engine::start(metrics.clone());
    let mut events = engine.events.subscribe(None);
    let caller = Caller::new(engine.sip);
    let answered = caller.call("sup-1");
    assert!(answered.starts_with("SIP/2.0 200"), "{answered}");
    let running = || {
        let page = engine.registry.list(Some(Status::Running), 10, None);
        page.items.first().map(|r| r.id)
    };
    wait_until("the activeflow to run", || running().is_some());
    let id: ActiveflowId = running().expect("running");
    let entry = engine.registry.get(&id).expect("registered");
    wait_until("the answer to be executed", || {
        entry.record().executed_actions.len() == 2
    });

    hook(&entry.addr);

    let bye = caller.recv_until("BYE ");
    caller.ok(&bye);
    wait_until("the record to end", || {
        entry.record().status == Status::Ended
    });
    assert_eq!(entry.record().end_reason, Some(EndReason::Error));
    assert_eq!(engine.registry.running(), 0, "capacity slot freed");

    let store = engine.storage.store().expect("storage enabled");
    wait_until("the end to be stored", || {
        let stored = store.activeflow(&id.to_string()).ok().flatten();
        stored.is_some_and(|s| s.json["end_reason"] == "error")
    });

    let mut ended_event = None;
    while let Some(Batch::Events(batch)) = events.try_next(1000) {
        for p in batch {
            if let EventBody::ActiveflowEnded(_, reason) = &p.event.body {
                ended_event = Some((p.event.subject, *reason));
            }
        }
    }
    assert_eq!(ended_event, Some((id.0, "error")), "activeflow_ended event");

    let text = metrics.render();
    assert_eq!(
        metric(&text, "activeflow_ended_total{reason=\"error\"}"),
        Some(1.0)
    );
    assert_eq!(metric(&text, "activeflow_running"), Some(0.0));

    // The slot is free: the next call is admitted (503 if it were still held). The call's own
    // slot goes when its session has seen the BYE's 200, a moment after the activeflow ended.
    wait_until("the call to end", || {
        metric(&metrics.render(), "calls_active") == Some(0.0)
    });
    let second = caller.call("sup-2");
    assert!(second.starts_with("SIP/2.0 200"), "{second}");
}

/// ARCHITECTURE §8: a panic in any handler of an activeflow actor (not only in an action) ends that
/// activeflow `error` and cleans up; RFC 3261 §15: its answered call gets a BYE.
#[test]
fn a_panic_in_an_activeflow_handler_is_cleaned_up() {
    run_alone("panic_in_handler_alone");
}

/// An actor stopped without an end is cleaned up the same way as a panic.
#[test]
fn an_activeflow_actor_stopped_without_an_end_is_cleaned_up() {
    run_alone("stop_without_end_alone");
}

#[test]
#[ignore = "run in its own process by a_panic_in_an_activeflow_handler_is_cleaned_up"]
fn panic_in_handler_alone() {
    broken_actor_is_cleaned_up(|addr| addr.do_send(Crash));
}

#[test]
#[ignore = "run in its own process by an_activeflow_actor_stopped_without_an_end_is_cleaned_up"]
fn stop_without_end_alone() {
    broken_actor_is_cleaned_up(|addr| addr.do_send(StopWithoutEnd));
}
