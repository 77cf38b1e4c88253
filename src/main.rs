//! The `activeflow` binary: `serve` loads and validates the config and flows, binds every socket,
//! starts the engine and waits for SIGINT/SIGTERM to drain; `validate` checks flow files;
//! `config` prints the effective config, secrets masked.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use activeflow::app::{self, Listeners};
use activeflow::config::{Config, LogFormat, Settings};
use activeflow::flow::{Flow, FlowStore};

/// mimalloc: the hot path allocates on the SIP receive thread and frees on actor threads, a
/// pattern glibc malloc handles poorly (measured in docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Flows registered when the embedded config is used and `flows.dir` does not exist.
const EMBEDDED_DEMO_FLOW: &str = include_str!("../config/flows/demo.json");

#[derive(Parser)]
#[command(name = "activeflow", version, about = "Telephony orchestration engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine.
    Serve {
        /// Config file; without it the embedded default config is used.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the effective config (the embedded default, then the file, then ACTIVEFLOW_*
    /// variables) as TOML with secrets masked, after the checks `serve` makes before binding
    /// (flows.dir loaded too); exits non-zero naming the key when it is invalid.
    Config {
        /// Config file; without it the embedded default config is used.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check flow JSON files; exits non-zero naming the first bad action and field.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve { config } => serve(config.as_deref()),
        Command::Validate { files } => validate(&files),
        Command::Config { config } => show_config(config.as_deref()),
    }
}

/// `activeflow config`: loads and validates like `serve`, flows included (binding nothing),
/// prints the result.
fn show_config(path: Option<&Path>) -> anyhow::Result<()> {
    let settings = Config::load(path)?.validate()?;
    load_flows(&settings, path.is_none())?;
    print!("{}", settings.raw.to_masked_toml()?);
    Ok(())
}

fn validate(files: &[PathBuf]) -> anyhow::Result<()> {
    activeflow::logging::init(LogFormat::default());
    let mut failed = false;
    for path in files {
        let result = std::fs::read(path)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| Flow::from_json(&bytes).map_err(anyhow::Error::from));
        match result {
            Ok(flow) => println!("{}: ok ({} actions)", path.display(), flow.actions.len()),
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                failed = true;
            }
        }
    }
    if failed {
        bail!("invalid flow file(s)");
    }
    Ok(())
}

/// Loads flows from `flows.dir`; with the embedded config and no such directory, the demo flow.
fn load_flows(settings: &Settings, embedded: bool) -> anyhow::Result<FlowStore> {
    let store = FlowStore::new();
    let dir: &Path = &settings.flows_dir;
    if dir.is_dir() {
        store
            .load_dir(dir)
            .with_context(|| format!("config key flows.dir ({})", dir.display()))?;
    } else if embedded {
        tracing::warn!(dir = %dir.display(), "flows.dir not found; using the embedded demo flow");
        store.insert(Flow::from_json(EMBEDDED_DEMO_FLOW.as_bytes())?)?;
    } else {
        bail!("config key flows.dir: {} is not a directory", dir.display());
    }
    for (i, route) in settings.raw.routes.iter().enumerate() {
        if store.get_by_name_or_id(&route.flow).is_none() {
            // Not fatal: the flow may be created over the API; until then the number gets 404.
            tracing::warn!(
                key = %format!("routes[{i}].flow"),
                flow = %route.flow,
                "route names no loaded flow; calls to it get 404 until the flow exists"
            );
        }
    }
    Ok(store)
}

fn serve(config_path: Option<&Path>) -> anyhow::Result<()> {
    // Logging follows `log.format`; an unreadable config is printed by main as plain text.
    let config = Config::load(config_path)?;
    activeflow::logging::init(config.log.format);
    let settings = config.validate()?;
    let flows = Arc::new(load_flows(&settings, config_path.is_none())?);
    let listeners = Listeners::bind(&settings)?;
    let metrics = activeflow::metrics::install()?;
    let grace = Duration::from_secs(settings.raw.engine.shutdown_grace_seconds);
    let system = actix_rt::System::new();
    system.block_on(async move {
        let app = app::start(&settings, flows.clone(), listeners, Some(metrics)).await?;
        tracing::info!(
            sip = %app.sip_addr,
            api = %app.api_addr,
            metrics = %app.metrics_addr,
            flows = flows.len(),
            "activeflow listening"
        );
        let cause = activeflow::shutdown::stop_requested(&app.health).await;
        let stopped = activeflow::shutdown::drain(app, grace).await;
        tracing::info!(stopped, "activeflow stopped");
        if let activeflow::shutdown::StopCause::Died(part) = cause {
            bail!("{part} died: drained and exiting so a supervisor restarts the process");
        }
        anyhow::Ok(())
    })
}
