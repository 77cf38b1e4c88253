//! Wall-clock timestamps as the API shows them: RFC 3339, UTC, microseconds (ARCHITECTURE §8).
//! Shared by `call` and `engine`; depends on nothing in the crate.

/// Now as RFC 3339 UTC with microseconds, e.g. `2026-11-26T01:02:03.456789Z`.
pub fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
