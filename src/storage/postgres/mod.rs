//! The PostgreSQL store (`[storage] backend = "postgres"`): what a cluster shares. Same tables
//! as SQLite plus each record's `node_id` and the `cluster_nodes` runs, migrated by
//! `migrations/postgres/`. The [`Store`] trait is synchronous and called from the storage
//! writer thread and the API's blocking pool, never from an actix arbiter: each call runs its
//! future (tokio-postgres through a deadpool pool) on the store's own one-thread runtime and
//! waits for the answer on the calling thread.
//!
//! Writes: one transaction per batch, as SQLite; a batch refused whole is applied again write by
//! write under savepoints (`isolate`), so one bad row is left out alone. Loss bounds are
//! SQLite's: a committed batch is durable (`synchronous_commit` as the server has it, `on` by
//! default) and a write not yet committed when the process dies is lost, its record ended at
//! the next start (or by the cluster, `node_lost`). A connection error, the server shutting
//! down or refusing connections is an outage (transient): the writer keeps the batch and
//! retries. Fencing: every batch first checks, in its transaction, that this run of the node is
//! `up` in `cluster_nodes` (`FOR SHARE`); once the cluster declared it lost, batches fail with
//! [`StorageError::Fenced`] and the writer drops them (see `writer`).

mod isolate;
mod migrate;
mod read;
pub mod scratch;
mod write;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::Value;

use super::model::{
    EndedCall, EndedCursor, EndedRange, FlowRow, FlowSource, NodeLoss, Recovery, Rejected, Store,
    Stored, Write,
};
use super::StorageError;

/// Connections the read pool keeps (the API's reads).
const POOL_SIZE: usize = 4;
/// Connections for recovery, node loss, rejoin and flows (membership), apart from reads.
const CONTROL_POOL_SIZE: usize = 2;
/// How long connecting, or waiting for a free connection, may take before it is an error (an
/// outage for the writer: it retries).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most any store call may take: past it the call fails as an outage (transient), so a
/// half-open connection or a frozen server cannot hang the writer, the API or membership.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Every session's `statement_timeout` and `idle_in_transaction_session_timeout` (ms): the
/// server ends what a frozen or cut-off client left open, its locks with it.
const SESSION_TIMEOUT_MS: u64 = 10_000;
/// TCP keepalives and `tcp_user_timeout`: a dead peer is noticed in seconds, not hours.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);
/// Advisory lock class of the per-node lock (`pg_try_advisory_lock(int, int)`; the migration
/// lock is a bigint one, another key space): "af".
const NODE_LOCK_CLASS: i32 = 0x6166;
/// Tries for the node lock, 200 ms apart.
const NODE_LOCK_TRIES: usize = 10;

/// How the store is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// `storage.max_row_bytes`: a row whose text columns add up to more fails on its own.
    pub max_row_bytes: usize,
}

impl Default for PgOptions {
    fn default() -> PgOptions {
        PgOptions {
            max_row_bytes: super::sqlite::DEFAULT_MAX_ROW_BYTES,
        }
    }
}

/// What the store's futures share.
pub(super) struct Inner {
    /// Reads (the API).
    pool: Pool,
    /// Recovery, node loss, rejoin, flows: not queued behind reads.
    control: Pool,
    /// The writer's own connection (a pool of one), named after this run
    /// ([`writer_name`]) so a node declaring this run lost can end its sessions; replaced at
    /// rejoin.
    writer: Mutex<Pool>,
    config: tokio_postgres::Config,
    node_id: String,
    /// The run of this node the store writes for (`rejoin` changes it).
    incarnation: Mutex<String>,
    max_row_bytes: usize,
}

