//! Newtype identifiers for flows and actions (`FlowId`, `ActionId`).
//! Owns only the id types and their text/JSON forms; must not know about
//! flow contents or validation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Defines a uuid-backed id newtype; both ids need the identical surface, and
/// a macro keeps them from drifting apart.
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            /// The all-zero id; VoIPBIN uses it to mean "not set".
            pub const fn nil() -> Self {
                Self(Uuid::nil())
            }

            /// True for the all-zero id.
            pub fn is_nil(&self) -> bool {
                self.0.is_nil()
            }
        }

        impl Default for $name {
            // A default id must never collide with another, so it is random
            // rather than nil.
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

uuid_id!(
    /// Identifies a registered flow.
    FlowId
);
uuid_id!(
    /// Identifies one action inside a flow (unique within its list).
    ActionId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let id = FlowId::new();
        let parsed: FlowId = id.to_string().parse().unwrap();
        assert_eq!(id, parsed);
        assert!(!id.is_nil());
        assert!(ActionId::nil().is_nil());
        assert!("not-a-uuid".parse::<ActionId>().is_err());
    }

    #[test]
    fn serde_is_transparent() {
        let id: ActionId = "6b1c8c4e-8f5a-4c47-9d3e-2a7f9a1b0c11".parse().unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"6b1c8c4e-8f5a-4c47-9d3e-2a7f9a1b0c11\"");
        let back: ActionId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
    }
}
