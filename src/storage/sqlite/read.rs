//! The read side of the SQLite store: newest-first pages and single records, turned into the
//! JSON the API serves (the same field names as the in-memory records).

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::{json, Value};

use crate::storage::model::{FlowRow, FlowSource, Stored};
use crate::storage::StorageError;

/// VoIPBIN's "none" id and start-marker id (as `engine::record` writes them; storage may not
/// import the engine).
const NIL_ID: &str = "00000000-0000-0000-0000-000000000000";
const START_ACTION_ID: &str = "00000000-0000-0000-0000-000000000001";

const ACTIVEFLOW_COLUMNS: &str = "sequence, id, flow_id, status, end_reason, reference_type,
    reference_id, current_action, tm_create, tm_update, tm_end, reference_activeflow_id, tm_delete,
    on_complete_flow_id, forward_action_id, webhook_uri, webhook_method";
const CALL_COLUMNS: &str = "sequence, id, sip_call_id, direction, source, destination, peer,
    status, end_cause, tm_create, tm_answer, tm_end";

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

/// An activeflow row without its actions, as (sequence, JSON): the in-memory record's shape
/// (`engine::record`), VoIPBIN's fields included: what a row does not hold (rows written before
/// migration 3) reads as VoIPBIN's "none".
fn activeflow_head(r: &Row<'_>) -> rusqlite::Result<(u64, Value)> {
    let current: Option<String> = r.get(7)?;
    let current = current.and_then(|c| serde_json::from_str::<Value>(&c).ok());
    let current = match current {
        Some(Value::Object(mut action)) => {
            action.entry("next_id").or_insert_with(|| NIL_ID.into());
            Value::Object(action)
        }
        _ => json!({"id": START_ACTION_ID, "next_id": NIL_ID, "type": "", "option": {}}),
    };
    Ok((
        r.get::<_, i64>(0)?.max(0) as u64,
        json!({
            "id": r.get::<_, String>(1)?,
            "flow_id": r.get::<_, String>(2)?,
            "status": r.get::<_, String>(3)?,
            "end_reason": r.get::<_, Option<String>>(4)?,
            "reference_type": r.get::<_, String>(5)?,
            "reference_id": r.get::<_, String>(6)?,
            "reference_activeflow_id": r.get::<_, Option<String>>(11)?
                .unwrap_or_else(|| NIL_ID.into()),
            "on_complete_flow_id": r.get::<_, Option<String>>(13)?
                .unwrap_or_else(|| NIL_ID.into()),
            "webhook_uri": r.get::<_, Option<String>>(15)?.unwrap_or_default(),
            "webhook_method": r.get::<_, Option<String>>(16)?.unwrap_or_default(),
            "current_action": current,
            "forward_action_id": r.get::<_, Option<String>>(14)?
                .unwrap_or_else(|| NIL_ID.into()),
            "executed_actions": [],
            "tm_create": r.get::<_, String>(8)?,
            "tm_update": r.get::<_, String>(9)?,
            "tm_end": r.get::<_, Option<String>>(10)?,
            "tm_delete": r.get::<_, Option<String>>(12)?,
        }),
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
    Ok(Stored {
        sequence: r.get::<_, i64>(0)?.max(0) as u64,
        json: json!({
            "id": r.get::<_, String>(1)?,
            "sip_call_id": r.get::<_, String>(2)?,
            "direction": r.get::<_, String>(3)?,
            "source": r.get::<_, String>(4)?,
            "destination": r.get::<_, String>(5)?,
            "peer": r.get::<_, String>(6)?,
            "status": r.get::<_, String>(7)?,
            "end_cause": r.get::<_, Option<String>>(8)?,
            "tm_create": r.get::<_, String>(9)?,
            "tm_answer": r.get::<_, Option<String>>(10)?,
            "tm_end": r.get::<_, Option<String>>(11)?,
        }),
    })
}
