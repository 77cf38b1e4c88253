//! A batch applied write by write when applying it whole failed: one transaction with a
//! savepoint around each write, so a write that fails on its own (a row over
//! `storage.max_row_bytes`, a constraint) is rolled back alone and the others still commit. A
//! transient failure (disk full, busy, I/O) aborts the whole transaction: it is no write's
//! fault, and the writer retries the batch.

use rusqlite::Connection;

use super::write::apply_one;
use crate::storage::model::{Rejected, Write};
use crate::storage::StorageError;

pub(super) fn apply_each(
    conn: &mut Connection,
    batch: &[Write],
) -> Result<Vec<Rejected>, StorageError> {
    let tx = conn.transaction()?;
    let mut rejected = Vec::new();
    for (index, write) in batch.iter().enumerate() {
        tx.execute_batch("SAVEPOINT one_write")?;
        match apply_one(&tx, write) {
            Ok(()) => tx.execute_batch("RELEASE one_write")?,
            Err(error) if error.is_transient() => return Err(error),
            Err(error) => {
                tx.execute_batch("ROLLBACK TO one_write; RELEASE one_write")?;
                rejected.push(Rejected { index, error });
            }
        }
    }
    tx.commit()?;
    Ok(rejected)
}
