//! The test harness's own guarantees (tests/common): a panic inside an engine fails the test
//! that ran it, ports handed out stay bound until released, and engines' RTP ranges never
//! overlap the benchmarks' (20000-59999).
#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::io::BufReader;
use std::net::UdpSocket;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A child whose stderr says "panicked at", collected like a spawned engine's.
fn panicking_child() -> common::Reaper {
    let mut child = Command::new("sh")
        .args([
            "-c",
            "echo 'thread main panicked at src/x.rs:1:1:' >&2; exec sleep 30",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let log = common::engine_log::collect(child.id(), common::engine_log::lines(stderr));
    common::wait_until("the panic line", Duration::from_secs(5), || {
        (!log.panics().is_empty()).then_some(())
    });
    common::Reaper(child)
}

#[test]
fn a_spawned_engine_that_panicked_fails_the_test_when_reaped() {
    let reaper = panicking_child();
    assert!(catch_unwind(AssertUnwindSafe(|| reaper.assert_no_panic())).is_err());
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(reaper)));
    let message = *dropped.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("the engine (pid"), "{message}");
    assert!(message.contains("panicked at src/x.rs"), "{message}");
}

#[test]
fn a_test_already_failing_is_not_panicked_again_by_the_reaper() {
    // A double panic would abort the whole test binary; this one unwinds once.
    let failed = catch_unwind(AssertUnwindSafe(|| {
        let _reaper = panicking_child();
        panic!("the test's own failure");
    }));
    let message = *failed.unwrap_err().downcast::<&str>().unwrap();
    assert_eq!(message, "the test's own failure");
}

#[test]
fn a_panic_on_an_in_process_engine_thread_fails_its_test_at_drop() {
    let engine = common::start(&[], &[], &[]);
    assert!(engine.panics().is_empty());
    let name = format!("{}arbiter:999", engine.arbiter_thread_prefix());
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(|| panic!("an actor handler failed"))
        .unwrap();
    assert!(thread.join().is_err());
    assert_eq!(engine.panics().len(), 1, "{:?}", engine.panics());
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(engine)));
    let message = *dropped.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("an actor handler failed"), "{message}");
    // Another engine does not see it.
    assert!(common::start(&[], &[], &[]).panics().is_empty());
}

#[test]
fn a_reserved_port_stays_bound_until_released() {
    let guard = common::reserve_port();
    let port = guard.port();
    assert!((61000..65000).contains(&port), "{port}");
    assert!(
        UdpSocket::bind(("127.0.0.1", port)).is_err(),
        "held for UDP"
    );
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_err(),
        "held for TCP"
    );
    assert_eq!(guard.release(), port);
    assert!(
        UdpSocket::bind(("127.0.0.1", port)).is_ok(),
        "free once released"
    );
}

#[test]
fn engines_rtp_ranges_stay_below_the_benchmarks_and_the_ephemeral_ports() {
    for _ in 0..20 {
        let range = common::rtp_port_range();
        let (first, last) = range.split_once('-').unwrap();
        let (first, last): (u16, u16) = (first.parse().unwrap(), last.parse().unwrap());
        assert!(10000 <= first && first < last && last <= 19999, "{range}");
    }
}
