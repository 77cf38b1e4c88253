//! Control-flow action steps per second: (1) criterion on the pure `engine::execute::execute` for
//! `variable_set`, `branch`, `goto` (and with the actor's per-step substitute + typed parse);
//! (2) one real activeflow actor in an in-process engine looping variable_set → branch → goto
//! until `loop_limit`, timed start → end. `cargo bench --bench action_steps` (< 1 min).
//! Env: ACTION_STEPS_COUNT (default 200000), ACTION_STEPS_RUNS (5), ACTION_STEPS_LOG (a filter),
//! ACTION_STEPS_LOG_FORMAT (`text` or `json`, as `log.format`).
#![allow(clippy::unwrap_used)] // a benchmark with fixed inputs: failing loudly is the point

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use activeflow::app::{self, Listeners};
use activeflow::config::{Config, DEFAULT_TOML};
use activeflow::engine::execute::{execute, ExecState};
use activeflow::engine::{EndReason, StartActiveflow, Status};
use activeflow::flow::{Action, ActionId, ActionKind, Flow, FlowStore, VariableLimits, Variables};
use criterion::{Criterion, Throughput};
use serde_json::json;

/// Same allocator as the binary, so the actor figure is comparable with production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The loop: `variable_set x=1` → `branch` on x (1 → the goto) → `goto` back, `loop_count`
/// far above any execute limit. A `stop` after the branch ends the run if the branch misfires.
fn loop_actions() -> Vec<Action> {
    let set = Action::new("variable_set", json!({"key": "x", "value": "1"}));
    let mut branch = Action::new("branch", json!({}));
    let stop = Action::new("stop", json!({}));
    let mut goto = Action::new("goto", json!({}));
    branch.option = Arc::new(json!({"variable": "x", "target_ids": {"1": goto.id.to_string()}}));
    goto.option = Arc::new(json!({"target_id": set.id.to_string(), "loop_count": u32::MAX}));
    vec![set, branch, stop, goto]
}

fn state<'a>(
    variables: &'a mut Variables,
    goto_counts: &'a mut HashMap<ActionId, u32>,
) -> ExecState<'a> {
    ExecState {
        variables,
        goto_counts,
        has_call: false,
        answered: false,
        now: chrono::Utc::now(),
        limits: VariableLimits::default(),
    }
}

/// Reference: the pure step function with no actor, record or clock around it.
fn pure_execute(c: &mut Criterion) {
    let actions = loop_actions();
    let kinds: Vec<(ActionId, ActionKind)> =
        actions.iter().map(|a| (a.id, a.typed().unwrap())).collect();
    let (set, branch, goto) = (&kinds[0], &kinds[1], &kinds[3]);
    let mut g = c.benchmark_group("execute");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30)
        .throughput(Throughput::Elements(1));

    let (mut vars, mut gotos) = (Variables::new(), HashMap::new());
    g.bench_function("variable_set", |b| {
        let mut st = state(&mut vars, &mut gotos);
        b.iter(|| execute(set.0, black_box(&set.1), &mut st).unwrap())
    });
    let (mut vars, mut gotos) = (Variables::new(), HashMap::new());
    g.bench_function("goto", |b| {
        let mut st = state(&mut vars, &mut gotos);
        b.iter(|| execute(goto.0, black_box(&goto.1), &mut st).unwrap())
    });
    // The branch consumes its variable, so each step re-sets it (one small map insert).
    let (mut vars, mut gotos) = (Variables::new(), HashMap::new());
    g.bench_function("branch (with variable re-set)", |b| {
        let mut st = state(&mut vars, &mut gotos);
        b.iter(|| {
            st.variables.set("x", "1");
            execute(branch.0, black_box(&branch.1), &mut st).unwrap()
        })
    });

    // One loop iteration = 3 steps, as the actor runs them minus the actor: substitute the
    // action's option, parse it (typed), execute.
    g.throughput(Throughput::Elements(3));
    let (mut vars, mut gotos) = (Variables::new(), HashMap::new());
    g.bench_function("loop of 3 (pre-typed)", |b| {
        let mut st = state(&mut vars, &mut gotos);
        b.iter(|| {
            for (id, kind) in [set, branch, goto] {
                black_box(execute(*id, kind, &mut st).unwrap());
            }
        })
    });
    let (mut vars, mut gotos) = (Variables::new(), HashMap::new());
    vars.set("activeflow.id", ActionId::new().to_string());
    g.bench_function("loop of 3 (substitute + typed + execute)", |b| {
        b.iter(|| {
            for a in [&actions[0], &actions[1], &actions[3]] {
                let resolved = a.substituted(&vars, usize::MAX).unwrap();
                let kind = resolved.typed().unwrap();
                let mut st = state(&mut vars, &mut gotos);
                black_box(execute(resolved.id, &kind, &mut st).unwrap());
            }
        })
    });
    g.finish();
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Microseconds between two RFC 3339 record timestamps (engine-side duration).
fn record_micros(start: &str, end: &str) -> Option<i64> {
    let s = chrono::DateTime::parse_from_rfc3339(start).ok()?;
    let e = chrono::DateTime::parse_from_rfc3339(end).ok()?;
    (e - s).num_microseconds()
}

