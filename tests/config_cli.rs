//! `activeflow config` on the real binary: a partial file plus environment variables print as
//! the merged config with every secret masked; bad configs (flows.dir included) exit non-zero
//! naming the key and never quoting a secret; a non-UTF-8 environment does not panic it; `serve`
//! runs a partial file whose paths sit beside it; the shipped deploy/ config validates and its
//! systemd unit passes `systemd-analyze verify` and outlasts the drain.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

mod common;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// `activeflow config ARGS...` with `env` and no `ACTIVEFLOW_*` variable inherited.
fn config_cmd(args: &[&str], env: &[(&str, &str)]) -> Output {
    let env: Vec<(OsString, OsString)> = env
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect();
    config_cmd_os(args, &env)
}

/// [`config_cmd`] with variables that need not be UTF-8.
fn config_cmd_os(args: &[&str], env: &[(OsString, OsString)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_activeflow"));
    cmd.arg("config").args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ACTIVEFLOW_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .env("NO_COLOR", "1");
    cmd.output().expect("run activeflow config")
}

/// A flows directory holding one flow named `name`.
fn flows_dir(dir: &Path, name: &str) -> std::path::PathBuf {
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let flow = format!(r#"{{"name": "{name}", "actions": [{{"type": "answer"}}]}}"#);
    std::fs::write(flows.join(format!("{name}.json")), flow).unwrap();
    flows
}

fn stdout_toml(out: &Output) -> toml::Table {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .parse()
        .expect("the output is TOML")
}

fn get<'a>(t: &'a toml::Table, dotted: &str) -> &'a toml::Value {
    let mut parts = dotted.split('.');
    let mut v = t
        .get(parts.next().unwrap())
        .unwrap_or_else(|| panic!("{dotted}"));
    for p in parts {
        v = match p.parse::<usize>() {
            Ok(i) => &v.as_array().unwrap()[i],
            Err(_) => v.get(p).unwrap_or_else(|| panic!("{dotted}")),
        };
    }
    v
}

fn s<'a>(t: &'a toml::Table, dotted: &str) -> &'a str {
    get(t, dotted)
        .as_str()
        .unwrap_or_else(|| panic!("{dotted} is a string"))
}

