//! Store checks every backend must pass, written once over `&dyn Store` and run by each
//! backend's tests (SQLite on a temporary file, PostgreSQL on a scratch database): upserts that
//! keep ended rows, recovery, paging, soft delete, purge, flows, and rows left out alone.

use super::model::{
    ActionRow, ActiveflowRow, CallRow, EndedRange, FlowRow, FlowSource, RejectedPart, Stored,
};
use super::{Store, Write};

/// One `#[test]` per check of this module that takes just a store, each on its own store:
/// `$store`, an expression evaluated afresh in every test (its temporaries live until the
/// check returns). With `optional`, `$store` is an `Option` of something that derefs to a
/// store, and a test given `None` passes without checking (its maker says why it has none).
macro_rules! conformance_tests {
    (@each $run:tt) => {
        $crate::storage::conformance::conformance_tests!(@tests $run;
            upserts_never_reopen_an_ended_row_and_recovery_ends_running_ones,
            pages_newest_first_with_a_status_filter,
            a_deleted_activeflow_stays_readable_but_leaves_listings,
            purge_drops_only_old_ended_rows,
            flows_by_source,
            ended_calls_page_by_end_time_with_their_activeflow,
        );
    };
    (@tests $run:tt; $($check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $check() {
                $run($crate::storage::conformance::$check);
            }
        )+
    };
    (optional $store:expr) => {
        $crate::storage::conformance::conformance_tests!(@each
            (|check: fn(&dyn $crate::storage::Store)| {
                if let Some(store) = $store {
                    check(&*store);
                }
            }));
    };
    ($store:expr) => {
        $crate::storage::conformance::conformance_tests!(@each
            (|check: fn(&dyn $crate::storage::Store)| check(&$store)));
    };
}
pub(super) use conformance_tests;

