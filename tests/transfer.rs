//! Blind transfer by REFER (RFC 3515) with real peers, both ways. In: a SIPp caller bridged to
//! a SIPp callee (bob) by `connect` REFERs bob to a third SIPp UAS (carol): 202, NOTIFY 100,
//! NOTIFY 200, BYE to the caller, and carol's audio reaches bob (checked byte for byte against
//! her pcap on a socket of this test). Refused REFERs get 400 / 403. Out: the `transfer` action
//! REFERs a SIPp caller, which answers 202 and NOTIFYs the outcome.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use activeflow::engine::EndReason;
use common::ports::reserve_ports;
use common::uas::SippUas;
use common::{
    ended_one, executed_types, flow, free_port, http, pcap_payloads, result_of, sipp, start_with,
    TestEngine,
};
use serde_json::{json, Value};

const PCAP: &str = "/usr/share/sip-tester/g711a.pcap";

fn engine(f: Value) -> TestEngine {
    let name = f["name"].as_str().unwrap().to_owned();
    start_with(&[f], &[(&name, &name)], &[], |_| {})
}

/// PCMA payloads received on `socket` until `quiet` passes after the last packet.
fn capture_pcma(socket: &UdpSocket, quiet: Duration, limit: Duration) -> Vec<Vec<u8>> {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut last = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        match socket.recv_from(&mut buf) {
            Ok((n, _)) if n > 12 && buf[1] & 0x7f == 8 => {
                last = Instant::now();
                got.push(buf[12..n].to_vec());
            }
            _ if !got.is_empty() && last.elapsed() > quiet => break,
            _ => {}
        }
    }
    got
}

