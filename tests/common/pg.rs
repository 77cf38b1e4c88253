//! PostgreSQL for black-box tests: a fresh database per test on `AF_TEST_PG_URL`
//! (default the local `test` database; dropped when the handle is), the engine settings that
//! put an engine on it, and a synchronous client for the test's own look at the rows. No
//! reachable server fails the test, naming the variable.

pub use activeflow::storage::postgres::scratch::ScratchDatabase;
use tokio_postgres::types::ToSql;

/// A fresh database (panics, naming `AF_TEST_PG_URL`, when PostgreSQL is not there).
pub fn database() -> ScratchDatabase {
    ScratchDatabase::create().unwrap_or_else(|e| panic!("{e}"))
}

/// `ACTIVEFLOW_*` settings that make an engine store into `db`.
pub fn engine_env(db: &ScratchDatabase) -> [(&'static str, String); 2] {
    [
        ("ACTIVEFLOW_STORAGE_BACKEND", "postgres".to_owned()),
        ("ACTIVEFLOW_STORAGE_URL", db.url.clone()),
    ]
}

/// One connection for the test's own queries, as another process would see the rows.
pub struct PgReader {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl PgReader {
    pub fn connect(db: &ScratchDatabase) -> PgReader {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let client = rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                .await
                .expect("connect to the scratch database");
            tokio::spawn(connection);
            client
        });
        PgReader { rt, client }
    }

    /// The first column of the first row of `sql`, an integer (0 when there is no row).
    pub fn count(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> i64 {
        self.rt.block_on(async {
            self.client
                .query_opt(sql, params)
                .await
                .expect("query")
                .map_or(0, |r| r.get::<_, i64>(0))
        })
    }
}
