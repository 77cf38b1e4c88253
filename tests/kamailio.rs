//! Kamailio (a real record-routing proxy, config in `tests/kamailio/proxy.cfg`) in front of the
//! engine: SIPp calls the engine through it, and every in-dialog request — the caller's BYE and
//! the engine's own BYE after an operator stop — must follow the route set back through it
//! (RFC 3261 §12.1.1, §12.2.1.1, §16.12). What passed through the proxy is read from its log (one
//! `RELAY`/`REPLY` line per message it sent); what SIPp received, from SIPp's message trace.
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use activeflow::engine::{EndReason, Status};
use common::peers::{private_dir, Peer};
use common::{answer_hold_hangup, executed_types, free_port, start, TestEngine};

/// How long a step may take on a loaded 2-core machine before the test gives up.
const PATIENCE: Duration = Duration::from_secs(20);
/// How long a line the proxy printed may take to reach the test through its pipe.
const LOG_WAIT: Duration = Duration::from_secs(3);

/// answer, then hold for a minute: the call ends by the caller's BYE or an operator stop.
fn engine() -> TestEngine {
    start(
        &[answer_hold_hangup("hold", 60000)],
        &[("200", "hold")],
        &[],
    )
}

/// A private Kamailio running `tests/kamailio/proxy.cfg` on its own UDP port, forwarding initial
/// requests to the engine.
struct Proxy {
    kamailio: Peer,
    addr: SocketAddr,
    /// Its runtime dir, also holding the test's SIPp message trace.
    dir: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Kept after a failure, for the trace; otherwise removed.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Proxy {
    fn start(engine: SocketAddr) -> Proxy {
        Proxy::start_with(engine, &[], None)
    }

    /// With `defines` (`-A NAME="value"`) for the config, e.g. `RR_ADDRESS`, and a second
    /// address to listen on.
    fn start_with(engine: SocketAddr, defines: &[String], also: Option<u16>) -> Proxy {
        let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/kamailio/proxy.cfg");
        let dir = private_dir("kamailio");
        let mut defines = defines.to_vec();
        defines.push(format!("ENGINE_URI=\"sip:{engine}\""));
        let (kamailio, addr) =
            common::kamailio::spawn(&config, &dir, &defines, also.as_slice(), (32, 4));
        Proxy {
            kamailio,
            addr,
            dir,
        }
    }

    /// Waits (bounded: the proxy logs on its own threads) for a `RELAY` line: a request of
    /// `method` this proxy sent to `to` (any destination when empty), from `from` when given.
    fn relayed(&self, method: &str, from: Option<SocketAddr>, to: &str) -> Option<String> {
        let method = format!("RELAY {method} ");
        let from = from.map(|f| format!(" from {f} ")).unwrap_or_default();
        let to = if to.is_empty() {
            String::new()
        } else {
            format!(" to {to} ")
        };
        self.kamailio
            .try_wait_line(&[&method, &from, &to], LOG_WAIT)
    }

    /// Waits (bounded) for the `REPLY` line of a response with `status` to `method`.
    fn reply(&self, status: u16, method: &str) -> Option<String> {
        self.kamailio
            .try_wait_line(&[&format!("REPLY {status} {method} ")], LOG_WAIT)
    }

    /// A file for SIPp's message trace (`-trace_msg -message_file PATH`) in the proxy's dir.
    fn trace_path(&self) -> PathBuf {
        self.dir.join("sipp-messages.log")
    }

    fn log(&self) -> String {
        self.kamailio.output().join("\n")
    }
}

/// The messages SIPp logged as sent (`sent == true`) or received, in order.
fn traced(path: &Path, sent: bool) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let marker = if sent {
        "message sent"
    } else {
        "message received"
    };
    text.split("----------------------------------------------- ")
        .filter(|block| block.lines().nth(1).is_some_and(|l| l.contains(marker)))
        .map(|block| {
            block
                .lines()
                .skip(2)
                .skip_while(|l| l.trim().is_empty())
                .collect::<Vec<_>>()
                .join("\r\n")
        })
        .collect()
}

/// The first traced message whose start line begins with `start`.
fn find_traced(path: &Path, sent: bool, start: &str) -> String {
    traced(path, sent)
        .into_iter()
        .find(|m| m.starts_with(start))
        .unwrap_or_else(|| {
            panic!(
                "SIPp {} no {start:?}; trace:\n{}",
                if sent { "sent" } else { "received" },
                std::fs::read_to_string(path).unwrap_or_default()
            )
        })
}

/// Every value of header `name` in a raw message (one per line; comma-joined values split).
fn header_values(msg: &str, name: &str) -> Vec<String> {
    msg.lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
        .collect()
}

/// Whether `text` holds a `<sip:ADDR;...>` name-addr for `addr` with the `lr` parameter (a loose
/// router's Record-Route or Route value; parameter order is the proxy's choice).
fn names_loose_route(text: &str, addr: SocketAddr) -> bool {
    let start = format!("<sip:{addr};");
    text.match_indices(&start).any(|(at, _)| {
        let params = &text[at + start.len() - 1..];
        let params = &params[..params.find('>').unwrap_or(params.len())];
        params.split(';').any(|p| p.eq_ignore_ascii_case("lr"))
    })
}

