//! Size caps on one activeflow's variables (`engine.max_variable_bytes`,
//! `engine.max_variables_bytes`) and the error that names the cap a write would break. Pure
//! data: the engine decides what a broken cap does to the activeflow.

/// Default `engine.max_variable_bytes`: one value.
pub const DEFAULT_MAX_VARIABLE_BYTES: usize = 64 * 1024;
/// Default `engine.max_variables_bytes`: every name and value of one activeflow together.
pub const DEFAULT_MAX_VARIABLES_BYTES: usize = 1024 * 1024;

/// The caps by their `[engine]` key (a metrics label).
pub const LIMIT_NAMES: &[&str] = &["max_variable_bytes", "max_variables_bytes"];

/// How large one activeflow's variables may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VariableLimits {
    /// Bytes of one value (`engine.max_variable_bytes`).
    pub max_value_bytes: usize,
    /// Bytes of every name and value together (`engine.max_variables_bytes`); also the most
    /// `${...}` substitution may insert into one action's option.
    pub max_total_bytes: usize,
}

impl Default for VariableLimits {
    fn default() -> Self {
        VariableLimits {
            max_value_bytes: DEFAULT_MAX_VARIABLE_BYTES,
            max_total_bytes: DEFAULT_MAX_VARIABLES_BYTES,
        }
    }
}

/// A variable write that would break a cap; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariableError {
    #[error("variable {key} would be {bytes} bytes, over engine.max_variable_bytes {limit}")]
    ValueTooLarge {
        key: String,
        bytes: usize,
        limit: usize,
    },
    #[error(
        "variable {key} would bring the variables to {bytes} bytes, over engine.max_variables_bytes {limit}"
    )]
    TotalTooLarge {
        key: String,
        bytes: usize,
        limit: usize,
    },
}

impl VariableError {
    /// The `[engine]` key of the cap this write broke.
    pub fn limit(&self) -> &'static str {
        match self {
            VariableError::ValueTooLarge { .. } => "max_variable_bytes",
            VariableError::TotalTooLarge { .. } => "max_variables_bytes",
        }
    }

    /// A key shown in a message: long keys (they count against the caps too) are cut.
    pub(crate) fn shown_key(key: &str) -> String {
        const SHOWN: usize = 64;
        if key.len() <= SHOWN {
            return key.to_owned();
        }
        let mut end = SHOWN;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({} bytes)", &key[..end], key.len())
    }
}
