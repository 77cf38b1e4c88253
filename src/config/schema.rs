//! The shape of the config as the typed structs have it: the embedded default parsed into
//! [`Config`] and serialized back, with one entry in every list, so every key is present with a
//! value of its type. Environment overrides take their types from it, and an unknown key serde
//! refuses is named from it in full. (An `Option` field left `None` in the default would be
//! missing here: give such keys a default value instead.)

use std::sync::OnceLock;

use toml::{Table, Value};

use super::{ApiTokenConfig, Config, ConfigError, RouteConfig, TrunkConfig, UserConfig};

/// The schema table; built once per process.
pub(super) fn schema() -> Result<&'static Table, ConfigError> {
    static SCHEMA: OnceLock<Result<Table, String>> = OnceLock::new();
    SCHEMA
        .get_or_init(build)
        .as_ref()
        .map_err(|e| ConfigError::Parse(format!("the embedded default config: {e}")))
}

fn build() -> Result<Table, String> {
    let mut config: Config = toml::from_str(super::DEFAULT_TOML).map_err(|e| e.to_string())?;
    // Lists the default leaves empty still need their entries' shape.
    if config.trunks.is_empty() {
        config.trunks.push(TrunkConfig::default());
    }
    if config.routes.is_empty() {
        config.routes.push(RouteConfig::default());
    }
    if config.users.is_empty() {
        config.users.push(UserConfig::default());
    }
    if config.api.tokens.is_empty() {
        config.api.tokens.push(ApiTokenConfig::default());
    }
    match Value::try_from(&config).map_err(|e| e.to_string())? {
        Value::Table(table) => Ok(table),
        _ => Err("does not serialize to a table".into()),
    }
}

/// The shape of one entry when `shape` is a list of tables (`[[trunks]]`), else `None`.
pub(super) fn entry_shape(shape: &Value) -> Option<&Table> {
    match shape {
        Value::Array(items) => match items.first() {
            Some(Value::Table(entry)) => Some(entry),
            _ => None,
        },
        _ => None,
    }
}

/// Refuses any key of `table` the schema does not know, naming it (`trunks[1].hots`).
pub(super) fn check_known(table: &Table, shape: &Table, at: &str) -> Result<(), ConfigError> {
    for (key, value) in table {
        let here = if at.is_empty() {
            key.clone()
        } else {
            format!("{at}.{key}")
        };
        let Some(key_shape) = shape.get(key) else {
            return Err(super::invalid(
                here,
                "unknown key (`activeflow config` prints every key)",
            ));
        };
        match (value, key_shape) {
            (Value::Table(inner), Value::Table(inner_shape)) => {
                check_known(inner, inner_shape, &here)?;
            }
            (Value::Array(items), _) => {
                if let Some(entry) = entry_shape(key_shape) {
                    for (i, item) in items.iter().enumerate() {
                        if let Value::Table(item) = item {
                            check_known(item, entry, &format!("{here}[{i}]"))?;
                        }
                    }
                }
            }
            // A wrong type is serde's to report (it names the key too).
            _ => {}
        }
    }
    Ok(())
}