/// Starts the engine in-process and runs `runs` activeflows of `steps` actions, one at a time.
fn actor_steps(steps: u32, runs: usize) {
    // Recordings and the database under the temp dir, never the repo's `data/`.
    let scratch = std::env::temp_dir().join(format!("activeflow-bench-{}", std::process::id()));
    let overrides = [
        (
            "ACTIVEFLOW_MEDIA_RECORDINGS_DIR",
            scratch.join("recordings").display().to_string(),
        ),
        (
            "ACTIVEFLOW_STORAGE_PATH",
            scratch.join("activeflow.db").display().to_string(),
        ),
        ("ACTIVEFLOW_SIP_LISTEN", "127.0.0.1:0".to_string()),
        ("ACTIVEFLOW_API_LISTEN", "127.0.0.1:0".to_string()),
        ("ACTIVEFLOW_METRICS_LISTEN", "127.0.0.1:0".to_string()),
        ("ACTIVEFLOW_ENGINE_MAX_EXECUTE_COUNT", steps.to_string()),
    ];
    let mut config = Config::from_toml_with_env(
        DEFAULT_TOML,
        overrides.iter().map(|(k, v)| (k.to_string(), v.clone())),
    )
    .unwrap();
    config.routes.clear();
    let settings = config.validate().unwrap();
    let listeners = Listeners::bind(&settings).unwrap();
    let flow = Arc::new(Flow::new("steps", loop_actions()));
    println!(
        "\nactor/loop: {runs} activeflow(s) of {steps} steps (variable_set → branch → goto), \
         one engine actor each"
    );
    let mut rates = Vec::new();
    actix_rt::System::new().block_on(async move {
        let app = app::start(&settings, Arc::new(FlowStore::new()), listeners, None)
            .await
            .unwrap();
        // Run 0 warms up (heap growth for the executed-actions log, caches); it is not counted.
        for run in 0..=runs {
            let t0 = Instant::now();
            let id = app
                .supervisor
                .send(StartActiveflow {
                    flow: flow.clone(),
                    variables: Variables::new(),
                    parent: None,
                })
                .await
                .unwrap()
                .unwrap();
            let entry = app.registry.get(&id).unwrap();
            while entry.record().status == Status::Running {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let wall = t0.elapsed();
            let (reason, executed, engine_us) = {
                let r = entry.record();
                let us = r
                    .tm_end
                    .as_deref()
                    .and_then(|end| record_micros(&r.tm_create, end));
                (r.end_reason, r.executed_actions.len(), us)
            };
            assert_eq!(reason, Some(EndReason::LoopLimit), "the loop must hit the limit");
            drop(entry);
            // Ended records hold every executed action; free them before the next run.
            app.registry.remove(&id);
            let rate = f64::from(steps) / wall.as_secs_f64();
            if run > 0 {
                rates.push(rate);
            }
            println!(
                "actor/loop {}: {executed} actions in {:.1} ms wall → {:.0} actions/s \
                 (record tm_create→tm_end {:.1} ms)",
                if run == 0 { "warm-up".to_string() } else { format!("run {run}") },
                wall.as_secs_f64() * 1e3,
                rate,
                engine_us.unwrap_or(0) as f64 / 1e3,
            );
        }
        rates.sort_by(f64::total_cmp);
        if let (Some(min), Some(max)) = (rates.first(), rates.last()) {
            println!(
                "actor/loop: median {:.0} actions/s (min {min:.0}, max {max:.0}) over {runs} run(s)",
                rates[rates.len() / 2]
            );
        }
        activeflow::shutdown::drain(app, Duration::ZERO).await;
    });
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes --bench; `cargo test --benches` does not (then: a quick smoke run).
    let bench = args.iter().any(|a| a == "--bench");
    // A name filter (e.g. `-- execute`) that does not match "actor" skips the engine part.
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let run_actor = filters.is_empty() || filters.iter().any(|f| "actor/loop".contains(f.as_str()));
    if let Ok(filter) = std::env::var("ACTION_STEPS_LOG") {
        // Production logs every executed action at info, in the activeflow's span; this
        // prices that in (to a sink), in `log.format` ACTION_STEPS_LOG_FORMAT (text or json).
        let format = match std::env::var("ACTION_STEPS_LOG_FORMAT").as_deref() {
            Ok("json") => activeflow::config::LogFormat::Json,
            _ => activeflow::config::LogFormat::Text,
        };
        let filter = tracing_subscriber::EnvFilter::new(filter);
        let subscriber = activeflow::logging::subscriber(format, filter, false, std::io::sink);
        tracing::subscriber::set_global_default(subscriber).unwrap();
    }
    // The binary installs the Prometheus recorder: every action updates a histogram.
    let _metrics = activeflow::metrics::install().unwrap();

    let mut c = Criterion::default().configure_from_args();
    pure_execute(&mut c);
    c.final_summary();

    if run_actor {
        let (steps, runs) = if bench {
            (
                env_or("ACTION_STEPS_COUNT", 200_000u32),
                env_or("ACTION_STEPS_RUNS", 5usize),
            )
        } else {
            (2_000, 1)
        };
        actor_steps(steps, runs);
    }
}