/// RFC 3515 §2.4.2 (202 Accepted), §2.4.4 (the immediate NOTIFY "100 Trying"), §2.4.5 (the
/// final sipfrag, subscription terminated), §2.4.7 (the REFER-recipient places the call): the
/// caller REFERs bob, whom `connect` bridged it to, to carol; the engine calls carol, bridges
/// bob with her (her audio reaches bob unchanged), reports to the caller and hangs it up.
#[test]
fn a_bridged_caller_refers_its_callee_to_a_third_party() {
    let bob_media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bob_rtp = bob_media.local_addr().unwrap().port();
    let bob = SippUas::start_with_rtp("uas_answer_wait_bye.xml", bob_rtp, &[]);
    // SIPp binds -mp N and N+2 (video): four ports of our own for carol's media.
    let carol_rtp = reserve_ports(4).release();
    let mp = carol_rtp.to_string();
    // Carol plays her pcap from her SDP's port and hangs up after 3 s.
    let carol = SippUas::start_with_rtp(
        "uas_refer_target.xml",
        carol_rtp,
        &["-mp", &mp, "-d", "3000"],
    );
    let carol_uri = format!("sip:carol@localhost:{}", carol.port);
    let f = flow(
        "xfer",
        json!([
            {"type": "connect", "option": {
                "transfer": true,
                "destinations": [{"type": "sip", "target": format!("sip:bob@127.0.0.1:{}", bob.port)}]}},
            {"type": "talk", "option": {"text": "never reached: the caller left"}}
        ]),
    );
    let engine = engine(f);
    let caller_mp = reserve_ports(4).release().to_string();
    let refer_port = carol.port.to_string();
    let caller = std::thread::spawn({
        let sip = engine.sip;
        move || {
            sipp(
                sip,
                "uac_refer.xml",
                "xfer",
                &[
                    "-m",
                    "1",
                    "-mp",
                    &caller_mp,
                    "-key",
                    "refer_port",
                    &refer_port,
                ],
            )
        }
    });
    let audio = capture_pcma(
        &bob_media,
        Duration::from_millis(1000),
        Duration::from_secs(15),
    );
    caller.join().unwrap().assert_all_ok(1);
    assert!(carol.succeeded(Duration::from_secs(15)), "carol's scenario");
    // Bob stayed up through the transfer and got BYE only once carol hung up.
    assert!(bob.succeeded(Duration::from_secs(15)), "bob's scenario");

    // Carol's audio reached bob unaltered, in her pcap's order (about 3 s of it).
    let sent = pcap_payloads(PCAP);
    assert!(
        audio.len() >= 50,
        "{} PCMA packets reached bob",
        audio.len()
    );
    let mut next = 0;
    for (i, got) in audio.iter().enumerate() {
        let at = sent[next..]
            .iter()
            .position(|want| want == got)
            .unwrap_or_else(|| panic!("payload {i} reaching bob is not carol's (from {next})"));
        next += at + 1;
    }

    let record = ended_one(&engine, Duration::from_secs(20));
    assert_eq!(record.end_reason, Some(EndReason::Hangup));
    assert_eq!(executed_types(&record), ["connect", "transfer"]);
    let result = result_of(&record, "transfer");
    assert_eq!(result["result"], "transferred", "{result}");
    assert_eq!(result["code"], 200, "{result}");
    assert_eq!(result["referred_by"], "caller", "{result}");
    assert_eq!(result["target"], carol_uri, "{result}");
    assert_eq!(record.variables.get("transfer.result"), Some("transferred"));
    // The caller's call record says how it ended.
    let (_, calls) = http(engine.api, "GET", "/v1/calls", None);
    let incoming: Vec<&Value> = calls["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["direction"] == "incoming")
        .collect();
    assert_eq!(incoming.len(), 1, "{calls}");
    assert_eq!(incoming[0]["end_cause"], "transferred", "{calls}");
}

/// RFC 4488 §4 (`Refer-Sub: false`: 202 and no NOTIFY) with RFC 3515 §2.4.2: a caller that
/// hangs up right after the 202, as many phones do, still gets its callee transferred: carol
/// answers after the caller left and bob stays up, bridged with her, until she hangs up.
#[test]
fn a_caller_that_leaves_right_after_the_202_still_transfers_its_callee() {
    let bob = SippUas::start_with_rtp("uas_answer_wait_bye.xml", free_port(), &[]);
    let carol_mp = reserve_ports(4).release().to_string();
    let carol =
        SippUas::start_with_rtp("uas_refer_target.xml", 0, &["-mp", &carol_mp, "-d", "1500"]);
    let f = flow(
        "xfer-bye",
        json!([
            {"type": "connect", "option": {
                "transfer": true,
                "destinations": [{"type": "sip", "target": format!("sip:bob@127.0.0.1:{}", bob.port)}]}}
        ]),
    );
    let engine = engine(f);
    let refer_port = carol.port.to_string();
    let args = ["-m", "1", "-key", "refer_port", &refer_port];
    sipp(engine.sip, "uac_refer_bye.xml", "xfer-bye", &args).assert_all_ok(1);
    assert!(carol.succeeded(Duration::from_secs(15)), "carol's scenario");
    assert!(
        bob.succeeded(Duration::from_secs(15)),
        "bob got BYE once carol hung up"
    );
    let record = ended_one(&engine, Duration::from_secs(20));
    assert_eq!(record.end_reason, Some(EndReason::Hangup));
    assert_eq!(executed_types(&record), ["connect", "transfer"]);
    let result = result_of(&record, "transfer");
    assert_eq!(result["result"], "transferred", "{result}");
    assert_eq!(result["referred_by"], "caller", "{result}");
}

/// RFC 3515 §2.4.2, §2.4.4, §2.4.5 from the other side: the callee bob REFERs the caller to
/// carol; carol takes bob's place in the `connect` (bob gets BYE after the last NOTIFY, the
/// caller stays); when carol hangs up the flow goes on as after any callee's hang-up.
#[test]
fn a_bridged_callee_refers_the_caller_to_a_third_party() {
    let carol_mp = reserve_ports(4).release().to_string();
    let carol =
        SippUas::start_with_rtp("uas_refer_target.xml", 0, &["-mp", &carol_mp, "-d", "2000"]);
    let refer_port = carol.port.to_string();
    let bob = SippUas::start_with_rtp(
        "uas_refer.xml",
        free_port(),
        &["-key", "refer_port", &refer_port],
    );
    let carol_uri = format!("sip:carol@localhost:{}", carol.port);
    let f = flow(
        "xfer-callee",
        json!([
            {"type": "answer"},
            {"type": "connect", "option": {
                "transfer": true,
                "destinations": [{"type": "sip", "target": format!("sip:bob@127.0.0.1:{}", bob.port)}]}},
            {"type": "variable_set", "option": {"key": "after", "value": "${connect.result}"}},
            {"type": "hangup"}
        ]),
    );
    let engine = engine(f);
    let caller = std::thread::spawn({
        let sip = engine.sip;
        move || sipp(sip, "uac_engine_bye.xml", "xfer-callee", &["-m", "1"])
    });
    assert!(bob.succeeded(Duration::from_secs(15)), "bob's scenario");
    assert!(carol.succeeded(Duration::from_secs(15)), "carol's scenario");
    caller.join().unwrap().assert_all_ok(1);

    let record = ended_one(&engine, Duration::from_secs(20));
    assert_eq!(record.end_reason, Some(EndReason::Completed));
    assert_eq!(
        executed_types(&record),
        ["answer", "connect", "transfer", "variable_set", "hangup"]
    );
    let transfer = result_of(&record, "transfer");
    assert_eq!(transfer["result"], "transferred", "{transfer}");
    assert_eq!(transfer["referred_by"], "callee", "{transfer}");
    assert_eq!(transfer["target"], carol_uri, "{transfer}");
    // The connect's own outcome stays on the connect: carol answered in bob's place and ended it.
    let connect = result_of(&record, "connect");
    assert_eq!(connect["result"], "answered", "{connect}");
    assert_eq!(connect["answered_destination"], carol_uri, "{connect}");
    assert_eq!(connect["ended_by"], "callee", "{connect}");
    assert_eq!(record.variables.get("after"), Some("answered"));
}

/// RFC 3515 §2.4.1 (exactly one Refer-To, a URI we can call: else 400) and §2.4.2 (a REFER
/// we will not act on is refused: 403 outside a bridge).
#[test]
fn refers_without_one_usable_refer_to_or_outside_a_bridge_are_refused() {
    let f = flow(
        "refused",
        json!([{"type": "answer"}, {"type": "sleep", "option": {"duration": 20000}}]),
    );
    let engine = engine(f);
    sipp(engine.sip, "uac_refer_refused.xml", "refused", &["-m", "1"]).assert_all_ok(1);
    let record = ended_one(&engine, Duration::from_secs(20));
    assert_eq!(record.end_reason, Some(EndReason::Hangup));
    assert_eq!(executed_types(&record), ["answer", "sleep"]);
    assert_eq!(record.variables.get("transfer.result"), None);
}

/// A UDP socket standing in for a Refer-To target: true when anything reached it (an INVITE).
fn reached(target: &UdpSocket) -> bool {
    target
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 2048];
    target.recv_from(&mut buf).is_ok()
}

