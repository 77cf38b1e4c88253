//! Unit tests for SDP offer/answer; each names the RFC section it checks.

use super::*;

const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
    c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

#[test]
fn sipp_offer_gets_pcmu() {
    let n = negotiate(SIPP_OFFER.as_bytes()).unwrap();
    assert_eq!(n.payload_type, 0);
    assert_eq!(n.dtmf_payload_type, None);
    assert_eq!(n.remote_rtp, Some("127.0.0.1:6000".parse().unwrap()));
    let a = answer(&n, "127.0.0.1".parse().unwrap(), 20000, 7);
    let parsed = sdp_types::Session::parse(a.as_bytes()).unwrap();
    assert_eq!(parsed.medias[0].port, 20000);
    assert_eq!(parsed.medias[0].fmt, "0");
}

#[test]
fn offerer_order_and_dtmf() {
    let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 18 8 0 96\r\nc=IN IP4 10.0.0.2\r\n\
        a=rtpmap:96 telephone-event/8000\r\na=rtpmap:18 G729/8000\r\n";
    let n = negotiate(offer.as_bytes()).unwrap();
    assert_eq!(n.payload_type, 8);
    assert_eq!(n.dtmf_payload_type, Some(96));
    assert_eq!(n.remote_rtp, Some("10.0.0.2:4000".parse().unwrap()));
    let a = answer(&n, "10.0.0.9".parse().unwrap(), 20002, 1);
    assert!(a.contains("m=audio 20002 RTP/AVP 8 96\r\n"), "{a}");
}

#[test]
fn no_common_codec_and_garbage() {
    let offer = "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nc=IN IP4 1.1.1.1\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    assert_eq!(negotiate(offer.as_bytes()), Err(SdpError::NoCommonCodec));
    let video = "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nc=IN IP4 1.1.1.1\r\nt=0 0\r\n\
        m=video 4000 RTP/AVP 96\r\n";
    assert_eq!(negotiate(video.as_bytes()), Err(SdpError::NoAudio));
    assert!(matches!(
        negotiate(b"\xff\x00junk"),
        Err(SdpError::Parse(_))
    ));
}

#[test]
fn our_offer_parses() {
    let o = offer("127.0.0.1".parse().unwrap(), 20004, 3);
    let n = negotiate(o.as_bytes()).unwrap();
    assert_eq!((n.payload_type, n.dtmf_payload_type), (0, Some(101)));
}
