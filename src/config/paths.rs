//! Relative paths written in a config file resolve against the file's directory, so
//! `/etc/activeflow/activeflow.toml` may say `flows.dir = "flows"`. Only the file's own values
//! are resolved (before layering): keys it leaves to the embedded default, and environment
//! overrides, stay relative to the working directory. Absolute paths and "" are unchanged.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::{invalid, ConfigError};

/// Every key that names a file or directory (`[]`: each entry of the list).
pub(super) const PATH_KEYS: &[&str] = &[
    "sip.tls_cert",
    "sip.tls_key",
    "media.prompts_dir",
    "media.recordings_dir",
    "media.cache_dir",
    "api.token_file",
    "api.tls_cert",
    "api.tls_key",
    "metrics.tls_cert",
    "metrics.tls_key",
    "flows.dir",
    "storage.path",
    "trunks[].tls_ca",
];

/// The directory a config file's relative paths resolve against: its parent, made absolute
/// (so the result does not depend on a later change of working directory).
pub(super) fn base_dir(file: &Path) -> Result<PathBuf, ConfigError> {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::path::absolute(parent).map_err(|e| ConfigError::Read {
        path: file.display().to_string(),
        message: format!("its directory: {e}"),
    })
}

/// Rewrites every relative path of [`PATH_KEYS`] in `table` (a config file's own table) as
/// `dir` joined with it.
pub(super) fn resolve(table: &mut Table, dir: &Path) -> Result<(), ConfigError> {
    for key in PATH_KEYS {
        let steps: Vec<&str> = key.split('.').collect();
        resolve_at(table, &steps, dir, key)?;
    }
    Ok(())
}

fn resolve_at(table: &mut Table, steps: &[&str], dir: &Path, key: &str) -> Result<(), ConfigError> {
    let Some((first, rest)) = steps.split_first() else {
        return Ok(());
    };
    if let Some(list) = first.strip_suffix("[]") {
        if let Some(Value::Array(items)) = table.get_mut(list) {
            for item in items {
                if let Value::Table(entry) = item {
                    resolve_at(entry, rest, dir, key)?;
                }
            }
        }
        return Ok(());
    }
    match (table.get_mut(*first), rest.is_empty()) {
        (Some(Value::Table(inner)), false) => resolve_at(inner, rest, dir, key),
        (Some(Value::String(value)), true) => {
            if !value.is_empty() && Path::new(value.as_str()).is_relative() {
                let joined: PathBuf = dir.join(value.as_str()).components().collect();
                *value = joined
                    .to_str()
                    .ok_or_else(|| invalid(key, "the config file's directory is not UTF-8"))?
                    .to_owned();
            }
            Ok(())
        }
        // Absent, or a wrong type (serde names the key).
        _ => Ok(()),
    }
}
