//! The RTP timeout, hold and resume, a mid-call codec change and a PCMA-only call on real
//! sockets.

use super::*;

#[actix_rt::test]
async fn the_rtp_timeout_fires_once_after_silence() {
    let mut rig = rig_timing_out(Duration::from_millis(300)).await;
    // RTP keeps it alive.
    let mut ours = RtpStream::with(1, 1);
    for i in 0..6u32 {
        let p = packet(&mut ours, 0, false, i * 160, &[0xff; 160]);
        rig.peer.send_to(&p, rig.engine).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        timeouts(&events_for(&mut rig, Duration::from_millis(0)).await),
        0
    );
    let quiet = Instant::now();
    let first = timeout(Duration::from_secs(2), rig.events.recv()).await;
    assert!(
        matches!(first, Ok(Some(MediaEvent::RtpTimeout))),
        "{first:?}"
    );
    let waited = quiet.elapsed();
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    assert_eq!(
        timeouts(&events_for(&mut rig, Duration::from_millis(700)).await),
        0,
        "once"
    );
}

#[actix_rt::test]
async fn hold_stops_sending_and_pauses_the_rtp_timeout_and_resume_restarts_both() {
    let mut rig = rig_timing_out(Duration::from_millis(300)).await;
    let update = |send| MediaUpdate {
        codec: Codec::Pcmu,
        dtmf_payload_type: Some(101),
        remote: None,
        send,
    };
    rig.handle.send(MediaCommand::Update(update(false)));
    beep(&rig, 1);
    assert!(receive_for(&rig.peer, Duration::from_millis(400))
        .await
        .is_empty());
    assert_eq!(
        timeouts(&events_for(&mut rig, Duration::from_millis(400)).await),
        0
    );
    rig.handle.send(MediaCommand::Update(update(true)));
    beep(&rig, 2);
    let sent = receive_for(&rig.peer, Duration::from_millis(150)).await;
    assert!(sent.len() >= 3, "resumed: {}", sent.len());
    let events = events_for(&mut rig, Duration::from_millis(600)).await;
    assert_eq!(timeouts(&events), 1, "the timeout runs again: {events:?}");
}

#[actix_rt::test]
async fn an_update_to_pcma_sends_prompts_as_pcma() {
    let rig = rig(Codec::Pcmu).await;
    rig.handle.send(MediaCommand::Update(MediaUpdate {
        codec: Codec::Pcma,
        dtmf_payload_type: Some(101),
        remote: None,
        send: true,
    }));
    beep(&rig, 1);
    let sent = receive_for(&rig.peer, Duration::from_millis(300)).await;
    assert!(sent.len() >= 5);
    assert!(sent.iter().all(|(h, _)| h.payload_type == 8), "pt 8");
    let mut pcm = Vec::new();
    Codec::Pcma.decode(&sent[2].1, &mut pcm);
    let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak > 1000, "the beep, decoded as A-law: peak {peak}");
}

#[actix_rt::test]
async fn a_pcma_call_is_echoed_as_pcma() {
    let mut rig = rig(Codec::Pcma).await;
    echo(&rig);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut ours = RtpStream::with(1, 1);
    let payload: Vec<u8> = (0..160).map(|i| g711::alaw_encode(i * 100)).collect();
    for i in 0..4u32 {
        let p = packet(&mut ours, 8, false, i * 160, &payload);
        rig.peer.send_to(&p, rig.engine).await.unwrap();
        // µ-law on a PCMA call is not what was negotiated: not echoed.
        let p = packet(&mut ours, 0, false, i * 160, &payload);
        rig.peer.send_to(&p, rig.engine).await.unwrap();
    }
    let back = receive_for(&rig.peer, Duration::from_millis(300)).await;
    assert_eq!(back.len(), 4);
    assert!(back
        .iter()
        .all(|(h, p)| h.payload_type == 8 && p == &payload));
    let _ = events_for(&mut rig, Duration::from_millis(10)).await;
}

