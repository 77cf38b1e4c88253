//! SIP message layer throughput (bytes/s): `parse_datagram` on a SIPp-style INVITE with SDP,
//! a BYE and a compact-form INVITE with a comma-joined Via; building a 200 OK with SDP
//! (`ResponseBuilder`) and a BYE (`RequestBuilder`); `TransactionKey::from_request`.
//! Run with `cargo bench --bench sip_message` (about 30 s).
#![allow(clippy::unwrap_used)] // fixed, known-good inputs: a failure is a broken benchmark

use std::hint::black_box;
use std::time::Duration;

use activeflow::sip::message::{
    parse_datagram, reason_phrase, RequestBuilder, ResponseBuilder, TransactionKey,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const MAX_SIZE: usize = 65_535;

/// What SIPp's built-in `uac` scenario sends, with the headers a real UA adds (~700 bytes).
const INVITE: &str = "INVITE sip:200@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-0;rport\r\n\
From: sipp <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag001\r\n\
To: 200 <sip:200@127.0.0.1:5060>\r\n\
Call-ID: 1-4242@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: sip:sipp@127.0.0.1:5061\r\n\
Max-Forwards: 70\r\n\
User-Agent: SIPp/3.7.3\r\n\
Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO\r\n\
Supported: timer, replaces\r\n\
Subject: Performance Test\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 233\r\n\
\r\n\
v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

const BYE: &str = "BYE sip:sipp@127.0.0.1:5061 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-1-7\r\n\
From: sipp <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag001\r\n\
To: 200 <sip:200@127.0.0.1:5060>;tag=8f2d3c4b5a697887\r\n\
Call-ID: 1-4242@127.0.0.1\r\n\
CSeq: 2 BYE\r\n\
Contact: sip:sipp@127.0.0.1:5061\r\n\
Max-Forwards: 70\r\n\
Subject: Performance Test\r\n\
Content-Length: 0\r\n\r\n";

/// Compact header names and two Vias joined by a comma (normalize splits them).
const COMPACT_INVITE: &str = "INVITE sip:200@127.0.0.1:5060 SIP/2.0\r\n\
v: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1, SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-c-1;rport\r\n\
f: <sip:alice@example.com>;tag=c0ffee\r\n\
t: <sip:200@127.0.0.1:5060>\r\n\
i: compact-1@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
m: <sip:alice@127.0.0.1:5061>\r\n\
k: timer\r\n\
c: application/sdp\r\n\
l: 126\r\n\
\r\n\
v=0\r\n\
o=- 1 1 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6002 RTP/AVP 0 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

/// The answer the engine puts in its 200 OK.
const ANSWER_SDP: &str = "v=0\r\n\
o=activeflow 1 1 IN IP4 127.0.0.1\r\n\
s=activeflow\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 20000 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=sendrecv\r\n";

fn request(raw: &str) -> rsip::Request {
    match parse_datagram(raw.as_bytes(), MAX_SIZE).unwrap() {
        rsip::SipMessage::Request(r) => r,
        rsip::SipMessage::Response(_) => panic!("expected a request"),
    }
}

fn ok_200(invite: &rsip::Request) -> ResponseBuilder {
    ResponseBuilder::new(invite, 200, reason_phrase(200))
        .to_tag("8f2d3c4b5a697887")
        .header("Contact", "<sip:activeflow@127.0.0.1:5060>")
        .header("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO")
        .header("Supported", "")
        .body("application/sdp", ANSWER_SDP.as_bytes())
}

fn bye() -> RequestBuilder {
    RequestBuilder::new(rsip::Method::Bye, "sip:sipp@127.0.0.1:5061")
        .via("127.0.0.1:5060", "UDP", "z9hG4bK0123456789abcdef")
        .from_addr("<sip:200@127.0.0.1:5060>", "8f2d3c4b5a697887")
        .to_addr("sipp <sip:sipp@127.0.0.1:5061>", Some("4242SIPpTag001"))
        .call_id("1-4242@127.0.0.1")
        .cseq(1)
        .max_forwards(70)
}

fn config(c: &mut Criterion) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group("sip");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    g
}

fn parse(c: &mut Criterion) {
    let mut g = config(c);
    for (name, raw) in [
        ("parse/invite_sdp", INVITE),
        ("parse/bye", BYE),
        ("parse/compact_invite_multi_via", COMPACT_INVITE),
    ] {
        // Fail loudly here rather than benchmark an error path.
        request(raw);
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| parse_datagram(black_box(raw.as_bytes()), MAX_SIZE))
        });
    }
    g.finish();
}

fn build(c: &mut Criterion) {
    let mut g = config(c);
    let invite = request(INVITE);
    let sample = ok_200(&invite).build();
    g.throughput(Throughput::Bytes(sample.len() as u64));
    g.bench_function("build/200_ok_sdp", |b| {
        b.iter(|| ok_200(black_box(&invite)).build())
    });
    let sample = bye().build();
    g.throughput(Throughput::Bytes(sample.len() as u64));
    g.bench_function("build/bye", |b| b.iter(|| black_box(bye()).build()));
    g.finish();
}

fn key(c: &mut Criterion) {
    let mut g = config(c);
    let invite = request(INVITE);
    g.throughput(Throughput::Elements(1));
    g.bench_function("transaction_key/invite", |b| {
        b.iter(|| TransactionKey::from_request(black_box(&invite)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, parse, build, key);
criterion_main!(benches);
