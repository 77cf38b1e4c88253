//! A throw-away database for tests (unit and integration) and benchmarks: created with a unique
//! name on the server of `AF_TEST_PG_URL` (default the local `test` database), dropped
//! (connections and all) when the handle is dropped. Not used by the engine itself.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The variable naming the server tests use.
pub const TEST_URL_VAR: &str = "AF_TEST_PG_URL";
/// Its default: the local server's `test` database (user `postgres`, trust auth).
pub const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database of its own; dropped with this handle.
#[derive(Debug)]
pub struct ScratchDatabase {
    /// `postgres://...` of the new database.
    pub url: String,
    admin_url: String,
    name: String,
}

impl ScratchDatabase {
    /// Creates a fresh database on the server of `AF_TEST_PG_URL`. An error names the
    /// variable and the URL tried, so a test without PostgreSQL fails saying what to set.
    pub fn create() -> Result<ScratchDatabase, String> {
        Self::create_with("").map_err(|(url, e)| needed(&url, &e))
    }

    /// Like [`ScratchDatabase::create`], with ICU's collation for `locale` (`en-US`) as the
    /// database's default, under which text does not sort by bytes (`'2026' < '~'` is false).
    /// `Ok(None)` when the server has no ICU (before PostgreSQL 15, or built without it).
    pub fn create_icu(locale: &str) -> Result<Option<ScratchDatabase>, String> {
        let options = format!(
            " TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{locale}' LOCALE 'C.UTF-8'"
        );
        match Self::create_with(&options) {
            Ok(db) => Ok(Some(db)),
            // PostgreSQL 14 and older: `option "locale_provider" not recognized`; built
            // without ICU: `ICU is not supported in this build`.
            Err((url, e)) => {
                let lower = e.to_lowercase();
                if lower.contains("locale_provider") || lower.contains("icu") {
                    tracing::warn!(error = %e, "no ICU collation on this server");
                    Ok(None)
                } else {
                    Err(needed(&url, &e))
                }
            }
        }
    }

    /// `CREATE DATABASE <a unique name><options>`; an error comes with the server's URL.
    fn create_with(options: &str) -> Result<ScratchDatabase, (String, String)> {
        let admin_url = std::env::var(TEST_URL_VAR).unwrap_or_else(|_| DEFAULT_TEST_URL.into());
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "af_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            uuid::Uuid::new_v4().simple()
        );
        match execute(&admin_url, &format!("CREATE DATABASE {name}{options}")) {
            Ok(()) => Ok(ScratchDatabase {
                url: with_database(&admin_url, &name),
                admin_url,
                name,
            }),
            Err(e) => Err((admin_url, e)),
        }
    }
}

/// The error of a test that found no PostgreSQL at `url`.
fn needed(url: &str, error: &str) -> String {
    format!(
        "PostgreSQL at {url} ({TEST_URL_VAR}) is needed by this test: {error} \
         (scripts/test.sh starts one; or set {TEST_URL_VAR})"
    )
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = execute(&self.admin_url, &sql) {
            tracing::warn!(database = %self.name, error = %e, "scratch database not dropped");
        }
    }
}

/// `url` pointing at database `name` instead (its query string kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{}/{name}{query}", &base[..host_end])
}

/// Runs one statement on `url`, on a thread and runtime of its own (callable from anywhere).
fn execute(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let mut config: tokio_postgres::Config = url
                .parse()
                .map_err(|e: tokio_postgres::Error| e.to_string())?;
            config.connect_timeout(std::time::Duration::from_secs(5));
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            let conn = tokio::spawn(connection);
            let done = client.batch_execute(&sql).await.map_err(|e| e.to_string());
            drop(client);
            let _ = conn.await;
            done
        })
    })
    .join()
    .map_err(|_| "the scratch database thread panicked".to_owned())?
}
