//! A batch applied row by row when applying it whole failed: one transaction with a savepoint
//! around each write, so a write that fails on its own (a row over `storage.max_row_bytes`, a
//! constraint) is rolled back alone and the others still commit. An activeflow's write is
//! several rows; when it fails, its rows are tried one by one, and a header too big with its
//! final variables is stored without them, so its end (status, reason, times) and every action
//! that fits are kept. A transient failure (disk full, busy, I/O) aborts the whole transaction:
//! it is no write's fault, and the writer retries the batch.

use rusqlite::{Connection, Transaction};

use super::write::apply_one;
use crate::storage::model::{ActionRow, ActiveflowRow, Rejected, RejectedPart, Write};
use crate::storage::StorageError;

pub(super) fn apply_each(
    conn: &mut Connection,
    batch: &[Write],
) -> Result<Vec<Rejected>, StorageError> {
    let tx = conn.transaction()?;
    let mut rejected = Vec::new();
    for (index, write) in batch.iter().enumerate() {
        let Err(error) = isolated(&tx, write)? else {
            continue;
        };
        match write {
            Write::Activeflow { row, actions } => {
                for (part, error) in activeflow_rows(&tx, row, actions)? {
                    rejected.push(Rejected { index, part, error });
                }
            }
            _ => rejected.push(Rejected {
                index,
                part: RejectedPart::Whole,
                error,
            }),
        }
    }
    tx.commit()?;
    Ok(rejected)
}

/// Applies `write` under a savepoint: `Ok(Err(e))` when it failed on its own and was rolled
/// back, `Err` when the failure is transient.
fn isolated(tx: &Transaction<'_>, write: &Write) -> Result<Result<(), StorageError>, StorageError> {
    tx.execute_batch("SAVEPOINT one_write")?;
    match apply_one(tx, write) {
        Ok(()) => {
            tx.execute_batch("RELEASE one_write")?;
            Ok(Ok(()))
        }
        Err(error) if error.is_transient() => Err(error),
        Err(error) => {
            tx.execute_batch("ROLLBACK TO one_write; RELEASE one_write")?;
            Ok(Err(error))
        }
    }
}

/// An activeflow's write, row by row: the header (without its variables if it must), then each
/// action on its own. Returns the rows left out; a header that cannot be stored at all leaves
/// the whole write out (actions without their activeflow would be unreachable).
fn activeflow_rows(
    tx: &Transaction<'_>,
    row: &ActiveflowRow,
    actions: &[ActionRow],
) -> Result<Vec<(RejectedPart, StorageError)>, StorageError> {
    let with = |row: &ActiveflowRow, actions: Vec<ActionRow>| Write::Activeflow {
        row: row.clone(),
        actions,
    };
    let mut left_out = Vec::new();
    let mut header = row.clone();
    if let Err(error) = isolated(tx, &with(&header, Vec::new()))? {
        header.variables = None;
        if isolated(tx, &with(&header, Vec::new()))?.is_err() {
            return Ok(vec![(RejectedPart::Whole, error)]);
        }
        left_out.push((RejectedPart::Variables, error));
    }
    for action in actions {
        if let Err(error) = isolated(tx, &with(&header, vec![action.clone()]))? {
            left_out.push((RejectedPart::Action(action.index), error));
        }
    }
    Ok(left_out)
}
