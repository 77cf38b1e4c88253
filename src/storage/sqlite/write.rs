//! The write side of the SQLite store: one transaction per batch, upserts that never turn an
//! ended row back into a running one, retention purges, and start-up recovery.

use rusqlite::{params, Connection, Transaction};

use crate::storage::model::{ActiveflowRow, CallRow, FlowRow, FlowSource, Recovery, Write};
use crate::storage::StorageError;

const UPSERT_ACTIVEFLOW: &str = "
    INSERT INTO activeflows (sequence, id, flow_id, status, end_reason, reference_type,
        reference_id, current_action, variables, tm_create, tm_update, tm_end,
        reference_activeflow_id, on_complete_flow_id, forward_action_id, webhook_uri,
        webhook_method)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
    ON CONFLICT (sequence) DO UPDATE SET status = excluded.status,
        end_reason = excluded.end_reason, current_action = excluded.current_action,
        forward_action_id = excluded.forward_action_id,
        variables = excluded.variables, tm_update = excluded.tm_update, tm_end = excluded.tm_end
    WHERE activeflows.status != 'ended'";

const UPSERT_ACTION: &str = "
    INSERT OR REPLACE INTO executed_actions (activeflow_sequence, idx, body) VALUES (?1, ?2, ?3)";

const UPSERT_CALL: &str = "
    INSERT INTO calls (sequence, id, sip_call_id, direction, source, destination, peer, status,
        end_cause, tm_create, tm_answer, tm_end, end_code, codec)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
    ON CONFLICT (sequence) DO UPDATE SET status = excluded.status,
        end_cause = excluded.end_cause, end_code = excluded.end_code, tm_answer = excluded.tm_answer, tm_end = excluded.tm_end,
        codec = excluded.codec
    WHERE calls.status != 'ended'";

const UPSERT_FLOW: &str = "
    INSERT OR REPLACE INTO flows (id, name, source, body, tm_update) VALUES (?1, ?2, ?3, ?4, ?5)";

pub(super) fn apply(conn: &mut Connection, batch: &[Write]) -> Result<(), StorageError> {
    let tx = conn.transaction()?;
    for write in batch {
        apply_one(&tx, write)?;
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn apply_one(tx: &Transaction<'_>, write: &Write) -> Result<(), StorageError> {
    match write {
        Write::Activeflow { row, actions } => {
            upsert_activeflow(tx, row)?;
            let mut stmt = tx.prepare_cached(UPSERT_ACTION)?;
            for a in actions {
                stmt.execute(params![row.sequence as i64, a.index as i64, a.body])?;
            }
        }
        // Soft delete (VoIPBIN's `tm_delete`): the row and its actions stay readable by id;
        // listings leave it out. Deleting twice keeps the first time.
        Write::DeleteActiveflow(id) => {
            tx.execute(
                "UPDATE activeflows SET tm_delete = ?2 WHERE id = ?1 AND tm_delete IS NULL",
                params![id, crate::clock::timestamp()],
            )?;
        }
        Write::Call(row) => upsert_call(tx, row)?,
        Write::Flow(row) => upsert_flow(tx, row)?,
        Write::DeleteFlow(id) => {
            tx.execute("DELETE FROM flows WHERE id = ?1", [id])?;
        }
        Write::Purge { ended_before } => purge(tx, ended_before)?,
        Write::Barrier => {}
    }
    Ok(())
}

fn upsert_activeflow(tx: &Transaction<'_>, r: &ActiveflowRow) -> rusqlite::Result<()> {
    tx.prepare_cached(UPSERT_ACTIVEFLOW)?.execute(params![
        r.sequence as i64,
        r.id,
        r.flow_id,
        r.status,
        r.end_reason,
        r.reference_type,
        r.reference_id,
        r.current_action,
        r.variables,
        r.tm_create,
        r.tm_update,
        r.tm_end,
        r.reference_activeflow_id,
        r.on_complete_flow_id,
        r.forward_action_id,
        r.webhook_uri,
        r.webhook_method,
    ])?;
    Ok(())
}

fn upsert_call(tx: &Transaction<'_>, r: &CallRow) -> rusqlite::Result<()> {
    tx.prepare_cached(UPSERT_CALL)?.execute(params![
        r.sequence as i64,
        r.id,
        r.sip_call_id,
        r.direction,
        r.source,
        r.destination,
        r.peer,
        r.status,
        r.end_cause,
        r.tm_create,
        r.tm_answer,
        r.tm_end,
        r.end_code,
        r.codec,
    ])?;
    Ok(())
}

fn upsert_flow(tx: &Transaction<'_>, r: &FlowRow) -> rusqlite::Result<()> {
    tx.prepare_cached(UPSERT_FLOW)?.execute(params![
        r.id,
        r.name,
        r.source.as_str(),
        r.body,
        r.tm_update
    ])?;
    Ok(())
}

/// Drops ended activeflows (with their actions) and ended calls that ended before the cut-off.
fn purge(tx: &Transaction<'_>, ended_before: &str) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM executed_actions WHERE activeflow_sequence IN (SELECT sequence
             FROM activeflows WHERE status = 'ended' AND tm_end < ?1)",
        [ended_before],
    )?;
    let activeflows = tx.execute(
        "DELETE FROM activeflows WHERE status = 'ended' AND tm_end < ?1",
        [ended_before],
    )?;
    let calls = tx.execute(
        "DELETE FROM calls WHERE status = 'ended' AND tm_end < ?1",
        [ended_before],
    )?;
    if activeflows + calls > 0 {
        tracing::info!(activeflows, calls, ended_before, "storage: retention purge");
    }
    Ok(())
}

pub(super) fn recover(
    conn: &mut Connection,
    reason: &str,
    now: &str,
) -> Result<Recovery, StorageError> {
    let tx = conn.transaction()?;
    let activeflows = tx.execute(
        "UPDATE activeflows SET status = 'ended', end_reason = ?1, tm_update = ?2, tm_end = ?2
         WHERE status != 'ended'",
        params![reason, now],
    )?;
    let calls = tx.execute(
        "UPDATE calls SET status = 'ended', end_cause = ?1, tm_end = ?2 WHERE status != 'ended'",
        params![reason, now],
    )?;
    let max = |table: &str| -> rusqlite::Result<u64> {
        tx.query_row(
            &format!("SELECT COALESCE(MAX(sequence), 0) FROM {table}"),
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|v| v.max(0) as u64)
    };
    let recovery = Recovery {
        activeflows,
        calls,
        last_activeflow_sequence: max("activeflows")?,
        last_call_sequence: max("calls")?,
    };
    tx.commit()?;
    Ok(recovery)
}

pub(super) fn replace_file_flows(
    conn: &mut Connection,
    flows: &[FlowRow],
) -> Result<(), StorageError> {
    let tx = conn.transaction()?;
    tx.execute(
        "DELETE FROM flows WHERE source = ?1",
        [FlowSource::File.as_str()],
    )?;
    // A flow the operator replaced over the API keeps its API row (the latest write wins).
    let mut stmt = tx.prepare_cached(
        "INSERT INTO flows (id, name, source, body, tm_update) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO NOTHING",
    )?;
    for f in flows {
        stmt.execute(params![
            f.id,
            f.name,
            f.source.as_str(),
            f.body,
            f.tm_update
        ])?;
    }
    drop(stmt);
    tx.commit()?;
    Ok(())
}
