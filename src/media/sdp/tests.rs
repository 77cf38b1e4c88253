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

/// An offer with the given session-level lines after `t=` and the given media sections.
fn offer_with(session: &str, media: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n{session}{media}"
    )
}

fn parsed(sdp: &str) -> sdp_types::Session {
    sdp_types::Session::parse(sdp.as_bytes()).unwrap()
}

fn local() -> IpAddr {
    "10.0.0.9".parse().unwrap()
}

/// RFC 3264 §6: one m-line per offered m-line, in order; the refused video keeps its media,
/// proto and fmt with port 0.
#[test]
fn audio_and_video_offer_gets_video_refused_in_order() {
    let offer = offer_with(
        "",
        "m=video 5000 RTP/AVP 96 97\r\na=rtpmap:96 H264/90000\r\n\
         m=audio 4000 RTP/AVP 0\r\n",
    );
    let n = negotiate(offer.as_bytes()).unwrap();
    assert_eq!((n.audio_index, n.streams.len()), (1, 2));
    assert_eq!(n.remote_rtp, Some("10.0.0.1:4000".parse().unwrap()));
    let a = answer(&n, local(), 20000, 1);
    let s = parsed(&a);
    assert_eq!(s.medias.len(), 2, "{a}");
    assert_eq!((s.medias[0].media.as_str(), s.medias[0].port), ("video", 0));
    assert_eq!(s.medias[0].proto, "RTP/AVP");
    assert_eq!(s.medias[0].fmt, "96 97");
    assert_eq!(
        (s.medias[1].media.as_str(), s.medias[1].port),
        ("audio", 20000)
    );
    assert_eq!(s.medias[1].fmt, "0");
}

/// RFC 3264 §6: T.38 (`image udptl t38`, RFC 3362) beside audio is refused with port 0, and
/// a second audio stream too (we take the first).
#[test]
fn t38_and_second_audio_are_refused() {
    let offer = offer_with(
        "",
        "m=audio 4000 RTP/AVP 8\r\nm=image 4002 udptl t38\r\nm=audio 4004 RTP/AVP 0\r\n",
    );
    let n = negotiate(offer.as_bytes()).unwrap();
    assert_eq!((n.audio_index, n.payload_type), (0, 8));
    let a = answer(&n, local(), 20000, 1);
    assert!(
        a.contains("m=audio 20000 RTP/AVP 8\r\n")
            && a.contains("m=image 0 udptl t38\r\n")
            && a.contains("m=audio 0 RTP/AVP 0\r\n"),
        "{a}"
    );
    let order: Vec<_> = parsed(&a).medias.iter().map(|m| m.port).collect();
    assert_eq!(order, [20000, 0, 0]);
}

/// RFC 3264 §6 (a stream may be refused) with nothing left to take: a T.38-only offer is
/// `NoAudio` (488), as is one whose audio is refused already (port 0).
#[test]
fn t38_only_offer_is_no_audio() {
    let t38 = offer_with("", "m=image 4002 udptl t38\r\na=T38FaxVersion:0\r\n");
    assert_eq!(negotiate(t38.as_bytes()), Err(SdpError::NoAudio));
    let refused = offer_with("", "m=audio 0 RTP/AVP 0\r\nm=image 4002 udptl t38\r\n");
    assert_eq!(negotiate(refused.as_bytes()), Err(SdpError::NoAudio));
}

/// RFC 3264 §5.1 / RFC 3711: audio only over SRTP is `Srtp` (488 until SRTP exists); a plain
/// RTP stream beside it is taken instead, with the SAVP one refused (§6).
#[test]
fn srtp_only_audio_is_refused() {
    let savp = offer_with(
        "",
        "m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n",
    );
    assert_eq!(negotiate(savp.as_bytes()), Err(SdpError::Srtp));
    let savpf = offer_with("", "m=audio 4000 RTP/SAVPF 8\r\n");
    assert_eq!(negotiate(savpf.as_bytes()), Err(SdpError::Srtp));
    let both = offer_with("", "m=audio 4000 RTP/SAVP 0\r\nm=audio 4002 RTP/AVP 0\r\n");
    let n = negotiate(both.as_bytes()).unwrap();
    assert_eq!(n.audio_index, 1);
    let a = answer(&n, local(), 20000, 1);
    assert!(
        a.contains("m=audio 0 RTP/SAVP 0\r\nm=audio 20000 RTP/AVP 0\r\n"),
        "{a}"
    );
}

/// RFC 4585 §3.1 with RFC 3264 §6: an `RTP/AVPF` audio stream is usable and answered with
/// the same proto.
#[test]
fn avpf_audio_is_answered_as_avpf() {
    let offer = offer_with("", "m=audio 4000 RTP/AVPF 0\r\n");
    let n = negotiate(offer.as_bytes()).unwrap();
    let a = answer(&n, local(), 20000, 1);
    assert!(a.contains("m=audio 20000 RTP/AVPF 0\r\n"), "{a}");
}

