//! PostgreSQL store tests on a real server (`AF_TEST_PG_URL`), a scratch database each:
//! the checks every backend passes (`storage::conformance`), then what only a shared store
//! does: two nodes on one database, node loss and fencing, rejoin, the writer dropping fenced
//! batches, clock sequences, and listings that walk indexes on 100k rows. Without a reachable
//! server every test fails, naming the variable.

use std::sync::Arc;
use std::time::Duration;

use super::scratch::ScratchDatabase;
use super::*;
use crate::storage::conformance::{self, activeflow, call};
use crate::storage::ActiveflowRow;

fn database() -> ScratchDatabase {
    ScratchDatabase::create().unwrap_or_else(|e| panic!("{e}"))
}

/// A store on `db` as run `incarnation` of `node`, recovered (so its run is up).
fn node(db: &ScratchDatabase, node: &str, incarnation: &str) -> PgStore {
    recovered(db, PgOptions::default(), node, incarnation)
}

/// Like [`node`], with `options`.
fn recovered(db: &ScratchDatabase, options: PgOptions, node: &str, incarnation: &str) -> PgStore {
    let store = PgStore::open(&db.url, options, node, incarnation).unwrap();
    store
        .recover("engine_restart", "2026-01-01T00:00:00.000000Z")
        .unwrap();
    store
}

/// An activeflow's write without actions.
fn header(row: ActiveflowRow) -> Write {
    Write::Activeflow {
        row,
        actions: vec![],
    }
}

fn single(db: &ScratchDatabase) -> PgStore {
    node(db, "", "run-1")
}

conformance::conformance_tests!(single(&database()));

/// The same checks on a database whose default collation is ICU's `en-US`, as a server set
/// up with `initdb --locale-provider=icu` has: text does not sort by bytes there (`'2026…' <
/// '~'` is false), so a query that leans on byte order fails here, not only in production.
/// Skipped, saying so, on a server without ICU (before PostgreSQL 15, or built without it).
mod icu_collation {
    use super::*;

    /// A store on a scratch database of its own; the store closes before the database goes.
    struct OnScratch {
        store: PgStore,
        _db: ScratchDatabase,
    }

    impl std::ops::Deref for OnScratch {
        type Target = PgStore;
        fn deref(&self) -> &PgStore {
            &self.store
        }
    }