/// The URI inside `<...>`, or the whole value up to its parameters.
fn uri_in(value: &str) -> String {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) => value[a + 1..b].to_string(),
        _ => value.split(';').next().unwrap_or("").trim().to_string(),
    }
}

/// A SIPp call through the proxy is answered, and ends cleanly when the caller hangs up: the
/// proxy is transparent to the call (RFC 3261 §16: the INVITE reaches the engine, its 200 reaches
/// the caller, and the dialog's BYE gets its 200).
#[test]
fn call_through_record_routing_proxy_is_answered_and_completes() {
    let e = engine();
    let proxy = Proxy::start(e.sip);
    let run = common::sipp(proxy.addr, "uac_proxy_caller_bye.xml", "200", &["-m", "1"]);
    run.assert_all_ok(1);
    e.wait_for("the activeflow to end", PATIENCE, |all| {
        all.len() == 1 && all[0].status == Status::Ended
    });
    let a = &e.activeflows()[0];
    assert_eq!(a.end_reason, Some(EndReason::Hangup), "{a:?}");
    assert_eq!(executed_types(a), ["answer", "sleep"]);
    assert!(
        proxy.relayed("INVITE", None, &e.sip.to_string()).is_some(),
        "the INVITE did not go through the proxy:\n{}",
        proxy.log()
    );
}

/// The engine's 200 to a record-routed INVITE copies the proxy's Record-Route (RFC 3261 §12.1.1:
/// the UAS MUST copy all Record-Route values into a dialog-creating response), so the caller's
/// route set holds the proxy and its ACK and BYE go through it (§12.2.1.1, §16.12) to the
/// engine, which answers the BYE back through it.
#[test]
fn caller_bye_goes_through_the_record_routing_proxy() {
    let e = engine();
    let proxy = Proxy::start(e.sip);
    let trace = proxy.trace_path();
    let trace_arg = trace.to_str().unwrap();
    common::sipp(
        proxy.addr,
        "uac_proxy_caller_bye.xml",
        "200",
        &["-m", "1", "-trace_msg", "-message_file", trace_arg],
    )
    .assert_all_ok(1);
    e.wait_for("the activeflow to end", PATIENCE, |all| {
        all.len() == 1 && all[0].status == Status::Ended
    });

    // The proxy did its part: the INVITE it relayed to the engine carries its Record-Route.
    let invite = proxy
        .relayed("INVITE", None, &e.sip.to_string())
        .unwrap_or_else(|| panic!("no INVITE relayed to the engine:\n{}", proxy.log()));
    let own = format!("sip:{};lr", proxy.addr);
    assert!(names_loose_route(&invite, proxy.addr), "{invite}");
    // The 200 (INVITE) as the engine sent it, seen by the proxy, and as SIPp received it.
    let ok = proxy.reply(200, "INVITE").unwrap_or_else(|| {
        panic!(
            "no 200 to the INVITE came through the proxy:\n{}",
            proxy.log()
        )
    });
    assert!(
        ok.contains(&format!(" from {} ", e.sip)) && names_loose_route(&ok, proxy.addr),
        "the engine's 200 to the INVITE carried no Record-Route {own} (RFC 3261 §12.1.1); \
         the proxy relayed: {ok}\nproxy log:\n{}",
        proxy.log()
    );
    let received_ok = find_traced(&trace, false, "SIP/2.0 200");
    assert!(
        header_values(&received_ok, "Record-Route")
            .iter()
            .any(|rr| names_loose_route(rr, proxy.addr)),
        "the 200 SIPp received has no Record-Route {own}:\n{received_ok}"
    );
    // The caller's ACK and BYE went through the proxy to the engine, and the 200 came back.
    for method in ["ACK", "BYE"] {
        assert!(
            proxy.relayed(method, None, &e.sip.to_string()).is_some(),
            "the caller's {method} did not go through the proxy to the engine {}; proxy log:\n{}",
            e.sip,
            proxy.log()
        );
    }
    assert!(
        proxy
            .reply(200, "BYE")
            .is_some_and(|l| l.contains(&format!(" from {} ", e.sip))),
        "the engine's 200 to BYE did not come back through the proxy:\n{}",
        proxy.log()
    );
}

