//! The write side of the PostgreSQL store: one transaction per batch on the writer's own
//! connection, fenced by this run's `cluster_nodes` row, its statements pipelined (sent
//! without waiting for each answer); upserts keyed by the record's id that never turn an
//! ended row back into a running one; retention purges in chunks after the batch; recovery of
//! this node's records; and the cluster's node loss and rejoin.

use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;

use super::Inner;
use crate::storage::model::{
    ActiveflowRow, CallRow, FlowRow, FlowSource, NodeLoss, Recovery, Write,
};
use crate::storage::StorageError;

const UPSERT_ACTIVEFLOW: &str = "
    INSERT INTO activeflows (sequence, id, flow_id, status, end_reason, reference_type,
        reference_id, current_action, variables, tm_create, tm_update, tm_end,
        reference_activeflow_id, on_complete_flow_id, forward_action_id, webhook_uri,
        webhook_method, node_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
    ON CONFLICT (id, sequence) DO UPDATE SET status = excluded.status,
        end_reason = excluded.end_reason, current_action = excluded.current_action,
        forward_action_id = excluded.forward_action_id,
        variables = excluded.variables, tm_update = excluded.tm_update, tm_end = excluded.tm_end
    WHERE activeflows.status <> 'ended'";

/// An activeflow's actions in one statement.
const UPSERT_ACTIONS: &str = "
    INSERT INTO executed_actions (activeflow_id, activeflow_sequence, idx, body)
    SELECT $1, $2, a.idx, a.body FROM UNNEST($3::int[], $4::text[]) AS a (idx, body)
    ON CONFLICT (activeflow_id, idx) DO UPDATE SET body = excluded.body";

/// Rows one retention statement deletes at most.
const PURGE_CHUNK: i64 = 5000;

const UPSERT_CALL: &str = "
    INSERT INTO calls (sequence, id, sip_call_id, direction, source, destination, peer, status,
        end_cause, tm_create, tm_answer, tm_end, end_code, node_id, codec)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
    ON CONFLICT (id, sequence) DO UPDATE SET status = excluded.status,
        end_cause = excluded.end_cause, end_code = excluded.end_code,
        tm_answer = excluded.tm_answer, tm_end = excluded.tm_end, codec = excluded.codec
    WHERE calls.status <> 'ended'";

const UPSERT_FLOW: &str = "
    INSERT INTO flows (id, name, source, body, tm_update) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (id) DO UPDATE SET name = excluded.name, source = excluded.source,
        body = excluded.body, tm_update = excluded.tm_update";

/// Marks run `incarnation` of this node up (a new run, or a rejoin).
const NODE_UP: &str = "
    INSERT INTO cluster_nodes (node_id, incarnation, state, tm_update) VALUES ($1, $2, 'up', $3)
    ON CONFLICT (node_id, incarnation) DO UPDATE SET state = 'up', tm_update = excluded.tm_update";

/// Commits `batch` in one transaction; then its retention purges, if any, in chunks of their
/// own (never one big delete inside the batch).
pub(super) async fn apply(inner: &Inner, batch: &[Write]) -> Result<(), StorageError> {
    let writer = inner.writer();
    let mut client = writer.get().await?;
    let tx = client.transaction().await?;
    fence(&tx, inner).await?;
    // Statements prepared before the writes go out, so each write's first statement is sent
    // in batch order when the writes are first polled (the connection pipelines them).
    for sql in [UPSERT_ACTIVEFLOW, UPSERT_ACTIONS, UPSERT_CALL, UPSERT_FLOW] {
        tx.prepare_cached(sql).await?;
    }
    let writes = batch.iter().map(|w| apply_one(&tx, inner, w));
    futures_util::future::try_join_all(writes).await?;
    tx.commit().await?;
    for write in batch {
        if let Write::Purge { ended_before } = write {
            purge(&client, ended_before).await?;
        }
    }
    Ok(())
}

/// Fails with [`StorageError::Fenced`] unless this run is `up`; holds its row (`FOR SHARE`)
/// until the transaction ends, so `declare_node_lost` (an `UPDATE` of that row) waits for this
/// batch to commit, or this batch waits for the declaration and then finds the run lost.
pub(super) async fn fence(tx: &Transaction<'_>, inner: &Inner) -> Result<(), StorageError> {
    let up = tx
        .prepare_cached(
            "SELECT 1 FROM cluster_nodes WHERE node_id = $1 AND incarnation = $2
             AND state = 'up' FOR SHARE",
        )
        .await?;
    let incarnation = inner.incarnation();
    match tx.query_opt(&up, &[&inner.node_id, &incarnation]).await? {
        Some(_) => Ok(()),
        None => Err(StorageError::Fenced),
    }
}

pub(super) async fn apply_one(
    tx: &Transaction<'_>,
    inner: &Inner,
    write: &Write,
) -> Result<(), StorageError> {
    match write {
        Write::Activeflow { row, actions } => {
            check_size(inner, activeflow_bytes(row))?;
            for a in actions {
                check_size(inner, a.body.len() + 16)?;
            }
            upsert_activeflow(tx, inner, row).await?;
            if !actions.is_empty() {
                let stmt = tx.prepare_cached(UPSERT_ACTIONS).await?;
                let idx: Vec<i32> = actions
                    .iter()
                    .map(|a| i32::try_from(a.index).unwrap_or(i32::MAX))
                    .collect();
                let bodies: Vec<&str> = actions.iter().map(|a| a.body.as_str()).collect();
                tx.execute(&stmt, &[&row.id, &seq(row.sequence), &idx, &bodies])
                    .await?;
            }
        }
        // Soft delete (VoIPBIN's `tm_delete`), as SQLite.
        Write::DeleteActiveflow(id) => {
            tx.execute(
                "UPDATE activeflows SET tm_delete = $2 WHERE id = $1 AND tm_delete IS NULL",
                &[id, &crate::clock::timestamp()],
            )
            .await?;
        }
        Write::Call(row) => {
            check_size(inner, call_bytes(row))?;
            upsert_call(tx, inner, row).await?;
        }
        Write::Flow(row) => {
            check_size(inner, row.id.len() + row.name.len() + row.body.len() + 64)?;
            let stmt = tx.prepare_cached(UPSERT_FLOW).await?;
            tx.execute(
                &stmt,
                &[
                    &row.id,
                    &row.name,
                    &row.source.as_str(),
                    &row.body,
                    &row.tm_update,
                ],
            )
            .await?;
        }
        Write::DeleteFlow(id) => {
            tx.execute("DELETE FROM flows WHERE id = $1", &[id]).await?;
        }
        // After the commit (`apply`), or on its own in `apply_each`'s transaction.
        Write::Purge { .. } | Write::Barrier => {}
    }
    Ok(())
}

/// A sequence as PostgreSQL's BIGINT (clock sequences fit until about 2255).
pub(super) fn seq(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX)
}

