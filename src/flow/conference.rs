//! Options of `conference_join` (`conference_id`) and `confbridge_join` (`confbridge_id`,
//! VoIPBIN's name for the same room join), and the rule for a conference id. Parses only;
//! joining is the engine's and the room's.

use super::error::FlowError;
use super::options::{path, Opt};

/// Longest conference id.
pub const MAX_CONFERENCE_ID_LEN: usize = 64;

/// Whether `id` may name a conference room: 1 to 64 ASCII letters, digits, `-`, `_`, `.`
/// (a UUID fits).
pub fn valid_conference_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CONFERENCE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The room to join: an id, or a `${...}` template checked when the action runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceJoin {
    pub conference_id: String,
}

impl ConferenceJoin {
    /// Reads the id from `field` (`conference_id` or `confbridge_id`).
    pub(crate) fn from_opt(o: &Opt<'_>, field: &str) -> Result<Self, FlowError> {
        let id = o.str_req(field)?;
        if !id.contains("${") && !valid_conference_id(id) {
            return Err(FlowError::field(
                path(field),
                format!(
                    "must be 1 to {MAX_CONFERENCE_ID_LEN} letters, digits, '-', '_' or '.' \
                     (or a ${{variable}})"
                ),
            ));
        }
        Ok(ConferenceJoin {
            conference_id: id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value, field: &str) -> Result<ConferenceJoin, FlowError> {
        ConferenceJoin::from_opt(&Opt::new(&v).unwrap(), field)
    }

    #[test]
    fn ids_are_checked_unless_templated() {
        let ok = parse(json!({"conference_id": "room-1"}), "conference_id").unwrap();
        assert_eq!(ok.conference_id, "room-1");
        assert!(parse(json!({"confbridge_id": "${room}"}), "confbridge_id").is_ok());
        for bad in [
            json!({}),
            json!({"conference_id": ""}),
            json!({"conference_id": "a b"}),
            json!({"conference_id": 7}),
            json!({"conference_id": "x".repeat(65)}),
        ] {
            let e = parse(bad, "conference_id").unwrap_err().to_string();
            assert!(e.contains("option.conference_id"), "{e}");
        }
    }
}