    fn store() -> Option<OnScratch> {
        match ScratchDatabase::create_icu("en-US") {
            Ok(Some(db)) => Some(OnScratch {
                store: single(&db),
                _db: db,
            }),
            Ok(None) => {
                eprintln!("skipped: this PostgreSQL server has no ICU collations");
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    conformance::conformance_tests!(optional store());
}

/// `storage.max_row_bytes` checked by the store ("too big"), PostgreSQL's unique constraint.
#[test]
fn rows_over_the_cap_are_left_out_and_the_rest_of_their_batch_commits() {
    let db = database();
    let options = PgOptions {
        max_row_bytes: 4096,
    };
    let store = recovered(&db, options, "", "run-1");
    conformance::rows_over_the_cap_are_left_out_and_the_rest_of_their_batch_commits(&store);
}

/// Data PostgreSQL refuses (a NUL byte in text) is the row's own error, not an outage; a
/// server that is not there is an outage (transient), named in the error.
#[test]
fn bad_data_is_the_rows_own_and_a_dead_server_is_transient() {
    let db = database();
    let store = single(&db);
    let mut bad = call(2, "ringing", None);
    bad.peer = "nul\0byte".into();
    let batch = [Write::Call(call(1, "ringing", None)), Write::Call(bad)];
    let e = store.apply(&batch).unwrap_err();
    assert!(!e.is_transient(), "{e}");
    let rejected = store.apply_each(&batch).unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].index, 1);
    assert!(store.call("call-1").unwrap().is_some());

    // A port nothing listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/nothing");
    match PgStore::open(&url, PgOptions::default(), "", "run-1") {
        Err(StorageError::Open { path, source }) => {
            assert!(path.contains(&port.to_string()), "{path}: {source}");
        }
        Err(e) => panic!("not an open error: {e}"),
        Ok(_) => panic!("opened a database on a closed port"),
    }
}

/// Migrations run once; a second node opening the same database finds them applied; a
/// database newer than the binary is refused.
#[test]
fn migrates_once_and_refuses_a_newer_schema() {
    let db = database();
    drop(single(&db));
    drop(node(&db, "b", "run-1"));
    let store = single(&db);
    let count = store
        .run(|inner| async move {
            let c = inner.pool.get().await?;
            let row = c
                .query_one("SELECT COUNT(*), MAX(version) FROM schema_version", &[])
                .await?;
            Ok((row.get::<_, i64>(0), row.get::<_, i32>(1)))
        })
        .unwrap();
    assert_eq!(count, (8, 8));
    store
        .run(|inner| async move {
            let c = inner.pool.get().await?;
            c.execute("INSERT INTO schema_version VALUES (99, 'x')", &[])
                .await?;
            Ok(())
        })
        .unwrap();
    drop(store);
    let e = PgStore::open(&db.url, PgOptions::default(), "", "run-2")
        .err()
        .unwrap();
    assert!(matches!(e, StorageError::TooNew { found: 99, .. }), "{e}");
}

/// Two nodes on one database: each record carries its node; recovery of one ends only its
/// own records; listings show every node's, newest first.
#[test]
fn two_nodes_share_a_database_and_recover_only_their_own() {
    let db = database();
    let (a, b) = (node(&db, "a", "a-1"), node(&db, "b", "b-1"));
    a.apply(&[
        header(activeflow(1, "running", None)),
        Write::Call(call(1, "answered", None)),
    ])
    .unwrap();
    b.apply(&[
        header(activeflow(2, "running", None)),
        Write::Call(call(2, "answered", None)),
    ])
    .unwrap();
    let listed = a.activeflows(None, None, 10).unwrap();
    let nodes: Vec<(u64, &str)> = listed
        .iter()
        .map(|s| (s.sequence, s.json["node_id"].as_str().unwrap()))
        .collect();
    assert_eq!(nodes, [(2, "b"), (1, "a")]);
    assert_eq!(b.call("call-1").unwrap().unwrap().json["node_id"], "a");

    // Node a restarts (a new run): its own records end, b's keep running.
    drop(a);
    let a2 = node(&db, "a", "a-2");
    assert_eq!(
        a2.activeflow("af-1").unwrap().unwrap().json["status"],
        "ended"
    );
    assert_eq!(a2.call("call-1").unwrap().unwrap().json["status"], "ended");
    assert_eq!(
        a2.activeflow("af-2").unwrap().unwrap().json["status"],
        "running"
    );
    assert_eq!(
        a2.call("call-2").unwrap().unwrap().json["status"],
        "answered"
    );
    // ... and its earlier run is no longer up.
    assert_eq!(
        a2.up_runs().unwrap(),
        [
            ("a".to_owned(), "a-2".to_owned()),
            ("b".into(), "b-1".into())
        ]
    );
}

/// The CDR export in a cluster: one node's store lists every node's ended calls, each with
/// the node that wrote it.
#[test]
fn the_cdr_export_lists_every_nodes_calls() {
    let db = database();
    let (a, b) = (node(&db, "a", "a-1"), node(&db, "b", "b-1"));
    let end = |s: u32| Some(format!("2026-01-01T00:00:{s:02}.000000Z"));
    a.apply(&[Write::Call(call(1, "ended", end(2).as_deref()))])
        .unwrap();
    b.apply(&[
        Write::Call(call(2, "ended", end(1).as_deref())),
        Write::Call(call(3, "answered", None)),
    ])
    .unwrap();
    let rows = a
        .ended_calls(&crate::storage::EndedRange::default(), None, 10)
        .unwrap();
    let seen: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|c| (c.id.as_str(), c.node_id.as_deref()))
        .collect();
    assert_eq!(seen, [("call-2", Some("b")), ("call-1", Some("a"))]);
}

