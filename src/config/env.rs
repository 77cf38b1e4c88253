//! `ACTIVEFLOW_<SECTION>_<KEY>` overrides, applied over the merged config table. A variable's
//! name is matched against the schema, sections first, then keys, longest name first, so
//! underscores inside names are not ambiguous (`ACTIVEFLOW_SIP_T1_MS` is `sip.t1_ms`); list
//! entries go by index (`ACTIVEFLOW_TRUNKS_0_OUTBOUND_PROXY`: an existing entry, or the next one
//! to append). The value takes the type the key has in the typed config, so a numeric token
//! stays a string. Every error names the variable and the key.

use toml::{Table, Value};

use super::schema::entry_shape;
use super::ConfigError;

/// Prefix of the environment variables that override config keys.
pub(super) const ENV_PREFIX: &str = "ACTIVEFLOW_";

/// One step of a key's path: a table key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Key(String),
    Index(usize),
}

/// A variable matched to its key.
struct Override {
    var: String,
    path: Vec<Step>,
    value: String,
}

/// `trunks[0].outbound_proxy`.
fn key_name(path: &[Step]) -> String {
    let mut name = String::new();
    for step in path {
        match step {
            Step::Key(k) if name.is_empty() => name.push_str(k),
            Step::Key(k) => {
                name.push('.');
                name.push_str(k);
            }
            Step::Index(i) => name.push_str(&format!("[{i}]")),
        }
    }
    name
}

fn env_error(var: &str, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Env {
        var: var.to_owned(),
        key: key.into(),
        message: message.into(),
    }
}

/// The process's `ACTIVEFLOW_*` variables. Others are skipped whatever their encoding
/// (`std::env::vars` would panic on one that is not UTF-8); a non-UTF-8 name or value of an
/// `ACTIVEFLOW_*` variable is refused, naming the variable (and its key), never quoting it.
pub(super) fn from_process() -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let lossy = name.to_string_lossy();
        if !lossy.starts_with(ENV_PREFIX) {
            continue;
        }
        let Some(var) = name.to_str() else {
            return Err(ConfigError::EnvName {
                var: lossy.into_owned(),
                message: "the name is not UTF-8".into(),
            });
        };
        let Some(value) = value.to_str() else {
            let mut path = Vec::new();
            let name = var[ENV_PREFIX.len()..].to_ascii_lowercase();
            resolve(super::schema::schema()?, &name, &mut path)
                .map_err(|(key, message)| env_error(var, key, message))?;
            return Err(env_error(var, key_name(&path), "the value is not UTF-8"));
        };
        vars.push((var.to_owned(), value.to_owned()));
    }
    Ok(vars)
}

/// Applies every `ACTIVEFLOW_*` variable of `env` to `table`, typed by `schema`. Variables are
/// applied in key order (list indexes numerically), so entry 0 is made before entry 1 whatever
/// order the environment lists them in.
pub(super) fn apply(
    table: &mut Table,
    schema: &Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let mut overrides = Vec::new();
    for (var, value) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let name = rest.to_ascii_lowercase();
        let mut path = Vec::new();
        resolve(schema, &name, &mut path)
            .map_err(|(key, message)| env_error(&var, key, message))?;
        overrides.push(Override { var, path, value });
    }
    overrides.sort_by(|a, b| a.path.cmp(&b.path).then_with(|| a.var.cmp(&b.var)));
    for o in &overrides {
        set(table, schema, &o.path, &o.value)
            .map_err(|message| env_error(&o.var, key_name(&o.path), message))?;
    }
    Ok(())
}