impl Inner {
    fn incarnation(&self) -> String {
        self.incarnation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn writer(&self) -> Pool {
        self.writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The `application_name` of run `incarnation` of `node`'s writer, as the server keeps it
/// (at most 63 bytes).
pub(super) fn writer_name(node: &str, incarnation: &str) -> String {
    let mut name = format!("activeflow-writer/{node}/{incarnation}");
    let mut end = name.len().min(63);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    name
}

/// A pool of `size` connections with `config`; call inside the store's runtime.
fn pool(config: tokio_postgres::Config, size: usize) -> Result<Pool, StorageError> {
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| StorageError::Open {
            path: "postgres pool".into(),
            source: Box::new(e),
        })
}

fn named(config: &tokio_postgres::Config, name: &str) -> tokio_postgres::Config {
    let mut config = config.clone();
    config.application_name(name);
    config
}

pub struct PgStore {
    inner: Arc<Inner>,
    runtime: tokio::runtime::Handle,
    /// Holds this node's advisory lock for the store's life (see `lock_node`).
    _lock: tokio_postgres::Client,
    /// Dropped with the store: the runtime thread ends.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl PgStore {
    /// Connects to `url`, runs the migrations, and writes as run `incarnation` of `node_id`
    /// ("" for a single node). The run is marked up by [`Store::recover`]. Refused with
    /// [`StorageError::NodeLocked`] while another process runs as `node_id` on this database,
    /// and with [`StorageError::TlsUnsupported`] for `sslmode=require`.
    pub fn open(
        url: &str,
        options: PgOptions,
        node_id: &str,
        incarnation: &str,
    ) -> Result<PgStore, StorageError> {
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StorageError::Open {
            path: redact(url),
            source,
        };
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| open_err(Box::new(e)))?;
        if !matches!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable | tokio_postgres::config::SslMode::Prefer
        ) {
            return Err(StorageError::TlsUnsupported {
                url: redact(url),
                mode: format!("{:?}", config.get_ssl_mode()).to_lowercase(),
            });
        }
        config.connect_timeout(CONNECT_TIMEOUT);
        config.keepalives(true);
        config.keepalives_idle(KEEPALIVE_IDLE);
        config.keepalives_interval(KEEPALIVE_INTERVAL);
        config.keepalives_retries(3);
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
        // The server's side of the keepalives too: a dead client's sessions (and the node
        // lock, the fence it held) end in seconds.
        let timeouts = format!(
            "-c statement_timeout={SESSION_TIMEOUT_MS} \
             -c idle_in_transaction_session_timeout={SESSION_TIMEOUT_MS} \
             -c tcp_keepalives_idle={} -c tcp_keepalives_interval={} \
             -c tcp_keepalives_count=3 -c tcp_user_timeout={}",
            KEEPALIVE_IDLE.as_secs(),
            KEEPALIVE_INTERVAL.as_secs(),
            TCP_USER_TIMEOUT.as_millis()
        );
        let session = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {timeouts}"),
            _ => timeouts,
        };
        config.options(&session);
        let (runtime, stop) = runtime_thread().map_err(|e| open_err(Box::new(e)))?;
        let (pools, lock) = {
            let _entered = runtime.enter();
            let reads = pool(named(&config, &format!("activeflow/{node_id}")), POOL_SIZE)?;
            let control = pool(
                named(&config, &format!("activeflow-control/{node_id}")),
                CONTROL_POOL_SIZE,
            )?;
            let writer = pool(named(&config, &writer_name(node_id, incarnation)), 1)?;
            let lock_config = named(&config, &format!("activeflow-lock/{node_id}"));
            let node = node_id.to_owned();
            let lock = within(&runtime, CALL_TIMEOUT, async move {
                lock_node(&lock_config, &node).await
            });
            ((reads, control, writer), lock)
        };
        let lock = match lock {
            Ok(Some(client)) => client,
            Ok(None) => {
                return Err(StorageError::NodeLocked {
                    url: redact(url),
                    node_id: node_id.to_owned(),
                })
            }
            Err(e) => return Err(open_err(Box::new(e))),
        };
        let (pool, control, writer) = pools;
        let store = PgStore {
            inner: Arc::new(Inner {
                pool,
                control,
                writer: Mutex::new(writer),
                config,
                node_id: node_id.to_owned(),
                incarnation: Mutex::new(incarnation.to_owned()),
                max_row_bytes: options.max_row_bytes,
            }),
            runtime,
            _lock: lock,
            _stop: stop,
        };
        // Migrations may take long on a big database: no call deadline.
        store
            .run_for(
                None,
                |inner| async move { migrate::run(&inner.control).await },
            )
            .map_err(|e| match e {
                e @ (StorageError::PostgresMigration { .. } | StorageError::TooNew { .. }) => e,
                e => open_err(Box::new(e)),
            })?;
        Ok(store)
    }

    /// This store's node.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// Runs `f` on the store's runtime and waits for it on this thread, at most
    /// [`CALL_TIMEOUT`] (then [`StorageError::Timeout`], an outage).
    fn run<T, F, Fut>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = Result<T, StorageError>> + Send + 'static,
    {
        self.run_for(Some(CALL_TIMEOUT), f)
    }

    /// As [`PgStore::run`] with `deadline` (`None`: none). Any thread: a channel, not
    /// `block_on`, so a caller inside another runtime's context does not panic.
    fn run_for<T, F, Fut>(&self, deadline: Option<Duration>, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = Result<T, StorageError>> + Send + 'static,
    {
        let fut = f(self.inner.clone());
        match deadline {
            Some(d) => within(&self.runtime, d, fut),
            None => {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                self.runtime.spawn(async move {
                    let _ = tx.send(fut.await);
                });
                rx.recv().unwrap_or(Err(StorageError::RuntimeGone))
            }
        }
    }
}

