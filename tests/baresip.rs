//! baresip (a real softphone, config template in `tests/baresip/`) calls the engine's demo flow
//! (`config/flows/demo.json`): the call is answered, the speech it hears is real audio (recorded
//! by baresip's `sndfile`), a key pressed on baresip's console travels as an RFC 4733 event and
//! routes the flow, and an operator stop hangs up baresip with a BYE. baresip also holds and
//! resumes a call from its console, and the engine's RTP reaching it is counted meanwhile.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use activeflow::engine::{ActiveflowRecord, EndReason, Status};
use common::peers::{private_dir, write_tone_wav, Peer};
use common::rtp::{rms, tone_frequency};
use common::{executed_types, free_port, start, TestEngine};
use serde_json::Value;

/// How long a step may take on a loaded 2-core machine (speech synthesis included).
const PATIENCE: Duration = Duration::from_secs(30);
/// The demo flow's `beep` action (key 1).
const BEEP: &str = "6f1c1a3e-8a38-4f0c-9d0b-3f1f2a0c1005";

/// The engine with the demo flow from `config/flows/demo.json` routed for every number.
fn engine() -> TestEngine {
    common::require("espeak-ng");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flows/demo.json");
    let demo: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    start(&[demo], &[("*", "demo")], &[])
}

/// A private baresip: its config dir (from the template), its microphone WAV, its recordings.
struct Baresip {
    peer: Peer,
    console: SocketAddr,
    dir: PathBuf,
    recordings: PathBuf,
}

impl Drop for Baresip {
    fn drop(&mut self) {
        // Kept after a failure, for its recording; otherwise its 2 MB microphone file goes.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Baresip {
    /// Starts baresip and dials `number` at the engine (`-e /dial ...`), with SIP tracing on
    /// (`-s`) so the messages it receives are in its output.
    fn dial(engine: SocketAddr, number: &str) -> Baresip {
        common::require_on_path("baresip");
        common::require("stdbuf");
        let dir = private_dir("baresip");
        let recordings = dir.join("recordings");
        std::fs::create_dir_all(&recordings).unwrap();
        let source = dir.join("microphone.wav");
        // Longer than any test: aufile ends the call when its file runs out.
        write_tone_wav(&source, 440.0, Duration::from_secs(120));
        // baresip also listens on its SIP port + 1 (TLS): the console must not be there.
        let sip_port = free_port();
        let console_port = loop {
            let p = free_port();
            if p != sip_port && p != sip_port.wrapping_add(1) {
                break p;
            }
        };
        let console: SocketAddr = ([127, 0, 0, 1], console_port).into();
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/baresip");
        let config = std::fs::read_to_string(templates.join("config"))
            .unwrap()
            .replace("@SIP_PORT@", &sip_port.to_string())
            .replace("@CONS_PORT@", &console.port().to_string())
            .replace("@SOURCE_WAV@", source.to_str().unwrap())
            .replace("@RECORDINGS@", recordings.to_str().unwrap());
        std::fs::write(dir.join("config"), config).unwrap();
        std::fs::copy(templates.join("accounts"), dir.join("accounts")).unwrap();
        // Line-buffered stdout (stdbuf, coreutils): a pipe would hold baresip's last lines back.
        let mut cmd = Command::new("stdbuf");
        cmd.current_dir(&dir)
            .args(["-oL", "-eL", "baresip", "-s"])
            .arg("-f")
            .arg(&dir)
            .args(["-e", &format!("/dial sip:{number}@{engine}")]);
        let peer = Peer::spawn("baresip", cmd);
        Baresip {
            peer,
            console,
            dir,
            recordings,
        }
    }

    /// Presses `key` on the console for `hold`, then releases it (0x04): baresip sends the
    /// RFC 4733 event for as long as the key is down and its end packets at the release.
    fn press(&self, key: char, hold: Duration) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .send_to(key.to_string().as_bytes(), self.console)
            .unwrap();
        std::thread::sleep(hold);
        socket.send_to(&[0x04], self.console).unwrap();
    }

    /// Waits until baresip says the peer closed the call: its session layer prints this only
    /// for a BYE it received (`ECONNRESET`), not for a hang-up of its own. (Its "Call with ...
    /// terminated" summary is skipped for calls shorter than a second.)
    fn wait_hung_up_by_peer(&self) -> String {
        self.peer
            .wait_line(&["session closed: Connection reset by peer"], PATIENCE)
    }