fn check_size(inner: &Inner, bytes: usize) -> Result<(), StorageError> {
    if bytes > inner.max_row_bytes {
        return Err(StorageError::RowTooBig {
            bytes,
            max: inner.max_row_bytes,
        });
    }
    Ok(())
}

fn opt_len(s: &Option<String>) -> usize {
    s.as_ref().map_or(0, String::len)
}

fn activeflow_bytes(r: &ActiveflowRow) -> usize {
    r.id.len()
        + r.flow_id.len()
        + r.reference_id.len()
        + opt_len(&r.reference_activeflow_id)
        + opt_len(&r.on_complete_flow_id)
        + opt_len(&r.forward_action_id)
        + opt_len(&r.webhook_uri)
        + opt_len(&r.current_action)
        + opt_len(&r.variables)
        + 128
}

fn call_bytes(r: &CallRow) -> usize {
    r.id.len()
        + r.sip_call_id.len()
        + r.source.len()
        + r.destination.len()
        + r.peer.len()
        + opt_len(&r.end_cause)
        + 128
}

async fn upsert_activeflow(
    tx: &Transaction<'_>,
    inner: &Inner,
    r: &ActiveflowRow,
) -> Result<(), StorageError> {
    let stmt = tx.prepare_cached(UPSERT_ACTIVEFLOW).await?;
    let params: [&(dyn ToSql + Sync); 18] = [
        &seq(r.sequence),
        &r.id,
        &r.flow_id,
        &r.status,
        &r.end_reason,
        &r.reference_type,
        &r.reference_id,
        &r.current_action,
        &r.variables,
        &r.tm_create,
        &r.tm_update,
        &r.tm_end,
        &r.reference_activeflow_id,
        &r.on_complete_flow_id,
        &r.forward_action_id,
        &r.webhook_uri,
        &r.webhook_method,
        &inner.node_id,
    ];
    tx.execute(&stmt, &params).await?;
    Ok(())
}