/// Matches `name` (lowercase, after the prefix) to a key of `shape`, appending the steps to
/// `path`. Errors carry the best guess at the key and what is wrong.
fn resolve(shape: &Table, name: &str, path: &mut Vec<Step>) -> Result<(), (String, String)> {
    if let Some(value) = shape.get(name) {
        path.push(Step::Key(name.to_owned()));
        return match value {
            Value::Table(_) => Err((
                key_name(path),
                "is a section: name one of its keys (ACTIVEFLOW_<SECTION>_<KEY>)".into(),
            )),
            v if entry_shape(v).is_some() => Err((
                key_name(path),
                "is a list: name an entry's index and key (e.g. ACTIVEFLOW_TRUNKS_0_NAME)".into(),
            )),
            _ => Ok(()),
        };
    }
    // The longest section or list whose name, then `_`, starts `name`.
    let container = shape
        .iter()
        .filter(|(k, v)| {
            name.len() > k.len()
                && name.starts_with(k.as_str())
                && name.as_bytes()[k.len()] == b'_'
                && (v.is_table() || entry_shape(v).is_some())
        })
        .max_by_key(|(k, _)| k.len());
    let Some((key, value)) = container else {
        path.push(Step::Key(name.to_owned()));
        let what = if path.len() == 1 {
            let sections: Vec<&str> = shape.keys().map(String::as_str).collect();
            format!(
                "no such config section or key (sections: {})",
                sections.join(", ")
            )
        } else {
            "no such config key".to_owned()
        };
        return Err((key_name(path), what));
    };
    path.push(Step::Key(key.clone()));
    let rest = &name[key.len() + 1..];
    match value {
        Value::Table(inner) => resolve(inner, rest, path),
        _ => {
            let Some(entry) = entry_shape(value) else {
                return Err((key_name(path), "no such config key".into()));
            };
            let (index, rest) = rest.split_once('_').unwrap_or((rest, ""));
            let index = index
                .parse::<usize>()
                .ok()
                .filter(|_| index.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    (
                        key_name(path),
                        format!("{index:?} is not a list index: name an entry's index and key (e.g. ACTIVEFLOW_TRUNKS_0_NAME)"),
                    )
                })?;
            path.push(Step::Index(index));
            if rest.is_empty() {
                return Err((key_name(path), "name one of the entry's keys".into()));
            }
            resolve(entry, rest, path)
        }
    }
}

/// Sets `path` in `table` (creating absent sections, lists and the next list entry).
fn set(table: &mut Table, shape: &Table, path: &[Step], value: &str) -> Result<(), String> {
    let Some(Step::Key(key)) = path.first() else {
        return Err("not a key".into());
    };
    let key_shape = shape.get(key).ok_or("no such config key")?;
    match path.get(1) {
        None => {
            table.insert(key.clone(), typed(value, key_shape)?);
            Ok(())
        }
        Some(Step::Index(index)) => {
            let entry = entry_shape(key_shape).ok_or("not a list")?;
            let slot = table
                .entry(key.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            let Value::Array(items) = slot else {
                return Err(format!("{key} is not a list in the config"));
            };
            if *index > items.len() {
                return Err(format!(
                    "{key} has {} entries: an index names one of them or the next one ({})",
                    items.len(),
                    items.len()
                ));
            }
            if *index == items.len() {
                items.push(Value::Table(Table::new()));
            }
            let Value::Table(item) = &mut items[*index] else {
                return Err(format!("{key}[{index}] is not a table in the config"));
            };
            set(item, entry, &path[2..], value)
        }
        Some(Step::Key(_)) => {
            let Value::Table(inner_shape) = key_shape else {
                return Err("not a section".into());
            };
            let slot = table
                .entry(key.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            let Value::Table(inner) = slot else {
                return Err(format!("{key} is not a table in the config"));
            };
            set(inner, inner_shape, &path[1..], value)
        }
    }
}

/// `value` as the type `shape` has: strings stay strings; lists are comma-separated
/// (`ACTIVEFLOW_HTTP_ALLOW=127.0.0.1/32,10.1.0.0/16`; empty = an empty list).
fn typed(value: &str, shape: &Value) -> Result<Value, String> {
    Ok(match shape {
        Value::String(_) => Value::String(value.to_owned()),
        Value::Integer(_) => Value::Integer(
            value
                .trim()
                .parse()
                .map_err(|_| format!("{value:?} is not an integer"))?,
        ),
        Value::Float(_) => Value::Float(
            value
                .trim()
                .parse()
                .map_err(|_| format!("{value:?} is not a number"))?,
        ),
        Value::Boolean(_) => Value::Boolean(match value.trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(format!("{value:?} is not true or false")),
        }),
        Value::Array(items) => {
            let item = items
                .first()
                .cloned()
                .unwrap_or_else(|| Value::String(String::new()));
            Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| typed(v, &item))
                    .collect::<Result<_, _>>()?,
            )
        }
        Value::Table(_) | Value::Datetime(_) => {
            return Err("cannot be set from the environment".into())
        }
    })
}
