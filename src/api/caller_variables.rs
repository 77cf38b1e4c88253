//! Variables a caller sets over the API (`POST /v1/activeflows` `variables`, `PUT
//! /v1/activeflows/{id}/variables`): string values only, and no key in VoIPBIN's reserved
//! `voipbin.` namespace (the engine's own seeded values answer to it). Checking only: the
//! engine applies them and their size caps.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ApiError;
use crate::flow::Variables;

/// VoIPBIN's reserved prefix (bin-flow-manager `activeflowhandler/main.go`
/// `variableReservedPrefix`), compared case-insensitively after trimming as VoIPBIN does.
const RESERVED_PREFIX: &str = "voipbin.";

/// A caller's variables before the reserved-key check, in key order (so the first reserved key
/// named in a 400 is the same on every request).
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub(super) struct CallerVariables(BTreeMap<String, String>);

impl CallerVariables {
    /// The variables, or a 400 naming the first reserved key.
    pub(super) fn checked(self) -> Result<Variables, ApiError> {
        if let Some(key) = self.0.keys().find(|k| is_reserved(k)) {
            return Err(ApiError::BadRequest(format!(
                "variables: key {key:?} is reserved (the \"voipbin.\" namespace is the engine's)"
            )));
        }
        Ok(self.0.into_iter().collect())
    }
}

fn is_reserved(key: &str) -> bool {
    let key = key.trim().as_bytes();
    key.len() >= RESERVED_PREFIX.len()
        && key[..RESERVED_PREFIX.len()].eq_ignore_ascii_case(RESERVED_PREFIX.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Variables, ApiError> {
        serde_json::from_str::<CallerVariables>(json)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?
            .checked()
    }

    #[test]
    fn reserved_keys_are_refused_by_name() {
        for (json, key) in [
            (r#"{"a":"1","voipbin.call.id":"x"}"#, "voipbin.call.id"),
            (r#"{"VoIPBIN.x":"1"}"#, "VoIPBIN.x"),
            (r#"{" voipbin.y":"1"}"#, " voipbin.y"),
        ] {
            match parse(json) {
                Err(ApiError::BadRequest(m)) => assert!(m.contains(&format!("{key:?}")), "{m}"),
                other => panic!("{json}: {other:?}"),
            }
        }
        let ok = parse(r#"{"voipbin":"1","my.voipbin.x":"2","call.digits":"3"}"#).unwrap();
        assert_eq!(ok.get("call.digits"), Some("3"));
        assert_eq!(ok.get("my.voipbin.x"), Some("2"));
        assert!(parse(r#"{"a":1}"#).is_err());
    }
}