async fn upsert_call(tx: &Transaction<'_>, inner: &Inner, r: &CallRow) -> Result<(), StorageError> {
    let stmt = tx.prepare_cached(UPSERT_CALL).await?;
    let end_code = r.end_code.map(i32::from);
    let params: [&(dyn ToSql + Sync); 15] = [
        &seq(r.sequence),
        &r.id,
        &r.sip_call_id,
        &r.direction,
        &r.source,
        &r.destination,
        &r.peer,
        &r.status,
        &r.end_cause,
        &r.tm_create,
        &r.tm_answer,
        &r.tm_end,
        &end_code,
        &inner.node_id,
        &r.codec,
    ];
    tx.execute(&stmt, &params).await?;
    Ok(())
}

/// Drops ended activeflows (with their actions) and ended calls that ended before the cut-off
/// (every node's: retention is the cluster's; every node purges, and a chunk another node
/// deleted first is simply not found). Outside any batch transaction, [`PURGE_CHUNK`] rows per
/// statement, each its own transaction, so no delete holds many locks or runs long.
pub(super) async fn purge(
    client: &tokio_postgres::Client,
    ended_before: &String,
) -> Result<(), StorageError> {
    let (mut activeflows, mut calls) = (0u64, 0u64);
    loop {
        let n = client
            .query_one(
                "WITH gone AS (
                     DELETE FROM activeflows WHERE ctid IN (SELECT ctid FROM activeflows
                         WHERE status = 'ended' AND tm_end < $1 LIMIT $2)
                     RETURNING id),
                 actions AS (
                     DELETE FROM executed_actions WHERE activeflow_id IN (SELECT id FROM gone))
                 SELECT count(*) FROM gone",
                &[ended_before, &PURGE_CHUNK],
            )
            .await?
            .get::<_, i64>(0);
        activeflows += n.max(0) as u64;
        if n < PURGE_CHUNK {
            break;
        }
    }
    loop {
        let n = client
            .execute(
                "DELETE FROM calls WHERE ctid IN (SELECT ctid FROM calls
                     WHERE status = 'ended' AND tm_end < $1 LIMIT $2)",
                &[ended_before, &PURGE_CHUNK],
            )
            .await?;
        calls += n;
        if n < PURGE_CHUNK as u64 {
            break;
        }
    }
    if activeflows + calls > 0 {
        tracing::info!(activeflows, calls, %ended_before, "storage: retention purge");
    }
    Ok(())
}

/// Ends what earlier runs of this node left running (`reason` at `now`), marks those runs lost
/// and this one up. Other nodes' records are theirs.
pub(super) async fn recover(
    inner: &Inner,
    reason: &str,
    now: &str,
) -> Result<Recovery, StorageError> {
    let mut client = inner.control.get().await?;
    let tx = client.transaction().await?;
    let incarnation = inner.incarnation();
    // First: an earlier run still writing (a second process with this node id) is fenced
    // from here on, and cannot re-open what is ended below.
    tx.execute(
        "UPDATE cluster_nodes SET state = 'lost', tm_update = $3
         WHERE node_id = $1 AND incarnation <> $2 AND state = 'up'",
        &[&inner.node_id, &incarnation, &now],
    )
    .await?;
    tx.execute(NODE_UP, &[&inner.node_id, &incarnation, &now])
        .await?;
    let activeflows = tx
        .execute(
            "UPDATE activeflows SET status = 'ended', end_reason = $1, tm_update = $2, tm_end = $2
             WHERE status <> 'ended' AND node_id = $3",
            &[&reason, &now, &inner.node_id],
        )
        .await?;
    let calls = tx
        .execute(
            "UPDATE calls SET status = 'ended', end_cause = $1, tm_end = $2
             WHERE status <> 'ended' AND node_id = $3",
            &[&reason, &now, &inner.node_id],
        )
        .await?;
    let max = |row: tokio_postgres::Row| row.get::<_, i64>(0).max(0) as u64;
    let last_activeflow_sequence = max(tx
        .query_one("SELECT COALESCE(MAX(sequence), 0) FROM activeflows", &[])
        .await?);
    let last_call_sequence = max(tx
        .query_one("SELECT COALESCE(MAX(sequence), 0) FROM calls", &[])
        .await?);
    tx.commit().await?;
    Ok(Recovery {
        activeflows: activeflows as usize,
        calls: calls as usize,
        last_activeflow_sequence,
        last_call_sequence,
    })
}

