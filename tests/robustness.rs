//! Loss and garbage, sized to run in well under a minute each (the full-size runs are in
//! `bench/`): SIPp with 10% packet loss completes every call through retransmissions; thousands
//! of malformed datagrams and garbage TCP connections leave the engine serving, counted in
//! `sip_malformed_total`. The flood test has its own binary (`tests/overload.rs`) so it does not
//! starve these of CPU.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use activeflow::engine::EndReason;
use common::{flow, start};
use serde_json::json;

fn short() -> serde_json::Value {
    flow(
        "short",
        json!([{"type": "answer"}, {"type": "sleep", "option": {"duration": 300}}, {"type": "hangup"}]),
    )
}

#[test]
fn ten_percent_packet_loss_still_completes_every_call() {
    let e = start(&[short()], &[("*", "short")], &[]);
    let run = common::sipp(
        e.sip,
        "uac_engine_bye.xml",
        "1",
        &[
            "-m",
            "40",
            "-r",
            "20",
            "-lost",
            "10",
            "-deadcall_wait",
            "35000",
        ],
    );
    run.assert_all_ok(40);
    e.wait_for("40 completed", Duration::from_secs(30), |all| {
        all.len() == 40
            && all
                .iter()
                .all(|a| a.end_reason == Some(EndReason::Completed))
    });
}

#[test]
fn malformed_floods_and_garbage_tcp_leave_the_engine_serving_and_counted() {
    let (_engine, sip, _api, metrics) = common::spawn_engine(&[]);
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    let samples: [&[u8]; 6] = [
        b"\x00\x01\x02\x03",
        b"INVITE sip:x SIP/2.0\r\n\r\n",
        b"INVITE sip:1@h SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\nContent-Length: 99\r\n\r\nshort",
        b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n",
        b"\xff\xfe\xfd garbage \r\n\r\n\r\n",
        b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK2\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: m\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    ];
    for i in 0..5000 {
        junk.send_to(samples[i % samples.len()], sip).unwrap();
        if i % 500 == 0 {
            // Let the receive thread keep up; loopback drops what a full buffer cannot hold.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Garbage over TCP: one closed by a framing error, one stalled mid-message (kept open).
    let mut bad = TcpStream::connect(sip).unwrap();
    bad.write_all(b"INVITE sip:x SIP/2.0\r\nVia: a\r\n\r\n")
        .unwrap();
    let mut stalled = TcpStream::connect(sip).unwrap();
    stalled
        .write_all(b"INVITE sip:1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1")
        .unwrap();
    let mut noise = TcpStream::connect(sip).unwrap();
    noise.write_all(&[0xAB; 70_000]).unwrap_or(());

    // Still serving, over UDP and TCP, while the stalled connection is open.
    common::sipp(sip, "uac_caller_bye.xml", "1", &["-m", "5", "-r", "10"]).assert_all_ok(5);
    common::sipp(
        sip,
        "uac_caller_bye.xml",
        "1",
        &["-t", "t1", "-m", "5", "-r", "10"],
    )
    .assert_all_ok(5);

    let text = common::raw_get(metrics, "/metrics");
    let udp = common::metric(&text, "sip_malformed_total{transport=\"udp\"}").unwrap();
    let tcp = common::metric(&text, "sip_malformed_total{transport=\"tcp\"}").unwrap();
    assert!(udp >= 4000.0, "udp malformed counted: {udp}");
    assert!(tcp >= 2.0, "tcp malformed counted: {tcp}");
    drop(stalled);
}