    /// The samples baresip decoded from the engine's RTP (`dump-*-dec.wav`), once `sndfile` has
    /// closed the file (its RIFF size then matches the file: waited for, bounded).
    fn heard(&self) -> Vec<i16> {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let file = std::fs::read_dir(&self.recordings)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with("-dec.wav"));
            let wav = file.map(|f| std::fs::read(f).unwrap()).unwrap_or_default();
            let riff = wav
                .get(4..8)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
            if riff.is_some_and(|size| size > 36 && size + 8 == wav.len()) {
                return wav_samples(&wav);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "baresip's recording in {} is missing or unfinished ({} bytes); its output:\n{}",
                self.recordings.display(),
                wav.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `key` on baresip's console (a menu command such as `x`, hold) and returns what the
    /// console answered to this socket, once that holds `end` (empty: nothing is awaited).
    fn command(&self, key: char, end: &str) -> String {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .send_to(key.to_string().as_bytes(), self.console)
            .unwrap();
        let deadline = std::time::Instant::now() + PATIENCE;
        let mut reply = String::new();
        let mut buf = [0u8; 65536];
        while !end.is_empty() && !reply.contains(end) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(
                !left.is_zero(),
                "baresip's console answered {key:?} with no {end:?}: {reply}"
            );
            socket.set_read_timeout(Some(left)).unwrap();
            if let Ok(n) = socket.recv(&mut buf) {
                reply.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
        reply
    }

    /// The RTP packets that have reached baresip's audio socket from the engine so far: the
    /// `rcvd` counts of its RTCP session's members (one per SSRC) at the stream's remote
    /// address, from the console's audio debug (`A`). libre counts each packet as it is read,
    /// before baresip's stream looks at its direction, so packets sent to a held baresip count
    /// too (what it decodes and records while it holds could not show a sending engine).
    fn rtp_from_engine(&self) -> u64 {
        let debug = self.command('A', "TX: packets");
        let remote = debug
            .lines()
            .find_map(|l| l.split_once(" remote: ")?.1.split('/').next())
            .unwrap_or_else(|| panic!("no remote address in baresip's audio debug:\n{debug}"))
            .to_string();
        debug
            .lines()
            .filter_map(|l| l.trim().strip_prefix(&format!("IP={remote} ")))
            .filter_map(|l| l.split_once("rcvd=")?.1.trim().parse::<u64>().ok())
            .sum()
    }

    /// Waits until at least `n` RTP packets from the engine have reached baresip; returns the
    /// count.
    fn wait_rtp_from_engine(&self, n: u64) -> u64 {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let count = self.rtp_from_engine();
            if count >= n {
                return count;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{count} RTP packets from the engine reached baresip, waited for {n}; its \
                 output:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The engine's 200 responses to INVITEs (the call's and the re-INVITEs'), in order, as
    /// baresip's SIP trace shows them (start line to the end of the body).
    fn invite_answers(&self, engine: SocketAddr) -> Vec<String> {
        let log = self.peer.output();
        let from_engine = format!("UDP {engine} -> ");
        let mut answers = Vec::new();
        for (i, line) in log.iter().enumerate() {
            if !line.contains(&from_engine)
                || !log.get(i + 1).is_some_and(|l| l.starts_with("SIP/2.0 200"))
            {
                continue;
            }
            // The trace of one message ends where baresip resets its colour (ESC [;m).
            let message: Vec<&str> = log[i + 1..]
                .iter()
                .take_while(|l| !l.contains('\u{1b}'))
                .map(String::as_str)
                .collect();
            if message
                .iter()
                .any(|l| l.starts_with("CSeq:") && l.ends_with("INVITE"))
            {
                answers.push(message.join("\n"));
            }
        }
        answers
    }

    /// Waits until the engine has answered `n` INVITEs 200; returns the last answer.
    fn wait_invite_answer(&self, engine: SocketAddr, n: usize) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let answers = self.invite_answers(engine);
            if answers.len() >= n {
                return answers[n - 1].clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the engine answered {} INVITEs 200, waited for {n}; baresip's output:\n{}",
                answers.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        self.peer.output().join("\n")
    }
}

/// The 16-bit samples of a PCM WAV's `data` chunk (to the end of the file, whatever its size
/// field says).
fn wav_samples(wav: &[u8]) -> Vec<i16> {
    let start = wav
        .windows(4)
        .position(|w| w == b"data")
        .map(|p| p + 8)
        .unwrap_or_else(|| panic!("no data chunk in a {}-byte WAV", wav.len()));
    wav[start.min(wav.len())..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// 20 ms frames (160 samples at 8 kHz).
fn frames(samples: &[i16]) -> impl Iterator<Item = &[i16]> {
    samples.chunks_exact(160)
}

fn only(e: &TestEngine) -> ActiveflowRecord {
    let all = e.activeflows();
    assert_eq!(all.len(), 1, "one call, one activeflow: {all:?}");
    all.into_iter().next().unwrap()
}

/// Waits until the activeflow exists and has executed `answer`, and baresip has the call up.
fn wait_answered(e: &TestEngine, phone: &Baresip) {
    e.wait_for("the demo flow to answer", PATIENCE, |all| {
        all.len() == 1
            && executed_types(&all[0])
                .first()
                .is_some_and(|t| t == "answer")
    });
    phone.peer.wait_line(&["Call established"], PATIENCE);
}

/// baresip calls the demo flow: the engine answers (RFC 3261 §13.3.1.4 200 with SDP), the
/// greeting it hears is real audio (PCMU, RFC 3551), key 1 pressed on the phone arrives as an
/// RFC 4733 telephone-event and the flow branches to `beep`, whose 1 kHz tone baresip then hears;
/// the flow says goodbye and hangs up, and baresip sees its call closed.
#[test]
fn baresip_calls_the_demo_flow_hears_it_and_key_1_routes_to_the_beep() {
    let e = engine();
    let phone = Baresip::dial(e.sip, "1000");
    wait_answered(&e, &phone);
    // Press while the greeting plays (baresip receives the engine's RTP), as a caller would.
    phone
        .peer
        .wait_line(&["incoming rtp for 'audio' established"], PATIENCE);
    phone.press('1', Duration::from_millis(250));

    e.wait_for("the demo flow to end", PATIENCE, |all| {
        all.len() == 1 && all[0].status == Status::Ended
    });
    let a = only(&e);
    let branch = a
        .executed_actions
        .iter()
        .find(|x| x.action.kind == "branch")
        .unwrap_or_else(|| panic!("no branch executed: {:?}", executed_types(&a)));
    let result = branch.result.clone().unwrap_or(Value::Null);
    assert_eq!(result["value"], "1", "the key baresip sent: {result}");
    assert_eq!(
        result["target_id"], BEEP,
        "key 1 branches to beep: {result}"
    );
    assert!(
        executed_types(&a).contains(&"beep".to_string()),
        "{:?}",
        executed_types(&a)
    );
    assert_eq!(a.end_reason, Some(EndReason::Completed), "{a:?}");
    // The key went in the media (RFC 4733), not as a SIP INFO: baresip's SIP trace has none.
    assert!(
        phone.peer.matching(&["INFO sip:"]).is_empty(),
        "baresip sent the key as SIP INFO:\n{}",
        phone.log()
    );

    phone.wait_hung_up_by_peer();
    let heard = phone.heard();
    // Non-silent: at least a second of 20 ms frames with speech-level energy.
    let loud = frames(&heard).filter(|f| rms(f) > 500.0).count();
    assert!(
        loud >= 50,
        "baresip heard {loud} loud 20 ms frames out of {} (rms of all {:.0})",
        heard.len() / 160,
        rms(&heard)
    );
    // And the beep itself: 1 kHz frames (the beep lasts 1 s; ask for half of it).
    let beep = frames(&heard)
        .filter(|f| rms(f) > 1000.0 && (950.0..1050.0).contains(&tone_frequency(f)))
        .count();
    assert!(
        beep >= 25,
        "baresip heard {beep} frames of a 1 kHz tone (the beep lasts 50 frames)"
    );
}

/// An operator stop (`POST /v1/activeflows/{id}/stop`) of the answered call makes the engine
/// send BYE (RFC 3261 §15.1.1) to baresip's Contact (§12.2.1.1), which answers it 200 and closes
/// the call.
#[test]
fn operator_stop_hangs_up_baresip() {
    let e = engine();
    let phone = Baresip::dial(e.sip, "1000");
    wait_answered(&e, &phone);
    let id = only(&e).id;
    let (status, body) = common::http(e.api, "POST", &format!("/v1/activeflows/{id}/stop"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["end_reason"], "operator_stop");

    phone.wait_hung_up_by_peer();
    let log = phone.peer.output();
    let bye = log
        .iter()
        .position(|l| l.starts_with("BYE sip:"))
        .unwrap_or_else(|| panic!("baresip's SIP trace shows no BYE:\n{}", phone.log()));
    assert!(
        log[bye.saturating_sub(1)].contains(&format!("UDP {} -> ", e.sip)),
        "the BYE did not come from the engine {}:\n{}",
        e.sip,
        log[bye.saturating_sub(1)..(bye + 10).min(log.len())].join("\n")
    );
    // Addressed to baresip's Contact from its INVITE (RFC 3261 §12.2.1.1: the remote target).
    let invite = log
        .iter()
        .position(|l| l.starts_with("INVITE sip:"))
        .unwrap_or_else(|| panic!("baresip's SIP trace shows no INVITE:\n{}", phone.log()));
    let contact = log[invite..]
        .iter()
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| l.strip_prefix("Contact:"))
        .and_then(|v| Some(v[v.find('<')? + 1..v.find('>')?].to_string()))
        .unwrap_or_else(|| panic!("no Contact in baresip's INVITE:\n{}", phone.log()));
    assert_eq!(
        log[bye].split_whitespace().nth(1),
        Some(contact.as_str()),
        "the BYE's Request-URI is not baresip's Contact"
    );
    assert!(
        log[bye..].iter().any(|l| l.starts_with("SIP/2.0 200 OK")),
        "baresip did not answer the BYE 200:\n{}",
        phone.log()
    );
    let a = only(&e);
    assert_eq!(a.status, Status::Ended);
    assert_eq!(a.end_reason, Some(EndReason::OperatorStop));
}

/// The engine's SDP direction attribute in one of its answers (`a=sendrecv`, `a=recvonly`, ...).
fn direction(answer: &str) -> Option<&str> {
    answer
        .lines()
        .map(str::trim)
        .find(|l| ["a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"].contains(l))
}

/// baresip puts the engine on hold and takes it off again from its console (RFC 3264 §8.4:
/// a re-INVITE offering `a=sendonly`, then one offering `a=sendrecv`) while the flow plays a
/// long beep. The engine answers the hold `a=recvonly` and stops sending: no RTP from it
/// reaches baresip for 1.5 s (counted at baresip's socket, so an engine that kept sending fails
/// this); it answers the resume `a=sendrecv` and its RTP flows again; the activeflow runs all
/// along, and an operator stop ends the call.
#[test]
fn baresip_holds_and_resumes_the_call_and_the_engine_stops_sending_while_held() {
    let held = common::flow(
        "held",
        serde_json::json!([
            {"type": "answer"},
            {"type": "beep", "option": {"duration": 30000}}
        ]),
    );
    let e = start(&[held], &[("*", "held")], &[]);
    let phone = Baresip::dial(e.sip, "1000");
    wait_answered(&e, &phone);
    let answer = phone.wait_invite_answer(e.sip, 1);
    assert_eq!(direction(&answer), Some("a=sendrecv"), "{answer}");

    // Audio flows: 25 packets (0.5 s of 20 ms frames) beyond the first one seen.
    let first = phone.wait_rtp_from_engine(1);
    phone.wait_rtp_from_engine(first + 25);

    // Hold (baresip 1.0 menu key x, `/hold`): the engine's answer to the re-INVITE says it will
    // only receive.
    phone.command('x', "");
    let hold = phone.wait_invite_answer(e.sip, 2);
    assert_eq!(
        direction(&hold),
        Some("a=recvonly"),
        "the engine's answer to baresip's hold (a=sendonly):\n{hold}"
    );
    assert!(
        !phone.peer.matching(&["a=sendonly"]).is_empty(),
        "baresip's hold re-INVITE offered no a=sendonly:\n{}",
        phone.log()
    );
    // Packets already in flight when the 200 was sent land within this settling time.
    std::thread::sleep(Duration::from_millis(300));
    let at_hold = phone.rtp_from_engine();
    std::thread::sleep(Duration::from_millis(1500));
    let after_hold = phone.rtp_from_engine();
    assert!(
        after_hold.saturating_sub(at_hold) <= 2,
        "the engine sent {} RTP packets to baresip during 1.5 s on hold (75 when it keeps \
         sending)",
        after_hold.saturating_sub(at_hold)
    );
    let a = only(&e);
    assert_eq!(a.status, Status::Running, "the call ended on hold: {a:?}");

    // Resume (menu key X, `/resume`): the engine sends and receives again, and its RTP flows
    // again.
    phone.command('X', "");
    let resume = phone.wait_invite_answer(e.sip, 3);
    assert_eq!(
        direction(&resume),
        Some("a=sendrecv"),
        "the engine's answer to baresip's resume:\n{resume}"
    );
    phone.wait_rtp_from_engine(after_hold + 25);

    let a = only(&e);
    assert_eq!(
        a.status,
        Status::Running,
        "the call ended after resume: {a:?}"
    );
    assert_eq!(
        a.current_action.as_ref().map(|x| x.kind.as_str()),
        Some("beep"),
        "{a:?}"
    );
    let (status, body) = common::http(
        e.api,
        "POST",
        &format!("/v1/activeflows/{}/stop", a.id),
        None,
    );
    assert_eq!(status, 200, "{body}");
    phone.wait_hung_up_by_peer();
    let a = only(&e);
    assert_eq!(a.end_reason, Some(EndReason::OperatorStop), "{a:?}");
}
