//! The session's supervision on a real actix System and real sockets: a session whose handler
//! panics still ends its call (ARCHITECTURE §8): the caller gets BYE, the activeflow its `Ended`,
//! the capacity slot and the Call-ID route are freed.

use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;

use super::{CallSession, Crash};
use crate::call::events::{CallCommand, CallEndCause, CallEvent, CallOffer};
use crate::call::leg::Leg;
use crate::call::registry::SessionAddr;
use crate::call::shared::{SessionShared, SipIn};
use crate::call::{CallId, CallRegistry, OverloadGuard};
use crate::sip::message::{parse_datagram, TransactionKey};
use crate::sip::transaction::{LingerTable, Timers};
use crate::sip::transport::{Inbound, Peer, SipSender, TransportKind};

/// Takes the offer: attaches `events` and answers at once.
struct Sink {
    events: Recipient<CallEvent>,
}

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<CallOffer> for Sink {
    type Result = ();
    fn handle(&mut self, offer: CallOffer, _: &mut Context<Self>) {
        offer
            .commands
            .do_send(CallCommand::Attach(self.events.clone()));
        offer.commands.do_send(CallCommand::Answer);
    }
}

/// Collects the call's events.
struct Events(Arc<Mutex<Vec<CallEvent>>>);

impl Actor for Events {
    type Context = Context<Self>;
}

impl Handler<CallEvent> for Events {
    type Result = ();
    fn handle(&mut self, event: CallEvent, _: &mut Context<Self>) {
        self.0.lock().unwrap().push(event);
    }
}

fn shared(
    sender: SipSender,
    offers: Recipient<CallOffer>,
    dir: &std::path::Path,
) -> Arc<SessionShared> {
    let policy = crate::http::HttpPolicy::permissive(Duration::from_secs(1), 1 << 20);
    Arc::new(SessionShared {
        sender,
        registry: Arc::new(CallRegistry::new()),
        offers: vec![offers],
        timers: Timers::default(),
        public_ip: "127.0.0.1".parse().unwrap(),
        rtp_ports: crate::media::RtpPortPool::new(
            crate::media::rtp_ports::PortRange {
                first: 41000,
                last: 41100,
            },
            "127.0.0.1".parse().unwrap(),
        ),
        linger: Arc::new(LingerTable::new()),
        overload: OverloadGuard::new(Duration::from_secs(5)),
        library: Arc::new(crate::media::library::AudioLibrary::new(
            crate::media::library::LibraryConfig {
                prompts_dir: dir.into(),
                tts_command: "true".into(),
                cache_dir: dir.join("cache"),
                fetch_timeout: Duration::from_secs(1),
                http_policy: policy,
                max_download_bytes: 1 << 20,
                tts_timeout: Duration::from_secs(1),
            },
        )),
        recordings: crate::media::Recordings::start(
            &dir.join("rec"),
            10,
            &crate::health::Health::new(),
        )
        .unwrap(),
        storage: crate::storage::Storage::disabled(),
        events: crate::events::EventBus::without_webhooks(100, Duration::from_secs(15)),
        max_call: None,
        location: Arc::new(crate::sip::registrar::LocationService::new(
            crate::sip::registrar::ExpiryLimits { min: 60, max: 3600 },
        )),
        session_expires: None,
        min_se: 90,
        rtp_timeout: None,
        resolver: crate::sip::resolve::SipResolver::new(&["127.0.0.1:53".parse().unwrap()])
            .unwrap(),
        failover_timeout: Duration::from_secs(4),
    })
}

fn recv_until(socket: &UdpSocket, needle: &str) -> String {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = socket
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no {needle}: {e}"));
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        if m.lines().next().unwrap_or("").contains(needle) {
            return m;
        }
    }
}

#[test]
fn a_session_that_panics_still_ends_its_call() {
    let dir = std::env::temp_dir().join(format!("af-session-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    caller
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let caller_addr = caller.local_addr().unwrap();
    let scratch = dir.clone();
    System::new().block_on(async move {
        let engine = UdpSocket::bind("127.0.0.1:0").unwrap();
        let engine_addr = engine.local_addr().unwrap();
        let sender = SipSender::new(Arc::new(engine), engine_addr);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let events = Events(seen.clone()).start().recipient();
        let sink = Sink { events }.start().recipient();
        let shared = shared(sender, sink, &scratch);
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 40000 RTP/AVP 0\r\n";
        let invite = format!(
            "INVITE sip:1@{engine_addr} SIP/2.0\r\nVia: SIP/2.0/UDP {caller_addr};branch=z9hG4bKcrash\r\n\
             From: <sip:c@127.0.0.1>;tag=c1\r\nTo: <sip:1@127.0.0.1>\r\nCall-ID: crash@t\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:c@{caller_addr}>\r\nMax-Forwards: 70\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        let rsip::SipMessage::Request(req) = parse_datagram(invite.as_bytes(), 8192).unwrap() else {
            panic!("not a request");
        };
        let peer = Peer {
            addr: caller_addr,
            transport: TransportKind::Udp,
        };
        let key = TransactionKey::from_request(&req).unwrap();
        let now = tokio::time::Instant::now();
        let leg = Leg::new_incoming(CallId::new(), req, key, peer, "us".into(), &shared.env(), now);
        let session = CallSession::with_leg(leg, shared.clone(), 0, None, None, "c".into(), "1".into());
        let mut addr = None;
        shared.registry.insert_incoming("crash@t", "us", "c1", || {
            let a = session.start();
            addr = Some(a.clone());
            SessionAddr::Call(a)
        });
        let addr = addr.unwrap();
        let ok = actix_rt::task::spawn_blocking(move || {
            let ok = recv_until(&caller, "200 OK");
            (caller, ok)
        })
        .await
        .unwrap();
        let (caller, _) = ok;
        let ack = format!(
            "ACK sip:1@{engine_addr} SIP/2.0\r\nVia: SIP/2.0/UDP {caller_addr};branch=z9hG4bKack\r\n\
             From: <sip:c@127.0.0.1>;tag=c1\r\nTo: <sip:1@127.0.0.1>;tag=us\r\nCall-ID: crash@t\r\n\
             CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        addr.do_send(SipIn {
            inbound: Inbound {
                message: parse_datagram(ack.as_bytes(), 8192).unwrap(),
                peer,
                received_at: tokio::time::Instant::now(),
            },
            acl_ok: true,
        });
        assert_eq!(shared.registry.active(), 1);
        addr.do_send(Crash);
        let bye = actix_rt::task::spawn_blocking(move || recv_until(&caller, "BYE "))
            .await
            .unwrap();
        assert!(bye.starts_with(&format!("BYE sip:c@{caller_addr} SIP/2.0")), "{bye}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(shared.registry.active(), 0, "the capacity slot is freed");
        assert!(shared
            .registry
            .route_request("crash@t", Some("us"), Some("c1"))
            .is_none());
        assert!(shared.registry.is_empty(), "the Call-ID route is gone");
        let ended: Vec<_> = seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                CallEvent::Ended { cause, .. } => Some(*cause),
                _ => None,
            })
            .collect();
        assert_eq!(ended, [CallEndCause::Failed]);
        System::current().stop();
    });
    let _ = std::fs::remove_dir_all(&dir);
}
