//! Listings and lookups past what memory holds: reads from storage run on the blocking pool,
//! and a page merges the in-memory records (the live view, preferred for an item in both) with
//! stored ones, newest first by the shared sequence.

use actix_web::web;
use serde_json::Value;

use super::ApiError;
use crate::storage::{Storage, StorageError, Store, Stored, Write, WriteKind};

/// Runs `read` on the store off the event loop; `None` when storage is disabled.
pub(super) async fn read<T: Send + 'static>(
    storage: &Storage,
    read: impl FnOnce(&dyn Store) -> Result<T, StorageError> + Send + 'static,
) -> Result<Option<T>, ApiError> {
    let Some(store) = storage.store() else {
        return Ok(None);
    };
    let result = web::block(move || read(store.as_ref()))
        .await
        .map_err(|e| ApiError::Internal(format!("storage: {e}")))?;
    result.map(Some).map_err(read_error)
}

/// A storage outage (PostgreSQL unreachable, a timeout: [`StorageError::is_transient`]) is
/// 503 with `Retry-After`, as the contract has it; anything else is 500.
fn read_error(e: StorageError) -> ApiError {
    if e.is_transient() {
        ApiError::Busy {
            message: format!("storage unavailable: {e}; retry"),
            retry_after_seconds: 1,
        }
    } else {
        ApiError::Internal(format!("storage: {e}"))
    }
}

/// The sequence a page cursor starts from: a sequence token as is; a VoIPBIN timestamp
/// token as the first sequence created at or after it, in memory (`memory`) or in storage
/// (`stored`), whichever is lower.
pub(super) async fn cursor_sequence(
    storage: &Storage,
    cursor: Option<super::page::Cursor>,
    memory: impl FnOnce(&str) -> Option<u64>,
    stored: impl FnOnce(&dyn Store, &str) -> Result<Option<u64>, StorageError> + Send + 'static,
) -> Result<Option<u64>, ApiError> {
    Ok(match cursor {
        None => None,
        Some(super::page::Cursor::Sequence(s)) => Some(s),
        Some(super::page::Cursor::CreatedBefore(at)) => {
            let in_memory = memory(&at);
            let in_storage = read(storage, move |s| stored(s, &at)).await?.flatten();
            super::page::first_of(in_memory, in_storage)
        }
    })
}

/// Commits `write`; an error when storage did not.
pub(super) async fn write(storage: &Storage, write: Write) -> Result<(), ApiError> {
    if storage.write_confirmed(write, WriteKind::Flow).await {
        Ok(())
    } else {
        Err(ApiError::Internal(
            "applied in memory but storage did not commit it; retry".into(),
        ))
    }
}

/// One page of at most `size`: `memory` (its own page, `memory_more` when it had more) merged
/// with `stored` (read with a limit of `size + 1`).
/// In-memory records as (sequence, JSON) for [`merge`].
pub(super) fn as_json<T: serde::Serialize>(
    items: &[T],
    sequence: impl Fn(&T) -> u64,
) -> Result<Vec<(u64, Value)>, ApiError> {
    items
        .iter()
        .map(|item| Ok((sequence(item), serde_json::to_value(item)?)))
        .collect::<Result<Vec<_>, serde_json::Error>>()
        .map_err(|e| ApiError::Internal(e.to_string()))
}

pub(super) fn merge(
    memory: Vec<(u64, Value)>,
    memory_more: bool,
    stored: Vec<Stored>,
    size: usize,
) -> (Vec<Value>, Option<String>) {
    let stored_more = stored.len() > size;
    // The same record in both is known by its id: in a cluster the shared store holds every
    // node's records, and two nodes' sequences may be equal. Without an id, by sequence.
    let known_ids: std::collections::HashSet<String> = memory
        .iter()
        .filter_map(|(_, v)| v["id"].as_str().map(str::to_owned))
        .collect();
    let known: std::collections::HashSet<u64> = memory
        .iter()
        .filter(|(_, v)| v["id"].as_str().is_none())
        .map(|(s, _)| *s)
        .collect();
    let mut all = memory;
    all.extend(
        stored
            .into_iter()
            .filter(|s| match s.json["id"].as_str() {
                Some(id) => !known_ids.contains(id),
                None => !known.contains(&s.sequence),
            })
            .map(|s| (s.sequence, s.json)),
    );
    all.sort_unstable_by_key(|(seq, _)| std::cmp::Reverse(*seq));
    let more = all.len() > size || memory_more || stored_more;
    all.truncate(size);
    let token = more
        .then(|| all.last().map(|(seq, _)| seq.to_string()))
        .flatten();
    (all.into_iter().map(|(_, v)| v).collect(), token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(seqs: &[u64]) -> Vec<Stored> {
        seqs.iter()
            .map(|s| Stored {
                sequence: *s,
                json: json!({"seq": s, "from": "store"}),
            })
            .collect()
    }

    #[test]
    fn memory_wins_and_pages_continue_into_the_store() {
        let memory = vec![
            (9, json!({"seq": 9, "from": "memory"})),
            (8, json!({"seq": 8})),
        ];
        let (page, token) = merge(memory, false, stored(&[9, 7, 6]), 2);
        assert_eq!(page[0]["from"], "memory");
        assert_eq!(page.len(), 2);
        assert_eq!(token.as_deref(), Some("8"));
        let (page, token) = merge(vec![], false, stored(&[7, 6]), 2);
        assert_eq!((page.len(), token), (2, None));
        let (page, token) = merge(vec![], false, stored(&[7, 6, 5]), 2);
        assert_eq!((page.len(), token.as_deref()), (2, Some("6")));
    }

    /// Cluster (issue 20): a record in memory and in the shared store appears once, and
    /// another node's record with the same sequence (two nodes in one clock slot: the store
    /// keeps both rows, keyed by id) is not taken for it.
    #[test]
    fn records_are_one_by_id_across_nodes() {
        let memory = vec![(5, json!({"id": "a", "node_id": "A"}))];
        let stored = vec![
            Stored {
                sequence: 5,
                json: json!({"id": "b", "node_id": "B"}),
            },
            Stored {
                sequence: 5,
                json: json!({"id": "a", "node_id": "A"}),
            },
        ];
        let (page, _) = merge(memory, false, stored, 10);
        let ids: Vec<&str> = page.iter().filter_map(|v| v["id"].as_str()).collect();
        assert_eq!(ids.len(), 2, "{page:?}");
        assert!(ids.contains(&"a") && ids.contains(&"b"));
    }

    /// Review storage #13: a storage outage on a read is 503 with `Retry-After`, not 500.
    #[test]
    fn an_outage_on_a_read_is_503_with_retry_after() {
        use actix_web::ResponseError;
        let outage = read_error(StorageError::Timeout(std::time::Duration::from_secs(10)));
        let r = outage.error_response();
        assert_eq!(r.status(), actix_web::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.headers().contains_key("retry-after"));
        let bad = read_error(StorageError::RowTooBig { bytes: 2, max: 1 });
        assert_eq!(
            bad.error_response().status(),
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