/// Issue 20, node loss: the declaration ends the lost node's running activeflows (`node_lost`)
/// and calls, once; from then on that run's batches are fenced (and no write of it reopens
/// what was ended); the other node is untouched; rejoining with a new run writes again.
#[test]
fn declaring_a_node_lost_ends_its_records_and_fences_it_until_it_rejoins() {
    let db = database();
    let (a, b) = (node(&db, "a", "a-1"), node(&db, "b", "b-1"));
    a.apply(&[
        header(activeflow(1, "running", None)),
        header(activeflow(3, "ended", Some("2026-01-01T00:00:01.000000Z"))),
        Write::Call(call(1, "answered", None)),
    ])
    .unwrap();
    b.apply(&[header(activeflow(2, "running", None))]).unwrap();

    let now = "2026-01-01T00:00:09.000000Z";
    let loss = b
        .declare_node_lost("a", "a-1", "node_lost", now)
        .unwrap()
        .unwrap();
    assert_eq!(loss.activeflows, ["af-1"]);
    assert_eq!(loss.calls, ["call-1"]);
    let one = b.activeflow("af-1").unwrap().unwrap().json;
    assert_eq!(
        (&one["status"], &one["end_reason"], &one["tm_end"]),
        (&"ended".into(), &"node_lost".into(), &now.into())
    );
    assert_eq!(
        b.call("call-1").unwrap().unwrap().json["end_cause"],
        "node_lost"
    );
    assert_eq!(
        b.activeflow("af-3").unwrap().unwrap().json["end_reason"],
        "completed"
    );
    assert_eq!(
        b.activeflow("af-2").unwrap().unwrap().json["status"],
        "running"
    );
    // Once only; an unknown run is no loss.
    assert_eq!(
        b.declare_node_lost("a", "a-1", "node_lost", now).unwrap(),
        None
    );
    assert_eq!(
        b.declare_node_lost("c", "c-1", "node_lost", now).unwrap(),
        None
    );

    // The lost run writes on, unaware: refused whole, row by row too.
    let late = [
        header(activeflow(1, "running", None)),
        header(activeflow(4, "running", None)),
    ];
    assert!(matches!(a.apply(&late), Err(StorageError::Fenced)));
    assert!(matches!(a.apply_each(&late), Err(StorageError::Fenced)));
    assert!(!StorageError::Fenced.is_transient());
    assert!(a.activeflow("af-4").unwrap().is_none());
    // Reads still work.
    assert_eq!(a.activeflows(None, None, 10).unwrap().len(), 3);

    a.rejoin("a-2").unwrap();
    a.apply(&late).unwrap();
    assert_eq!(
        a.activeflow("af-1").unwrap().unwrap().json["end_reason"],
        "node_lost",
        "ended stays ended"
    );
    assert_eq!(
        a.activeflow("af-4").unwrap().unwrap().json["status"],
        "running"
    );
    // The new run can be declared lost in turn.
    let again = b
        .declare_node_lost("a", "a-2", "node_lost", now)
        .unwrap()
        .unwrap();
    assert_eq!(again.activeflows, ["af-4"]);
}

/// The writer meets a fenced batch: its writes are answered "not committed" at once (no
/// retry loop), later writes too, with `storage` down, until the node rejoins; then `storage`
/// is up and they commit.
#[test]
fn the_writer_drops_fenced_batches_and_writes_again_after_rejoin() {
    let db = database();
    let a = Arc::new(PgStore::open(&db.url, PgOptions::default(), "a", "a-1").unwrap());
    let health = crate::health::Health::new();
    let (storage, _) = crate::storage::Storage::start(a.clone(), &health).unwrap();
    let b = node(&db, "b", "b-1");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let confirmed = |row| {
        let write = Write::Activeflow {
            row,
            actions: vec![],
        };
        let done = storage.write_confirmed(write, crate::storage::WriteKind::Running);
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), done).await })
    };
    assert_eq!(confirmed(activeflow(1, "running", None)), Ok(true));
    b.declare_node_lost("a", "a-1", "node_lost", "2026-01-01T00:00:09.000000Z")
        .unwrap()
        .unwrap();
    for seq in 2..5 {
        assert_eq!(
            confirmed(activeflow(seq, "running", None)),
            Ok(false),
            "fenced"
        );
    }
    // Review storage #4: nothing commits, so `storage` is down until the node rejoins.
    assert_eq!(
        health.state(crate::health::Component::Storage),
        crate::health::PartState::Down
    );
    storage.store().unwrap().rejoin("a-2").unwrap();
    assert_eq!(
        health.state(crate::health::Component::Storage),
        crate::health::PartState::Up
    );
    assert_eq!(confirmed(activeflow(5, "running", None)), Ok(true));
    assert!(a.activeflow("af-2").unwrap().is_none());
    assert_eq!(a.activeflow("af-5").unwrap().unwrap().json["node_id"], "a");
    rt.block_on(storage.close());
}

