//! The read side of the SQLite store: newest-first pages and single records, turned into the
//! JSON the API serves (the same field names as the in-memory records).

use rusqlite::{params, Connection, OptionalExtension, Row, ToSql};
use serde_json::{json, Value};

use crate::storage::model::{EndedCall, EndedCursor, EndedRange, FlowRow, FlowSource, Stored};
use crate::storage::record_json::{self, ActiveflowColumns, CallColumns};
use crate::storage::StorageError;

const ACTIVEFLOW_COLUMNS: &str = "sequence, id, flow_id, status, end_reason, reference_type,
    reference_id, current_action, tm_create, tm_update, tm_end, reference_activeflow_id, tm_delete,
    on_complete_flow_id, forward_action_id, webhook_uri, webhook_method";
const CALL_COLUMNS: &str = "sequence, id, sip_call_id, direction, source, destination, peer,
    status, end_cause, tm_create, tm_answer, tm_end, end_code, codec";

pub(super) fn flows(conn: &Connection, source: FlowSource) -> Result<Vec<FlowRow>, StorageError> {
    let mut stmt =
        conn.prepare_cached("SELECT id, name, body, tm_update FROM flows WHERE source = ?1")?;
    let rows = stmt.query_map([source.as_str()], |r| {
        Ok(FlowRow {
            id: r.get(0)?,
            name: r.get(1)?,
            source,
            body: r.get(2)?,
            tm_update: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `SELECT ... WHERE (status filter) AND sequence < before ORDER BY sequence DESC LIMIT n`.
fn page_sql(columns: &str, table: &str) -> String {
    format!(
        "SELECT {columns} FROM {table} WHERE (?1 IS NULL OR status = ?1) AND sequence < ?2
         ORDER BY sequence DESC LIMIT ?3"
    )
}

fn page_params(before: Option<u64>, limit: usize) -> (i64, i64) {
    let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
    (before, i64::try_from(limit).unwrap_or(i64::MAX))
}

pub(super) fn activeflows(
    conn: &Connection,
    status: Option<&str>,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<Stored>, StorageError> {
    let (before, limit) = page_params(before, limit);
    let heads: Vec<(u64, Value)> = {
        // Soft-deleted rows are left out of listings (VoIPBIN lists `deleted: false` only).
        let sql = format!(
            "SELECT {ACTIVEFLOW_COLUMNS} FROM activeflows WHERE (?1 IS NULL OR status = ?1)
             AND sequence < ?2 AND tm_delete IS NULL ORDER BY sequence DESC LIMIT ?3"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![status, before, limit], activeflow_head)?;
        rows.collect::<Result<_, _>>()?
    };
    heads
        .into_iter()
        .map(|(sequence, head)| with_actions(conn, sequence, head))
        .collect()
}

pub(super) fn activeflow(conn: &Connection, id: &str) -> Result<Option<Stored>, StorageError> {
    let sql = format!("SELECT {ACTIVEFLOW_COLUMNS} FROM activeflows WHERE id = ?1");
    let head = conn
        .prepare_cached(&sql)?
        .query_row([id], activeflow_head)
        .optional()?;
    head.map(|(sequence, head)| with_actions(conn, sequence, head))
        .transpose()
}

/// The sequence of the first row in `table` (a constant of ours, never input) created at or
/// after `at`: one step down the `tm_create` index (migration 3), not a scan. Sequences and
/// creation times grow together, so this is the lowest sequence created since.
pub(super) fn first_since(
    conn: &Connection,
    table: &'static str,
    at: &str,
) -> Result<Option<u64>, StorageError> {
    let sql = first_since_sql(table);
    let first: Option<i64> = conn
        .prepare_cached(&sql)?
        .query_row([at], |r| r.get(0))
        .optional()?;
    Ok(first.map(|s| s.max(0) as u64))
}

pub(super) fn first_since_sql(table: &'static str) -> String {
    format!(
        "SELECT sequence FROM {table} WHERE tm_create >= ?1 ORDER BY tm_create, sequence LIMIT 1"
    )
}

pub(super) fn activeflow_variables(
    conn: &Connection,
    id: &str,
) -> Result<Option<Value>, StorageError> {
    let text: Option<Option<String>> = conn
        .prepare_cached("SELECT variables FROM activeflows WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    Ok(match text {
        None => None,
        Some(None) => Some(json!({})),
        Some(Some(t)) => Some(serde_json::from_str(&t)?),
    })
}

/// An activeflow row without its actions, as (sequence, JSON) (see `record_json`).
fn activeflow_head(r: &Row<'_>) -> rusqlite::Result<(u64, Value)> {
    let columns = ActiveflowColumns {
        id: r.get(1)?,
        flow_id: r.get(2)?,
        status: r.get(3)?,
        end_reason: r.get(4)?,
        reference_type: r.get(5)?,
        reference_id: r.get(6)?,
        current_action: r.get(7)?,
        tm_create: r.get(8)?,
        tm_update: r.get(9)?,
        tm_end: r.get(10)?,
        reference_activeflow_id: r.get(11)?,
        tm_delete: r.get(12)?,
        on_complete_flow_id: r.get(13)?,
        forward_action_id: r.get(14)?,
        webhook_uri: r.get(15)?,
        webhook_method: r.get(16)?,
        node_id: None,
    };
    Ok((
        r.get::<_, i64>(0)?.max(0) as u64,
        record_json::activeflow(columns),
    ))
}

fn with_actions(conn: &Connection, sequence: u64, mut head: Value) -> Result<Stored, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT body FROM executed_actions WHERE activeflow_sequence = ?1 ORDER BY idx",
    )?;
    let bodies = stmt.query_map([sequence as i64], |r| r.get::<_, String>(0))?;
    let mut actions = Vec::new();
    for body in bodies {
        actions.push(serde_json::from_str::<Value>(&body?)?);
    }
    head["executed_actions"] = Value::Array(actions);
    Ok(Stored {
        sequence,
        json: head,
    })
}

pub(super) fn calls(
    conn: &Connection,
    status: Option<&str>,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<Stored>, StorageError> {
    let (before, limit) = page_params(before, limit);
    let mut stmt = conn.prepare_cached(&page_sql(CALL_COLUMNS, "calls"))?;
    let rows = stmt.query_map(params![status, before, limit], call_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn call(conn: &Connection, id: &str) -> Result<Option<Stored>, StorageError> {
    let sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], call_row)
        .optional()?)
}

fn call_row(r: &Row<'_>) -> rusqlite::Result<Stored> {
    let columns = CallColumns {
        id: r.get(1)?,
        sip_call_id: r.get(2)?,
        direction: r.get(3)?,
        source: r.get(4)?,
        destination: r.get(5)?,
        peer: r.get(6)?,
        status: r.get(7)?,
        end_cause: r.get(8)?,
        tm_create: r.get(9)?,
        tm_answer: r.get(10)?,
        tm_end: r.get(11)?,
        end_code: r.get(12)?,
        codec: r.get(13)?,
        node_id: None,
    };
    Ok(Stored {
        sequence: r.get::<_, i64>(0)?.max(0) as u64,
        json: record_json::call(columns),
    })
}

/// The CDR export's page: ended calls by (`tm_end`, `id`) from the `tm_end` index (a range
/// scan; ties sorted by id), each with the first activeflow it started (one step down the
/// `reference_id` index of migration 5). `$upper` is the condition on `to` (`?5`), or nothing
/// for an open range (as PostgreSQL's, which has no sentinel that sorts last).
macro_rules! ended_calls_sql {
    ($upper:literal) => {
        concat!(
            "SELECT c.id, (SELECT a.id FROM activeflows a WHERE a.reference_id = c.id
                  AND a.reference_type = 'call' ORDER BY a.sequence LIMIT 1),
                c.sip_call_id, c.direction, c.source, c.destination, c.peer, c.end_cause,
                c.end_code, c.codec, c.tm_create, c.tm_answer, c.tm_end
            FROM calls c
            WHERE c.tm_end IS NOT NULL AND c.status = 'ended' AND c.tm_end >= ?1 ",
            $upper,
            " AND (c.tm_end > ?2 OR (c.tm_end = ?2 AND c.id > ?3))
            ORDER BY c.tm_end, c.id LIMIT ?4"
        )
    };
}

/// A page of `[from, to)`.
pub(super) const ENDED_CALLS_SQL: &str = ended_calls_sql!("AND c.tm_end < ?5");
/// A page of `[from, …)`.
pub(super) const ENDED_CALLS_OPEN_SQL: &str = ended_calls_sql!("");

pub(super) fn ended_calls(
    conn: &Connection,
    range: &EndedRange,
    after: Option<&EndedCursor>,
    limit: usize,
) -> Result<Vec<EndedCall>, StorageError> {
    let page = range.page_params(after);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut params: Vec<&dyn ToSql> = vec![&page.lower, &page.after_end, &page.after_id, &limit];
    let sql = match &page.upper {
        Some(upper) => {
            params.push(upper);
            ENDED_CALLS_SQL
        }
        None => ENDED_CALLS_OPEN_SQL,
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params.as_slice(), |r| {
        Ok(EndedCall {
            id: r.get(0)?,
            activeflow_id: r.get(1)?,
            node_id: None,
            sip_call_id: r.get(2)?,
            direction: r.get(3)?,
            source: r.get(4)?,
            destination: r.get(5)?,
            peer: r.get(6)?,
            end_cause: r.get(7)?,
            end_code: r.get(8)?,
            codec: r.get(9)?,
            tm_create: r.get(10)?,
            tm_answer: r.get(11)?,
            tm_end: r.get(12)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