#[test]
fn config_prints_the_layered_config_with_secrets_masked() {
    let dir = common::peers::private_dir("config-cli");
    flows_dir(&dir, "demo");
    let file = dir.join("partial.toml");
    std::fs::write(
        &file,
        "[sip]\nt1_ms = 250\n[flows]\ndir = \"flows\"\n[api]\ntoken = \"file-token-8f3a\"\n\
         [[users]]\nusername = \"alice\"\npassword = \"alice-pw-77c1\"\n",
    )
    .unwrap();
    let out = config_cmd(
        &["--config", file.to_str().unwrap()],
        &[
            ("ACTIVEFLOW_STORAGE_RETENTION_DAYS", "7"),
            ("ACTIVEFLOW_EVENTS_WEBHOOK_SECRET", "hmac-9d2e"),
            ("ACTIVEFLOW_TRUNKS_1_NAME", "carrier"),
            ("ACTIVEFLOW_TRUNKS_1_OUTBOUND_PROXY", "127.0.0.1:5070"),
            ("ACTIVEFLOW_TRUNKS_1_USERNAME", "acme"),
            ("ACTIVEFLOW_TRUNKS_1_PASSWORD", "123456"),
            ("ACTIVEFLOW_TRUNKS_1_REALM", "carrier"),
            ("ACTIVEFLOW_CLUSTER_PREFIX", "blue"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for secret in ["file-token-8f3a", "alice-pw-77c1", "hmac-9d2e", "123456"] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
    let t = stdout_toml(&out);
    // The file's keys, the default's for the rest, the environment's on top.
    assert_eq!(get(&t, "sip.t1_ms").as_integer(), Some(250));
    assert_eq!(s(&t, "sip.listen"), "0.0.0.0:5060");
    assert_eq!(s(&t, "media.prompts_dir"), "config/prompts");
    assert_eq!(get(&t, "storage.retention_days").as_integer(), Some(7));
    assert_eq!(s(&t, "cluster.prefix"), "blue");
    assert_eq!(s(&t, "flows.dir"), dir.join("flows").to_str().unwrap());
    assert_eq!(s(&t, "trunks.0.name"), "local");
    assert_eq!(s(&t, "trunks.1.name"), "carrier");
    assert_eq!(s(&t, "trunks.1.username"), "acme");
    assert_eq!(s(&t, "routes.0.flow"), "demo");
    assert_eq!(s(&t, "users.0.username"), "alice");
    for secret in [
        "api.token",
        "users.0.password",
        "events.webhook_secret",
        "trunks.1.password",
    ] {
        assert_eq!(s(&t, secret), "********", "{secret}");
    }
    assert_eq!(s(&t, "trunks.0.password"), "", "unset stays visibly unset");
}

/// Environment variables of one case.
type Env<'a> = &'a [(&'a str, &'a str)];

#[test]
fn config_refuses_a_bad_config_naming_the_key() {
    let dir = common::peers::private_dir("config-cli-bad");
    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "[[trunks]]\nname = \"a\"\nallwo = [\"10.0.0.1\"]\n").unwrap();
    let typo = typo.to_str().unwrap();
    // flows.dir is loaded as serve loads it: a file there, or a bad flow, is refused.
    let not_dir = dir.join("not-a-dir.toml");
    std::fs::write(&not_dir, "[flows]\ndir = \"typo.toml\"\n").unwrap();
    let not_dir = not_dir.to_str().unwrap();
    let bad_flows = dir.join("bad-flows");
    std::fs::create_dir_all(&bad_flows).unwrap();
    std::fs::write(
        bad_flows.join("broken.json"),
        r#"{"name": "broken", "actions": [{"type": "sleep", "option": {"duration": "long"}}]}"#,
    )
    .unwrap();
    let bad_flows = bad_flows.to_str().unwrap();
    let cases: [(&[&str], Env, &str); 6] = [
        (&["--config", typo], &[], "trunks[0].allwo"),
        (
            &[],
            &[("ACTIVEFLOW_ROUTES_5_FLOW", "x")],
            "ACTIVEFLOW_ROUTES_5_FLOW (config key routes[5].flow)",
        ),
        (
            &[],
            &[("ACTIVEFLOW_API_LISTEN", "0.0.0.0:8080")],
            "api.token",
        ),
        (
            &["--config", "/nonexistent/activeflow.toml"],
            &[],
            "/nonexistent/activeflow.toml",
        ),
        (&["--config", not_dir], &[], "flows.dir"),
        (&[], &[("ACTIVEFLOW_FLOWS_DIR", bad_flows)], "broken.json"),
    ];
    for (args, env, named) in cases {
        let out = config_cmd(args, env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {env:?} accepted");
        assert!(err.contains(named), "{args:?} {env:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} {env:?} printed a config");
    }
}

/// A secret of the wrong type, or unquoted, is refused naming its key, and the error does not
/// carry it.
#[test]
fn config_errors_never_print_a_secret() {
    let dir = common::peers::private_dir("config-cli-secret");
    for (text, named, secret) in [
        (
            "[[users]]\nusername = \"alice\"\npassword = 918273645\n",
            "config key users[0].password: must be a string",
            "918273645",
        ),
        (
            "[api]\ntoken = s3cretUnquoted77\n",
            "line 2, column 9 (key api.token)",
            "s3cretUnquoted77",
        ),
    ] {
        let file = dir.join("secret.toml");
        std::fs::write(&file, text).unwrap();
        let out = config_cmd(&["--config", file.to_str().unwrap()], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text} accepted");
        assert!(err.contains(named), "{text}: {err}");
        assert!(!err.contains(secret), "{text}: {err}");
    }
}

/// A variable that is not UTF-8 does not panic the binary: another one is ignored, an
/// `ACTIVEFLOW_*` one is refused by name (its value not printed).
#[test]
fn a_non_utf8_environment_is_handled() {
    use std::os::unix::ffi::OsStringExt;
    let bad = || OsString::from_vec(b"x\xffy".to_vec());
    let out = config_cmd_os(&[], &[("AF_TEST_NOT_UTF8".into(), bad())]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout_toml(&out);
    let out = config_cmd_os(&[], &[("ACTIVEFLOW_API_TOKEN".into(), bad())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("ACTIVEFLOW_API_TOKEN (config key api.token): the value is not UTF-8"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let name = OsString::from_vec(b"ACTIVEFLOW_SIP_\xff".to_vec());
    let out = config_cmd_os(&[], &[(name, "1".into())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the name is not UTF-8"), "{err}");
}

/// `trunks = []` and `routes = []` leave the engine without the default trunk and route.
#[test]
fn empty_lists_drop_the_default_trunk_and_route() {
    let dir = common::peers::private_dir("config-cli-empty");
    let file = dir.join("empty.toml");
    std::fs::write(&file, "trunks = []\nroutes = []\n").unwrap();
    let t = stdout_toml(&config_cmd(&["--config", file.to_str().unwrap()], &[]));
    assert_eq!(get(&t, "trunks").as_array().map(Vec::len), Some(0));
    assert_eq!(get(&t, "routes").as_array().map(Vec::len), Some(0));
}

/// `serve` takes a file holding two keys; its token file is found beside it, not in the
/// working directory.
#[test]
fn serve_runs_a_partial_config_with_paths_beside_it() {
    let dir = common::peers::private_dir("config-cli-serve");
    std::fs::write(dir.join("api-token"), "beside-the-config\n").unwrap();
    let file = dir.join("activeflow.toml");
    std::fs::write(
        &file,
        "[api]\ntoken_file = \"api-token\"\n[log]\nformat = \"text\"\n",
    )
    .unwrap();
    let engine = common::spawn_engine_with(&["--config", file.to_str().unwrap()], &[]);
    let (status, _) = common::http(engine.api, "GET", "/v1/flows", None);
    assert_eq!(status, 401);
    let bearer = "Bearer beside-the-config";
    let (status, body) = common::http_with(
        engine.api,
        "GET",
        "/v1/flows",
        None,
        &[("Authorization", bearer)],
    );
    assert_eq!(status, 200, "{body}");
    // The rest is the default's and the harness's (flows from its ACTIVEFLOW_FLOWS_DIR).
    assert!(body.to_string().contains("demo"), "{body}");
}

/// The example production config loads and validates: its secrets come from the environment
/// (the unit's EnvironmentFile); its token file, certificates and flows (files an operator
/// installs beside it) are pointed at scratch ones here.
#[test]
fn the_deploy_config_validates() {
    let dir = common::peers::private_dir("config-cli-deploy");
    let token = dir.join("api-token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["activeflow.example".into()]).unwrap();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let flows = flows_dir(&dir, "main-ivr");
    let deploy = format!("{REPO}/deploy/activeflow.toml");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let env = [
        ("ACTIVEFLOW_TRUNKS_0_PASSWORD", "carrier-pw-51"),
        ("ACTIVEFLOW_API_TOKEN_FILE", token.to_str().unwrap()),
        ("ACTIVEFLOW_FLOWS_DIR", flows.to_str().unwrap()),
        ("ACTIVEFLOW_SIP_TLS_CERT", cert),
        ("ACTIVEFLOW_SIP_TLS_KEY", key),
        ("ACTIVEFLOW_API_TLS_CERT", cert),
        ("ACTIVEFLOW_API_TLS_KEY", key),
    ];
    let out = config_cmd(&["--config", &deploy], &env);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("carrier-pw-51"));
    let t = stdout_toml(&out);
    assert_eq!(s(&t, "log.format"), "json");
    // The API on the private interface, over HTTPS.
    assert_eq!(s(&t, "api.listen"), "10.0.0.20:8080");
    assert_eq!(s(&t, "api.tls_cert"), cert);
    assert_eq!(s(&t, "api.token_file"), token.to_str().unwrap());
    assert_eq!(s(&t, "storage.path"), "/var/lib/activeflow/activeflow.db");
    assert!(s(&t, "media.recordings_dir").starts_with("/var/lib/activeflow/"));
    // Relative paths resolve beside the file (/etc/activeflow once installed).
    assert_eq!(s(&t, "media.prompts_dir"), format!("{REPO}/deploy/prompts"));
    // Its trunk and routes replace the default ones; the trunk registers over TLS, so the TLS
    // listener its Contact names is there.
    let trunks = get(&t, "trunks").as_array().unwrap();
    assert_eq!(trunks.len(), 1);
    assert_eq!(s(&t, "trunks.0.name"), "carrier");
    assert_eq!(s(&t, "trunks.0.transport"), "tls");
    assert_eq!(get(&t, "trunks.0.register").as_bool(), Some(true));
    assert_eq!(s(&t, "sip.tls_listen"), "0.0.0.0:5061");
    assert_eq!(s(&t, "trunks.0.password"), "********");
    assert_eq!(s(&t, "routes.0.flow"), "main-ivr");
    // The unit waits for the whole drain before it kills: the grace, the BYEs' answers, the
    // unregistering, and a margin for the last commits (5 s) and the stop itself.
    let grace = get(&t, "engine.shutdown_grace_seconds")
        .as_integer()
        .unwrap();
    let drain = Duration::from_secs(grace as u64)
        + activeflow::shutdown::BYE_WAIT
        + activeflow::shutdown::UNREGISTER_WAIT
        + Duration::from_secs(5);
    let unit = std::fs::read_to_string(format!("{REPO}/deploy/activeflow.service")).unwrap();
    let stop = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("TimeoutStopSec= in seconds");
    assert!(
        Duration::from_secs(stop) >= drain,
        "TimeoutStopSec={stop} < the drain's {drain:?}"
    );
    // Without its secret the trunk is refused, naming the key.
    let without = |var: &str| -> Vec<(&str, &str)> {
        env.iter().copied().filter(|(k, _)| *k != var).collect()
    };
    let refused = |env: &[(&str, &str)], named: &[&str]| {
        let out = config_cmd(&["--config", &deploy], env);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "accepted without {named:?}");
        for n in named {
            assert!(err.contains(n), "{n}: {err}");
        }
    };
    refused(
        &without("ACTIVEFLOW_TRUNKS_0_PASSWORD"),
        &["trunks[0].password"],
    );
    // The files the example names resolve beside it, and are loaded (missing here).
    refused(
        &without("ACTIVEFLOW_FLOWS_DIR"),
        &["flows.dir", &format!("{REPO}/deploy/flows")],
    );
    refused(
        &without("ACTIVEFLOW_SIP_TLS_CERT"),
        &["sip.tls_cert", &format!("{REPO}/deploy/sip.crt")],
    );
    refused(
        &without("ACTIVEFLOW_API_TLS_KEY"),
        &["api.tls_key", &format!("{REPO}/deploy/api.key")],
    );
}

/// `systemd-analyze verify` on the shipped unit. It checks that ExecStart's binary exists, so
/// the unit is verified as a copy whose ExecStart names the binary under test instead of
/// /usr/local/bin/activeflow (nothing else changes). Warnings fail the test too.
#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(format!("{REPO}/deploy/activeflow.service")).unwrap();
    let installed = "/usr/local/bin/activeflow";
    assert_eq!(
        unit.matches(installed).count(),
        1,
        "one ExecStart names the binary"
    );
    assert!(unit.contains(&format!(
        "ExecStart={installed} serve --config /etc/activeflow/activeflow.toml"
    )));
    for line in [
        "Type=simple",
        "User=activeflow",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/activeflow",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing");
    }
    let dir = common::peers::private_dir("config-cli-unit");
    let copy = dir.join("activeflow.service");
    std::fs::write(
        &copy,
        unit.replace(installed, env!("CARGO_BIN_EXE_activeflow")),
    )
    .unwrap();
    let out = verify(&copy);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{out:?}: {err}"
    );
    // The check can fail: an unknown directive is reported.
    let broken = dir.join("broken.service");
    std::fs::write(
        &broken,
        unit.replace(installed, env!("CARGO_BIN_EXE_activeflow"))
            .replace("Type=simple", "Type=simple\nProtectEverything=yes"),
    )
    .unwrap();
    let out = verify(&broken);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ProtectEverything"),
        "{out:?}"
    );
}

fn verify(unit: &Path) -> Output {
    Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .output()
        .expect("systemd-analyze (Debian package systemd; scripts/test.sh installs it)")
}
