//! REFER and NOTIFY on the leg machine (RFC 3515, RFC 4488), on paused time: what the peer's
//! REFER gets and the NOTIFYs that follow, our own REFER and the peer's NOTIFYs.

use super::*;
use crate::call::leg::refer::MAX_INBOUND_REFERS;
use crate::sip::message::ResponseBuilder;

fn refer(branch: &str, cseq: u32, extra: &str) -> rsip::Request {
    request(&format!(
        "REFER sip:100@10.0.0.9 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {PROXY};branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 69\r\n\
         From: <sip:alice@example.com>;tag=caller\r\n\
         To: <sip:100@10.0.0.9>;tag=us\r\n\
         Call-ID: race@test\r\n\
         CSeq: {cseq} REFER\r\n\
         Contact: <sip:alice@{CALLER}>\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    ))
}

fn notify(branch: &str, cseq: u32, state: &str, frag: &str) -> rsip::Request {
    request(&format!(
        "NOTIFY sip:100@10.0.0.9 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {PROXY};branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 69\r\n\
         From: <sip:alice@example.com>;tag=caller\r\n\
         To: <sip:100@10.0.0.9>;tag=us\r\n\
         Call-ID: race@test\r\n\
         CSeq: {cseq} NOTIFY\r\n\
         Event: refer\r\n\
         Subscription-State: {state}\r\n\
         Content-Type: message/sipfrag;version=2.0\r\n\
         Content-Length: {}\r\n\r\n{frag}",
        frag.len()
    ))
}

/// The peer's answer `code` to a request we sent.
fn answer(sent: &str, code: u16) -> rsip::Response {
    let ours = request(sent);
    response(&String::from_utf8_lossy(
        &ResponseBuilder::new(&ours, code, "X").build(),
    ))
}

fn events(out: &[Output]) -> Vec<CallEvent> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

const TO_CAROL: &str = "Refer-To: <sip:carol@10.0.0.7>\r\n";

/// RFC 3515 §2.4.2 (403 outside a bridge, 202 inside, 491 while one is in progress), §2.4.4
/// (NOTIFY "100 Trying" at once), §2.4.5 (the last NOTIFY terminates); BYE after its answer.
#[tokio::test(start_paused = true)]
async fn a_refer_is_accepted_only_while_bridged_and_ends_in_bye() {
    let mut leg = confirmed();
    from_caller(&mut leg, refer("r1", 2, TO_CAROL));
    let out = leg.take_outputs();
    assert!(first_lines(&out)[0].starts_with("SIP/2.0 403"), "{out:?}");
    assert!(events(&out).is_empty());

    leg.set_transferable(true);
    from_caller(&mut leg, refer("r2", 3, TO_CAROL));
    let out = leg.take_outputs();
    let lines = first_lines(&out);
    assert!(lines[0].starts_with("SIP/2.0 202"), "{lines:?}");
    assert!(lines[1].starts_with("NOTIFY sip:alice@"), "{lines:?}");
    let (_, first_notify) = &sent(&out)[1];
    assert!(
        first_notify.contains("Event: refer;id=3\r\n"),
        "{first_notify}"
    );
    assert!(first_notify.contains("Subscription-State: active;expires="));
    assert!(first_notify.ends_with("\r\n\r\nSIP/2.0 100 Trying\r\n"));
    assert!(matches!(
        &events(&out)[..],
        [CallEvent::TransferRequested { target, .. }] if target == "sip:carol@10.0.0.7"
    ));

    from_caller(&mut leg, refer("r3", 4, TO_CAROL));
    assert!(first_lines(&leg.take_outputs())[0].starts_with("SIP/2.0 491"));

    leg.transfer_notify(200, true, &env(), Instant::now());
    let out = leg.take_outputs();
    let (_, last_notify) = &sent(&out)[0];
    assert!(last_notify.contains("Subscription-State: terminated;reason=noresource\r\n"));
    assert!(last_notify.ends_with("SIP/2.0 200 OK\r\n"), "{last_notify}");
    assert_eq!(
        leg.phase,
        Phase::Confirmed,
        "no BYE before the NOTIFY is answered"
    );

    leg.on_response(&answer(last_notify, 200), &env(), Instant::now());
    let out = leg.take_outputs();
    assert!(first_lines(&out)[0].starts_with("BYE "), "{out:?}");
    assert_eq!(ended_with(&out), Some(CallEndCause::Transferred));
}

/// RFC 4488 §4: `Refer-Sub: false` gets 202 with `Refer-Sub: false` and no NOTIFY at all.
#[tokio::test(start_paused = true)]
async fn refer_sub_false_gets_no_notify() {
    let mut leg = confirmed();
    leg.set_transferable(true);
    let extra = format!("{TO_CAROL}Refer-Sub: false\r\n");
    from_caller(&mut leg, refer("r1", 2, &extra));
    let out = leg.take_outputs();
    let sent = sent(&out);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].1.starts_with("SIP/2.0 202") && sent[0].1.contains("Refer-Sub: false"));
    leg.transfer_notify(200, true, &env(), Instant::now());
    let out = leg.take_outputs();
    assert!(first_lines(&out)[0].starts_with("BYE "), "{out:?}");
}

