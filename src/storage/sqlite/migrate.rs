//! Versioned migrations: the SQL files in `migrations/`, embedded in the binary, applied in
//! order at start, each in its own transaction with its version recorded in `schema_version`.
//! A database newer than the binary is refused rather than guessed at.

use rusqlite::Connection;

use crate::storage::StorageError;

/// Every migration, in order; versions are never reused or edited once released.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../../../migrations/0001_init.sql")),
    (
        2,
        include_str!("../../../migrations/0002_actions_by_sequence.sql"),
    ),
    (
        3,
        include_str!("../../../migrations/0003_activeflow_soft_delete.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/0004_call_end_code.sql"),
    ),
    (5, include_str!("../../../migrations/0005_cdr_export.sql")),
];

/// Brings the schema up to the newest version; returns the version now in force.
pub(super) fn run(conn: &Connection) -> Result<u32, StorageError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version INTEGER PRIMARY KEY,
             tm_apply TEXT NOT NULL)",
    )?;
    let current: u32 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if current > known {
        return Err(StorageError::TooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let err = |source| StorageError::Migration {
            version: *version,
            source,
        };
        let tx = conn.unchecked_transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.execute(
            "INSERT INTO schema_version (version, tm_apply) VALUES (?1, ?2)",
            rusqlite::params![version, crate::clock::timestamp()],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        tracing::info!(version, "storage: migration applied");
    }
    Ok(known)
}
