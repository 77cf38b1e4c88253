//! Config errors that must not echo a secret. serde quotes a wrong-typed value
//! (``invalid type: integer `918273645` ``) and a TOML syntax error quotes its source line, so a
//! secret key of the wrong type is refused as "must be a string" by its full name, and a syntax
//! error is told by line, column and (when the schema knows it) key, never with the text.

use toml::{Table, Value};

use super::schema::entry_shape;
use super::{invalid, ConfigError};

/// Keys holding a secret, or a URL that may carry one (`[]`: each entry of the list).
pub(super) const SECRET_KEYS: &[&str] = &[
    "api.token",
    "api.tokens[].token",
    "trunks[].password",
    "users[].password",
    "events.webhook_secret",
    "events.webhook_uri",
    "storage.url",
    "cluster.nats_url",
];

/// Refuses a secret key of `table` (the merged config) holding anything but a string, naming
/// the key with its index (`users[0].password`) and not the value.
pub(super) fn check_strings(table: &Table) -> Result<(), ConfigError> {
    for key in SECRET_KEYS {
        let steps: Vec<&str> = key.split('.').collect();
        check_at(table, &steps, "")?;
    }
    Ok(())
}

fn check_at(table: &Table, steps: &[&str], at: &str) -> Result<(), ConfigError> {
    let Some((first, rest)) = steps.split_first() else {
        return Ok(());
    };
    let here = |name: &str| {
        if at.is_empty() {
            name.to_owned()
        } else {
            format!("{at}.{name}")
        }
    };
    if let Some(list) = first.strip_suffix("[]") {
        if let Some(Value::Array(items)) = table.get(list) {
            for (i, item) in items.iter().enumerate() {
                if let Value::Table(entry) = item {
                    check_at(entry, rest, &format!("{}[{i}]", here(list)))?;
                }
            }
        }
        return Ok(());
    }
    match (table.get(*first), rest.is_empty()) {
        (Some(Value::Table(inner)), false) => check_at(inner, rest, &here(first)),
        (Some(Value::String(_)) | None, true) => Ok(()),
        (Some(_), true) => Err(invalid(here(first), "must be a string")),
        // A section of the wrong type: serde names it (no secret in a section's name).
        (_, false) => Ok(()),
    }
}

/// A TOML syntax error in `text` (a file named `name`): where it is and what the parser
/// expected, without the source line toml's own rendering quotes.
pub(super) fn parse_error(
    schema: &Table,
    name: &str,
    text: &str,
    e: &toml::de::Error,
) -> ConfigError {
    let message = e.message().trim().replace('\n', "; ");
    let Some(before) = e.span().and_then(|span| text.get(..span.start)) else {
        return ConfigError::Parse(format!("{name}: {message}"));
    };
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let key = match key_at(schema, text, line, column) {
        Some(key) => format!(" (key {key})"),
        None => String::new(),
    };
    ConfigError::Parse(format!(
        "{name}: line {line}, column {column}{key}: {message}"
    ))
}

/// The key written on `line` (1-based) of `text`, under the last table header before it, when
/// the error is in its value (after `=`) and the schema knows the key: only names the schema
/// holds are echoed, never text the file wrote.
fn key_at(schema: &Table, text: &str, line: usize, column: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let written = lines.get(line.checked_sub(1)?)?;
    let (key, _) = written.split_once('=')?;
    if column <= key.chars().count() + 1 {
        return None;
    }
    let key = key.trim();
    // The header in force: `[api]`, or `[[trunks]]` counted to name the entry's index.
    let mut header: Option<(&str, Option<usize>)> = None;
    let mut entries: std::collections::HashMap<&str, usize> = Default::default();
    for earlier in &lines[..line - 1] {
        let h = earlier.split('#').next().unwrap_or("").trim();
        if let Some(list) = h.strip_prefix("[[").and_then(|h| h.strip_suffix("]]")) {
            let count = entries.entry(list.trim()).or_insert(0);
            header = Some((list.trim(), Some(*count)));
            *count += 1;
        } else if let Some(table) = h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            header = Some((table.trim(), None));
        }
    }
    let mut shape = schema;
    let mut name = String::new();
    let mut parts: Vec<&str> = Vec::new();
    if let Some((table, _)) = header {
        parts.extend(table.split('.').map(str::trim));
    }
    let header_parts = parts.len();
    parts.extend(key.split('.').map(str::trim));
    for (i, part) in parts.iter().enumerate() {
        let value = shape.get(*part)?;
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(part);
        if i + 1 == header_parts {
            if let Some((_, Some(index))) = header {
                name.push_str(&format!("[{index}]"));
            }
        }
        if i + 1 == parts.len() {
            return Some(name);
        }
        shape = match value {
            Value::Table(inner) => inner,
            other => entry_shape(other)?,
        };
    }
    None
}