/// RFC 6665 §4.1.2.2 with RFC 3261 §17.1.2.2: a last NOTIFY nobody answers times out (Timer
/// F); the transferred leg still leaves with BYE.
#[tokio::test(start_paused = true)]
async fn an_unanswered_last_notify_still_ends_in_bye() {
    let mut leg = confirmed();
    leg.set_transferable(true);
    from_caller(&mut leg, refer("r1", 2, TO_CAROL));
    leg.take_outputs();
    leg.transfer_notify(486, true, &env(), Instant::now());
    assert!(leg.take_outputs().len() == 1);
    let out = run_for(&mut leg, Duration::from_secs(40)).await;
    assert!(
        first_lines(&out).iter().any(|l| l.starts_with("NOTIFY ")),
        "retransmitted"
    );
    assert!(
        first_lines(&out).iter().any(|l| l.starts_with("BYE ")),
        "{out:?}"
    );
}

/// RFC 3515 §2.4.1 (our REFER: one Refer-To, a Referred-By; held until the ACK confirms the
/// dialog), §2.4.4–2.4.5 (each NOTIFY answered 200, its sipfrag reported); RFC 6665 §4.1.3 (a
/// NOTIFY once the subscription is over gets 481).
#[tokio::test(start_paused = true)]
async fn our_refer_waits_for_the_ack_and_reports_the_notifies() {
    let (mut leg, _) = answered();
    leg.send_refer("sip:carol@10.0.0.7", &env(), Instant::now());
    assert!(leg.take_outputs().is_empty(), "held until the ACK");
    let ack = caller_request("ACK", "ack1", 1, Some("us"), false);
    from_caller(&mut leg, ack);
    let out = leg.take_outputs();
    let (_, our_refer) = sent(&out)
        .into_iter()
        .find(|(_, m)| m.starts_with("REFER "))
        .expect("REFER after ACK");
    assert!(
        our_refer.contains("Refer-To: <sip:carol@10.0.0.7>\r\n"),
        "{our_refer}"
    );
    assert!(
        our_refer.contains("Referred-By: <sip:100@10.0.0.9>\r\n"),
        "{our_refer}"
    );

    leg.on_response(&answer(&our_refer, 202), &env(), Instant::now());
    let out = leg.take_outputs();
    assert!(matches!(
        &events(&out)[..],
        [CallEvent::TransferAnswered { code: 202, .. }]
    ));

    from_caller(
        &mut leg,
        notify("n1", 2, "active;expires=60", "SIP/2.0 100 Trying\r\n"),
    );
    let out = leg.take_outputs();
    assert!(first_lines(&out)[0].starts_with("SIP/2.0 200"));
    assert!(matches!(
        &events(&out)[..],
        [CallEvent::TransferProgress {
            code: 100,
            terminated: false,
            ..
        }]
    ));
    let last = notify(
        "n2",
        3,
        "terminated;reason=noresource",
        "SIP/2.0 486 Busy Here\r\n",
    );
    from_caller(&mut leg, last);
    let out = leg.take_outputs();
    assert!(matches!(
        &events(&out)[..],
        [CallEvent::TransferProgress {
            code: 486,
            terminated: true,
            ..
        }]
    ));
    from_caller(&mut leg, notify("n3", 4, "active", "SIP/2.0 200 OK\r\n"));
    assert!(first_lines(&leg.take_outputs())[0].starts_with("SIP/2.0 481"));
    assert_eq!(
        leg.phase,
        Phase::Confirmed,
        "a failed transfer leaves the call up"
    );
}

