//! A batch applied row by row when applying it whole failed, as SQLite's `isolate`: one
//! transaction (fenced like any batch) with a savepoint around each write, so a write that
//! fails on its own (over `storage.max_row_bytes`, a constraint, bad data) is rolled back alone;
//! an activeflow's rows are then tried one by one (its header without its final variables if it
//! must). A transient failure aborts the whole transaction: the writer retries the batch.

use deadpool_postgres::Transaction;

use super::write::{apply_one, fence};
use super::Inner;
use crate::storage::model::{ActionRow, ActiveflowRow, Rejected, RejectedPart, Write};
use crate::storage::StorageError;

pub(super) async fn apply_each(
    inner: &Inner,
    batch: &[Write],
) -> Result<Vec<Rejected>, StorageError> {
    let writer = inner.writer();
    let mut client = writer.get().await?;
    let tx = client.transaction().await?;
    fence(&tx, inner).await?;
    let mut rejected = Vec::new();
    for (index, write) in batch.iter().enumerate() {
        let Err(error) = isolated(&tx, inner, write).await? else {
            continue;
        };
        match write {
            Write::Activeflow { row, actions } => {
                for (part, error) in activeflow_rows(&tx, inner, row, actions).await? {
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
    tx.commit().await?;
    for write in batch {
        if let Write::Purge { ended_before } = write {
            super::write::purge(&client, ended_before).await?;
        }
    }
    Ok(rejected)
}

/// Applies `write` under a savepoint: `Ok(Err(e))` when it failed on its own and was rolled
/// back, `Err` when the failure is transient.
async fn isolated(
    tx: &Transaction<'_>,
    inner: &Inner,
    write: &Write,
) -> Result<Result<(), StorageError>, StorageError> {
    tx.batch_execute("SAVEPOINT one_write").await?;
    match apply_one(tx, inner, write).await {
        Ok(()) => {
            tx.batch_execute("RELEASE SAVEPOINT one_write").await?;
            Ok(Ok(()))
        }
        Err(error) if error.is_transient() => Err(error),
        Err(error) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT one_write; RELEASE SAVEPOINT one_write")
                .await?;
            Ok(Err(error))
        }
    }
}

/// An activeflow's write, row by row (see SQLite's `isolate::activeflow_rows`).
async fn activeflow_rows(
    tx: &Transaction<'_>,
    inner: &Inner,
    row: &ActiveflowRow,
    actions: &[ActionRow],
) -> Result<Vec<(RejectedPart, StorageError)>, StorageError> {
    let with = |row: &ActiveflowRow, actions: Vec<ActionRow>| Write::Activeflow {
        row: row.clone(),
        actions,
    };
    let mut left_out = Vec::new();
    let mut header = row.clone();
    if let Err(error) = isolated(tx, inner, &with(&header, Vec::new())).await? {
        header.variables = None;
        if isolated(tx, inner, &with(&header, Vec::new()))
            .await?
            .is_err()
        {
            return Ok(vec![(RejectedPart::Whole, error)]);
        }
        left_out.push((RejectedPart::Variables, error));
    }
    for action in actions {
        if let Err(error) = isolated(tx, inner, &with(&header, vec![action.clone()])).await? {
            left_out.push((RejectedPart::Action(action.index), error));
        }
    }
    Ok(left_out)
}
