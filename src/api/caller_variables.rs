//! Variables a caller sets over the API (`POST /v1/activeflows` `variables`, `PUT
//! /v1/activeflows/{id}/variables`): string values only, no key in VoIPBIN's reserved
//! `voipbin.` namespace, and none of the engine-seeded names in their canonical (unprefixed)
//! spelling (`activeflow.*`, `call.id`, `call.source.*`, ...: the same entries as their
//! `voipbin.` aliases). Checking only: the engine applies them and their size caps.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ApiError;
use crate::flow::variables::{CALL_DIRECTION, CALL_ID, CALL_STATUS};
use crate::flow::Variables;

/// VoIPBIN's reserved prefix (bin-flow-manager `activeflowhandler/main.go`
/// `variableReservedPrefix`), compared case-insensitively after trimming as VoIPBIN does.
const RESERVED_PREFIX: &str = "voipbin.";

/// Namespaces the engine seeds (`flow::variables`: `ACTIVEFLOW_*`, `CALL_SOURCE_*`,
/// `CALL_DESTINATION_*`): a caller could otherwise forge `voipbin.activeflow.id` and the
/// like by writing the key without its prefix. `call.digits` stays writable: it is the
/// caller's input.
const SEEDED_PREFIXES: [&str; 3] = ["activeflow.", "call.source.", "call.destination."];

/// Seeded call keys outside those namespaces.
const SEEDED_KEYS: [&str; 3] = [CALL_ID, CALL_DIRECTION, CALL_STATUS];

/// A caller's variables before the reserved-key check, in key order (so the first reserved key
/// named in a 400 is the same on every request).
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(transparent)]
pub(super) struct CallerVariables(BTreeMap<String, String>);

impl CallerVariables {
    /// The variables, or a 400 naming the first reserved key.
    pub(super) fn checked(self) -> Result<Variables, ApiError> {
        if let Some(key) = self.0.keys().find(|k| is_reserved(k)) {
            return Err(ApiError::BadRequest(format!(
                "variables: key {key:?} is reserved (the engine sets it: the \"voipbin.\" namespace, activeflow.*, call.id, call.direction, call.status, call.source.* and call.destination.*)"
            )));
        }
        Ok(self.0.into_iter().collect())
    }
}

/// Compared case-insensitively after trimming, as VoIPBIN compares its prefix.
fn is_reserved(key: &str) -> bool {
    let key = key.trim();
    let starts = |prefix: &str| {
        key.len() >= prefix.len()
            && key.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    };
    starts(RESERVED_PREFIX)
        || SEEDED_PREFIXES.iter().any(|p| starts(p))
        || SEEDED_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k))
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
        let ok = parse(r#"{"voipbin":"1","my.voipbin.x":"2","call.digits":"3","call":"4","activeflow":"5","call.idx":"6"}"#).unwrap();
        assert_eq!(ok.get("call.digits"), Some("3"));
        assert_eq!(ok.get("my.voipbin.x"), Some("2"));
        assert!(parse(r#"{"a":1}"#).is_err());
    }

    /// Every engine-seeded name (`flow::variables`), in its canonical spelling and any case,
    /// is refused: it is the same entry as its reserved `voipbin.` alias.
    #[test]
    fn seeded_names_are_reserved_without_their_prefix() {
        use crate::flow::variables::*;
        for key in [
            ACTIVEFLOW_ID,
            ACTIVEFLOW_FLOW_ID,
            ACTIVEFLOW_REFERENCE_TYPE,
            ACTIVEFLOW_REFERENCE_ID,
            ACTIVEFLOW_REFERENCE_ACTIVEFLOW_ID,
            ACTIVEFLOW_COMPLETE_COUNT,
            CALL_ID,
            CALL_DIRECTION,
            CALL_STATUS,
            CALL_SOURCE_TARGET,
            CALL_SOURCE_USER,
            CALL_SOURCE_TYPE,
            CALL_SOURCE_NAME,
            CALL_SOURCE_PRIVACY,
            CALL_DESTINATION_TARGET,
            CALL_DESTINATION_TYPE,
            CALL_DESTINATION_NAME,
        ] {
            for spelled in [key.to_owned(), key.to_uppercase(), format!(" {key}")] {
                let json = serde_json::json!({ spelled.clone(): "forged" }).to_string();
                match parse(&json) {
                    Err(ApiError::BadRequest(m)) => {
                        assert!(m.contains(&format!("{spelled:?}")), "{m}")
                    }
                    other => panic!("{json}: {other:?}"),
                }
            }
        }
        assert_eq!(
            parse(r#"{"call.digits":"12"}"#).unwrap().get(CALL_DIGITS),
            Some("12")
        );
    }
}