pub(super) fn activeflow(seq: u64, status: &'static str, tm_end: Option<&str>) -> ActiveflowRow {
    ActiveflowRow {
        id: format!("af-{seq}"),
        sequence: seq,
        flow_id: "flow".into(),
        status,
        end_reason: (status == "ended").then_some("completed"),
        reference_type: "call",
        reference_id: format!("call-{seq}"),
        reference_activeflow_id: None,
        on_complete_flow_id: None,
        forward_action_id: None,
        webhook_uri: None,
        webhook_method: None,
        current_action: Some(r#"{"type":"answer"}"#.into()),
        variables: None,
        tm_create: "2026-01-01T00:00:00.000000Z".into(),
        tm_update: "2026-01-01T00:00:00.000000Z".into(),
        tm_end: tm_end.map(str::to_string),
    }
}

pub(super) fn action(index: usize) -> ActionRow {
    ActionRow {
        index,
        body: format!(r#"{{"type":"sleep","n":{index}}}"#),
    }
}

pub(super) fn call(seq: u64, status: &'static str, tm_end: Option<&str>) -> CallRow {
    CallRow {
        id: format!("call-{seq}"),
        sequence: seq,
        sip_call_id: "x@y".into(),
        direction: "incoming",
        source: "alice".into(),
        destination: "100".into(),
        peer: "127.0.0.1:5060/udp".into(),
        status,
        end_cause: None,
        end_code: None,
        codec: None,
        tm_create: "2026-01-01T00:00:00.000000Z".into(),
        tm_answer: None,
        tm_end: tm_end.map(str::to_string),
    }
}

fn seqs(v: Vec<Stored>) -> Vec<u64> {
    v.iter().map(|s| s.sequence).collect()
}

pub(super) fn upserts_never_reopen_an_ended_row_and_recovery_ends_running_ones(store: &dyn Store) {
    let write = |row, actions| Write::Activeflow { row, actions };
    store
        .apply(&[
            write(activeflow(1, "running", None), vec![action(0)]),
            write(activeflow(1, "running", None), vec![action(1)]),
            write(
                activeflow(2, "ended", Some("2026-01-01T00:00:01.000000Z")),
                vec![],
            ),
            // A late running update must not reopen an ended row.
            write(activeflow(2, "running", None), vec![]),
            Write::Call(call(1, "ringing", None)),
        ])
        .unwrap();
    let one = store.activeflow("af-1").unwrap().unwrap();
    assert_eq!(one.json["executed_actions"].as_array().unwrap().len(), 2);
    assert_eq!(one.json["current_action"]["type"], "answer");
    assert_eq!(
        store.activeflow("af-2").unwrap().unwrap().json["status"],
        "ended"
    );

    let r = store
        .recover("engine_restart", "2026-01-02T00:00:00.000000Z")
        .unwrap();
    assert_eq!((r.activeflows, r.calls), (1, 1));
    assert_eq!((r.last_activeflow_sequence, r.last_call_sequence), (2, 1));
    let one = store.activeflow("af-1").unwrap().unwrap().json;
    assert_eq!(one["status"], "ended");
    assert_eq!(one["end_reason"], "engine_restart");
    assert_eq!(one["executed_actions"][1]["n"], 1);
    let two = store.activeflow("af-2").unwrap().unwrap().json;
    assert_eq!(two["end_reason"], "completed", "ended before: unchanged");
    let call = store.call("call-1").unwrap().unwrap().json;
    assert_eq!(
        (&call["status"], &call["end_cause"]),
        (&"ended".into(), &"engine_restart".into())
    );
}

pub(super) fn pages_newest_first_with_a_status_filter(store: &dyn Store) {
    let batch: Vec<Write> = (1..=5)
        .map(|s| Write::Activeflow {
            row: activeflow(s, if s % 2 == 0 { "ended" } else { "running" }, None),
            actions: vec![],
        })
        .chain(
            (1..=3).map(|s| Write::Call(call(s, if s == 2 { "ended" } else { "ringing" }, None))),
        )
        .collect();
    store.apply(&batch).unwrap();
    assert_eq!(seqs(store.activeflows(None, None, 2).unwrap()), [5, 4]);
    assert_eq!(seqs(store.activeflows(None, Some(4), 2).unwrap()), [3, 2]);
    assert_eq!(
        seqs(store.activeflows(Some("ended"), None, 9).unwrap()),
        [4, 2]
    );
    assert_eq!(seqs(store.calls(None, Some(3), 9).unwrap()), [2, 1]);
    assert_eq!(seqs(store.calls(Some("ringing"), None, 9).unwrap()), [3, 1]);
    assert!(store.activeflow("nope").unwrap().is_none());
    assert!(store.call("nope").unwrap().is_none());
    // VoIPBIN's timestamp page tokens start at the first row created since.
    let at = "2026-01-01T00:00:00.000000Z";
    assert_eq!(store.first_activeflow_since(at).unwrap(), Some(1));
    assert_eq!(store.first_activeflow_since("2027").unwrap(), None);
    assert_eq!(store.first_call_since(at).unwrap(), Some(1));
    assert_eq!(store.first_call_since("2027").unwrap(), None);
}

/// VoIPBIN's soft delete: the row and its actions stay readable by id with `tm_delete`;
/// listings leave it out; a second delete keeps the first time.
pub(super) fn a_deleted_activeflow_stays_readable_but_leaves_listings(store: &dyn Store) {
    let batch: Vec<Write> = (1..=3)
        .map(|s| Write::Activeflow {
            row: activeflow(s, "ended", None),
            actions: vec![action(0)],
        })
        .collect();
    store.apply(&batch).unwrap();
    let live = store.activeflow("af-2").unwrap().unwrap();
    assert!(live.json["tm_delete"].is_null());
    let nil = "00000000-0000-0000-0000-000000000000";
    assert_eq!(live.json["reference_activeflow_id"], nil);
    assert_eq!(live.json["current_action"]["next_id"], nil);
    store
        .apply(&[Write::DeleteActiveflow("af-2".into())])
        .unwrap();
    let deleted = store.activeflow("af-2").unwrap().unwrap();
    let when = deleted.json["tm_delete"].as_str().unwrap().to_owned();
    assert_eq!(
        deleted.json["executed_actions"].as_array().unwrap().len(),
        1
    );
    assert_eq!(seqs(store.activeflows(None, None, 9).unwrap()), [3, 1]);
    store
        .apply(&[Write::DeleteActiveflow("af-2".into())])
        .unwrap();
    let again = store.activeflow("af-2").unwrap().unwrap();
    assert_eq!(again.json["tm_delete"], when.as_str());
}

pub(super) fn purge_drops_only_old_ended_rows(store: &dyn Store) {
    let old = Some("2026-01-01T00:00:00.000000Z");
    let new = Some("2026-03-01T00:00:00.000000Z");
    store
        .apply(&[
            Write::Activeflow {
                row: activeflow(1, "ended", old),
                actions: vec![action(0)],
            },
            Write::Activeflow {
                row: activeflow(2, "ended", new),
                actions: vec![],
            },
            Write::Activeflow {
                row: activeflow(3, "running", None),
                actions: vec![],
            },
            Write::Call(call(1, "ended", old)),
            Write::Call(call(2, "answered", None)),
            Write::Purge {
                ended_before: "2026-02-01T00:00:00.000000Z".into(),
            },
        ])
        .unwrap();
    assert_eq!(seqs(store.activeflows(None, None, 10).unwrap()), [3, 2]);
    assert_eq!(store.calls(None, None, 10).unwrap().len(), 1);
    // Its actions went with it: the same sequence written again has none.
    store
        .apply(&[Write::Activeflow {
            row: activeflow(1, "running", None),
            actions: vec![],
        }])
        .unwrap();
    let again = store.activeflow("af-1").unwrap().unwrap().json;
    assert_eq!(again["executed_actions"], serde_json::json!([]));
}

pub(super) fn flows_by_source(store: &dyn Store) {
    let flow = |id: &str, source| FlowRow {
        id: id.into(),
        name: id.into(),
        source,
        body: "{}".into(),
        tm_update: "t".into(),
    };
    store
        .apply(&[
            Write::Flow(flow("a", FlowSource::Api)),
            Write::Flow(flow("f1", FlowSource::File)),
        ])
        .unwrap();
    store
        .replace_file_flows(&[flow("f2", FlowSource::File)])
        .unwrap();
    let names = |s| {
        store
            .flows(s)
            .unwrap()
            .into_iter()
            .map(|f| f.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(names(FlowSource::File), ["f2"]);
    assert_eq!(names(FlowSource::Api), ["a"]);
    store.apply(&[Write::DeleteFlow("a".into())]).unwrap();
    assert!(names(FlowSource::Api).is_empty());
}

/// The CDR export's reads: only ended calls, by (`tm_end`, `id`), in `[from, to)`, paged by
/// keyset (ties across a page boundary kept), each with the first activeflow it started, its
/// codec and SIP code.
pub(super) fn ended_calls_page_by_end_time_with_their_activeflow(store: &dyn Store) {
    let at = |s: u32| Some(format!("2026-01-01T00:00:{s:02}.000000Z"));
    let ended = |seq: u64, end: u32| {
        let mut c = call(seq, "ended", at(end).as_deref());
        c.end_cause = Some("remote_bye".into());
        c
    };
    let mut answered = ended(1, 30);
    answered.tm_answer = at(10);
    answered.codec = Some("PCMA");
    let mut refused = ended(2, 10);
    refused.end_code = Some(486);
    // Calls 3 and 4 end at the same microsecond: the id orders them.
    let mut chained = activeflow(9, "ended", None);
    chained.reference_id = "call-1".into();
    store
        .apply(&[
            Write::Call(answered),
            Write::Call(refused),
            Write::Call(ended(4, 20)),
            Write::Call(ended(3, 20)),
            Write::Call(call(5, "answered", None)),
            Write::Call(ended(6, 40)),
            Write::Activeflow {
                row: activeflow(1, "ended", None),
                actions: vec![],
            },
            // A chained activeflow on the same call: the first one is the call's.
            Write::Activeflow {
                row: chained,
                actions: vec![],
            },
        ])
        .unwrap();
    let ids = |v: &[super::EndedCall]| v.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    let all = store
        .ended_calls(&EndedRange::default(), None, 100)
        .unwrap();
    assert_eq!(
        ids(&all),
        ["call-2", "call-3", "call-4", "call-1", "call-6"]
    );
    let one = &all[3];
    assert_eq!(one.activeflow_id.as_deref(), Some("af-1"));
    assert_eq!(
        (
            one.codec.as_deref(),
            one.tm_answer.as_deref(),
            one.tm_end.as_str()
        ),
        (
            Some("PCMA"),
            at(10).as_deref(),
            "2026-01-01T00:00:30.000000Z"
        )
    );
    assert_eq!(all[0].end_code, Some(486));
    assert_eq!(all[0].activeflow_id, None);
    assert_eq!(all[0].end_cause.as_deref(), Some("remote_bye"));

    // Pages of two: the tie of calls 3 and 4 split across pages, nothing lost or repeated.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .ended_calls(&EndedRange::default(), after.as_ref(), 2)
            .unwrap();
        paged.extend(ids(&page));
        match page.last() {
            Some(last) if page.len() == 2 => after = Some(last.cursor()),
            _ => break,
        }
    }
    assert_eq!(paged, ids(&all));
    let mut page = vec![];
    let mut after = Some(all[1].cursor());
    while let Some(a) = after.take() {
        let next = store
            .ended_calls(&EndedRange::default(), Some(&a), 1)
            .unwrap();
        after = next.last().map(super::EndedCall::cursor);
        page.extend(ids(&next));
    }
    assert_eq!(
        page,
        ["call-4", "call-1", "call-6"],
        "after call-3, its tie next"
    );

    // [from, to): from included, to excluded.
    let range = EndedRange {
        from: at(20),
        to: at(40),
    };
    assert_eq!(
        ids(&store.ended_calls(&range, None, 100).unwrap()),
        ["call-3", "call-4", "call-1"]
    );
    let open_end = EndedRange {
        from: at(21),
        to: None,
    };
    assert_eq!(
        ids(&store.ended_calls(&open_end, None, 100).unwrap()),
        ["call-1", "call-6"]
    );
    let open_start = EndedRange {
        from: None,
        to: at(20),
    };
    assert_eq!(
        ids(&store.ended_calls(&open_start, None, 100).unwrap()),
        ["call-2"]
    );
    // A cursor before `from` starts at `from`.
    assert_eq!(
        ids(&store
            .ended_calls(&range, Some(&all[0].cursor()), 100)
            .unwrap()),
        ["call-3", "call-4", "call-1"]
    );

    // Without `to`, the export runs to the last stored time the API accepts (year 9999),
    // whatever the database's collation (the whole listing above is without `to` too).
    let mut last = ended(7, 0);
    last.tm_end = Some("9999-12-31T23:59:59.999999Z".into());
    store.apply(&[Write::Call(last)]).unwrap();
    assert_eq!(
        ids(&store.ended_calls(&open_end, None, 100).unwrap()),
        ["call-1", "call-6", "call-7"]
    );
    let everything = store
        .ended_calls(&EndedRange::default(), Some(&all[4].cursor()), 100)
        .unwrap();
    assert_eq!(ids(&everything), ["call-7"]);
}

/// On a store opened with `max_row_bytes = 4096`: a row over it fails the whole batch with an
/// error of that row alone (not transient). Applied row by row under savepoints, in one
/// transaction: an activeflow header too big with its final variables is stored without them
/// (its end is kept), an action too big is left out while its siblings are stored, a header
/// that cannot be stored at all (a duplicate id) leaves its whole write out, and every other
/// write commits.
pub(super) fn rows_over_the_cap_are_left_out_and_the_rest_of_their_batch_commits(
    store: &dyn Store,
) {
    let mut big_variables = activeflow(2, "ended", Some("2026-01-01T00:00:01.000000Z"));
    big_variables.variables = Some(format!(r#"{{"x":"{}"}}"#, "y".repeat(8192)));
    let big_action = ActionRow {
        index: 1,
        body: format!(r#"{{"type":"talk","text":"{}"}}"#, "z".repeat(8192)),
    };
    let mut same_id = activeflow(4, "running", None);
    same_id.id = "af-1".into();
    let batch = [
        Write::Activeflow {
            row: activeflow(1, "running", None),
            actions: vec![action(0)],
        },
        Write::Activeflow {
            row: big_variables,
            actions: vec![action(0)],
        },
        Write::Activeflow {
            row: activeflow(3, "running", None),
            actions: vec![action(0), big_action, action(2)],
        },
        Write::Activeflow {
            row: same_id,
            actions: vec![action(0)],
        },
        Write::Call(call(1, "ringing", None)),
    ];
    let e = store.apply(&batch).unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert!(store.activeflow("af-1").unwrap().is_none(), "rolled back");

    let rejected = store.apply_each(&batch).unwrap();
    let parts: Vec<(usize, RejectedPart)> = rejected.iter().map(|r| (r.index, r.part)).collect();
    assert_eq!(
        parts,
        [
            (1, RejectedPart::Variables),
            (2, RejectedPart::Action(1)),
            (3, RejectedPart::Whole)
        ]
    );
    assert!(
        rejected[0].error.to_string().contains("too big"),
        "{rejected:?}"
    );
    assert!(
        rejected[2]
            .error
            .to_string()
            .to_lowercase()
            .contains("unique"),
        "{rejected:?}"
    );
    let actions = |id: &str| {
        let a = store.activeflow(id).unwrap().unwrap().json;
        a["executed_actions"].as_array().unwrap().len()
    };
    assert_eq!(actions("af-1"), 1);
    let two = store.activeflow("af-2").unwrap().unwrap().json;
    assert_eq!(
        (&two["status"], &two["end_reason"]),
        (&"ended".into(), &"completed".into())
    );
    assert_eq!(actions("af-2"), 1);
    assert_eq!(actions("af-3"), 2, "actions 0 and 2");
    assert_eq!(
        store.activeflows(None, None, 10).unwrap().len(),
        3,
        "no sequence 4"
    );
    assert!(store.call("call-1").unwrap().is_some());
}
