//! The export's parameters, and its stream over a real SQLite store: every row once, in end
//! order, across pages; and no page read ahead of what the client took.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;

use super::*;
use crate::storage::{CallRow, SqliteStore, Store, Write};

fn query(format: Option<&str>, from: Option<&str>, to: Option<&str>) -> ExportQuery {
    ExportQuery {
        format: format.map(str::to_owned),
        from: from.map(str::to_owned),
        to: to.map(str::to_owned),
    }
}

fn bad_request(e: ApiError) -> String {
    match e {
        ApiError::BadRequest(m) => m,
        other => panic!("not a 400: {other:?}"),
    }
}

#[test]
fn csv_is_asked_for_and_json_takes_no_range() {
    assert!(!query(None, None, None).wants_csv().unwrap());
    assert!(!query(Some("json"), None, None).wants_csv().unwrap());
    assert!(query(Some("csv"), Some("x"), None).wants_csv().unwrap());
    let e = bad_request(query(Some("xml"), None, None).wants_csv().unwrap_err());
    assert!(e.starts_with("format:"), "{e}");
    let e = bad_request(
        query(None, None, Some("2026-01-01T00:00:00Z"))
            .wants_csv()
            .unwrap_err(),
    );
    assert!(e.starts_with("to:") && e.contains("format=csv"), "{e}");
}

#[test]
fn the_range_is_rfc_3339_in_the_stored_form() {
    let range = query(
        Some("csv"),
        Some("2026-01-01T02:00:00+02:00"),
        Some("2026-01-01T00:00:01.5Z"),
    )
    .range()
    .unwrap();
    assert_eq!(range.from.as_deref(), Some("2026-01-01T00:00:00.000000Z"));
    assert_eq!(range.to.as_deref(), Some("2026-01-01T00:00:01.500000Z"));
    // Nanoseconds round up: [from, to) keeps its meaning against microsecond times.
    let up = query(Some("csv"), Some("2026-01-01T00:00:00.0000001Z"), None)
        .range()
        .unwrap();
    assert_eq!(up.from.as_deref(), Some("2026-01-01T00:00:00.000001Z"));
    assert_eq!(
        query(Some("csv"), None, None).range().unwrap(),
        EndedRange::default()
    );

    let e = bad_request(
        query(Some("csv"), Some("yesterday"), None)
            .range()
            .unwrap_err(),
    );
    assert!(e.starts_with("from:"), "{e}");
    let e = bad_request(
        query(Some("csv"), None, Some("2026-13-01T00:00:00Z"))
            .range()
            .unwrap_err(),
    );
    assert!(e.starts_with("to:"), "{e}");
    // An unescaped `+` in the query string arrives as a space.
    let e = bad_request(
        query(Some("csv"), Some("2026-01-01T00:00:00 02:00"), None)
            .range()
            .unwrap_err(),
    );
    assert!(e.contains("%2B"), "{e}");
    // The stored form has a four-digit year: year 10000 (in UTC, or after rounding up) would
    // sort before 2026 as text.
    for (from, to, name) in [
        (Some("9999-12-31T23:30:00-01:00"), None, "from"),
        (None, Some("9999-12-31T23:59:59.9999999Z"), "to"),
        (Some("0000-01-01T00:00:00+00:01"), None, "from"),
    ] {
        let e = bad_request(query(Some("csv"), from, to).range().unwrap_err());
        assert!(
            e.starts_with(&format!("{name}:")) && e.contains("years 0000 to 9999"),
            "{e}"
        );
    }
    let last = query(Some("csv"), None, Some("9999-12-31T23:59:59.999999Z"))
        .range()
        .unwrap();
    assert_eq!(last.to.as_deref(), Some("9999-12-31T23:59:59.999999Z"));
    let first = query(Some("csv"), Some("0000-01-01T00:00:00Z"), None)
        .range()
        .unwrap();
    assert_eq!(first.from.as_deref(), Some("0000-01-01T00:00:00.000000Z"));
    for (from, to) in [
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        ("2026-01-01T00:00:01Z", "2026-01-01T00:00:00Z"),
    ] {
        let e = bad_request(
            query(Some("csv"), Some(from), Some(to))
                .range()
                .unwrap_err(),
        );
        assert!(e.starts_with("to:") && e.contains("not after from"), "{e}");
    }
}

