//! Storage errors: opening the database, migrating it, and queries. No retry policy here; the
//! writer decides what a failed batch means.

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage.path {path}: {source}")]
    Open {
        path: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
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