/// A flow that bridges the caller with bob, `transfer` as given.
fn bridge_flow(name: &str, bob: &SippUas, transfer: bool) -> Value {
    flow(
        name,
        json!([
            {"type": "connect", "option": {
                "transfer": transfer,
                "destinations": [{"type": "sip", "target": format!("sip:bob@127.0.0.1:{}", bob.port)}]}}
        ]),
    )
}

/// RFC 3515 §2.4.2 and §5: a bridged party's REFER is carried out only when the `connect`
/// says `transfer: true`; without it the REFER gets 403 (Warning: transfers are off) and no
/// INVITE goes to the Refer-To target.
#[test]
fn a_refer_without_the_connect_transfer_option_is_refused() {
    let bob = SippUas::start_with_rtp("uas_answer_wait_bye.xml", free_port(), &[]);
    let carol = UdpSocket::bind("127.0.0.1:0").unwrap();
    let refer_port = carol.local_addr().unwrap().port().to_string();
    let engine = engine(bridge_flow("xfer-off", &bob, false));
    let args = ["-m", "1", "-key", "refer_port", &refer_port];
    sipp(engine.sip, "uac_refer_off.xml", "xfer-off", &args).assert_all_ok(1);
    assert!(bob.succeeded(Duration::from_secs(10)), "bob's scenario");
    assert!(!reached(&carol), "no INVITE to the Refer-To target");
    let record = ended_one(&engine, Duration::from_secs(20));
    assert_eq!(executed_types(&record), ["connect"]);
    assert_eq!(record.variables.get("transfer.result"), None);
}

/// RFC 3515 §5 (the REFER recipient must not act on any URI it is given): with `transfer`
/// on, a Refer-To naming a loopback address is accepted (202) but never dialled: the last
/// NOTIFY carries 403 and the transfer is recorded as failed.
#[test]
fn a_refer_to_an_internal_address_is_not_dialled() {
    let bob = SippUas::start_with_rtp("uas_answer_wait_bye.xml", free_port(), &[]);
    let carol = UdpSocket::bind("127.0.0.1:0").unwrap();
    let refer_port = carol.local_addr().unwrap().port().to_string();
    let engine = engine(bridge_flow("xfer-internal", &bob, true));
    let args = ["-m", "1", "-key", "refer_port", &refer_port];
    sipp(engine.sip, "uac_refer_internal.xml", "xfer-internal", &args).assert_all_ok(1);
    assert!(bob.succeeded(Duration::from_secs(10)), "bob's scenario");
    assert!(!reached(&carol), "no INVITE to the internal target");
    let record = ended_one(&engine, Duration::from_secs(20));
    assert_eq!(executed_types(&record), ["connect", "transfer"]);
    let result = result_of(&record, "transfer");
    assert_eq!(result["result"], "failed", "{result}");
    assert_eq!(result["code"], 403, "{result}");
}

