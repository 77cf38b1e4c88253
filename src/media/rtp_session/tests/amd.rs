//! The `amd` job on real sockets: the caller's RTP is decoded and analysed, the clock covers
//! audio that never comes, and `Stop` ends it without a verdict.

use super::*;
use crate::media::amd::AmdParams;
use crate::media::request::MediaError;

/// The job's answer, waiting up to `limit`.
async fn done(rig: &mut Rig, limit: Duration) -> (MediaJob, crate::media::MediaResult) {
    let until = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(until, rig.events.recv()).await {
            Ok(Some(MediaEvent::Done { job, result })) => return (job, result),
            Ok(Some(_)) => continue,
            _ => panic!("no amd verdict within {limit:?}"),
        }
    }
}

/// µ-law packets of `ms` of a 440 Hz tone (`voice`) or silence, paced at 20 ms.
async fn send_audio(rig: &Rig, stream: &mut RtpStream, ts: &mut u32, voice: bool, ms: u32) {
    for _ in 0..ms / 20 {
        let pcm: Vec<i16> = (0..160)
            .map(|i| {
                let t = f64::from(*ts + i) / 8000.0;
                if voice {
                    (4000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
                } else {
                    0
                }
            })
            .collect();
        let payload: Vec<u8> = pcm.iter().map(|s| g711::ulaw_encode(*s)).collect();
        let p = packet(stream, 0, false, *ts, &payload);
        rig.peer.send_to(&p, rig.engine).await.unwrap();
        *ts = ts.wrapping_add(160);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn a_short_greeting_over_rtp_then_nothing_is_human() {
    let mut rig = rig(Codec::Pcmu).await;
    start(&rig, 7, MediaRequest::Amd(AmdParams::default()));
    let (mut stream, mut ts) = (RtpStream::new(), 1000);
    send_audio(&rig, &mut stream, &mut ts, false, 300).await;
    send_audio(&rig, &mut stream, &mut ts, true, 400).await;
    // No more RTP: the session's clock supplies the after-greeting silence.
    let (job, result) = done(&mut rig, Duration::from_secs(5)).await;
    let v = result.unwrap();
    assert_eq!(
        (job, v["result"].as_str()),
        (MediaJob(7), Some("human")),
        "{v}"
    );
    assert_eq!(v["reason"], "humanspeech");
    assert!(
        (300..=500).contains(&v["voice_ms"].as_u64().unwrap()),
        "{v}"
    );
}

#[actix_rt::test]
async fn no_rtp_at_all_is_initial_silence_on_time() {
    let mut rig = rig(Codec::Pcmu).await;
    let params = AmdParams {
        initial_silence_ms: 600,
        ..AmdParams::default()
    };
    let began = Instant::now();
    start(&rig, 1, MediaRequest::Amd(params));
    let (_, result) = done(&mut rig, Duration::from_secs(5)).await;
    let v = result.unwrap();
    assert_eq!(
        (v["result"].as_str(), v["reason"].as_str()),
        (Some("machine"), Some("initialsilence"))
    );
    // 600 ms of silence plus the 200 ms allowed lag, on a 20 ms clock.
    assert!(
        began.elapsed() >= Duration::from_millis(780),
        "{:?}",
        began.elapsed()
    );
}

#[actix_rt::test]
async fn stop_ends_the_detection_without_a_verdict() {
    let mut rig = rig(Codec::Pcmu).await;
    start(&rig, 3, MediaRequest::Amd(AmdParams::default()));
    let (mut stream, mut ts) = (RtpStream::new(), 0);
    send_audio(&rig, &mut stream, &mut ts, true, 200).await;
    rig.handle.send(MediaCommand::Stop { job: MediaJob(3) });
    let (job, result) = done(&mut rig, Duration::from_secs(2)).await;
    assert_eq!(job, MediaJob(3));
    assert!(
        matches!(&result, Err(MediaError::Audio(m)) if m.starts_with("stopped after")),
        "{result:?}"
    );
}
