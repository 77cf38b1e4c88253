//! The engine's id of a call (a UUID, as `reference_id` and in `/v1/calls`); distinct from the
//! SIP Call-ID header, which the peer chooses.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(pub Uuid);

impl CallId {
    /// A time-ordered UUID (v7): new ids sort after older ones, so storage's index on them
    /// grows at its end instead of touching a random page per insert.
    pub fn new() -> Self {
        CallId(Uuid::now_v7())
    }
}

impl Default for CallId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