/// Listings of a 100k-row table walk the primary key backwards (no sort, no scan); the first
/// row since a time is one step down the creation-time index; a CDR export page walks the
/// end-time index (ties sorted incrementally) and finds each call's activeflow by index.
/// Checked with EXPLAIN.
#[test]
fn listings_use_indexes_on_100k_rows() {
    let db = database();
    let store = single(&db);
    let plans = store
        .run(|inner| async move {
            let c = inner.pool.get().await?;
            c.batch_execute(
                "INSERT INTO activeflows (sequence, id, flow_id, status, reference_type,
                     reference_id, tm_create, tm_update, node_id)
                 SELECT s, 'af-' || s, 'flow', CASE WHEN s % 100 = 0 THEN 'running' ELSE 'ended' END,
                     'call', 'call-' || s, to_char(s, 'FM0000000'), 'x', 'n' || (s % 3)
                 FROM generate_series(1, 100000) s;
                 INSERT INTO calls (sequence, id, sip_call_id, direction, source, destination,
                     peer, status, tm_create, node_id, tm_end)
                 SELECT s, 'call-' || s, 'x', 'incoming', 'a', 'b', 'p',
                     CASE WHEN s % 100 = 0 THEN 'answered' ELSE 'ended' END,
                     to_char(s, 'FM0000000'), 'n' || (s % 3),
                     CASE WHEN s % 100 = 0 THEN NULL ELSE to_char(s / 2, 'FM0000000') END
                 FROM generate_series(1, 100000) s;
                 ANALYZE activeflows; ANALYZE calls;",
            )
            .await?;
            let mut plans = Vec::new();
            let before: i64 = 90_000;
            let limit: i64 = 50;
            for (table, columns) in [("activeflows", "sequence, id"), ("calls", "sequence, id")] {
                for status in [None, Some("ended")] {
                    let extra = match table {
                        "activeflows" => "AND tm_delete IS NULL",
                        _ => "",
                    };
                    let sql = read::page_sql(columns, table, status.is_some(), extra);
                    let sql = format!("EXPLAIN {sql}");
                    let rows = match status {
                        Some(s) => c.query(&sql, &[&before, &limit, &s]).await?,
                        None => c.query(&sql, &[&before, &limit]).await?,
                    };
                    plans.push(plan(&rows));
                }
                let sql = format!("EXPLAIN {}", read::first_since_sql(table));
                plans.push(plan(&c.query(&sql, &[&"0050000"]).await?));
            }
            // The CDR export's page, from the start and deep into the export, with and
            // without `to`.
            for (lower, after_end, after_id) in
                [("", "", ""), ("0040000", "0040000", "call-80001")]
            {
                let page: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                    [&lower, &after_end, &after_id, &1000_i64];
                let to = "0045000";
                let bounded = [&page[..], &[&to]].concat();
                for (sql, params) in [
                    (read::ENDED_CALLS_SQL, &bounded[..]),
                    (read::ENDED_CALLS_OPEN_SQL, &page[..]),
                ] {
                    let rows = c.query(&format!("EXPLAIN {sql}"), params).await?;
                    let p = plan(&rows);
                    assert!(p.contains("activeflows_by_reference"), "{p}");
                    plans.push(p);
                }
            }
            Ok(plans)
        })
        .unwrap();
    for p in &plans {
        eprintln!("{p}\n");
        assert!(p.contains("Index"), "{p}");
        // An incremental sort of the index's order (ties on `tm_create`) reads one row.
        let full_sort = p.lines().any(|l| {
            l.trim_start()
                .trim_start_matches("->  ")
                .starts_with("Sort  (")
        });
        assert!(!p.contains("Seq Scan") && !full_sort, "{p}");
    }
    let page = store.activeflows(None, Some(90_000), 50).unwrap();
    assert_eq!(page.first().map(|s| s.sequence), Some(89_999));
    assert_eq!(
        store.first_activeflow_since("0050000").unwrap(),
        Some(50_000)
    );
}

