//! SQLite store tests on temporary database files: migrations, upserts that keep ended rows,
//! recovery, paging, purge, the row cap and the one-process lock.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::storage::model::{ActionRow, ActiveflowRow, CallRow, RejectedPart};

fn temp_db() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "activeflow-sqlite-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("sub").join("test.db")
}

fn activeflow(seq: u64, status: &'static str, tm_end: Option<&str>) -> ActiveflowRow {
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

fn action(index: usize) -> ActionRow {
    ActionRow {
        index,
        body: format!(r#"{{"type":"sleep","n":{index}}}"#),
    }
}

fn call(seq: u64, status: &'static str, tm_end: Option<&str>) -> CallRow {
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
        tm_create: "2026-01-01T00:00:00.000000Z".into(),
        tm_answer: None,
        tm_end: tm_end.map(str::to_string),
    }
}

#[test]
fn migrates_once_and_reopens() {
    let path = temp_db();
    let store = SqliteStore::open(&path).unwrap();
    let mode: String = store
        .reader()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    let versions: i64 = store
        .reader()
        .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(versions, 3);
}

/// A database written by the first schema (actions keyed by the activeflow's uuid) keeps its
/// executed actions, in order, once migration 0002 keys them by sequence.
#[test]
fn migration_2_carries_executed_actions_over() {
    let path = temp_db();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../../../migrations/0001_init.sql"))
            .unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, tm_apply TEXT NOT NULL);
             INSERT INTO schema_version VALUES (1, 't');
             INSERT INTO activeflows (sequence, id, flow_id, status, reference_type,
                 reference_id, tm_create, tm_update)
             VALUES (4, 'af-4', 'f', 'running', 'call', 'c', 't', 't'),
                    (9, 'af-9', 'f', 'ended', 'call', 'c', 't', 't');
             INSERT INTO executed_actions (activeflow_id, idx, body)
             VALUES ('af-4', 1, '{\"n\":1}'), ('af-4', 0, '{\"n\":0}'), ('af-9', 0, '{\"n\":9}');",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let four = store.activeflow("af-4").unwrap().unwrap().json;
    assert_eq!(
        four["executed_actions"],
        serde_json::json!([{"n": 0}, {"n": 1}])
    );
    let nine = store.activeflow("af-9").unwrap().unwrap().json;
    assert_eq!(nine["executed_actions"], serde_json::json!([{"n": 9}]));
    let r = store.recover("engine_restart", "t2").unwrap();
    assert_eq!(r.activeflows, 1, "only af-4 was running");
}

#[test]
fn refuses_a_newer_schema() {
    let path = temp_db();
    let store = SqliteStore::open(&path).unwrap();
    store
        .writer()
        .execute("INSERT INTO schema_version VALUES (99, 'x')", [])
        .unwrap();
    drop(store);
    let e = SqliteStore::open(&path).err().unwrap();
    assert!(matches!(e, StorageError::TooNew { found: 99, .. }), "{e}");
}

#[test]
fn upserts_never_reopen_an_ended_row_and_recovery_ends_running_ones() {
    let store = SqliteStore::open(&temp_db()).unwrap();
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
    assert_eq!(
        store.call("call-1").unwrap().unwrap().json["status"],
        "ended"
    );
}

#[test]
fn pages_newest_first_with_a_status_filter() {
    let store = SqliteStore::open(&temp_db()).unwrap();
    let batch: Vec<Write> = (1..=5)
        .map(|s| Write::Activeflow {
            row: activeflow(s, if s % 2 == 0 { "ended" } else { "running" }, None),
            actions: vec![],
        })
        .collect();
    store.apply(&batch).unwrap();
    let seqs = |v: Vec<Stored>| v.iter().map(|s| s.sequence).collect::<Vec<_>>();
    assert_eq!(seqs(store.activeflows(None, None, 2).unwrap()), [5, 4]);
    assert_eq!(seqs(store.activeflows(None, Some(4), 2).unwrap()), [3, 2]);
    assert_eq!(
        seqs(store.activeflows(Some("ended"), None, 9).unwrap()),
        [4, 2]
    );
    assert!(store.activeflow("nope").unwrap().is_none());
    // VoIPBIN's timestamp page tokens start at the first row created since.
    let at = "2026-01-01T00:00:00.000000Z";
    assert_eq!(store.first_activeflow_since(at).unwrap(), Some(1));
    assert_eq!(store.first_activeflow_since("2027").unwrap(), None);
    assert_eq!(store.first_call_since(at).unwrap(), None);
}

