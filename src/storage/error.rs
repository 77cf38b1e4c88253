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
    /// Cluster: this node's run was declared lost by the others; its writes are refused so
    /// nothing it does overwrites the `node_lost` ends (no split brain).
    #[error("this node's run was declared lost by the cluster: writes refused")]
    Fenced,
    /// PostgreSQL backend: a statement, the connection, or the server.
    #[error("postgres: {}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// PostgreSQL backend: no connection from the pool (connecting failed, timed out).
    #[error("postgres pool: {0}")]
    PostgresPool(#[from] deadpool_postgres::PoolError),
    #[error("postgres migration {version}: {}", postgres_message(source))]
    PostgresMigration {
        version: u32,
        source: tokio_postgres::Error,
    },
    /// PostgreSQL backend: a row over `storage.max_row_bytes` (SQLite's own limit says "too
    /// big" the same way): the row's own error.
    #[error("row of {bytes} bytes is too big (storage.max_row_bytes = {max})")]
    RowTooBig { bytes: usize, max: usize },
    /// PostgreSQL backend: a store call got no answer in time (a half-open connection, a
    /// frozen server): an outage, as a lost connection.
    #[error("postgres: no answer within {0:?}")]
    Timeout(std::time::Duration),
    /// PostgreSQL backend: the URL asks for TLS (`sslmode=require`), which this build does not
    /// speak.
    #[error(
        "storage.url {url}: TLS to PostgreSQL is not supported (sslmode={mode}); use \
             sslmode=disable or prefer, over a trusted network or a local TLS tunnel"
    )]
    TlsUnsupported { url: String, mode: String },
    /// PostgreSQL backend: another process already writes as this node on this database
    /// (`cluster.node_id`; "" for a single node), as SQLite's lock file.
    #[error(
        "storage.url {url}: another process already runs as cluster.node_id = {node_id:?} \
             on this database; stop it or give this process another cluster.node_id"
    )]
    NodeLocked { url: String, node_id: String },
    /// PostgreSQL backend: the store's runtime thread has stopped (the store is closing).
    #[error("the postgres store's runtime has stopped")]
    RuntimeGone,
}

impl StorageError {
    /// Whether the same write may succeed later unchanged: the disk is full, the database is
    /// busy or locked, an I/O error, out of memory. The writer keeps such a batch queued and
    /// retries it; any other error is the write's own (a row over `storage.max_row_bytes`, a
    /// constraint) and retrying it would only block the writes behind it.
    pub fn is_transient(&self) -> bool {
        let e = match self {
            StorageError::Sqlite(e) => e,
            StorageError::Postgres(e) => return postgres_transient(e),
            StorageError::PostgresPool(e) => return pool_transient(e),
            StorageError::Timeout(_) => return true,
            _ => return false,
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

/// PostgreSQL: the connection (class 08, a closed or broken socket), the server going away or
/// refusing more (57P01-57P03, 53300), resources (53xxx: disk full, out of memory), and
/// serialization failures or deadlocks (40001, 40P01) pass; constraint and data errors (23xxx,
/// 22xxx) are the row's own.
fn postgres_transient(e: &tokio_postgres::Error) -> bool {
    if let Some(code) = e.code() {
        let code = code.code();
        return code.starts_with("08")
            || code.starts_with("53")
            || code.starts_with("57P")
            || matches!(code, "40001" | "40P01" | "55P03" | "57014");
    }
    // No SQLSTATE: the connection closed, or an I/O error under it.
    e.is_closed()
        || std::error::Error::source(e)
            .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some())
}

/// The pool: no connection now (refused, timed out, closed) passes; a server error delegates.
fn pool_transient(e: &deadpool_postgres::PoolError) -> bool {
    match e {
        deadpool_postgres::PoolError::Backend(e) => postgres_transient(e),
        deadpool_postgres::PoolError::Timeout(_) | deadpool_postgres::PoolError::Closed => true,
        _ => false,
    }
}

/// The server's own message and SQLSTATE when there is one (the driver's `Display` says only
/// "db error").
fn postgres_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