/// Runs `fut` on `runtime`, waiting on this thread at most `deadline` (the future is dropped
/// then: its statement's connection is left to the pool's recycling or the server's timeouts).
fn within<T: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    deadline: Duration,
    fut: impl Future<Output = Result<T, StorageError>> + Send + 'static,
) -> Result<T, StorageError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let result = tokio::time::timeout(deadline, fut)
            .await
            .unwrap_or(Err(StorageError::Timeout(deadline)));
        let _ = tx.send(result);
    });
    // A backstop should the runtime itself be stuck.
    match rx.recv_timeout(deadline + Duration::from_secs(1)) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(StorageError::Timeout(deadline)),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(StorageError::RuntimeGone),
    }
}

/// One process per node per database: a session advisory lock on the node id, held by a
/// dedicated connection for the store's life (dropped with it, or when the connection dies).
/// `None` when another session holds it.
async fn lock_node(
    config: &tokio_postgres::Config,
    node_id: &str,
) -> Result<Option<tokio_postgres::Client>, StorageError> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(error = %e, "storage: the node lock's connection to postgres ended");
        }
    });
    // No statement or idle timeout on this session: it only holds the lock.
    client
        .batch_execute("SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0")
        .await?;
    let key = format!("activeflow-node/{node_id}");
    // A process of this node that just ended may still hold it for a moment (its session
    // ending on the server): a few tries.
    for _ in 0..NODE_LOCK_TRIES {
        let locked: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext($2))",
                &[&NODE_LOCK_CLASS, &key],
            )
            .await?
            .get(0);
        if locked {
            return Ok(Some(client));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(None)
}

/// A current-thread runtime driven by its own thread until the returned sender is dropped.
fn runtime_thread() -> std::io::Result<(tokio::runtime::Handle, tokio::sync::oneshot::Sender<()>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("storage-postgres".into())
        .spawn(move || {
            runtime.block_on(async {
                let _ = stopped.await;
            });
        })?;
    Ok((handle, stop))
}

/// `url` without its password, for messages: the `user:password@` of a URL, its
/// `password=` query parameter, and a key=value string's `password=...`.
pub(crate) fn redact(url: &str) -> String {
    let url = match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = &url[scheme + 3..at];
            let user = user.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    };
    if url.contains("://") {
        // The query: `password=...` up to the next `&`.
        let Some((base, query)) = url.split_once('?') else {
            return url;
        };
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=redacted"),
                _ => kv.to_owned(),
            })
            .collect();
        return format!("{base}?{}", query.join("&"));
    }
    redact_key_value(&url)
}

/// A key=value connection string without its password (quoted values included).
fn redact_key_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = find_key(rest, "password") {
        out.push_str(&rest[..pos]);
        let after = rest[pos..].split_once('=').map_or("", |(_, v)| v);
        let after = after.trim_start();
        out.push_str("password=redacted");
        rest = if let Some(quoted) = after.strip_prefix('\'') {
            // Up to the closing quote not escaped by a backslash.
            let mut end = quoted.len();
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '\'' if !escaped => {
                        end = i + 1;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            &quoted[end.min(quoted.len())..]
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            &after[end..]
        };
    }
    out.push_str(rest);
    out
}

