//! The activeflow id newtype.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActiveflowId(pub Uuid);

impl ActiveflowId {
    /// A time-ordered UUID (v7): new ids sort after older ones, so storage's index on them
    /// grows at its end instead of touching a random page per insert.
    pub fn new() -> Self {
        ActiveflowId(Uuid::now_v7())
    }
}

impl Default for ActiveflowId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ActiveflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for ActiveflowId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(ActiveflowId)
    }
}
