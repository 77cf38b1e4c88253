//! Storage errors: opening the database, migrating it, and queries, and which of them a retry
//! can cure ([`StorageError::is_transient`]). No retry policy here; the writer decides what a
//! failed batch means.

use rusqlite::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage.path {path}: {source}")]
    Open {
        path: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Another process has the database open for writing: two writers would both recover
    /// (end) each other's running records and interleave their histories.
    #[error(
        "storage.path {path}: another process holds this database (lock file {lock} is \
         locked); stop it or give this process another storage.path"
    )]
    Locked { path: String, lock: String },
    #[error("migration {version}: {source}")]
    Migration {
        version: u32,
        source: rusqlite::Error,
    },
    #[error("database newer than this binary (schema version {found}, known up to {known})")]
    TooNew { found: u32, known: u32 },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the storage writer has stopped")]
    WriterGone,
}

impl StorageError {
    /// Whether the same write may succeed later unchanged: the disk is full, the database is
    /// busy or locked, an I/O error, out of memory. The writer keeps such a batch queued and
    /// retries it; any other error is the write's own (a row over `storage.max_row_bytes`, a
    /// constraint) and retrying it would only block the writes behind it.
    pub fn is_transient(&self) -> bool {
        let StorageError::Sqlite(e) = self else {
            return false;
        };
        matches!(
            e.sqlite_error_code(),
            Some(
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::DiskFull
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::CannotOpen
                    | ErrorCode::OutOfMemory
                    | ErrorCode::ReadOnly
                    | ErrorCode::FileLockingProtocolFailed
                    | ErrorCode::OperationInterrupted
            )
        )
    }
}