fn plan(rows: &[tokio_postgres::Row]) -> String {
    rows.iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The fence serializes with the declaration: while a batch of the run holds its
/// `cluster_nodes` row (`FOR SHARE`), the declaration waits; once the batch commits, the
/// declaration goes on and ends what the batch wrote. No write of the lost run commits after.
#[test]
fn a_batch_in_flight_commits_before_the_declaration_and_is_ended_by_it() {
    let db = database();
    let a = node(&db, "a", "a-1");
    let b = Arc::new(node(&db, "b", "b-1"));
    let waited = a
        .run(|inner| async move {
            let mut client = inner.pool.get().await?;
            let tx = client.transaction().await?;
            write::fence(&tx, &inner).await?;
            let declaring = tokio::task::spawn_blocking(move || {
                b.declare_node_lost("a", "a-1", "node_lost", "2026-01-01T00:00:09.000000Z")
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            let waited = !declaring.is_finished();
            let row = Write::Activeflow {
                row: activeflow(7, "running", None),
                actions: vec![],
            };
            write::apply_one(&tx, &inner, &row).await?;
            tx.commit().await?;
            let loss = declaring.await.map_err(|_| StorageError::RuntimeGone)??;
            Ok((waited, loss))
        })
        .unwrap();
    assert!(
        waited.0,
        "the declaration did not wait for the batch holding the fence"
    );
    assert_eq!(waited.1.unwrap().activeflows, ["af-7"]);
    assert_eq!(
        a.activeflow("af-7").unwrap().unwrap().json["end_reason"],
        "node_lost"
    );
}

/// Micro-benchmark (ignored; run by hand with `--ignored --nocapture`): 10k activeflows with
/// 10 executed actions each, applied in batches of 200 writes; prints µs per row written.
#[test]
#[ignore]
fn batch_write_speed() {
    let db = database();
    let store = single(&db);
    let writes: Vec<Write> = (1..=10_000u64)
        .map(|s| Write::Activeflow {
            row: activeflow(s, "running", None),
            actions: (0..10).map(conformance::action).collect(),
        })
        .collect();
    let started = std::time::Instant::now();
    for batch in writes.chunks(200) {
        store.apply(batch).unwrap();
    }
    let elapsed = started.elapsed();
    let rows = 10_000 * 11;
    println!(
        "batch_write_speed: {rows} rows in {elapsed:?}: {:.1} µs/row",
        elapsed.as_micros() as f64 / rows as f64
    );
}

/// Review storage #1: two nodes whose ids share a clock slot can create records with the same
/// sequence; each keeps its own row (keyed by id), with its own actions and node.
#[test]
fn two_nodes_writing_the_same_sequence_keep_both_rows() {
    let db = database();
    let (a, b) = (node(&db, "node-58", "a-1"), node(&db, "node-124", "b-1"));
    assert_eq!(
        crate::storage::sequence::slot_of("node-58"),
        crate::storage::sequence::slot_of("node-124"),
        "the review's pair shares a slot"
    );
    let mut other = activeflow(7, "running", None);
    other.id = "af-7-b".into();
    a.apply(&[
        Write::Activeflow {
            row: activeflow(7, "running", None),
            actions: vec![conformance::action(0), conformance::action(1)],
        },
        Write::Call(call(7, "answered", None)),
    ])
    .unwrap();
    let mut other_call = call(7, "ringing", None);
    other_call.id = "call-7-b".into();
    b.apply(&[
        Write::Activeflow {
            row: other,
            actions: vec![conformance::action(0)],
        },
        Write::Call(other_call),
    ])
    .unwrap();
    let one = a.activeflow("af-7").unwrap().unwrap().json;
    let two = a.activeflow("af-7-b").unwrap().unwrap().json;
    assert_eq!(
        (&one["node_id"], &two["node_id"]),
        (&"node-58".into(), &"node-124".into())
    );
    assert_eq!(one["executed_actions"].as_array().unwrap().len(), 2);
    assert_eq!(two["executed_actions"].as_array().unwrap().len(), 1);
    let listed = b.activeflows(None, None, 10).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .all(|s| s.sequence == 7 && s.json["executed_actions"].as_array().is_some()));
    assert_eq!(b.calls(None, None, 10).unwrap().len(), 2);
    assert_eq!(
        a.call("call-7").unwrap().unwrap().json["status"],
        "answered"
    );
}

/// Review storage #5: a second process with the same node id on the same database refuses
/// to start, naming `cluster.node_id` (as SQLite's lock file); once the first is gone it can.
#[test]
fn a_second_process_with_the_same_node_id_is_refused() {
    let db = database();
    let first = single(&db);
    let e = PgStore::open(&db.url, PgOptions::default(), "", "run-2")
        .err()
        .unwrap();
    assert!(matches!(e, StorageError::NodeLocked { .. }), "{e}");
    assert!(e.to_string().contains("cluster.node_id"), "{e}");
    // Another node id on the same database is fine.
    drop(node(&db, "b", "b-1"));
    drop(first);
    drop(single(&db));
}

/// Review storage #3: a run frozen inside a batch holds its fence (`FOR SHARE`) with its
/// transaction open; the declaration does not wait for ever: after its lock timeout it ends
/// that run's writer sessions and declares the run lost.
#[test]
fn a_frozen_batch_does_not_block_the_declaration() {
    let db = database();
    let _a = node(&db, "a", "a-1");
    let b = node(&db, "b", "b-1");
    // The frozen writer: a session named as a-1's writer, holding the row, never ending.
    let frozen = std::thread::spawn({
        let url = db.url.clone();
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut config: tokio_postgres::Config = url.parse().unwrap();
                config.application_name(writer_name("a", "a-1"));
                let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
                let conn = tokio::spawn(conn);
                client
                    .batch_execute(
                        "BEGIN; SELECT 1 FROM cluster_nodes WHERE node_id = 'a' FOR SHARE",
                    )
                    .await
                    .unwrap();
                // The connection ends when the declaration terminates this session.
                tokio::time::timeout(Duration::from_secs(30), conn)
                    .await
                    .is_ok()
            })
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let loss = b
        .declare_node_lost("a", "a-1", "node_lost", "2026-01-01T00:00:09.000000Z")
        .unwrap();
    assert!(loss.is_some());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(
        frozen.join().unwrap(),
        "the frozen session was not terminated"
    );
}

/// Review storage #12: passwords never reach messages, in any connection string form; TLS
/// (`sslmode=require`) is refused with a clear error.
#[test]
fn passwords_are_redacted_and_tls_is_refused() {
    let cases = [
        ("postgres://u:secret@h/db", "postgres://u@h/db"),
        (
            "postgres://u@h/db?password=secret&x=1",
            "postgres://u@h/db?password=redacted&x=1",
        ),
        (
            "host=h user=u password=secret dbname=d",
            "host=h user=u password=redacted dbname=d",
        ),
        (
            "host=h password = 'se cret' dbname=d",
            "host=h password=redacted dbname=d",
        ),
    ];
    for (url, want) in cases {
        assert_eq!(redact(url), want);
    }
    let e = PgStore::open(
        "postgres://u:secret@127.0.0.1:1/db?sslmode=require",
        PgOptions::default(),
        "",
        "run-1",
    )
    .err()
    .unwrap();
    assert!(matches!(e, StorageError::TlsUnsupported { .. }), "{e}");
    assert!(!e.to_string().contains("secret"), "{e}");
}

/// Review storage #2: a store call that gets no answer fails within its deadline as an
/// outage (transient), instead of waiting for ever.
#[test]
fn a_call_with_no_answer_times_out_as_an_outage() {
    let (runtime, _stop) = runtime_thread().unwrap();
    let started = std::time::Instant::now();
    let e = within(&runtime, Duration::from_millis(200), async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    })
    .unwrap_err();
    assert!(matches!(e, StorageError::Timeout(_)), "{e}");
    assert!(e.is_transient());
    assert!(started.elapsed() < Duration::from_secs(2));
}