/// Declares run `incarnation` of `node` lost and ends its records, in one transaction (see
/// `Store::declare_node_lost`). Its `UPDATE` waits for a batch of that run holding the row
/// `FOR SHARE`, so no write of the lost run commits after it; but at most [`LOST_LOCK_WAIT`]:
/// a frozen or cut-off node may hold that batch open (until the server's idle timeout), so
/// then that run's writer sessions are terminated (found by `application_name`, see
/// `writer_name`), which ends the batch, and the declaration is tried once more.
pub(super) async fn declare_node_lost(
    inner: &Inner,
    node: &str,
    incarnation: &str,
    reason: &str,
    now: &str,
) -> Result<Option<NodeLoss>, StorageError> {
    match declare_once(inner, node, incarnation, reason, now).await {
        Err(StorageError::Postgres(e))
            if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) =>
        {
            let client = inner.control.get().await?;
            let ended = client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = $1",
                    &[&super::writer_name(node, incarnation)],
                )
                .await?;
            tracing::warn!(
                node,
                incarnation,
                sessions = ended,
                "storage: the lost run held its fence; its sessions were terminated"
            );
            declare_once(inner, node, incarnation, reason, now).await
        }
        other => other,
    }
}

/// How long a declaration waits for the lost run's batch to let go of its row.
const LOST_LOCK_WAIT: &str = "3s";

async fn declare_once(
    inner: &Inner,
    node: &str,
    incarnation: &str,
    reason: &str,
    now: &str,
) -> Result<Option<NodeLoss>, StorageError> {
    let mut client = inner.control.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOST_LOCK_WAIT}'"))
        .await?;
    let declared = tx
        .execute(
            "UPDATE cluster_nodes SET state = 'lost', tm_update = $3
             WHERE node_id = $1 AND incarnation = $2 AND state = 'up'",
            &[&node, &incarnation, &now],
        )
        .await?;
    if declared == 0 {
        return Ok(None);
    }
    let ids = |rows: Vec<tokio_postgres::Row>| -> Vec<String> {
        rows.iter().map(|r| r.get::<_, String>(0)).collect()
    };
    let activeflows = ids(tx
        .query(
            "UPDATE activeflows SET status = 'ended', end_reason = $2, tm_update = $3,
                 tm_end = $3
             WHERE node_id = $1 AND status <> 'ended' RETURNING id",
            &[&node, &reason, &now],
        )
        .await?);
    let calls = ids(tx
        .query(
            "UPDATE calls SET status = 'ended', end_cause = $2, tm_end = $3
             WHERE node_id = $1 AND status <> 'ended' RETURNING id",
            &[&node, &reason, &now],
        )
        .await?);
    tx.commit().await?;
    Ok(Some(NodeLoss { activeflows, calls }))
}

/// Writes for run `incarnation` from now on, marked up, on a writer connection named after it.
pub(super) async fn rejoin(inner: &Inner, incarnation: &str) -> Result<(), StorageError> {
    let client = inner.control.get().await?;
    client
        .execute(
            NODE_UP,
            &[&inner.node_id, &incarnation, &crate::clock::timestamp()],
        )
        .await?;
    let config = super::named(
        &inner.config,
        &super::writer_name(&inner.node_id, incarnation),
    );
    let writer = super::pool(config, 1)?;
    let old = std::mem::replace(
        &mut *inner.writer.lock().unwrap_or_else(|p| p.into_inner()),
        writer,
    );
    old.close();
    *inner.incarnation.lock().unwrap_or_else(|p| p.into_inner()) = incarnation.to_owned();
    Ok(())
}

/// Replaces every `file` flow (shared by the cluster: the flows directory of the node that
/// started last wins, as each node loads its own directory into memory anyway).
pub(super) async fn replace_file_flows(
    inner: &Inner,
    flows: &[FlowRow],
) -> Result<(), StorageError> {
    let mut client = inner.control.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "DELETE FROM flows WHERE source = $1",
        &[&FlowSource::File.as_str()],
    )
    .await?;
    // A flow the operator replaced over the API keeps its API row (the latest write wins).
    let stmt = tx
        .prepare_cached(
            "INSERT INTO flows (id, name, source, body, tm_update) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO NOTHING",
        )
        .await?;
    for f in flows {
        tx.execute(
            &stmt,
            &[&f.id, &f.name, &f.source.as_str(), &f.body, &f.tm_update],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
