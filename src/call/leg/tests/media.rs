//! What the leg decides about media (RFC 3264): a delayed offer starts media only at the ACK's
//! answer, no RTP address before the ACK confirms the dialog, re-INVITEs renegotiate or get
//! 488 and leave the call up, and a silent peer is hung up (`rtp_timeout`).

use std::time::Duration;

use tokio::time::Instant;

use super::*;

const PCMA_ONLY: &str = "v=0\r\no=- 2 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
    m=audio 4100 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
const T38_ONLY: &str = "v=0\r\no=- 3 3 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
    m=image 4200 udptl t38\r\n";

fn media_starts(out: &[Output]) -> Vec<Option<crate::media::Negotiated>> {
    out.iter()
        .filter_map(|o| match o {
            Output::StartMedia(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// RFC 3264 §5 (delayed offer): an INVITE without SDP gets our offer in the 2xx; media starts
/// only when the ACK brings the answer, with the answer's codec and address.
#[tokio::test(start_paused = true)]
async fn a_delayed_offer_starts_media_at_the_acks_answer() {
    let mut leg = offered_with(caller_request("INVITE", "d1", 1, None, false), &env());
    let media = LocalMedia {
        port: 20000,
        session_id: 1,
        offer: true,
    };
    leg.answer(media, &env(), Instant::now());
    let ok = sent(&leg.take_outputs())
        .into_iter()
        .find(|(_, m)| m.starts_with("SIP/2.0 200"))
        .unwrap()
        .1;
    assert!(ok.contains("m=audio 20000 RTP/AVP 0 8 101"), "{ok}");
    let waited = run_for(&mut leg, Duration::from_secs(2)).await;
    assert!(media_starts(&waited).is_empty(), "{waited:?}");
    assert!(leg.media_pending());
    from_caller(
        &mut leg,
        caller_request_with("ACK", "d1a", 1, Some("us"), PCMA_ONLY),
    );
    let starts = media_starts(&leg.take_outputs());
    let n = starts[0].clone().expect("the answer's codec");
    assert_eq!(n.payload_type, 8);
    assert_eq!(n.remote_rtp, Some("10.0.0.1:4100".parse().unwrap()));
}

/// No RTP address before the ACK: media started early gets the caller's SDP address only once
/// an ACK matching the dialog arrived (no reflection toward a spoofed INVITE's SDP).
#[tokio::test(start_paused = true)]
async fn no_rtp_address_before_the_ack() {
    let (mut leg, _) = answered();
    leg.start_media_now();
    let starts = media_starts(&leg.take_outputs());
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].as_ref().unwrap().remote_rtp, None);
    from_caller(
        &mut leg,
        caller_request("ACK", "ack1", 1, Some("us"), false),
    );
    let remote: Vec<_> = leg
        .take_outputs()
        .into_iter()
        .filter_map(|o| match o {
            Output::MediaRemote(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(remote, ["10.0.0.1:4000".parse().unwrap()]);
}

/// RFC 3264 §8: a re-INVITE that changes codec and address is renegotiated — our answer says
/// PCMA and media follows; one that offers only T.38 gets 488 and the call stays up.
#[tokio::test(start_paused = true)]
async fn reinvite_renegotiates_or_gets_488() {
    let mut leg = confirmed();
    leg.start_media_now();
    leg.take_outputs();
    from_caller(
        &mut leg,
        caller_request_with("INVITE", "re1", 2, Some("us"), PCMA_ONLY),
    );
    let out = leg.take_outputs();
    let ok = &sent(&out)[0].1;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(ok.contains("m=audio 20000 RTP/AVP 8 101"), "{ok}");
    // RFC 3264 §8: our SDP changed, so its version went up by one (the 2xx to the INVITE had 1).
    assert!(ok.contains("o=activeflow 1 2 IN IP4"), "{ok}");
    let update = out.iter().find_map(|o| match o {
        Output::MediaUpdate(n) => Some(n.clone()),
        _ => None,
    });
    let update = update.expect("media follows");
    assert_eq!(update.payload_type, 8);
    assert_eq!(update.remote_rtp, Some("10.0.0.1:4100".parse().unwrap()));
    from_caller(
        &mut leg,
        caller_request("ACK", "re1a", 2, Some("us"), false),
    );
    // The same offer again changes nothing: the version stays.
    from_caller(
        &mut leg,
        caller_request_with("INVITE", "re1b", 3, Some("us"), PCMA_ONLY),
    );
    let again = sent(&leg.take_outputs())[0].1.clone();
    assert!(again.contains("o=activeflow 1 2 IN IP4"), "{again}");
    from_caller(
        &mut leg,
        caller_request("ACK", "re1c", 3, Some("us"), false),
    );
    from_caller(
        &mut leg,
        caller_request_with("INVITE", "re2", 4, Some("us"), T38_ONLY),
    );
    let out = leg.take_outputs();
    assert_eq!(first_lines(&out), ["SIP/2.0 488 Not Acceptable Here"]);
    assert_eq!(leg.phase, Phase::Confirmed);
    assert_eq!(leg.negotiated.as_ref().unwrap().payload_type, 8);
}

/// A peer silent for `media.rtp_timeout_seconds` (its BYE lost) gets BYE; the call ends
/// `rtp_timeout`.
#[tokio::test(start_paused = true)]
async fn rtp_timeout_hangs_up_with_bye() {
    let mut leg = confirmed();
    leg.rtp_timeout(&env(), Instant::now());
    let out = leg.take_outputs();
    assert!(first_lines(&out)[0].starts_with("BYE "));
    let ended = out.iter().find_map(|o| match o {
        Output::Ended { cause, .. } => Some(*cause),
        _ => None,
    });
    assert_eq!(ended, Some(CallEndCause::RtpTimeout));
}
