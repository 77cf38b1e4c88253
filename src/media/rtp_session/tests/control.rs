//! The RTP timeout on real sockets.

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
