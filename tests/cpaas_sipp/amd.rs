//! `amd` on an outbound call: `POST /v1/calls` dials a SIPp callee (RFC 3261 §13.2 UAC, the
//! engine's INVITE) that answers and replays a spoken greeting (espeak-ng, as RTP PCMU from its
//! own port, RFC 3550/3551); the activeflow runs on the answered call and classifies the
//! callee. A voicemail greeting with `machine_handle: hangup` gets the engine's BYE (RFC 3261
//! §15.1.1) and nothing after `amd`; a person's greeting lets the flow go on to `talk`.

use activeflow::engine::EndReason;
use serde_json::{json, Value};

use crate::common::amd::{HUMAN_GREETINGS, MACHINE_GREETINGS};
use crate::common::cpaas::LIMIT;
use crate::common::cpaas::{callee_playing, ended, placed_activeflows, post_calls, Scratch};
use crate::common::{executed_types, result_of, start};

/// Places one call to a SIPp callee playing `greeting`, running `actions`; waits for the
/// callee's scenario to end (it ends only on the engine's BYE) and returns the ended record.
fn outbound_to_greeting(greeting: &str, actions: Value) -> activeflow::engine::ActiveflowRecord {
    let scratch = Scratch::new("amd");
    let pcap = scratch.greeting_pcap(greeting);
    let callee = callee_playing(&scratch, &pcap);
    let engine = start(&[], &[], &[]);
    let (status, body) = post_calls(
        &engine,
        &json!({
            "source": {"type": "tel", "target": "+15550100"},
            "destinations": [{"type": "sip", "target": callee.uri()}],
            "actions": actions
        }),
    );
    assert_eq!(status, 200, "{body}");
    let ids = placed_activeflows(&body);
    assert_eq!(ids.len(), 1, "{body}");
    // RFC 3261 §15.1.2: the callee answers the engine's BYE with 200 and its scenario passes.
    assert!(
        callee.succeeded(LIMIT),
        "the SIPp callee got no BYE (or failed its scenario)"
    );
    let record = ended(&engine, &ids[0]);
    assert_eq!(record.variables.get("call.direction"), Some("outgoing"));
    record
}

#[test]
fn amd_hangs_up_on_an_outbound_callees_voicemail_greeting() {
    let record = outbound_to_greeting(
        MACHINE_GREETINGS[1],
        json!([
            {"type": "amd", "option": {"machine_handle": "hangup"}},
            {"type": "talk", "option": {"text": "This must never play."}},
            {"type": "hangup"}
        ]),
    );
    let amd = result_of(&record, "amd");
    println!("outbound voicemail greeting: {amd}");
    assert_eq!(executed_types(&record), ["amd"], "nothing after a machine");
    assert_eq!(amd["result"], "machine", "{amd}");
    assert_eq!(amd["hangup"], true, "{amd}");
    assert!(
        ["maxwords", "longgreeting"].contains(&amd["reason"].as_str().unwrap_or("")),
        "{amd}"
    );
    // The verdict came from the callee's speech, not from the initial-silence timer.
    assert!(amd["voice_ms"].as_u64().unwrap() >= 1000, "{amd}");
    assert_eq!(record.variables.get("amd.result"), Some("machine"));
    assert_eq!(record.end_reason, Some(EndReason::Completed));
}

#[test]
fn amd_lets_the_flow_go_on_for_an_outbound_callees_human_greeting() {
    let record = outbound_to_greeting(
        HUMAN_GREETINGS[2],
        json!([
            {"type": "amd", "option": {"machine_handle": "hangup"}},
            {"type": "talk", "option": {"text": "Hello, this is your reminder."}},
            {"type": "hangup"}
        ]),
    );
    let amd = result_of(&record, "amd");
    println!("outbound human greeting: {amd}");
    assert_eq!(amd["result"], "human", "{amd}");
    assert_eq!(amd["reason"], "humanspeech", "{amd}");
    assert!(amd.get("hangup").is_none_or(|h| h == false), "{amd}");
    assert!(amd["voice_ms"].as_u64().unwrap() >= 100, "{amd}");
    assert_eq!(record.variables.get("amd.result"), Some("human"));
    assert_eq!(executed_types(&record), ["amd", "talk", "hangup"]);
    let talk = result_of(&record, "talk");
    assert!(talk.get("error").is_none(), "the prompt played: {talk}");
    assert!(talk["length_ms"].as_u64().unwrap() > 500, "{talk}");
    assert_eq!(record.end_reason, Some(EndReason::Completed));
}