fn direction_of(answer: &str) -> Option<&'static str> {
    ["sendrecv", "sendonly", "recvonly", "inactive"]
        .into_iter()
        .find(|d| answer.contains(&format!("a={d}\r\n")))
}

/// RFC 3264 §6.1: sendonly → recvonly (we must not send; the peer holds us).
#[test]
fn sendonly_offer_gets_recvonly_and_stops_our_sending() {
    let offer = offer_with("", "m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n");
    let n = negotiate(offer.as_bytes()).unwrap();
    assert_eq!(n.direction, Direction::SendOnly);
    assert!(!n.we_send() && n.on_hold());
    assert_eq!(
        direction_of(&answer(&n, local(), 20000, 1)),
        Some("recvonly")
    );
}

/// RFC 3264 §6.1: recvonly → sendonly (we send; not a hold of us).
#[test]
fn recvonly_offer_gets_sendonly_and_we_send() {
    let offer = offer_with("", "m=audio 4000 RTP/AVP 0\r\na=recvonly\r\n");
    let n = negotiate(offer.as_bytes()).unwrap();
    assert!(n.we_send() && !n.on_hold());
    assert_eq!(
        direction_of(&answer(&n, local(), 20000, 1)),
        Some("sendonly")
    );
}

/// RFC 3264 §6.1: inactive → inactive (nobody sends).
#[test]
fn inactive_offer_gets_inactive() {
    let offer = offer_with("", "m=audio 4000 RTP/AVP 0\r\na=inactive\r\n");
    let n = negotiate(offer.as_bytes()).unwrap();
    assert!(!n.we_send() && n.on_hold());
    assert_eq!(
        direction_of(&answer(&n, local(), 20000, 1)),
        Some("inactive")
    );
}

/// RFC 4566 §6 (a session-level direction applies to every stream) and RFC 3264 §5.1 (the
/// media-level one overrides it).
#[test]
fn media_level_direction_wins_over_session_level() {
    let session_only = offer_with("a=sendonly\r\n", "m=audio 4000 RTP/AVP 0\r\n");
    let n = negotiate(session_only.as_bytes()).unwrap();
    assert_eq!(n.direction, Direction::SendOnly);
    let both = offer_with("a=sendonly\r\n", "m=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n");
    let n = negotiate(both.as_bytes()).unwrap();
    assert_eq!(n.direction, Direction::SendRecv);
    assert!(n.we_send() && !n.on_hold());
    assert_eq!(
        direction_of(&answer(&n, local(), 20000, 1)),
        Some("sendrecv")
    );
}

/// RFC 3264 §8.4: `c=IN IP4 0.0.0.0` is the old-style hold: nobody sends, and there is no
/// address to send to.
#[test]
fn zero_connection_address_is_hold() {
    let offer = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 0\r\n";
    let n = negotiate(offer.as_bytes()).unwrap();
    assert!(n.held_by_address && n.on_hold() && !n.we_send());
    assert_eq!(n.remote_rtp, None);
    let plain = negotiate(SIPP_OFFER.as_bytes()).unwrap();
    assert!(plain.we_send() && !plain.on_hold());
}

