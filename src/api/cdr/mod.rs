//! The CDR export (issue 21): `GET /v1/calls?format=csv&from=&to=` streams the ended calls
//! from storage whose end time lies in `[from, to)`, one CSV record each (`csv`). Pages of
//! [`PAGE_ROWS`] are read by keyset (end time, id) on the blocking pool and written as they
//! come: the response holds one page at a time, never the whole result, and a client that
//! goes away drops the stream, so no further page is read.

mod csv;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use serde::Deserialize;

use super::history;
use super::ApiError;
use crate::storage::{EndedCall, EndedCursor, EndedRange, Storage};

/// Rows per storage query (and per chunk written).
pub(super) const PAGE_ROWS: usize = 1000;

/// The export's query parameters (the listing's own, `status` and paging, are checked apart).
#[derive(Debug, Default, Deserialize)]
pub(super) struct ExportQuery {
    /// `csv` for the export; absent or `json` for the JSON listing.
    pub(super) format: Option<String>,
    /// RFC 3339: calls that ended at or after it.
    pub(super) from: Option<String>,
    /// RFC 3339: calls that ended before it.
    pub(super) to: Option<String>,
}

impl ExportQuery {
    /// True for `format=csv`; false for the JSON listing (no format, or `json`), which takes
    /// no `from`/`to`.
    pub(super) fn wants_csv(&self) -> Result<bool, ApiError> {
        let csv = match self.format.as_deref() {
            None | Some("") | Some("json") => false,
            Some("csv") => true,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "format: {other:?} is not csv or json"
                )))
            }
        };
        if !csv {
            for (name, value) in [("from", &self.from), ("to", &self.to)] {
                if value.is_some() {
                    return Err(ApiError::BadRequest(format!(
                        "{name}: filters the CSV export only (add format=csv)"
                    )));
                }
            }
        }
        Ok(csv)
    }

    /// The end-time range, in the stored timestamp form; 400 naming the parameter when one is
    /// not RFC 3339, or `to` is not after `from`.
    pub(super) fn range(&self) -> Result<EndedRange, ApiError> {
        let from = self
            .from
            .as_deref()
            .map(|v| instant("from", v))
            .transpose()?;
        let to = self.to.as_deref().map(|v| instant("to", v)).transpose()?;
        if let (Some(from), Some(to)) = (from, to) {
            if to <= from {
                return Err(ApiError::BadRequest(format!(
                    "to: {} is not after from ({})",
                    stored_form(to),
                    stored_form(from)
                )));
            }
        }
        Ok(EndedRange {
            from: from.map(stored_form),
            to: to.map(stored_form),
        })
    }
}

/// `value` as an instant rounded up to the microsecond (stored times have microseconds, so
/// `[from, to)` keeps its meaning for a bound with nanoseconds). Its UTC year must have four
/// digits: the stored form is compared as text, and `10000-…` (what `9999-12-31T23:30:00-01:00`
/// or rounding up the year's last nanosecond gives) sorts before `2026-…`.
fn instant(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    let parsed = DateTime::parse_from_rfc3339(value.trim()).map_err(|e| {
        // A `+` in a query string reads as a space: `+02:00` arrives as ` 02:00`.
        let hint = if value.contains(' ') {
            " (write a + in an offset as %2B)"
        } else {
            ""
        };
        ApiError::BadRequest(format!(
            "{name}: {value:?} is not an RFC 3339 timestamp such as 2026-01-02T15:04:05Z: \
             {e}{hint}"
        ))
    })?;
    let at = parsed.with_timezone(&Utc);
    let nanos = at.timestamp_subsec_nanos() % 1000;
    let at = if nanos == 0 {
        at
    } else {
        at + chrono::Duration::nanoseconds(i64::from(1000 - nanos))
    };
    if !(0..=9999).contains(&at.year()) {
        return Err(ApiError::BadRequest(format!(
            "{name}: {value:?} is {}, outside the years 0000 to 9999 (in UTC, to the \
             microsecond)",
            at.to_rfc3339_opts(SecondsFormat::Micros, true)
        )));
    }
    Ok(at)
}

/// This engine's stored timestamp form (`2026-01-02T15:04:05.000000Z`, ordered as text).
fn stored_form(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The export's response: the first page is read before the status line, so a storage outage
/// at the start is a 503 (a later one cuts the stream: the client sees an incomplete body,
/// never a short file that looks whole).
pub(super) async fn export(storage: &Storage, range: EndedRange) -> Result<HttpResponse, ApiError> {
    if !storage.is_enabled() {
        return Err(ApiError::Unavailable(
            "the CDR export reads ended calls from storage, which is off (storage.path is \
             empty)"
                .into(),
        ));
    }
    let first = page(storage, &range, None).await?;
    let storage = storage.clone();
    let body = stream(first, move |after| {
        let (storage, range) = (storage.clone(), range.clone());
        async move { page(&storage, &range, after.as_ref()).await }
    });
    let filename = format!("calls-{}.csv", Utc::now().format("%Y%m%dT%H%M%SZ"));
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{filename}\""),
        ))
        .insert_header(("Cache-Control", "no-store"))
        .streaming(body))
}

/// The body: the header and `first` page at once, then each page `fetch` reads after the last
/// call written, one at a time and only when the previous chunk was taken, until a short
/// page. A failed read ends the stream with the error (the connection is cut).
fn stream<F, Fut>(
    first: Vec<EndedCall>,
    fetch: F,
) -> impl futures_util::Stream<Item = Result<Bytes, ApiError>>
where
    F: FnMut(Option<EndedCursor>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<EndedCall>, ApiError>>,
{
    let mut chunk = csv::header();
    let next = render(&mut chunk, &first);
    let state = Export {
        pending: Some(Bytes::from(chunk)),
        next,
        fetch,
    };
    futures_util::stream::unfold(state, |mut state| async move {
        if let Some(chunk) = state.pending.take() {
            return Some((Ok(chunk), state));
        }
        let after = state.next.take()?;
        match (state.fetch)(Some(after)).await {
            Ok(rows) if rows.is_empty() => None,
            Ok(rows) => {
                let mut chunk = String::new();
                state.next = render(&mut chunk, &rows);
                Some((Ok(Bytes::from(chunk)), state))
            }
            Err(e) => {
                tracing::warn!(error = %e, "CDR export cut short: storage read failed");
                Some((Err(e), state))
            }
        }
    })
}

/// Where the export stands between chunks.
struct Export<F> {
    /// A chunk rendered, not yet taken.
    pending: Option<Bytes>,
    /// Where the next page starts; `None` once a page came back short (or a read failed).
    next: Option<EndedCursor>,
    fetch: F,
}

/// Appends `rows` to `chunk`; where the next page starts, `None` when this one was the last.
fn render(chunk: &mut String, rows: &[EndedCall]) -> Option<EndedCursor> {
    for call in rows {
        csv::record(chunk, call);
    }
    rows.last()
        .filter(|_| rows.len() >= PAGE_ROWS)
        .map(EndedCall::cursor)
}

/// One page from storage, off the event loop.
async fn page(
    storage: &Storage,
    range: &EndedRange,
    after: Option<&EndedCursor>,
) -> Result<Vec<EndedCall>, ApiError> {
    let (range, after) = (range.clone(), after.cloned());
    let rows = history::read(storage, move |s| {
        s.ended_calls(&range, after.as_ref(), PAGE_ROWS)
    })
    .await?;
    Ok(rows.unwrap_or_default())
}

#[cfg(test)]
mod tests;
