//! Config parsing, env overrides and validation errors that name the key.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn embedded_default_is_valid() {
    let s = Config::from_toml_with_env(DEFAULT_TOML, env(&[]))
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(s.sip_listen.port(), 5060);
    assert_eq!(s.raw.routes[0].number, "*");
}

#[test]
fn env_overrides_are_typed() {
    let c = Config::from_toml_with_env(
        DEFAULT_TOML,
        env(&[
            ("ACTIVEFLOW_SIP_LISTEN", "127.0.0.1:5070"),
            ("ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS", "7"),
            ("OTHER_VAR", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(c.sip.listen, "127.0.0.1:5070");
    assert_eq!(c.engine.max_activeflows, 7);
    let c = Config::from_toml_with_env(
        DEFAULT_TOML,
        env(&[("ACTIVEFLOW_EVENTS_WEBHOOK_URI", "http://hooks.example/e")]),
    )
    .unwrap();
    assert_eq!(c.events.webhook_uri, "http://hooks.example/e");
    assert_eq!(c.events.window, 65_536);
}

#[test]
fn http_lists_from_the_environment_and_the_default_policy() {
    let c = Config::from_toml_with_env(
        DEFAULT_TOML,
        env(&[("ACTIVEFLOW_HTTP_ALLOW", "127.0.0.1/32, 10.1.0.0/16")]),
    )
    .unwrap();
    assert_eq!(c.http.allow, ["127.0.0.1/32", "10.1.0.0/16"]);
    let policy = c.validate().unwrap().http;
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(policy.permits(ip("127.0.0.1")) && policy.permits(ip("10.1.2.3")));
    assert!(!policy.permits(ip("127.0.0.2")) && !policy.permits(ip("192.168.1.1")));
    assert!(policy.permits(ip("8.8.8.8")) && !policy.permits(ip("::1")));
    let e = Config::from_toml_with_env(
        DEFAULT_TOML,
        env(&[("ACTIVEFLOW_HTTP_DENY", "10.0.0.0/99")]),
    )
    .unwrap()
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("http.deny[0]"), "{e}");
}

#[test]
fn bad_override_names_the_variable() {
    let e = Config::from_toml_with_env(
        DEFAULT_TOML,
        env(&[("ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS", "lots")]),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS"),
        "{e}"
    );
    let e =
        Config::from_toml_with_env(DEFAULT_TOML, env(&[("ACTIVEFLOW_NOPE_X", "1")])).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn invalid_values_name_the_key() {
    let cases = [
        ("ACTIVEFLOW_SIP_LISTEN", "nowhere", "sip.listen"),
        (
            "ACTIVEFLOW_MEDIA_RTP_PORTS",
            "30000-20000",
            "media.rtp_ports",
        ),
        ("ACTIVEFLOW_API_LISTEN", "0.0.0.0:8080", "api.token"),
        (
            "ACTIVEFLOW_ENGINE_MAX_ACTIVEFLOWS",
            "0",
            "engine.max_activeflows",
        ),
        ("ACTIVEFLOW_EVENTS_WINDOW", "0", "events.window"),
        ("ACTIVEFLOW_SIP_TCP_WRITE_QUEUE", "0", "sip.tcp_write_queue"),
        (
            "ACTIVEFLOW_SIP_TCP_IDLE_TIMEOUT_S",
            "0",
            "sip.tcp_idle_timeout_s",
        ),
        (
            "ACTIVEFLOW_EVENTS_WEBHOOK_URI",
            "ftp://x/",
            "events.webhook_uri",
        ),
    ];
    for (var, value, key) in cases {
        let e = Config::from_toml_with_env(DEFAULT_TOML, env(&[(var, value)]))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains(key), "{var}: {e}");
    }
}

#[test]
fn unknown_key_is_refused() {
    let text = format!("{DEFAULT_TOML}\n[extra]\nx = 1\n");
    let e = Config::from_toml_with_env(&text, env(&[])).unwrap_err();
    assert!(e.to_string().contains("extra"), "{e}");
}

#[test]
fn flow_size_caps_default_and_are_checked() {
    let c = Config::from_toml_with_env(DEFAULT_TOML, env(&[])).unwrap();
    assert_eq!(
        (
            c.engine.max_variable_bytes,
            c.engine.max_variables_bytes,
            c.engine.max_executed_actions
        ),
        (65_536, 1_048_576, 1000)
    );
    for (key, value, named) in [
        (
            "ACTIVEFLOW_ENGINE_MAX_VARIABLE_BYTES",
            "63",
            "engine.max_variable_bytes",
        ),
        (
            "ACTIVEFLOW_ENGINE_MAX_VARIABLES_BYTES",
            "4095",
            "engine.max_variables_bytes",
        ),
        (
            "ACTIVEFLOW_ENGINE_MAX_EXECUTED_ACTIONS",
            "0",
            "engine.max_executed_actions",
        ),
        (
            "ACTIVEFLOW_ENGINE_MAX_VARIABLE_BYTES",
            "2000000",
            "engine.max_variable_bytes",
        ),
    ] {
        let e = Config::from_toml_with_env(DEFAULT_TOML, env(&[(key, value)]))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains(named), "{key}={value}: {e}");
    }
}
