//! Pagination shared by list endpoints: `page_size` (default 100, at most 1000) and a
//! `page_token`: the opaque token the server issued, or VoIPBIN's timestamp token ("items
//! created before this time", as bin-api-manager `server/activeflows.go` issues them).

use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};

use super::ApiError;

pub(super) const DEFAULT_PAGE_SIZE: usize = 100;
pub(super) const MAX_PAGE_SIZE: usize = 1000;

#[derive(Deserialize)]
pub(super) struct PageQuery {
    pub(super) status: Option<String>,
    /// Signed so `-1` reads as VoIPBIN reads it (the default), not as a 400.
    pub(super) page_size: Option<i64>,
    pub(super) page_token: Option<String>,
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cursor {
    /// A token this server issued: items with a lower sequence.
    Sequence(u64),
    /// VoIPBIN's token: items created before this instant, in this engine's timestamp form
    /// (`2023-04-02T13:43:30.000000Z`, comparable as text).
    CreatedBefore(String),
}

impl PageQuery {
    /// As VoIPBIN (`GetActiveflows`): absent, zero or negative is the default, over the
    /// maximum is the maximum. A non-number is refused by the query parser (400).
    pub(super) fn size(&self) -> Result<usize, ApiError> {
        Ok(match self.page_size {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if n <= 0 => DEFAULT_PAGE_SIZE,
            Some(n) => usize::try_from(n).map_or(MAX_PAGE_SIZE, |n| n.min(MAX_PAGE_SIZE)),
        })
    }

    pub(super) fn cursor(&self) -> Result<Option<Cursor>, ApiError> {
        match self.page_token.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(t) => parse_cursor(t).map(Some).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "page_token: {t:?} is neither a token we issued nor a timestamp \
                     (2023-04-02T13:43:30Z, 2023-04-02 13:43:30.123456)"
                ))
            }),
        }
    }

    /// The token as a sequence, for listings whose items have no creation time.
    pub(super) fn sequence_token(&self) -> Result<Option<u64>, ApiError> {
        match self.cursor()? {
            None => Ok(None),
            Some(Cursor::Sequence(s)) => Ok(Some(s)),
            Some(Cursor::CreatedBefore(_)) => Err(ApiError::BadRequest(
                "page_token: this listing pages by the tokens it issues, not by time".into(),
            )),
        }
    }

    /// The CDR export streams every ended call: a `status` other than `ended`, or paging, is
    /// refused (400 naming it) rather than ignored.
    pub(super) fn reject_for_export(&self) -> Result<(), ApiError> {
        if let Some(s) = self
            .status
            .as_deref()
            .filter(|s| !s.is_empty() && *s != "ended")
        {
            return Err(ApiError::BadRequest(format!(
                "status: {s:?}: the CSV export lists ended calls only"
            )));
        }
        for (name, given) in [
            ("page_size", self.page_size.is_some()),
            ("page_token", self.page_token.is_some()),
        ] {
            if given {
                return Err(ApiError::BadRequest(format!(
                    "{name}: the CSV export streams every call in range, unpaged; narrow it \
                     with from and to"
                )));
            }
        }
        Ok(())
    }

    /// The status filter parsed by `parse`; the error names the allowed values.
    pub(super) fn status<T>(
        &self,
        parse: impl Fn(&str) -> Option<T>,
        allowed: &str,
    ) -> Result<Option<T>, ApiError> {
        match self.status.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => parse(s)
                .map(Some)
                .ok_or_else(|| ApiError::BadRequest(format!("status: {s:?} is not {allowed}"))),
        }
    }
}

fn parse_cursor(t: &str) -> Option<Cursor> {
    if let Ok(sequence) = t.parse::<u64>() {
        return Some(Cursor::Sequence(sequence));
    }
    time_token(t).map(Cursor::CreatedBefore)
}

/// A VoIPBIN timestamp token in this engine's timestamp form: RFC 3339 (any offset, with or
/// without fractions), or VoIPBIN's database form `2023-04-02 13:43:30.123456` (UTC).
fn time_token(t: &str) -> Option<String> {
    use chrono::{DateTime, NaiveDateTime, Utc};
    let utc: DateTime<Utc> = match DateTime::parse_from_rfc3339(t) {
        Ok(at) => at.with_timezone(&Utc),
        Err(_) => ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())?
            .and_utc(),
    };
    Some(utc.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

/// The sequence cursor "created before `at`" means: the lowest sequence of an item created at
/// or after `at` (sequences grow with creation), the lower of memory's (each registry's
/// `first_since`, read without copying records) and storage's. `None`: all are older.
pub(super) fn first_of(memory: Option<u64>, stored: Option<u64>) -> Option<u64> {
    memory.into_iter().chain(stored).min()
}

/// The list response shape: `{"result": [...], "next_page_token": "..."}` ("" on the last page).
pub(super) fn page_response<T: Serialize>(items: &[T], next: Option<String>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "result": items,
        "next_page_token": next.unwrap_or_default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(size: Option<i64>, token: Option<&str>) -> PageQuery {
        PageQuery {
            status: None,
            page_size: size,
            page_token: token.map(str::to_owned),
        }
    }

    #[test]
    fn sizes_follow_voipbin_default_and_clamp() {
        for (given, want) in [
            (None, DEFAULT_PAGE_SIZE),
            (Some(0), DEFAULT_PAGE_SIZE),
            (Some(-5), DEFAULT_PAGE_SIZE),
            (Some(7), 7),
            (Some(1000), 1000),
            (Some(1001), MAX_PAGE_SIZE),
            (Some(i64::MAX), MAX_PAGE_SIZE),
        ] {
            assert_eq!(query(given, None).size().unwrap(), want, "{given:?}");
        }
    }

    #[test]
    fn tokens_are_ours_or_voipbin_timestamps() {
        let cursor = |t| query(None, Some(t)).cursor();
        assert_eq!(cursor("42").unwrap(), Some(Cursor::Sequence(42)));
        assert_eq!(cursor("").unwrap(), None);
        let at = |s: &str| Some(Cursor::CreatedBefore(s.into()));
        assert_eq!(
            cursor("2023-04-02T13:43:30Z").unwrap(),
            at("2023-04-02T13:43:30.000000Z")
        );
        // What VoIPBIN's GetActiveflows issues, and its database form.
        assert_eq!(
            cursor("2023-04-02T13:43:30.123456Z").unwrap(),
            at("2023-04-02T13:43:30.123456Z")
        );
        assert_eq!(
            cursor("2023-04-02 13:43:30.123456").unwrap(),
            at("2023-04-02T13:43:30.123456Z")
        );
        assert_eq!(
            cursor("2023-04-02T15:43:30+02:00").unwrap(),
            at("2023-04-02T13:43:30.000000Z")
        );
        for bad in ["soon", "2023-13-02T00:00:00Z", "-1"] {
            assert!(cursor(bad).is_err(), "{bad}");
        }
        assert!(query(None, Some("2023-04-02T13:43:30Z"))
            .sequence_token()
            .is_err());
    }

    #[test]
    fn a_time_means_the_lower_first_sequence_of_memory_and_storage() {
        assert_eq!(first_of(Some(2), None), Some(2));
        assert_eq!(first_of(Some(2), Some(1)), Some(1));
        assert_eq!(first_of(None, Some(5)), Some(5));
        assert_eq!(first_of(None, None), None);
    }
}