/// RFC 3515 §2.4.1: a REFER our peer refuses is reported with its code.
#[tokio::test(start_paused = true)]
async fn a_refused_refer_is_reported() {
    let mut leg = confirmed();
    leg.send_refer("sip:carol@10.0.0.7", &env(), Instant::now());
    let out = leg.take_outputs();
    let (_, our_refer) = sent(&out).remove(0);
    leg.on_response(&answer(&our_refer, 603), &env(), Instant::now());
    let out = leg.take_outputs();
    assert!(matches!(
        &events(&out)[..],
        [CallEvent::TransferAnswered { code: 603, .. }]
    ));
    // Its subscription never began: a NOTIFY now gets 481.
    from_caller(
        &mut leg,
        notify("n1", 2, "active", "SIP/2.0 100 Trying\r\n"),
    );
    assert!(first_lines(&leg.take_outputs())[0].starts_with("SIP/2.0 481"));
}

/// RFC 3515 §2.4.2 with RFC 6665 §4.1.2.2: while our last NOTIFY is unanswered the
/// subscription is still active, so another REFER gets 491; after it, 202 again, and past
/// `MAX_INBOUND_REFERS` accepted on the call, 403 (a flood is refused).
#[tokio::test(start_paused = true)]
async fn refers_wait_for_the_last_notify_and_are_capped_per_call() {
    let mut leg = confirmed();
    leg.set_transferable(true);
    let mut cseq = 2;
    for round in 0..MAX_INBOUND_REFERS {
        from_caller(&mut leg, refer(&format!("a{round}"), cseq, TO_CAROL));
        cseq += 1;
        let out = leg.take_outputs();
        assert!(first_lines(&out)[0].starts_with("SIP/2.0 202"), "{out:?}");
        leg.transfer_notify(486, false, &env(), Instant::now());
        let out = leg.take_outputs();
        let (_, last_notify) = sent(&out).remove(0);
        from_caller(&mut leg, refer(&format!("b{round}"), cseq, TO_CAROL));
        cseq += 1;
        let out = leg.take_outputs();
        assert!(
            first_lines(&out)[0].starts_with("SIP/2.0 491"),
            "last NOTIFY unanswered: {out:?}"
        );
        leg.on_response(&answer(&last_notify, 200), &env(), Instant::now());
        leg.take_outputs();
    }
    from_caller(&mut leg, refer("over", cseq, TO_CAROL));
    let out = leg.take_outputs();
    let (_, refused) = &sent(&out)[0];
    assert!(refused.starts_with("SIP/2.0 403"), "{refused}");
    assert!(refused.contains("too many transfers"), "{refused}");
    assert!(events(&out).is_empty(), "the engine hears nothing of it");
}

/// RFC 3515 §2.4.6: NOTIFYs name our REFER by `Event: refer;id=<its CSeq>`; another id gets
/// 481. An abandoned REFER (the `transfer` action's timeout) no longer blocks the next one.
#[tokio::test(start_paused = true)]
async fn notifies_match_our_refer_and_an_abandoned_refer_frees_the_leg() {
    let mut leg = confirmed();
    leg.send_refer("sip:carol@10.0.0.7", &env(), Instant::now());
    let out = leg.take_outputs();
    let (_, our_refer) = sent(&out).remove(0);
    let cseq = our_refer
        .lines()
        .find_map(|l| l.strip_prefix("CSeq: "))
        .and_then(|v| v.split(' ').next())
        .expect("CSeq")
        .to_owned();
    leg.on_response(&answer(&our_refer, 202), &env(), Instant::now());
    leg.take_outputs();
    let with_id = |branch: &str, n: u32, id: &str| {
        let msg = notify(branch, n, "active", "SIP/2.0 100 Trying\r\n");
        let text = msg
            .to_string()
            .replace("Event: refer\r\n", &format!("Event: refer;id={id}\r\n"));
        request(&text)
    };
    from_caller(&mut leg, with_id("n1", 2, "999"));
    assert!(first_lines(&leg.take_outputs())[0].starts_with("SIP/2.0 481"));
    from_caller(&mut leg, with_id("n2", 3, &cseq));
    assert!(first_lines(&leg.take_outputs())[0].starts_with("SIP/2.0 200"));

    // No last NOTIFY: a second REFER is 491 until the engine abandons the first.
    leg.send_refer("sip:dave@10.0.0.7", &env(), Instant::now());
    assert!(matches!(
        &events(&leg.take_outputs())[..],
        [CallEvent::TransferAnswered { code: 491, .. }]
    ));
    leg.refer_abandoned();
    leg.send_refer("sip:dave@10.0.0.7", &env(), Instant::now());
    let out = leg.take_outputs();
    assert!(first_lines(&out)[0].starts_with("REFER "), "{out:?}");
}