/// Where `key` starts as a key (`key =` or `key=`, at a word start) in `s`.
fn find_key(s: &str, key: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(key) {
        let at = from + i;
        let starts = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let tail = lower[at + key.len()..].trim_start();
        if starts && tail.starts_with('=') {
            return Some(at);
        }
        from = at + key.len();
    }
    None
}

impl Store for PgStore {
    fn apply(&self, batch: &[Write]) -> Result<(), StorageError> {
        let batch = batch.to_vec();
        self.run(|inner| async move { write::apply(&inner, &batch).await })
    }

    fn apply_each(&self, batch: &[Write]) -> Result<Vec<Rejected>, StorageError> {
        let batch = batch.to_vec();
        self.run(|inner| async move { isolate::apply_each(&inner, &batch).await })
    }

    fn recover(&self, reason: &str, now: &str) -> Result<Recovery, StorageError> {
        let (reason, now) = (reason.to_owned(), now.to_owned());
        self.run(|inner| async move { write::recover(&inner, &reason, &now).await })
    }

    fn declare_node_lost(
        &self,
        node: &str,
        incarnation: &str,
        reason: &str,
        now: &str,
    ) -> Result<Option<NodeLoss>, StorageError> {
        let args = [node, incarnation, reason, now].map(str::to_owned);
        self.run(|inner| async move {
            let [node, incarnation, reason, now] = &args;
            write::declare_node_lost(&inner, node, incarnation, reason, now).await
        })
    }

    fn rejoin(&self, incarnation: &str) -> Result<(), StorageError> {
        let incarnation = incarnation.to_owned();
        self.run(|inner| async move { write::rejoin(&inner, &incarnation).await })
    }

    fn up_runs(&self) -> Result<Vec<(String, String)>, StorageError> {
        self.run(|inner| async move { read::up_runs(&inner).await })
    }

    fn replace_file_flows(&self, flows: &[FlowRow]) -> Result<(), StorageError> {
        let flows = flows.to_vec();
        self.run(|inner| async move { write::replace_file_flows(&inner, &flows).await })
    }

    fn flows(&self, source: FlowSource) -> Result<Vec<FlowRow>, StorageError> {
        self.run(|inner| async move { read::flows(&inner, source).await })
    }

    fn activeflows(
        &self,
        status: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Stored>, StorageError> {
        let status = status.map(str::to_owned);
        self.run(|inner| async move {
            read::activeflows(&inner, status.as_deref(), before, limit).await
        })
    }

    fn activeflow(&self, id: &str) -> Result<Option<Stored>, StorageError> {
        let id = id.to_owned();
        self.run(|inner| async move { read::activeflow(&inner, &id).await })
    }

    fn first_activeflow_since(&self, at: &str) -> Result<Option<u64>, StorageError> {
        let at = at.to_owned();
        self.run(|inner| async move { read::first_since(&inner, "activeflows", &at).await })
    }

    fn first_call_since(&self, at: &str) -> Result<Option<u64>, StorageError> {
        let at = at.to_owned();
        self.run(|inner| async move { read::first_since(&inner, "calls", &at).await })
    }

    fn activeflow_variables(&self, id: &str) -> Result<Option<Value>, StorageError> {
        let id = id.to_owned();
        self.run(|inner| async move { read::activeflow_variables(&inner, &id).await })
    }

    fn calls(
        &self,
        status: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Stored>, StorageError> {
        let status = status.map(str::to_owned);
        self.run(|inner| async move { read::calls(&inner, status.as_deref(), before, limit).await })
    }

    fn call(&self, id: &str) -> Result<Option<Stored>, StorageError> {
        let id = id.to_owned();
        self.run(|inner| async move { read::call(&inner, &id).await })
    }

    fn ended_calls(
        &self,
        range: &EndedRange,
        after: Option<&EndedCursor>,
        limit: usize,
    ) -> Result<Vec<EndedCall>, StorageError> {
        let (range, after) = (range.clone(), after.cloned());
        self.run(
            |inner| async move { read::ended_calls(&inner, &range, after.as_ref(), limit).await },
        )
    }
}

#[cfg(test)]
mod tests;
