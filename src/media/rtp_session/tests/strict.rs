//! Strict RTP on real sockets: a second source is ignored and counted, NAT latching, nothing
//! before an address is known, and the DTMF detector across an SSRC change.

use std::collections::HashMap;
use std::sync::Mutex;

use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};

use super::*;
use crate::metrics::RTP_PACKETS_DROPPED_TOTAL;

/// `activeflow_rtp_packets_dropped_total` by reason, as this thread's sessions report it (the
/// test's runtime is single-threaded, so the session's task runs here).
#[derive(Clone, Default)]
struct Dropped(Arc<Mutex<HashMap<String, u64>>>);

struct ByReason(Dropped, String);

impl CounterFn for ByReason {
    fn increment(&self, value: u64) {
        *self.0 .0.lock().unwrap().entry(self.1.clone()).or_default() += value;
    }

    fn absolute(&self, value: u64) {
        self.0 .0.lock().unwrap().insert(self.1.clone(), value);
    }
}

impl metrics::Recorder for Dropped {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if key.name() != RTP_PACKETS_DROPPED_TOTAL {
            return Counter::noop();
        }
        let reason = key.labels().find(|l| l.key() == "reason");
        let reason = reason.map(|l| l.value().to_owned()).unwrap_or_default();
        Counter::from_arc(Arc::new(ByReason(self.clone(), reason)))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

impl Dropped {
    fn get(&self, reason: &str) -> u64 {
        self.0.lock().unwrap().get(reason).copied().unwrap_or(0)
    }
}

#[actix_rt::test]
async fn strict_rtp_ignores_a_second_source_and_keeps_the_peers_stream() {
    // The per-call metric handles are made once per process: not by this thread's recorder.
    crate::metrics::media_session(true);
    crate::metrics::media_session(false);
    let dropped = Dropped::default();
    let _recorder = metrics::set_default_local_recorder(&dropped);
    let mut rig = rig(Codec::Pcmu).await;
    echo(&rig);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The intruder speaks first (today's session latched onto it).
    let intruder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut theirs = RtpStream::with(0x0bad, 1);
    for i in 0..5u32 {
        let p = packet(&mut theirs, 0, false, i * 160, &[0x11; 160]);
        intruder.send_to(&p, rig.engine).await.unwrap();
    }
    send_digit(&intruder, rig.engine, &mut theirs, '9', 5000).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut ours = RtpStream::with(0x600d, 1);
    for i in 0..5u32 {
        let p = packet(&mut ours, 0, false, i * 160, &[0x22; 160]);
        rig.peer.send_to(&p, rig.engine).await.unwrap();
    }
    send_digit(&rig.peer, rig.engine, &mut ours, '1', 9000).await;
    let back = receive_for(&rig.peer, Duration::from_millis(300)).await;
    let audio: Vec<_> = back.iter().filter(|(h, _)| h.payload_type == 0).collect();
    assert_eq!(audio.len(), 5, "only the peer's audio is echoed");
    assert!(audio.iter().all(|(_, p)| p == &vec![0x22; 160]));
    assert!(
        receive_for(&intruder, Duration::from_millis(50))
            .await
            .is_empty(),
        "nothing goes to the intruder"
    );
    rig.handle.send(MediaCommand::Stop { job: MediaJob(1) });
    let events = events_for(&mut rig, Duration::from_millis(200)).await;
    assert_eq!(digits(&events), "1", "the intruder's digit is ignored");
    let echoed = events.iter().find_map(|e| match e {
        MediaEvent::Done { result, .. } => Some(result.clone().unwrap()["echoed_packets"].clone()),
        _ => None,
    });
    assert_eq!(echoed, Some(5.into()));
    // The counts are flushed when the session ends.
    drop(rig.handle);
    let deadline = Instant::now() + Duration::from_secs(2);
    while dropped.get("source") < 7 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(dropped.get("source"), 7, "5 audio and 2 event packets");
    assert_eq!(dropped.get("no_remote"), 0);
}

#[actix_rt::test]
async fn an_unroutable_sdp_address_latches_the_first_source_and_answers_there() {
    let private: SocketAddr = "192.168.255.254:4000".parse().unwrap();
    let mut rig = rig_with(Codec::Pcmu, Remote::Sdp(private)).await;
    echo(&rig);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut ours = RtpStream::with(7, 1);
    for i in 0..3u32 {
        let p = packet(&mut ours, 0, false, i * 160, &[0x33; 160]);
        rig.peer.send_to(&p, rig.engine).await.unwrap();
    }
    let intruder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut theirs = RtpStream::with(8, 1);
    send_digit(&intruder, rig.engine, &mut theirs, '9', 100).await;
    let back = receive_for(&rig.peer, Duration::from_millis(300)).await;
    assert_eq!(back.len(), 3, "symmetric RTP: echoed to where it came from");
    assert!(receive_for(&intruder, Duration::from_millis(50))
        .await
        .is_empty());
    assert_eq!(
        digits(&events_for(&mut rig, Duration::from_millis(100)).await),
        ""
    );
}

#[actix_rt::test]
async fn nothing_is_sent_or_latched_before_an_address_is_known() {
    let mut rig = rig_with(Codec::Pcmu, Remote::Unknown).await;
    beep(&rig, 1);
    let mut ours = RtpStream::with(7, 1);
    send_digit(&rig.peer, rig.engine, &mut ours, '4', 100).await;
    assert!(receive_for(&rig.peer, Duration::from_millis(300))
        .await
        .is_empty());
    assert_eq!(
        digits(&events_for(&mut rig, Duration::from_millis(50)).await),
        ""
    );
    rig.handle
        .send(MediaCommand::Remote(rig.peer.local_addr().unwrap()));
    beep(&rig, 2);
    let sent = receive_for(&rig.peer, Duration::from_millis(300)).await;
    assert!(
        sent.len() >= 5,
        "sends once the address is known: {}",
        sent.len()
    );
}

#[actix_rt::test]
async fn the_dtmf_detector_follows_an_ssrc_change() {
    let mut rig = rig(Codec::Pcmu).await;
    let mut first = RtpStream::with(1, 1);
    send_digit(&rig.peer, rig.engine, &mut first, '1', 80_000).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    // A new stream (a transfer, a new SSRC) whose timestamps start lower.
    let mut second = RtpStream::with(2, 500);
    send_digit(&rig.peer, rig.engine, &mut second, '2', 1_000).await;
    let events = events_for(&mut rig, Duration::from_millis(200)).await;
    assert_eq!(digits(&events), "12");
}
