//! Helpers for the SIPp end-to-end tests of the CPaaS actions (tests/cpaas_*.rs): a scratch
//! directory, pcaps of spoken greetings and tones put into SIPp scenario templates
//! (`PCAP_PATH`), SIPp callers and callees with their own media ports (a listening caller's ears
//! are an `extmedia::RtpEchoServer::sink`), and the API calls these tests make. It starts no
//! engine of its own and decodes media itself (through `rtp`/`conference`), never with the
//! engine's code.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use activeflow::engine::{ActiveflowRecord, Status};
use serde_json::Value;

use super::amd::{line, speak, write_pcap, Noise};
use super::conference::write_tone_pcap;
use super::extmedia::RtpEchoServer;
use super::uas::SippUas;
use super::{http, reserve_ports, sipp, SippRun, TestEngine};

/// How long these tests wait for a call or an activeflow to end.
pub const LIMIT: Duration = Duration::from_secs(30);

/// A temporary directory for one test's pcaps and scenarios, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "activeflow-cpaas-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    /// A pcap of `text` spoken by espeak-ng (en-us, 160 wpm): 400 ms of silence, the speech,
    /// 3 s of silence, through µ-law.
    pub fn greeting_pcap(&self, text: &str) -> PathBuf {
        let speech = speak(text, "en-us", 160, &self.0);
        let path = self
            .0
            .join(format!("greeting-{}.pcap", uuid::Uuid::new_v4()));
        write_pcap(&path, &line(&speech, 400, 3000, Noise::Clean, 1));
        path
    }

    /// A pcap of `seconds` of a µ-law tone of `frequency` Hz at amplitude `amplitude`.
    pub fn tone_pcap(&self, frequency: f64, amplitude: f64, seconds: u32) -> PathBuf {
        let path = self
            .0
            .join(format!("tone-{frequency}-{}.pcap", uuid::Uuid::new_v4()));
        write_tone_pcap(&path, frequency, amplitude, seconds);
        path
    }

    /// tests/sipp/`template` with `PCAP_PATH` replaced by `pcap`, written here; its path.
    pub fn scenario_with_pcap(&self, template: &str, pcap: &Path) -> String {
        let xml = std::fs::read_to_string(super::scenario(template)).expect("scenario template");
        assert!(xml.contains("PCAP_PATH"), "{template} has no PCAP_PATH");
        let path = self.0.join(format!("{}-{template}", uuid::Uuid::new_v4()));
        let pcap = pcap.to_str().expect("utf-8 path");
        std::fs::write(&path, xml.replace("PCAP_PATH", pcap)).expect("scenario written");
        path.to_str().expect("utf-8 path").to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A block of 4 ports for SIPp's `-mp` (it binds that one and the three above).
pub fn sipp_media_port() -> String {
    reserve_ports(4).release().to_string()
}

/// A SIPp callee (tests/sipp/uas_answer_play_pcap.xml) that answers and replays `pcap` from
/// its own media port.
pub fn callee_playing(scratch: &Scratch, pcap: &Path) -> SippUas {
    let xml = scratch.scenario_with_pcap("uas_answer_play_pcap.xml", pcap);
    SippUas::start(&xml, &["-mp", &sipp_media_port()])
}

/// A SIPp caller (tests/sipp/uac_pcap_wait_bye.xml) dialling `number`, replaying `pcap`, and
/// waiting for the engine's BYE; runs on its own thread.
pub fn caller_playing(
    engine: &TestEngine,
    scratch: &Scratch,
    pcap: &Path,
    number: &str,
) -> JoinHandle<SippRun> {
    let xml = scratch.scenario_with_pcap("uac_pcap_wait_bye.xml", pcap);
    let (sip, number, mp) = (engine.sip, number.to_owned(), sipp_media_port());
    std::thread::spawn(move || sipp(sip, &xml, &number, &["-m", "1", "-mp", &mp]))
}

/// A SIPp caller (tests/sipp/uac_listen_wait_bye.xml) dialling `number` whose SDP names
/// `sink`'s socket, and waiting for the engine's BYE; runs on its own thread.
pub fn caller_listening(
    engine: &TestEngine,
    sink: &RtpEchoServer,
    number: &str,
) -> JoinHandle<SippRun> {
    let (sip, number) = (engine.sip, number.to_owned());
    let (rtp, mp) = (sink.addr.port().to_string(), sipp_media_port());
    std::thread::spawn(move || {
        sipp(
            sip,
            "uac_listen_wait_bye.xml",
            &number,
            &["-m", "1", "-mp", &mp, "-key", "rtp_port", &rtp],
        )
    })
}

/// `POST /v1/calls` with `body`: status and JSON.
pub fn post_calls(engine: &TestEngine, body: &Value) -> (u16, Value) {
    http(engine.api, "POST", "/v1/calls", Some(&body.to_string()))
}

/// The `activeflow_id`s of a `POST /v1/calls` answer's placed calls, in order.
pub fn placed_activeflows(body: &Value) -> Vec<String> {
    body["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| {
            assert_eq!(c["status"], "dialing", "{body}");
            c["activeflow_id"]
                .as_str()
                .expect("activeflow_id")
                .to_owned()
        })
        .collect()
}

/// The record of activeflow `id`, if the engine knows it.
pub fn activeflow(engine: &TestEngine, id: &str) -> Option<ActiveflowRecord> {
    engine
        .activeflows()
        .into_iter()
        .find(|a| a.id.to_string() == id)
}

/// Activeflow `id`, once it has ended (panics after [`LIMIT`]).
pub fn ended(engine: &TestEngine, id: &str) -> ActiveflowRecord {
    engine.wait_for(&format!("activeflow {id} to end"), LIMIT, |all| {
        all.iter()
            .any(|a| a.id.to_string() == id && a.status == Status::Ended)
    });
    activeflow(engine, id).expect("the ended activeflow")
}

/// Milliseconds between two executed actions' `tm_execute` (RFC 3339 timestamps).
pub fn ms_between(record: &ActiveflowRecord, first: usize, second: usize) -> i64 {
    let at = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(&record.executed_actions[i].tm_execute)
            .expect("tm_execute is RFC 3339")
    };
    (at(second) - at(first)).num_milliseconds()
}