fn temp_store() -> SqliteStore {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir()
        .join(format!(
            "activeflow-cdr-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ))
        .join("cdr.db");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    SqliteStore::open(&path).unwrap()
}

/// `n` ended calls, two per end time (ties broken by id), plus a ringing one.
fn fill(store: &SqliteStore, n: u64) {
    let mut batch: Vec<Write> = (1..=n)
        .map(|s| {
            let end = format!(
                "2026-01-01T00:{:02}:{:02}.000000Z",
                (s / 2) / 60,
                (s / 2) % 60
            );
            Write::Call(CallRow {
                id: format!("call-{s:05}"),
                sequence: s,
                sip_call_id: format!("{s}@test"),
                direction: "incoming",
                source: "alice".into(),
                destination: "100".into(),
                peer: "127.0.0.1:5060/udp".into(),
                status: "ended",
                end_cause: Some("remote_bye".into()),
                end_code: None,
                codec: Some("PCMU"),
                tm_create: "2026-01-01T00:00:00.000000Z".into(),
                tm_answer: Some("2026-01-01T00:00:00.000000Z".into()),
                tm_end: Some(end),
            })
        })
        .collect();
    let mut ringing = match &batch[0] {
        Write::Call(row) => row.clone(),
        _ => unreachable!(),
    };
    ringing.id = "call-ringing".into();
    ringing.sequence = n + 1;
    ringing.status = "ringing";
    ringing.tm_end = None;
    batch.push(Write::Call(ringing));
    store.apply(&batch).unwrap();
}

/// The stream over `store` with its reads counted.
fn counted(
    store: Arc<SqliteStore>,
    reads: Arc<AtomicUsize>,
) -> impl futures_util::Stream<Item = Result<Bytes, ApiError>> {
    let range = EndedRange::default();
    let first = store.ended_calls(&range, None, PAGE_ROWS).unwrap();
    stream(first, move |after| {
        reads.fetch_add(1, Ordering::SeqCst);
        let rows = store.ended_calls(&range, after.as_ref(), PAGE_ROWS);
        async move { rows.map_err(|e| ApiError::Internal(e.to_string())) }
    })
}

#[tokio::test]
async fn every_ended_call_once_in_end_order_across_pages() {
    let store = Arc::new(temp_store());
    let n = 2 * PAGE_ROWS as u64 + 345;
    fill(&store, n);
    let reads = Arc::new(AtomicUsize::new(0));
    let chunks: Vec<Bytes> = counted(store, reads.clone())
        .map(|c| c.unwrap())
        .collect()
        .await;
    assert_eq!(
        chunks.len(),
        3,
        "one chunk per page, the header with the first"
    );
    assert_eq!(reads.load(Ordering::SeqCst), 2);
    let text: String = chunks
        .iter()
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    assert_eq!(lines[0], csv::COLUMNS.join(","));
    let ids: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let want: Vec<String> = (1..=n).map(|s| format!("call-{s:05}")).collect();
    assert_eq!(
        ids, want,
        "every ended call once, by end time then id; no ringing one"
    );
}

#[tokio::test]
async fn a_page_exactly_full_ends_on_an_empty_read() {
    let store = Arc::new(temp_store());
    fill(&store, PAGE_ROWS as u64);
    let reads = Arc::new(AtomicUsize::new(0));
    let chunks: Vec<Bytes> = counted(store, reads.clone())
        .map(|c| c.unwrap())
        .collect()
        .await;
    assert_eq!((chunks.len(), reads.load(Ordering::SeqCst)), (1, 1));
}

/// A client that stops reading (or goes away: actix drops the body) gets no page read for it
/// beyond the one it is taking.
#[tokio::test]
async fn no_page_is_read_ahead_of_the_client() {
    let store = Arc::new(temp_store());
    fill(&store, 5 * PAGE_ROWS as u64);
    let reads = Arc::new(AtomicUsize::new(0));
    let mut body = Box::pin(counted(store, reads.clone()));
    assert!(body.next().await.unwrap().is_ok());
    assert_eq!(
        reads.load(Ordering::SeqCst),
        0,
        "the first page was read before"
    );
    assert!(body.next().await.unwrap().is_ok());
    assert_eq!(reads.load(Ordering::SeqCst), 1);
    drop(body);
    assert_eq!(
        reads.load(Ordering::SeqCst),
        1,
        "dropped: nothing more read"
    );
}

#[tokio::test]
async fn a_failed_read_ends_the_stream_with_its_error() {
    let store = Arc::new(temp_store());
    fill(&store, PAGE_ROWS as u64 + 1);
    let first = store
        .ended_calls(&EndedRange::default(), None, PAGE_ROWS)
        .unwrap();
    let body = stream(first, |_| async {
        Err(ApiError::Busy {
            message: "storage unavailable".into(),
            retry_after_seconds: 1,
        })
    });
    let items: Vec<Result<Bytes, ApiError>> = body.collect().await;
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok() && items[1].is_err());
}
