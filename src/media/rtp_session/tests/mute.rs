//! `mute` and external media in the session: a muted caller reaches a relay peer and a
//! recording only as silence (its digits still detected), a muted call sends silence and no
//! events; external media converts an A-law caller to µ-law for the host and back.

use super::*;
use crate::media::external::{Encapsulation, ExternalMediaRequest};

fn mute(rig: &Rig, job: u64, incoming: bool, outgoing: bool, on: bool) {
    let request = MediaRequest::Mute {
        incoming,
        outgoing,
        on,
    };
    start(rig, job, request);
}

fn tone(codec: Codec, i: u32) -> Vec<u8> {
    let pcm: Vec<i16> = (0..160)
        .map(|n| {
            let t = f64::from(i * 160 + n) / 8000.0;
            (8000.0 * (2.0 * std::f64::consts::PI * 500.0 * t).sin()) as i16
        })
        .collect();
    let mut out = Vec::new();
    codec.encode(&pcm, &mut out);
    out
}

fn loudest(codec: Codec, frames: &[&Vec<u8>]) -> u16 {
    let mut pcm = Vec::new();
    for f in frames {
        codec.decode(f, &mut pcm);
    }
    pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0)
}

#[actix_rt::test]
async fn a_muted_caller_reaches_the_relay_peer_and_the_recording_as_silence() {
    let mut a = rig(Codec::Pcmu).await;
    let b = rig(Codec::Pcmu).await;
    let (link_a, link_b) = crate::media::relay::RelayLink::pair();
    start(&a, 1, MediaRequest::Relay(link_a));
    start(&b, 1, MediaRequest::Relay(link_b));
    mute(&a, 2, true, false, true);
    let id = RecordingId::new();
    start(
        &a,
        3,
        MediaRequest::StartRecording(RecordingRequest {
            id,
            activeflow_id: "af".into(),
            max_duration: Duration::from_secs(10),
            end_of_silence: None,
            end_keys: String::new(),
            beep_start: false,
        }),
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut ours = RtpStream::with(1, 1);
    for i in 0..10u32 {
        let p = packet(&mut ours, 0, i == 0, i * 160, &tone(Codec::Pcmu, i));
        a.peer.send_to(&p, a.engine).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    send_digit(&a.peer, a.engine, &mut ours, '5', 10 * 160).await;
    let at_b = receive_for(&b.peer, Duration::from_millis(300)).await;
    let audio: Vec<&Vec<u8>> = at_b
        .iter()
        .filter(|(h, _)| h.payload_type == 0)
        .map(|(_, p)| p)
        .collect();
    assert_eq!(audio.len(), 10, "the peer still gets a stream");
    assert_eq!(loudest(Codec::Pcmu, &audio), 0, "of silence");
    assert!(
        at_b.iter().all(|(h, _)| h.payload_type != 101),
        "no DTMF events"
    );
    let events = events_for(&mut a, Duration::from_millis(100)).await;
    assert_eq!(digits(&events), "5", "the flow still sees the key");
    start(&a, 4, MediaRequest::StopRecording);
    let path = a.recordings.file_path(id);
    let deadline = Instant::now() + Duration::from_secs(3);
    let samples = loop {
        let done = a
            .recordings
            .get(id)
            .is_some_and(|r| !matches!(r.status, crate::media::RecordingStatus::Recording));
        if done {
            break crate::media::wav::decode_to_8k_mono(&std::fs::read(&path).unwrap()).unwrap();
        }
        assert!(Instant::now() < deadline, "the recording never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(samples.len(), 1600, "ten packets recorded");
    assert!(samples.iter().all(|s| *s == 0), "as silence");

    // Unmuted, the tone gets through again.
    mute(&a, 5, true, true, false);
    tokio::time::sleep(Duration::from_millis(20)).await;
    for i in 20..25u32 {
        let p = packet(&mut ours, 0, false, i * 160, &tone(Codec::Pcmu, i));
        a.peer.send_to(&p, a.engine).await.unwrap();
    }
    let at_b = receive_for(&b.peer, Duration::from_millis(300)).await;
    let audio: Vec<&Vec<u8>> = at_b.iter().map(|(_, p)| p).collect();
    assert!(loudest(Codec::Pcmu, &audio) > 6000, "unmuted");
}

#[actix_rt::test]
async fn muted_out_a_call_gets_silence_and_no_events() {
    let mut rig = rig(Codec::Pcma).await;
    mute(&rig, 1, false, true, true);
    beep(&rig, 2);
    let got = receive_for(&rig.peer, Duration::from_millis(400)).await;
    let audio: Vec<&Vec<u8>> = got.iter().map(|(_, p)| p).collect();
    assert!(audio.len() >= 8, "the beep's packets still go out");
    assert!(got.iter().all(|(h, _)| h.payload_type == 8));
    assert_eq!(loudest(Codec::Pcma, &audio), 8, "as A-law silence");
    let digits_send = MediaRequest::SendDigits {
        digits: "1".into(),
        duration_ms: 100,
        interval_ms: 0,
    };
    start(&rig, 3, digits_send);
    let got = receive_for(&rig.peer, Duration::from_millis(300)).await;
    assert!(got.is_empty(), "no events: {}", got.len());
    let events = events_for(&mut rig, Duration::from_millis(100)).await;
    assert!(events.iter().any(|e| matches!(e, MediaEvent::Done { .. })));
}

#[actix_rt::test]
async fn external_media_sends_an_a_law_caller_as_mu_law_and_plays_the_answer_as_a_law() {
    let mut rig = rig(Codec::Pcma).await;
    let host = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let request = ExternalMediaRequest {
        id: "em-1".into(),
        encapsulation: Encapsulation::Rtp,
        host: host.local_addr().unwrap().to_string(),
        activeflow_id: "af".into(),
        data: String::new(),
        listen: true,
        speak: true,
    };
    start(&rig, 1, MediaRequest::ExternalMediaStart(request));
    let ready = match rig.events.recv().await {
        Some(MediaEvent::Done { result: Ok(r), .. }) => r,
        other => panic!("{other:?}"),
    };
    let local: SocketAddr = ready["local_address"].as_str().unwrap().parse().unwrap();
    let mut ours = RtpStream::with(1, 1);
    let a_law = tone(Codec::Pcma, 0);
    let p = packet(&mut ours, 8, true, 0, &a_law);
    rig.peer.send_to(&p, rig.engine).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = timeout(Duration::from_secs(2), host.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from, local);
    let (header, payload) = rtp::parse(&buf[..n]).unwrap();
    assert_eq!(header.payload_type, 0, "PCMU to the host");
    let (mut a, mut mu) = (Vec::new(), Vec::new());
    Codec::Pcma.decode(&a_law, &mut a);
    Codec::Pcmu.decode(payload, &mut mu);
    assert!(
        a.iter().zip(&mu).all(|(x, y)| x.abs_diff(*y) < 300),
        "the same tone"
    );

    // The host answers from another port first (rejected), then from its own.
    let answer = packet(&mut RtpStream::with(9, 1), 0, true, 500, payload);
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    stranger.send_to(&answer, local).await.unwrap();
    host.send_to(&answer, local).await.unwrap();
    let back = receive_for(&rig.peer, Duration::from_millis(300)).await;
    assert_eq!(back.len(), 1, "only the host's packet is played");
    assert_eq!(back[0].0.payload_type, 8, "as A-law to the caller");

    start(&rig, 2, MediaRequest::ExternalMediaStop);
    let stopped = loop {
        match rig.events.recv().await {
            Some(MediaEvent::Done {
                job: MediaJob(2),
                result: Ok(r),
            }) => break r,
            Some(_) => continue,
            None => panic!("session ended"),
        }
    };
    assert_eq!(stopped["sent_packets"], 1);
    assert_eq!(stopped["received_packets"], 1);
    assert_eq!(stopped["rejected_packets"], 1);
    assert_eq!(stopped["played_packets"], 1);
}
