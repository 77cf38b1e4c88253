//! The read side of the PostgreSQL store: every node's records, newest first by sequence (the
//! primary key, walked backwards: no sort, no scan past the page), and single records, as the
//! same JSON SQLite serves plus each record's `node_id`.

use serde_json::{json, Value};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::write::seq;
use super::Inner;
use crate::storage::model::{EndedCall, EndedCursor, EndedRange, FlowRow, FlowSource, Stored};
use crate::storage::record_json::{self, ActiveflowColumns, CallColumns};
use crate::storage::StorageError;

const ACTIVEFLOW_COLUMNS: &str = "sequence, id, flow_id, status, end_reason, reference_type,
    reference_id, current_action, tm_create, tm_update, tm_end, reference_activeflow_id, tm_delete,
    on_complete_flow_id, forward_action_id, webhook_uri, webhook_method, node_id";
const CALL_COLUMNS: &str = "sequence, id, sip_call_id, direction, source, destination, peer,
    status, end_cause, tm_create, tm_answer, tm_end, end_code, node_id, codec";

pub(super) async fn flows(inner: &Inner, source: FlowSource) -> Result<Vec<FlowRow>, StorageError> {
    let client = inner.pool.get().await?;
    let stmt = client
        .prepare_cached("SELECT id, name, body, tm_update FROM flows WHERE source = $1")
        .await?;
    let rows = client.query(&stmt, &[&source.as_str()]).await?;
    Ok(rows
        .iter()
        .map(|r| FlowRow {
            id: r.get(0),
            name: r.get(1),
            source,
            body: r.get(2),
            tm_update: r.get(3),
        })
        .collect())
}

/// A page's WHERE and ORDER: with or without a status filter, so each form has its own plan
/// (a backward walk of the primary key either way; see the EXPLAIN test).
pub(super) fn page_sql(columns: &str, table: &str, status: bool, extra: &str) -> String {
    let status = if status { "status = $3 AND " } else { "" };
    format!(
        "SELECT {columns} FROM {table} WHERE {status}sequence < $1 {extra}
         ORDER BY sequence DESC LIMIT $2"
    )
}

fn page_params(before: Option<u64>, limit: usize) -> (i64, i64) {
    (
        before.map_or(i64::MAX, seq),
        i64::try_from(limit).unwrap_or(i64::MAX),
    )
}