#[actix_rt::test]
async fn recording_a_pcma_call_decodes_a_law() {
    let mut rig = rig(Codec::Pcma).await;
    let id = RecordingId::new();
    start(
        &rig,
        1,
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
    let sample = 4000i16;
    let payload = vec![g711::alaw_encode(sample); 160];
    let mut ours = RtpStream::with(1, 1);
    for i in 0..10u32 {
        let p = packet(&mut ours, 8, i == 0, i * 160, &payload);
        rig.peer.send_to(&p, rig.engine).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    start(&rig, 2, MediaRequest::StopRecording);
    let _ = events_for(&mut rig, Duration::from_millis(300)).await;
    let path = rig.recordings.file_path(id);
    let deadline = Instant::now() + Duration::from_secs(3);
    let samples = loop {
        let done = rig
            .recordings
            .get(id)
            .is_some_and(|r| !matches!(r.status, crate::media::RecordingStatus::Recording));
        if done {
            let bytes = std::fs::read(&path).unwrap();
            break crate::media::wav::decode_to_8k_mono(&bytes).unwrap();
        }
        assert!(Instant::now() < deadline, "the recording never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(samples.len(), 1600, "ten 20 ms packets");
    let expected = g711::alaw_decode(g711::alaw_encode(sample));
    assert!(samples.iter().all(|s| *s == expected), "A-law decoded");
}

#[actix_rt::test]
async fn a_codec_change_mid_prompt_transcodes_the_rest() {
    let rig = rig(Codec::Pcmu).await;
    let sources = vec![AudioSource::Beep { duration_ms: 1000 }];
    let play = MediaRequest::Play {
        sources,
        stop_on_digit: false,
    };
    start(&rig, 1, play);
    let before = receive_for(&rig.peer, Duration::from_millis(200)).await;
    rig.handle.send(MediaCommand::Update(MediaUpdate {
        codec: Codec::Pcma,
        dtmf_payload_type: Some(101),
        remote: None,
        send: true,
    }));
    let after = receive_for(&rig.peer, Duration::from_millis(300)).await;
    let peak = |frames: &[(RtpHeader, Vec<u8>)], pt: u8, codec: Codec| {
        let mut pcm = Vec::new();
        for (_, payload) in frames.iter().filter(|(h, _)| h.payload_type == pt) {
            codec.decode(payload, &mut pcm);
        }
        assert!(pcm.len() >= 800, "{} samples of pt {pt}", pcm.len());
        pcm.iter().map(|s| s.unsigned_abs()).max().unwrap()
    };
    let (mu, a) = (peak(&before, 0, Codec::Pcmu), peak(&after, 8, Codec::Pcma));
    assert!(
        mu.abs_diff(a) < mu / 10,
        "the same beep: µ-law peak {mu}, A-law peak {a}"
    );
}

#[actix_rt::test]
async fn a_relay_between_a_pcma_leg_and_a_pcmu_leg_converts_and_a_pcma_leg_detects_digits() {
    let mut a = rig(Codec::Pcma).await;
    let b = rig(Codec::Pcmu).await;
    let (link_a, link_b) = crate::media::relay::RelayLink::pair();
    start(&a, 1, MediaRequest::Relay(link_a));
    start(&b, 1, MediaRequest::Relay(link_b));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sample = -2500i16;
    let mut ours = RtpStream::with(1, 1);
    for i in 0..4u32 {
        let p = packet(
            &mut ours,
            8,
            false,
            i * 160,
            &[g711::alaw_encode(sample); 160],
        );
        a.peer.send_to(&p, a.engine).await.unwrap();
    }
    send_digit(&a.peer, a.engine, &mut ours, '7', 4 * 160).await;
    let at_b = receive_for(&b.peer, Duration::from_millis(300)).await;
    let audio: Vec<_> = at_b.iter().filter(|(h, _)| h.payload_type == 0).collect();
    assert_eq!(
        audio.len(),
        4,
        "the A-law leg's audio reaches the µ-law leg"
    );
    let mut pcm = Vec::new();
    Codec::Pcmu.decode(&audio[0].1, &mut pcm);
    let expected = g711::alaw_decode(g711::alaw_encode(sample));
    assert!(
        pcm.iter().all(|s| s.abs_diff(expected) < 100),
        "decoded as A-law, re-encoded as µ-law: {} vs {expected}",
        pcm[0]
    );
    assert_eq!(
        digits(&events_for(&mut a, Duration::from_millis(100)).await),
        "7"
    );
}
