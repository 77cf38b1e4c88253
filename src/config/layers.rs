//! Config layering: the embedded default is the base table, a config file's table (its
//! relative paths resolved against its directory) is merged over it key by key, an array in the
//! file replacing the default's, then `ACTIVEFLOW_*` variables go on top (`env.rs`). Unknown
//! keys are refused by their full name before the result is deserialized; errors never quote a
//! secret (`secrets.rs`).

use toml::{Table, Value};

use super::{env, paths, schema, secrets, Config, ConfigError, DEFAULT_TOML};

/// A config file's text, named for errors; `dir`: where its relative paths resolve (`None`:
/// the working directory).
#[derive(Debug, Clone, Copy)]
pub struct FileLayer<'a> {
    pub text: &'a str,
    pub name: &'a str,
    pub dir: Option<&'a std::path::Path>,
}

/// Merges `over` into `base`: tables key by key, anything else (arrays included) replaced.
fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(inner)), Value::Table(value)) => merge(inner, value),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

impl Config {
    /// Loads the layers: the embedded default, then `path` (when given) merged over it with
    /// its relative paths resolved against its directory, then the process's `ACTIVEFLOW_*`
    /// variables.
    pub fn load(path: Option<&std::path::Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(path, env::from_process()?)
    }

    /// [`Config::load`] with `env` standing for the process's environment.
    pub fn load_with_env(
        path: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Self::from_layers(None, env);
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let dir = paths::base_dir(path)?;
        Self::from_layers(
            Some(FileLayer {
                text: &text,
                name: &path.display().to_string(),
                dir: Some(&dir),
            }),
            env,
        )
    }

    /// `text` layered over the embedded default, then `ACTIVEFLOW_*` overrides taken from
    /// `env`; relative paths stay relative to the working directory.
    pub fn from_toml_with_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Self::from_layers(
            Some(FileLayer {
                text,
                name: "config",
                dir: None,
            }),
            env,
        )
    }

    /// Default table, file table (tables merge key by key, a file's array replaces the
    /// default's), env overrides typed by the schema; then the result is deserialized (unknown
    /// keys refused by their full name).
    pub fn from_layers(
        file: Option<FileLayer<'_>>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let schema = schema::schema()?;
        let mut table: Table = DEFAULT_TOML
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse(format!("embedded default: {e}")))?;
        if let Some(file) = file {
            // toml's own rendering quotes the source line, which may hold a secret.
            let mut over: Table = file.text.parse().map_err(|e: toml::de::Error| {
                secrets::parse_error(schema, file.name, file.text, &e)
            })?;
            if let Some(dir) = file.dir {
                paths::resolve(&mut over, dir)?;
            }
            merge(&mut table, over);
        }
        env::apply(&mut table, schema, env)?;
        // serde's type error would quote the value.
        secrets::check_strings(&table)?;
        // serde (deny_unknown_fields) is the judge; the schema only names an unknown key in
        // full (`trunks[1].hots`) where serde's message would say `trunks`.
        let known = schema::check_known(&table, schema, "");
        Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                known
                    .err()
                    .unwrap_or_else(|| ConfigError::Parse(e.to_string().trim_end().to_owned()))
            })
    }
}
