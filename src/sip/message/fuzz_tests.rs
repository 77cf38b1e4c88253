//! Fuzz-robustness tests: deterministic pseudo-random mutations and truncations of real SIP
//! messages pushed through normalize, frame, parse_datagram and TransactionKey.
//! Test-only; asserts absence of panics, not particular results.

use super::*;

const INVITE_SDP: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
    Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;rport\r\n\
    Max-Forwards: 70\r\n\
    From: \"Alice, A\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
    To: Bob <sip:bob@biloxi.example.com>\r\n\
    Call-ID: 3848276298220188511@atlanta.example.com\r\n\
    CSeq: 1 INVITE\r\n\
    Contact: <sip:alice@client.atlanta.example.com;transport=udp>\r\n\
    Content-Type: application/sdp\r\n\
    Content-Length: 151\r\n\r\n\
    v=0\r\no=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\r\ns=-\r\n\
    c=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

const BYE: &str = "BYE sip:alice@client.atlanta.example.com SIP/2.0\r\n\
    Via: SIP/2.0/TCP client.biloxi.example.com:5060;branch=z9hG4bKnashds7\r\n\
    Max-Forwards: 70\r\n\
    From: Bob <sip:bob@biloxi.example.com>;tag=8321234356\r\n\
    To: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
    Call-ID: 3848276298220188511@atlanta.example.com\r\n\
    CSeq: 1 BYE\r\n\
    Content-Length: 0\r\n\r\n";

const COMPACT: &str = "INVITE sip:bob@b.example SIP/2.0\n\
    v: SIP/2.0/UDP a.example;branch=z9hG4bK1, SIP/2.0/UDP \"x,y\" <b>;branch=z9hG4bK2\n\
    f: <sip:a@a.example>;tag=1\nt: <sip:b@b.example>\ni: cid@a\nCSeq: 1 INVITE\n\
    m: <sip:a@10.0.0.1>\nc: application/sdp\nSubject: long\n  folded\n\tsubject\nl: 4\n\nv=0\n";

const RESPONSE: &str = "SIP/2.0 180 Ringing\r\n\
    Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101\r\n\
    From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
    To: Bob <sip:bob@biloxi.example.com>;tag=8321234356\r\n\
    Call-ID: 3848276298220188511@atlanta.example.com\r\n\
    CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

/// xorshift64*: deterministic, no external crates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % (n.max(1) as u64)) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b":",
    b",",
    b";",
    b"\"",
    b"<",
    b">",
    b" ",
    b"\t",
    b"\0",
    b"\xff",
    b"\r\n\r\n",
    b"\r\n ",
    b"v:",
    b"l: 99999999999999999999",
    b"Content-Length: -1",
    b"=",
    b"branch=",
    b"z9hG4bK",
    b"SIP/2.0",
    b"\xc3\x28",
    b"%",
    b"[",
    b"]",
];

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut m = base.to_vec();
    for _ in 0..=rng.below(4) {
        let len = m.len();
        match rng.below(7) {
            0 => m.truncate(rng.below(len + 1)),
            1 if len > 0 => {
                let i = rng.below(len);
                m[i] = (rng.next() & 0xff) as u8;
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below(16).min(len - i);
                m.drain(i..i + n);
            }
            3 => {
                let i = rng.below(len + 1);
                let tok = INTERESTING[rng.below(INTERESTING.len())];
                m.splice(i..i, tok.iter().copied());
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + rng.below(64)).min(len);
                let chunk = m[a..b].to_vec();
                let at = rng.below(len + 1);
                m.splice(at..at, chunk);
            }
            5 if len > 0 => {
                let i = rng.below(len);
                m[i] ^= 1 << rng.below(8);
            }
            _ => {
                let i = rng.below(len + 1);
                m.insert(i, b"\r\n:;, <>\"\t"[rng.below(10)]);
            }
        }
    }
    m
}

fn exercise(input: &[u8]) {
    let _ = normalize(input);
    let _ = header_value(input, "Call-ID");
    let _ = frame(input, 4096);
    let _ = frame(input, 64);
    for msg in [parse_datagram(input, 65_535), parse_stream_message(input)] {
        match msg {
            Ok(rsip::SipMessage::Request(req)) => {
                let _ = TransactionKey::from_request(&req);
                let _ = ResponseBuilder::new(&req, 400, "Bad Request")
                    .to_tag("t")
                    .build();
            }
            Ok(rsip::SipMessage::Response(resp)) => {
                let _ = TransactionKey::for_response(&resp);
            }
            Err(e) => {
                if let Some(req) = e.request() {
                    let _ = ResponseBuilder::new(req, 400, "Bad Request").build();
                }
            }
        }
    }
}

#[test]
fn seeds_parse_cleanly() {
    for seed in [INVITE_SDP, BYE, COMPACT, RESPONSE] {
        let msg = parse_datagram(seed.as_bytes(), 65_535)
            .unwrap_or_else(|e| panic!("seed failed: {e}\n{seed}"));
        if let rsip::SipMessage::Request(req) = msg {
            TransactionKey::from_request(&req).unwrap();
        }
        assert!(matches!(
            frame(seed.as_bytes(), 65_535),
            Ok(Frame::Message(_))
        ));
    }
}

#[test]
fn every_truncation_is_survived() {
    for seed in [INVITE_SDP, BYE, COMPACT, RESPONSE] {
        let b = seed.as_bytes();
        for cut in 0..=b.len() {
            exercise(&b[..cut]);
            exercise(&b[cut..]);
        }
    }
}

#[test]
fn random_mutations_are_survived() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let seeds = [INVITE_SDP, BYE, COMPACT, RESPONSE];
    for i in 0..6_000 {
        let base = seeds[i % seeds.len()].as_bytes();
        let input = mutate(&mut rng, base);
        exercise(&input);
    }
}

#[test]
fn random_noise_is_survived() {
    let mut rng = Rng(42);
    for _ in 0..2_000 {
        let len = rng.below(300);
        let input: Vec<u8> = (0..len)
            .map(|_| INTERESTING[rng.below(INTERESTING.len())][0] ^ (rng.next() as u8 & 0x7f))
            .collect();
        exercise(&input);
    }
}
