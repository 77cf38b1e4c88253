//! Versioned PostgreSQL migrations: the SQL files in `migrations/postgres/`, embedded, applied
//! in order at open, each in its own transaction with its version recorded in
//! `schema_version`. Versions 1-4 mean what SQLite's do; 5 (cluster) and 7 (cluster-wide
//! flow names) are PostgreSQL's own; 8 is SQLite's 5 (CDR export).
//! Nodes starting at once take turns (a transaction-scoped advisory lock); a database newer
//! than the binary is refused.

use deadpool_postgres::Pool;

use crate::storage::StorageError;

/// Every migration, in order; versions are never reused or edited once released.
const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/postgres/0002_actions_by_sequence.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/postgres/0003_activeflow_soft_delete.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/postgres/0004_call_end_code.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/postgres/0005_cluster.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/postgres/0006_id_keys.sql"),
    ),
    (
        7,
        include_str!("../../../migrations/postgres/0007_flow_name_unique.sql"),
    ),
    (
        8,
        include_str!("../../../migrations/postgres/0008_cdr_export.sql"),
    ),
];

/// The advisory lock key the migrations take ("activefl" in ASCII).
const LOCK_KEY: i64 = 0x6163_7469_7665_666c;

/// Brings the schema up to the newest version; returns the version now in force.
pub(super) async fn run(pool: &Pool) -> Result<u32, StorageError> {
    let mut client = pool.get().await?;
    // A migration may take longer than the session's statement timeout (see `mod.rs`).
    client
        .batch_execute("SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0")
        .await?;
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    loop {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 version INTEGER PRIMARY KEY,
                 tm_apply TEXT NOT NULL)",
        )
        .await?;
        let current: i32 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
            .await?
            .get(0);
        let current = u32::try_from(current).unwrap_or(0);
        if current > known {
            return Err(StorageError::TooNew {
                found: current,
                known,
            });
        }
        let Some((version, sql)) = MIGRATIONS.iter().find(|(v, _)| *v > current) else {
            tx.commit().await?;
            return Ok(known);
        };
        let err = |source| StorageError::PostgresMigration {
            version: *version,
            source,
        };
        tx.batch_execute(sql).await.map_err(err)?;
        tx.execute(
            "INSERT INTO schema_version (version, tm_apply) VALUES ($1, $2)",
            &[&(*version as i32), &crate::clock::timestamp()],
        )
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        tracing::info!(version, "storage: postgres migration applied");
    }
}