/// RFC 3515 §2.4.5 (the last NOTIFY reports how the referenced request ended): the caller
/// REFERs bob to carol, and bob hangs up while carol still rings; the transfer is cancelled
/// then and there (CANCEL to carol, NOTIFY 487 to the caller, recorded before the flow goes
/// on), so no later action can be bridged with carol.
#[test]
fn a_callee_that_hangs_up_cancels_the_callers_transfer() {
    let carol = SippUas::start_with_rtp("uas_ring_cancel.xml", 0, &[]);
    let bob = SippUas::start_with_rtp("uas_answer_then_bye.xml", free_port(), &["-d", "1500"]);
    let f = flow(
        "xfer-cancel",
        json!([
            {"type": "connect", "option": {
                "transfer": true,
                "destinations": [{"type": "sip", "target": format!("sip:bob@127.0.0.1:{}", bob.port)}]}},
            {"type": "sleep", "option": {"duration": 1000}},
            {"type": "hangup"}
        ]),
    );
    let engine = engine(f);
    let refer_port = carol.port.to_string();
    let args = ["-m", "1", "-key", "refer_port", &refer_port];
    sipp(engine.sip, "uac_refer_cancelled.xml", "xfer-cancel", &args).assert_all_ok(1);
    assert!(bob.succeeded(Duration::from_secs(10)), "bob's scenario");
    assert!(carol.succeeded(Duration::from_secs(10)), "carol got CANCEL");
    let record = ended_one(&engine, Duration::from_secs(20));
    assert_eq!(
        executed_types(&record),
        ["connect", "transfer", "sleep", "hangup"]
    );
    let result = result_of(&record, "transfer");
    assert_eq!(result["result"], "failed", "{result}");
    assert_eq!(result["code"], 487, "{result}");
}

fn transfer_flow(name: &str) -> Value {
    flow(
        name,
        json!([
            {"type": "answer"},
            {"type": "transfer", "option": {
                "destination": {"type": "sip", "target": "sip:carol@example.com"}}},
            {"type": "beep", "option": {"duration": 200}},
            {"type": "hangup"}
        ]),
    )
}

/// RFC 3515 §2.4.1 (our REFER carries Refer-To and Referred-By), §2.4.4–2.4.5 (we answer each
/// NOTIFY 200 and read its sipfrag): a 2xx sipfrag means transferred, and the call ends (BYE).
#[test]
fn the_transfer_action_refers_the_caller_and_ends_the_call_when_it_succeeds() {
    let engine = engine(transfer_flow("refer-ok"));
    let args = ["-m", "1", "-key", "final", "200 OK"];
    sipp(engine.sip, "uac_refer_accept.xml", "refer-ok", &args).assert_all_ok(1);
    let record = ended_one(&engine, Duration::from_secs(20));
    assert_eq!(record.end_reason, Some(EndReason::Completed));
    assert_eq!(executed_types(&record), ["answer", "transfer"]);
    let result = result_of(&record, "transfer");
    assert_eq!(result["result"], "transferred", "{result}");
    assert_eq!(result["code"], 200, "{result}");
    assert_eq!(result["target"], "sip:carol@example.com", "{result}");
    assert_eq!(record.variables.get("transfer.result"), Some("transferred"));
}

/// RFC 3515 §2.4.5: a final sipfrag that is not 2xx means the transfer failed; the call is
/// still up and the flow goes on (a beep, then its hangup sends BYE).
#[test]
fn a_failed_transfer_lets_the_flow_go_on() {
    let engine = engine(transfer_flow("refer-busy"));
    let args = ["-m", "1", "-key", "final", "486 Busy Here"];
    sipp(engine.sip, "uac_refer_accept.xml", "refer-busy", &args).assert_all_ok(1);
    let record = ended_one(&engine, Duration::from_secs(20));
    assert_eq!(record.end_reason, Some(EndReason::Completed));
    assert_eq!(
        executed_types(&record),
        ["answer", "transfer", "beep", "hangup"]
    );
    let result = result_of(&record, "transfer");
    assert_eq!(result["result"], "failed", "{result}");
    assert_eq!(result["code"], 486, "{result}");
    assert_eq!(record.variables.get("transfer.result"), Some("failed"));
}