/// The engine's own BYE (operator stop, `POST /v1/activeflows/{id}/stop`) follows the route set
/// learnt from the INVITE's Record-Route: sent to the proxy with a Route naming it, Request-URI
/// the caller's Contact (RFC 3261 §12.2.1.1, §12.1.1). The proxy loose-routes it to the caller,
/// so the BYE the caller gets carries the proxy's Via on top (§16.6 step 8, §16.12).
#[test]
fn engine_bye_after_operator_stop_goes_through_the_proxy() {
    let e = engine();
    let proxy = Proxy::start(e.sip);
    let trace = proxy.trace_path();
    let trace_arg = trace.to_str().unwrap();
    // Reaped on drop: a failed assertion does not leave SIPp waiting for its BYE.
    let mut caller = common::Reaper(common::sipp_spawn(
        proxy.addr,
        "uac_proxy_engine_bye.xml",
        "200",
        &["-m", "1", "-trace_msg", "-message_file", trace_arg],
    ));
    e.wait_for("the call answered", PATIENCE, |all| {
        all.len() == 1 && executed_types(&all[0]) == ["answer", "sleep"]
    });
    let id = e.activeflows()[0].id;
    let (status, body) = common::http(e.api, "POST", &format!("/v1/activeflows/{id}/stop"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["end_reason"], "operator_stop");

    // SIPp exits once it has received a BYE and answered it (or after its 30 s wait).
    let deadline = Instant::now() + Duration::from_secs(40);
    let exit = loop {
        if let Some(s) = caller.0.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = caller.0.kill();
            panic!("SIPp still running; proxy log:\n{}", proxy.log());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let invite = find_traced(&trace, true, "INVITE ");
    let contact = uri_in(&header_values(&invite, "Contact")[0]);
    let bye = traced(&trace, false)
        .into_iter()
        .find(|m| m.starts_with("BYE "));
    let bye = bye.unwrap_or_else(|| {
        panic!(
            "SIPp received no BYE (exit {exit:?}); proxy log:\n{}",
            proxy.log()
        )
    });
    assert!(exit.success(), "SIPp failed ({exit:?}); BYE:\n{bye}");
    let request_uri = bye.split_whitespace().nth(1).unwrap_or("");
    assert_eq!(
        request_uri, contact,
        "the BYE's Request-URI is not the caller's Contact (RFC 3261 §12.2.1.1):\n{bye}"
    );
    let top_via = header_values(&bye, "Via")
        .first()
        .cloned()
        .unwrap_or_default();
    assert!(
        top_via.contains(&proxy.addr.to_string()),
        "the BYE did not come through the proxy: its top Via is {top_via:?}, not the proxy's \
         {} (RFC 3261 §16.6 step 8):\n{bye}",
        proxy.addr
    );
    let sipp_contact_host = contact
        .split('@')
        .nth(1)
        .and_then(|h| h.split(';').next())
        .unwrap_or("");
    assert!(
        proxy
            .relayed("BYE", Some(e.sip), sipp_contact_host)
            .is_some(),
        "the proxy relayed no BYE from the engine {} to the caller {sipp_contact_host}:\n{}",
        e.sip,
        proxy.log()
    );
}

/// An in-dialog request goes to the address of the first Route, not back to where the INVITE
/// came from (RFC 3261 §12.2.1.1: the route set is the request's Route; §8.1.2: the destination
/// is taken from the first Route value when it is a loose router). Here the proxy listens on two
/// addresses and record-routes the other one than it relays the INVITE from (a multi-homed proxy,
/// or one behind an address it advertises): the engine's BYE after an operator stop must arrive
/// at the record-routed address.
#[test]
fn engine_bye_is_sent_to_the_first_route_not_to_the_invite_source() {
    let e = engine();
    let routed = free_port();
    let proxy = Proxy::start_with(
        e.sip,
        &[format!("RR_ADDRESS=\"127.0.0.1:{routed}\"")],
        Some(routed),
    );
    let trace = proxy.trace_path();
    let trace_arg = trace.to_str().unwrap();
    // Reaped on drop: a failed assertion does not leave SIPp waiting for its BYE.
    let mut caller = common::Reaper(common::sipp_spawn(
        proxy.addr,
        "uac_proxy_engine_bye.xml",
        "200",
        &["-m", "1", "-trace_msg", "-message_file", trace_arg],
    ));
    e.wait_for("the call answered", PATIENCE, |all| {
        all.len() == 1 && executed_types(&all[0]) == ["answer", "sleep"]
    });
    // The set-up this test needs: the INVITE left the proxy from one address and record-routed
    // the other.
    let invite = proxy
        .relayed("INVITE", None, &e.sip.to_string())
        .unwrap_or_else(|| panic!("no INVITE relayed to the engine:\n{}", proxy.log()));
    let routed_uri = format!("sip:127.0.0.1:{routed};lr");
    assert!(
        names_loose_route(&invite, ([127, 0, 0, 1], routed).into())
            && !invite.contains(&format!(" out 127.0.0.1:{routed} ")),
        "the proxy must send the INVITE from another address than it record-routes: {invite}"
    );

    let id = e.activeflows()[0].id;
    let (status, body) = common::http(e.api, "POST", &format!("/v1/activeflows/{id}/stop"), None);
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(40);
    while caller.0.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = caller.0.kill();
            panic!("SIPp still running; proxy log:\n{}", proxy.log());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let bye = proxy
        .relayed("BYE", Some(e.sip), "")
        .unwrap_or_else(|| panic!("no BYE from the engine at the proxy:\n{}", proxy.log()));
    assert!(
        bye.contains(&format!(" at 127.0.0.1:{routed} ")),
        "the engine sent its BYE to the INVITE's source, not to its first Route {routed_uri} \
         (RFC 3261 §12.2.1.1, §8.1.2): {bye}"
    );
}