/// A timestamp page token costs an index lookup, not a scan of all history.
#[test]
fn the_first_row_since_a_time_is_found_by_index() {
    let store = SqliteStore::open(&temp_db()).unwrap();
    let batch: Vec<Write> = (1..=4)
        .map(|s| {
            let mut row = activeflow(s, "ended", None);
            row.tm_create = format!("2026-01-0{s}T00:00:00.000000Z");
            Write::Activeflow {
                row,
                actions: vec![],
            }
        })
        .collect();
    store.apply(&batch).unwrap();
    assert_eq!(
        store
            .first_activeflow_since("2026-01-02T12:00:00.000000Z")
            .unwrap(),
        Some(3)
    );
    assert_eq!(store.first_activeflow_since("2026").unwrap(), Some(1));
    assert_eq!(store.first_activeflow_since("2027").unwrap(), None);
    for table in ["activeflows", "calls"] {
        let sql = format!("EXPLAIN QUERY PLAN {}", read::first_since_sql(table));
        let conn = store.reader();
        let plan: Vec<String> = conn
            .prepare(&sql)
            .unwrap()
            .query_map(["2026"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("; ");
        assert!(plan.contains(&format!("INDEX {table}_by_create")), "{plan}");
        assert!(!plan.contains("SCAN"), "{plan}");
    }
}

/// VoIPBIN's soft delete: the row and its actions stay readable by id with `tm_delete`;
/// listings leave it out; a second delete keeps the first time.
#[test]
fn a_deleted_activeflow_stays_readable_but_leaves_listings() {
    let store = SqliteStore::open(&temp_db()).unwrap();
    let batch: Vec<Write> = (1..=3)
        .map(|s| Write::Activeflow {
            row: activeflow(s, "ended", None),
            actions: vec![action(0)],
        })
        .collect();
    store.apply(&batch).unwrap();
    let live = store.activeflow("af-2").unwrap().unwrap();
    assert!(live.json["tm_delete"].is_null());
    assert_eq!(
        live.json["reference_activeflow_id"],
        "00000000-0000-0000-0000-000000000000"
    );
    assert_eq!(
        live.json["current_action"]["next_id"],
        "00000000-0000-0000-0000-000000000000"
    );
    store
        .apply(&[Write::DeleteActiveflow("af-2".into())])
        .unwrap();
    let deleted = store.activeflow("af-2").unwrap().unwrap();
    let when = deleted.json["tm_delete"].as_str().unwrap().to_owned();
    assert_eq!(
        deleted.json["executed_actions"].as_array().unwrap().len(),
        1
    );
    let seqs = |v: Vec<Stored>| v.iter().map(|s| s.sequence).collect::<Vec<_>>();
    assert_eq!(seqs(store.activeflows(None, None, 9).unwrap()), [3, 1]);
    store
        .apply(&[Write::DeleteActiveflow("af-2".into())])
        .unwrap();
    let again = store.activeflow("af-2").unwrap().unwrap();
    assert_eq!(again.json["tm_delete"], when.as_str());
}

#[test]
fn purge_drops_only_old_ended_rows() {
    let store = SqliteStore::open(&temp_db()).unwrap();
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
    let left = store.activeflows(None, None, 10).unwrap();
    assert_eq!(left.iter().map(|s| s.sequence).collect::<Vec<_>>(), [3, 2]);
    let actions: i64 = store
        .reader()
        .query_row("SELECT COUNT(*) FROM executed_actions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(actions, 0);
    assert_eq!(store.calls(None, None, 10).unwrap().len(), 1);
}

#[test]
fn flows_by_source() {
    let store = SqliteStore::open(&temp_db()).unwrap();
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

/// A row over `max_row_bytes` fails the whole batch with SQLite's own "too big", an error of
/// that row alone (not transient). Applied row by row under savepoints, in one transaction:
/// an activeflow header too big with its final variables is stored without them (its end is
/// kept), an action too big is left out while its siblings are stored, a header that cannot be
/// stored at all (a duplicate id) leaves its whole write out, and every other write commits.
#[test]
fn rows_over_the_cap_are_left_out_and_the_rest_of_their_batch_commits() {
    let options = SqliteOptions {
        max_row_bytes: 4096,
    };
    let store = SqliteStore::open_with(&temp_db(), options).unwrap();
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
        rejected[2].error.to_string().contains("UNIQUE"),
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

/// A second store on the same file is refused before it touches the database (its recovery
/// would end the first one's running records); the first keeps its rows and keeps writing.
#[test]
fn a_second_store_on_the_same_file_is_refused() {
    let path = temp_db();
    let first = SqliteStore::open(&path).unwrap();
    let running = |seq| Write::Activeflow {
        row: activeflow(seq, "running", None),
        actions: vec![],
    };
    first.apply(&[running(1)]).unwrap();
    let e = SqliteStore::open(&path).err().unwrap();
    assert!(matches!(e, StorageError::Locked { .. }), "{e}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    first.apply(&[running(2)]).unwrap();
    let one = first.activeflow("af-1").unwrap().unwrap().json;
    assert_eq!(
        one["status"], "running",
        "not recovered by the refused store"
    );
    drop(first);
    SqliteStore::open(&path).unwrap();
}