async fn page(
    inner: &Inner,
    sql: &str,
    status: Option<&str>,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<Row>, StorageError> {
    let (before, limit) = page_params(before, limit);
    let client = inner.pool.get().await?;
    let stmt = client.prepare_cached(sql).await?;
    Ok(match status {
        Some(status) => client.query(&stmt, &[&before, &limit, &status]).await?,
        None => client.query(&stmt, &[&before, &limit]).await?,
    })
}

pub(super) async fn activeflows(
    inner: &Inner,
    status: Option<&str>,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<Stored>, StorageError> {
    // Soft-deleted rows are left out of listings (VoIPBIN lists `deleted: false` only).
    let sql = page_sql(
        ACTIVEFLOW_COLUMNS,
        "activeflows",
        status.is_some(),
        "AND tm_delete IS NULL",
    );
    let rows = page(inner, &sql, status, before, limit).await?;
    let heads: Vec<(u64, Value)> = rows.iter().map(activeflow_head).collect();
    // Every listed activeflow's actions in one query, not one per activeflow.
    let ids: Vec<String> = heads
        .iter()
        .map(|(_, h)| h["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let client = inner.pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT activeflow_id, body FROM executed_actions
             WHERE activeflow_id = ANY($1) ORDER BY activeflow_id, idx",
        )
        .await?;
    let mut actions: std::collections::HashMap<String, Vec<Value>> = Default::default();
    for r in client.query(&stmt, &[&ids]).await? {
        let body = serde_json::from_str::<Value>(r.get::<_, &str>(1))?;
        actions.entry(r.get(0)).or_default().push(body);
    }
    Ok(heads
        .into_iter()
        .map(|(sequence, mut head)| {
            let id = head["id"].as_str().unwrap_or_default();
            let list = actions.remove(id).unwrap_or_default();
            head["executed_actions"] = Value::Array(list);
            Stored {
                sequence,
                json: head,
            }
        })
        .collect())
}

pub(super) async fn activeflow(inner: &Inner, id: &str) -> Result<Option<Stored>, StorageError> {
    let head = {
        let client = inner.pool.get().await?;
        let sql = format!("SELECT {ACTIVEFLOW_COLUMNS} FROM activeflows WHERE id = $1");
        let stmt = client.prepare_cached(&sql).await?;
        client.query_opt(&stmt, &[&id]).await?
    };
    match head {
        None => Ok(None),
        Some(row) => {
            let (sequence, head) = activeflow_head(&row);
            Ok(Some(with_actions(inner, sequence, head).await?))
        }
    }
}

/// The sequence of the first row in `table` (a constant of ours) created at or after `at`:
/// one step down the `tm_create` index.
pub(super) async fn first_since(
    inner: &Inner,
    table: &'static str,
    at: &str,
) -> Result<Option<u64>, StorageError> {
    let client = inner.pool.get().await?;
    let stmt = client.prepare_cached(&first_since_sql(table)).await?;
    let row = client.query_opt(&stmt, &[&at]).await?;
    Ok(row.map(|r| r.get::<_, i64>(0).max(0) as u64))
}

pub(super) fn first_since_sql(table: &'static str) -> String {
    format!(
        "SELECT sequence FROM {table} WHERE tm_create >= $1 ORDER BY tm_create, sequence LIMIT 1"
    )
}

pub(super) async fn activeflow_variables(
    inner: &Inner,
    id: &str,
) -> Result<Option<Value>, StorageError> {
    let client = inner.pool.get().await?;
    let row = client
        .query_opt("SELECT variables FROM activeflows WHERE id = $1", &[&id])
        .await?;
    Ok(match row.map(|r| r.get::<_, Option<String>>(0)) {
        None => None,
        Some(None) => Some(json!({})),
        Some(Some(t)) => Some(serde_json::from_str(&t)?),
    })
}

fn activeflow_head(r: &Row) -> (u64, Value) {
    let columns = ActiveflowColumns {
        id: r.get(1),
        flow_id: r.get(2),
        status: r.get(3),
        end_reason: r.get(4),
        reference_type: r.get(5),
        reference_id: r.get(6),
        current_action: r.get(7),
        tm_create: r.get(8),
        tm_update: r.get(9),
        tm_end: r.get(10),
        reference_activeflow_id: r.get(11),
        tm_delete: r.get(12),
        on_complete_flow_id: r.get(13),
        forward_action_id: r.get(14),
        webhook_uri: r.get(15),
        webhook_method: r.get(16),
        node_id: Some(r.get(17)),
    };
    (
        r.get::<_, i64>(0).max(0) as u64,
        record_json::activeflow(columns),
    )
}

async fn with_actions(
    inner: &Inner,
    sequence: u64,
    mut head: Value,
) -> Result<Stored, StorageError> {
    let client = inner.pool.get().await?;
    let stmt = client
        .prepare_cached("SELECT body FROM executed_actions WHERE activeflow_id = $1 ORDER BY idx")
        .await?;
    let id = head["id"].as_str().unwrap_or_default().to_owned();
    let rows = client.query(&stmt, &[&id]).await?;
    let mut actions = Vec::with_capacity(rows.len());
    for r in &rows {
        actions.push(serde_json::from_str::<Value>(r.get::<_, &str>(0))?);
    }
    head["executed_actions"] = Value::Array(actions);
    Ok(Stored {
        sequence,
        json: head,
    })
}

pub(super) async fn calls(
    inner: &Inner,
    status: Option<&str>,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<Stored>, StorageError> {
    let sql = page_sql(CALL_COLUMNS, "calls", status.is_some(), "");
    let rows = page(inner, &sql, status, before, limit).await?;
    Ok(rows.iter().map(call_row).collect())
}

pub(super) async fn call(inner: &Inner, id: &str) -> Result<Option<Stored>, StorageError> {
    let client = inner.pool.get().await?;
    let sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE id = $1");
    let stmt = client.prepare_cached(&sql).await?;
    Ok(client
        .query_opt(&stmt, &[&id])
        .await?
        .as_ref()
        .map(call_row))
}

fn call_row(r: &Row) -> Stored {
    let columns = CallColumns {
        id: r.get(1),
        sip_call_id: r.get(2),
        direction: r.get(3),
        source: r.get(4),
        destination: r.get(5),
        peer: r.get(6),
        status: r.get(7),
        end_cause: r.get(8),
        tm_create: r.get(9),
        tm_answer: r.get(10),
        tm_end: r.get(11),
        end_code: r
            .get::<_, Option<i32>>(12)
            .and_then(|c| u16::try_from(c).ok()),
        codec: r.get(14),
        node_id: Some(r.get(13)),
    };
    Stored {
        sequence: r.get::<_, i64>(0).max(0) as u64,
        json: record_json::call(columns),
    }
}

/// The CDR export's page, as SQLite's: every node's ended calls by (`tm_end`, `id`) from the
/// `tm_end` index (ties sorted incrementally), each with the first activeflow it started (the
/// `reference_id` index of migration 8) and the node that wrote it. `$upper` is the condition
/// on `to` (`$5`), or nothing for an open range: no sentinel stands in for it, as none sorts
/// last under every collation (see `EndedRange::page_params`).
macro_rules! ended_calls_sql {
    ($upper:literal) => {
        concat!(
            "SELECT c.id, (SELECT a.id FROM activeflows a WHERE a.reference_id = c.id
                  AND a.reference_type = 'call' ORDER BY a.sequence LIMIT 1),
                c.sip_call_id, c.direction, c.source, c.destination, c.peer, c.end_cause,
                c.end_code, c.codec, c.tm_create, c.tm_answer, c.tm_end, c.node_id
            FROM calls c
            WHERE c.tm_end IS NOT NULL AND c.status = 'ended' AND c.tm_end >= $1 ",
            $upper,
            " AND (c.tm_end > $2 OR (c.tm_end = $2 AND c.id > $3))
            ORDER BY c.tm_end, c.id LIMIT $4"
        )
    };
}

/// A page of `[from, to)`.
pub(super) const ENDED_CALLS_SQL: &str = ended_calls_sql!("AND c.tm_end < $5");
/// A page of `[from, …)`.
pub(super) const ENDED_CALLS_OPEN_SQL: &str = ended_calls_sql!("");

pub(super) async fn ended_calls(
    inner: &Inner,
    range: &EndedRange,
    after: Option<&EndedCursor>,
    limit: usize,
) -> Result<Vec<EndedCall>, StorageError> {
    let page = range.page_params(after);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let client = inner.pool.get().await?;
    let mut params: Vec<&(dyn ToSql + Sync)> =
        vec![&page.lower, &page.after_end, &page.after_id, &limit];
    let sql = match &page.upper {
        Some(upper) => {
            params.push(upper);
            ENDED_CALLS_SQL
        }
        None => ENDED_CALLS_OPEN_SQL,
    };
    let stmt = client.prepare_cached(sql).await?;
    let rows = client.query(&stmt, &params).await?;
    Ok(rows
        .iter()
        .map(|r| EndedCall {
            id: r.get(0),
            activeflow_id: r.get(1),
            sip_call_id: r.get(2),
            direction: r.get(3),
            source: r.get(4),
            destination: r.get(5),
            peer: r.get(6),
            end_cause: r.get(7),
            end_code: r
                .get::<_, Option<i32>>(8)
                .and_then(|c| u16::try_from(c).ok()),
            codec: r.get(9),
            tm_create: r.get(10),
            tm_answer: r.get(11),
            tm_end: r.get(12),
            node_id: Some(r.get(13)),
        })
        .collect())
}

/// Every run marked up in `cluster_nodes`, as (node id, incarnation).
pub(super) async fn up_runs(inner: &Inner) -> Result<Vec<(String, String)>, StorageError> {
    let client = inner.control.get().await?;
    let rows = client
        .query(
            "SELECT node_id, incarnation FROM cluster_nodes WHERE state = 'up'
             ORDER BY node_id, incarnation",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
