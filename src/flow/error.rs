//! The typed error of the flow module (`FlowError`).
//! Owns error shapes and their messages only; must not decide policy.

use thiserror::Error;

/// Every failure the flow module can report. Field strings are stable: tests
/// and API clients match on them.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FlowError {
    /// The bytes were not a well-formed flow document.
    #[error("invalid flow JSON: {0}")]
    Json(String),
    /// One action of a list is wrong; `field` is relative to that action
    /// (e.g. `option.duration`, `next_id`, `type`).
    #[error("actions[{index}].{field}: {message}")]
    Action {
        index: usize,
        field: String,
        message: String,
    },
    /// A flow-level field is wrong (e.g. `actions`, `name`).
    #[error("{field}: {message}")]
    Flow { field: String, message: String },
    /// An action's option is wrong, reported without a list index because
    /// the action was inspected on its own (`Action::typed`).
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    /// Filesystem access failed.
    #[error("reading {path}: {message}")]
    Io { path: String, message: String },
    /// A file was read but its content was refused; wraps the cause so the
    /// operator sees which file to fix.
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: Box<FlowError>,
    },
}

impl FlowError {
    /// Builds a `Field` error.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Field {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Pins a standalone `Field` error to its position in an action list;
    /// other variants pass through untouched.
    pub fn at_index(self, index: usize) -> Self {
        match self {
            Self::Field { field, message } => Self::Action {
                index,
                field,
                message,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let e = FlowError::field("option.duration", "missing required field").at_index(3);
        assert_eq!(
            e.to_string(),
            "actions[3].option.duration: missing required field"
        );
        let f = FlowError::File {
            path: "a.json".into(),
            source: Box::new(FlowError::Json("eof".into())),
        };
        assert_eq!(f.to_string(), "a.json: invalid flow JSON: eof");
        let io = FlowError::Io {
            path: "/x".into(),
            message: "nope".into(),
        };
        assert_eq!(io.to_string(), "reading /x: nope");
    }
}
