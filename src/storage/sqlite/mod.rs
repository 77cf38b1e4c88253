//! The embedded SQLite store (the default backend): one write connection used by the writer
//! thread and one read connection for the API, both on a WAL database so reads never wait for
//! a commit. Opening takes the database's lock file (one process per database), then runs the
//! versioned migrations in `migrations/`.

mod isolate;
mod lock;
mod migrate;
mod read;
mod write;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;
use serde_json::Value;

use super::model::{
    EndedCall, EndedCursor, EndedRange, FlowRow, FlowSource, Recovery, Rejected, Store, Stored,
    Write,
};
use super::StorageError;
use lock::DatabaseLock;

/// How long a statement waits for the other connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `storage.max_row_bytes` by default: far above any row the engine writes (variables are
/// capped at 1 MiB per activeflow), far below SQLite's own 1 GB.
pub const DEFAULT_MAX_ROW_BYTES: usize = 16 << 20;
/// SQLite's compiled-in ceiling for a string, blob or row (`SQLITE_MAX_LENGTH`).
pub const SQLITE_MAX_LENGTH: usize = 1_000_000_000;

/// How the store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    /// The largest row (all its columns, in SQLite's record format) a write may store; a write
    /// over it fails on its own and is left out of its batch
    /// (`activeflow_storage_write_rejected_total`).
    pub max_row_bytes: usize,
}

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        SqliteOptions {
            max_row_bytes: DEFAULT_MAX_ROW_BYTES,
        }
    }
}

pub struct SqliteStore {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// Held while the store lives: no other process writes this database.
    _lock: DatabaseLock,
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) and migrates the database at `path`,
    /// with the default options.
    pub fn open(path: &Path) -> Result<SqliteStore, StorageError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens the database at `path`: takes its lock file ([`StorageError::Locked`] if another
    /// process holds it), creates and migrates it, and caps the writer's rows.
    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StorageError> {
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StorageError::Open {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(Box::new(e)))?;
        }
        // Before the first byte of the database is read: recovery below would otherwise end
        // the running records of the process that holds it.
        let lock = DatabaseLock::acquire(path)?;
        let writer = connect(path).map_err(|e| open_err(Box::new(e)))?;
        migrate::run(&writer)?;
        // After the migrations, which may carry old rows over whatever their size.
        let cap = i32::try_from(options.max_row_bytes.min(SQLITE_MAX_LENGTH)).unwrap_or(i32::MAX);
        writer
            .set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, cap)
            .map_err(|e| open_err(Box::new(e)))?;
        let reader = connect(path).map_err(|e| open_err(Box::new(e)))?;
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            _lock: lock,
        })
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// WAL with `synchronous = NORMAL`: a commit is in the OS once `COMMIT` returns, so a killed
/// process loses nothing committed; only an OS crash or power cut can lose the last commits
/// before a checkpoint.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

impl Store for SqliteStore {
    fn apply(&self, batch: &[Write]) -> Result<(), StorageError> {
        write::apply(&mut self.writer(), batch)
    }

    fn apply_each(&self, batch: &[Write]) -> Result<Vec<Rejected>, StorageError> {
        isolate::apply_each(&mut self.writer(), batch)
    }

    fn recover(&self, reason: &str, now: &str) -> Result<Recovery, StorageError> {
        write::recover(&mut self.writer(), reason, now)
    }

    fn replace_file_flows(&self, flows: &[FlowRow]) -> Result<(), StorageError> {
        write::replace_file_flows(&mut self.writer(), flows)
    }

    fn flows(&self, source: FlowSource) -> Result<Vec<FlowRow>, StorageError> {
        read::flows(&self.reader(), source)
    }

    fn activeflows(
        &self,
        status: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Stored>, StorageError> {
        read::activeflows(&self.reader(), status, before, limit)
    }

    fn activeflow(&self, id: &str) -> Result<Option<Stored>, StorageError> {
        read::activeflow(&self.reader(), id)
    }

    fn first_activeflow_since(&self, at: &str) -> Result<Option<u64>, StorageError> {
        read::first_since(&self.reader(), "activeflows", at)
    }

    fn first_call_since(&self, at: &str) -> Result<Option<u64>, StorageError> {
        read::first_since(&self.reader(), "calls", at)
    }

    fn activeflow_variables(&self, id: &str) -> Result<Option<Value>, StorageError> {
        read::activeflow_variables(&self.reader(), id)
    }

    fn calls(
        &self,
        status: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Stored>, StorageError> {
        read::calls(&self.reader(), status, before, limit)
    }

    fn call(&self, id: &str) -> Result<Option<Stored>, StorageError> {
        read::call(&self.reader(), id)
    }

    fn ended_calls(
        &self,
        range: &EndedRange,
        after: Option<&EndedCursor>,
        limit: usize,
    ) -> Result<Vec<EndedCall>, StorageError> {
        read::ended_calls(&self.reader(), range, after, limit)
    }
}

#[cfg(test)]
mod tests;
