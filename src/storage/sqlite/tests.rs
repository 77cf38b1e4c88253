//! SQLite store tests on temporary database files: migrations, upserts that keep ended rows,
//! recovery, paging, purge, the row cap and the one-process lock.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::storage::conformance::{self, activeflow};

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
    assert_eq!(versions, 5);
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

/// The CDR export's page is a range of the end-time index, and each call's activeflow one
/// step down the reference index: neither scans a table.
#[test]
fn the_cdr_page_walks_indexes() {
    let store = SqliteStore::open(&temp_db()).unwrap();
    let conn = store.reader();
    let page: [&dyn rusqlite::ToSql; 4] = [&"", &"", &"", &1000];
    let bounded = [&page[..], &[&"2026-02-01T00:00:00.000000Z"]].concat();
    for (sql, params) in [
        (read::ENDED_CALLS_SQL, &bounded[..]),
        (read::ENDED_CALLS_OPEN_SQL, &page[..]),
    ] {
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(params, |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("; ");
        assert!(plan.contains("INDEX calls_by_end"), "{plan}");
        assert!(plan.contains("INDEX activeflows_by_reference"), "{plan}");
        assert!(!plan.contains("SCAN"), "{plan}");
    }
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

conformance::conformance_tests!(SqliteStore::open(&temp_db()).unwrap());

/// SQLite's own "too big" (`SQLITE_LIMIT_LENGTH`) and UNIQUE constraint.
#[test]
fn rows_over_the_cap_are_left_out_and_the_rest_of_their_batch_commits() {
    let options = SqliteOptions {
        max_row_bytes: 4096,
    };
    let store = SqliteStore::open_with(&temp_db(), options).unwrap();
    conformance::rows_over_the_cap_are_left_out_and_the_rest_of_their_batch_commits(&store);
}