/// RFC 3264 §6.1 (the answer's codecs come from the offer) with RFC 3551 §6 (PCMA is static
/// payload type 8): a PCMA-only caller gets PCMA.
#[test]
fn pcma_only_offer_gets_pcma() {
    let offer = offer_with(
        "",
        "m=audio 4000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    let n = negotiate(offer.as_bytes()).unwrap();
    assert_eq!((n.payload_type, n.codec_name()), (8, "PCMA"));
    let a = answer(&n, local(), 20000, 1);
    assert!(
        a.contains("m=audio 20000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"),
        "{a}"
    );
}

/// RFC 3551 §4.5.14: PCMU/PCMA run at 8000 Hz; an rtpmap claiming another rate is not ours.
#[test]
fn g711_at_another_rate_is_not_taken() {
    let offer = offer_with("", "m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/16000\r\n");
    assert_eq!(negotiate(offer.as_bytes()).unwrap().payload_type, 8);
}

/// RFC 4733 §7.1.1 with RFC 3264 §6.1: telephone-event is taken only at 8000 Hz (our audio
/// clock), and the answer uses the offer's payload type for it.
#[test]
fn telephone_event_only_at_8000_with_the_offered_payload_type() {
    let only_16k = offer_with(
        "",
        "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/16000\r\n",
    );
    let n = negotiate(only_16k.as_bytes()).unwrap();
    assert_eq!(n.dtmf_payload_type, None);
    let a = answer(&n, local(), 20000, 1);
    assert!(
        a.contains("m=audio 20000 RTP/AVP 0\r\n") && !a.contains("telephone-event"),
        "{a}"
    );

    let both = offer_with(
        "",
        "m=audio 4000 RTP/AVP 0 101 100\r\na=rtpmap:101 telephone-event/16000\r\n\
         a=rtpmap:100 telephone-event/8000\r\na=fmtp:100 0-15\r\n",
    );
    let n = negotiate(both.as_bytes()).unwrap();
    assert_eq!(n.dtmf_payload_type, Some(100));
    let a = answer(&n, local(), 20000, 1);
    assert!(
        a.contains("m=audio 20000 RTP/AVP 0 100\r\n")
            && a.contains("a=rtpmap:100 telephone-event/8000\r\n"),
        "{a}"
    );
}

/// A SIP-I INVITE body (ITU-T Q.1912.5, RFC 3204): the SDP part, then a binary ISUP IAM
/// whose bytes include CR, LF, NUL and 0xFF.
fn sip_i_body(boundary: &str, sdp_first: bool) -> Vec<u8> {
    let sdp_part = format!(
        "--{boundary}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SIPP_OFFER}\r\n",
        SIPP_OFFER.len()
    );
    let mut isup_part = format!(
        "--{boundary}\r\nContent-Type: application/isup;version=itu-t92+\r\n\
         Content-Disposition: signal;handling=required\r\n\r\n"
    )
    .into_bytes();
    isup_part.extend_from_slice(&[
        0x01, 0x00, 0x60, 0x01, 0x0a, 0x00, 0x02, 0x0a, 0x08, 0x83, 0x90, 0x89, 0x67, 0x45, 0x0d,
        0x0a, 0x2d, 0x2d, 0x00, 0xff, 0x0a, 0x07, 0x03, 0x13, 0x09, 0x32, 0x54, 0x76, 0x08, 0x00,
    ]);
    isup_part.extend_from_slice(b"\r\n");
    let mut body = Vec::new();
    if sdp_first {
        body.extend_from_slice(sdp_part.as_bytes());
        body.extend_from_slice(&isup_part);
    } else {
        body.extend_from_slice(&isup_part);
        body.extend_from_slice(sdp_part.as_bytes());
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// RFC 2046 §5.1.1 (delimiters, part headers) with RFC 3204 §3 (ISUP bodies in SIP): the SDP
/// part of a SIP-I body is found, whatever the part order, and negotiates.
#[test]
fn multipart_sip_i_body_yields_its_sdp() {
    for sdp_first in [true, false] {
        let body = sip_i_body("unique-boundary-1", sdp_first);
        let sdp = sdp_of("multipart/mixed;boundary=unique-boundary-1", &body).unwrap();
        // The line break before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
        assert_eq!(sdp, SIPP_OFFER.as_bytes(), "sdp_first {sdp_first}");
        let n = negotiate(sdp).unwrap();
        assert_eq!(n.remote_rtp, Some("127.0.0.1:6000".parse().unwrap()));
    }
}

/// RFC 2045 §5.1: the boundary parameter may be quoted, its name is case-insensitive, and
/// other parameters may come first; media types are case-insensitive.
#[test]
fn multipart_boundary_quoted_or_not() {
    let body = sip_i_body("sip-i 42:x", true);
    let ct = "Multipart/Mixed; charset=utf-8; BOUNDARY=\"sip-i 42:x\"";
    assert!(sdp_of(ct, &body).is_some());
    assert_eq!(sdp_of("multipart/mixed", &body), None, "no boundary");
    assert_eq!(sdp_of("multipart/mixed;boundary=other", &body), None);
}

/// RFC 2046 §5.1.1: a part without Content-Type is text/plain, so a multipart without an
/// `application/sdp` part has no SDP; nor has a body of another type.
#[test]
fn bodies_without_sdp_give_none() {
    let body = b"--b\r\n\r\nhello\r\n--b\r\nContent-Type: application/isup;version=itu-t92+\r\n\r\n\x01\x00\r\n--b--\r\n";
    assert_eq!(sdp_of("multipart/mixed;boundary=b", body), None);
    assert_eq!(sdp_of("application/isup", b"\x01\x00"), None);
    assert_eq!(sdp_of("application/sdp", b""), None);
}

/// RFC 3261 §7.4.1 / RFC 4566 §5: a plain `application/sdp` body is the SDP itself.
#[test]
fn plain_sdp_body_is_itself() {
    let body = SIPP_OFFER.as_bytes();
    assert_eq!(sdp_of("application/sdp", body), Some(body));
    assert_eq!(sdp_of("Application/SDP ; charset=x", body), Some(body));
}

/// RFC 2046 §5.1.1 (the preamble is ignored; a body part may itself be multipart) with
/// bare-LF line ends, as some trunks send.
#[test]
fn multipart_preamble_nested_and_bare_lf() {
    let inner = format!("--in\nContent-Type: application/sdp\n\n{SIPP_OFFER}\n--in--\n");
    let body = format!(
        "This is a preamble.\r\n--out\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n\
         {inner}\r\n--out--\r\n"
    );
    let sdp = sdp_of("multipart/mixed; boundary=out", body.as_bytes()).unwrap();
    assert_eq!(sdp, SIPP_OFFER.as_bytes());
    assert!(negotiate(sdp).is_ok());
}
