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
        (
            "ACTIVEFLOW_STORAGE_MAX_ROW_BYTES",
            "100",
            "storage.max_row_bytes",
        ),
        (
            "ACTIVEFLOW_EVENTS_WEBHOOK_FORMAT",
            "VoIPBIN",
            "events.webhook_format",
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
fn source_rate_limit_defaults_overrides_and_errors() {
    let s = Config::from_toml_with_env(DEFAULT_TOML, env(&[]))
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(s.raw.sip.max_new_calls_per_source_per_second, 100);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(s
        .sip_rate_limit_exempt
        .iter()
        .any(|c| c.contains(ip("127.0.0.1"))));
    assert!(s
        .sip_rate_limit_exempt
        .iter()
        .any(|c| c.contains(ip("::1"))));
    assert!(!s
        .sip_rate_limit_exempt
        .iter()
        .any(|c| c.contains(ip("192.0.2.1"))));
    // An empty list from the environment exempts nobody but the default trunk's one address.
    let s = Config::from_toml_with_env(
        DEFAULT_TOML,
        env(&[("ACTIVEFLOW_SIP_RATE_LIMIT_EXEMPT", "")]),
    )
    .unwrap()
    .validate()
    .unwrap();
    assert_eq!(
        s.sip_rate_limit_exempt,
        vec!["::1".parse::<Cidr>().unwrap()]
    );
    // A trunk's single addresses are exempt; its networks are not.
    let text = format!(
        "{DEFAULT_TOML}\n[[trunks]]\nname = \"carrier\"\n\
         allow = [\"198.51.100.7\", \"198.51.100.9/32\", \"2001:db8::5/128\", \"203.0.113.0/24\"]\n"
    );
    let s = Config::from_toml_with_env(&text, env(&[("ACTIVEFLOW_SIP_RATE_LIMIT_EXEMPT", "")]))
        .unwrap()
        .validate()
        .unwrap();
    let exempt = |a: &str| s.sip_rate_limit_exempt.iter().any(|c| c.contains(ip(a)));
    assert!(exempt("198.51.100.7") && exempt("198.51.100.9") && exempt("2001:db8::5"));
    assert!(!exempt("198.51.100.8") && !exempt("203.0.113.1") && !exempt("127.0.0.1"));
    for (var, value, key) in [
        (
            "ACTIVEFLOW_SIP_RATE_LIMIT_EXEMPT",
            "10.0.0.0/40",
            "sip.rate_limit_exempt[0]",
        ),
        (
            "ACTIVEFLOW_SIP_MAX_NEW_CALLS_PER_SOURCE_PER_SECOND",
            "2000000",
            "sip.max_new_calls_per_source_per_second",
        ),
    ] {
        let e = Config::from_toml_with_env(DEFAULT_TOML, env(&[(var, value)]))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains(key), "{var}: {e}");
    }
}

#[test]
fn outbound_limits_have_defaults_and_name_their_keys() {
    let s = Config::from_toml_with_env(DEFAULT_TOML, env(&[]))
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(
        (
            s.http.webhook_limits.capacity,
            s.http.webhook_limits.concurrency,
            s.http.webhook_limits.destinations
        ),
        (1000, 4, 1000)
    );
    let limits = s.raw.media.limits();
    assert!(limits.max_tts_processes >= 1, "0 = one per core");
    assert_eq!(
        (limits.max_prompt_fetches, limits.cache_max_bytes),
        (16, 512 << 20)
    );
    assert_eq!(s.raw.media.recordings_retention_days, 30);
    // The same defaults when a config file leaves the keys out.
    assert_eq!(HttpConfig::default().webhook_queue, 1000);
    for (var, key) in [
        ("ACTIVEFLOW_HTTP_WEBHOOK_QUEUE", "http.webhook_queue"),
        (
            "ACTIVEFLOW_HTTP_WEBHOOK_CONCURRENCY",
            "http.webhook_concurrency",
        ),
        (
            "ACTIVEFLOW_HTTP_WEBHOOK_DESTINATIONS",
            "http.webhook_destinations",
        ),
        (
            "ACTIVEFLOW_MEDIA_MAX_PROMPT_FETCHES",
            "media.max_prompt_fetches",
        ),
    ] {
        let e = Config::from_toml_with_env(DEFAULT_TOML, env(&[(var, "0")]))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains(key), "{e}");
    }
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

/// A trunk's account keys (issue 17): credentials come in pairs, registration needs them and a
/// proxy, identities must fit a SIP URI; each error names its key.
#[test]
fn trunk_account_keys_are_validated() {
    let trunk = |extra: &str| {
        let text = format!(
            "{DEFAULT_TOML}\n[[trunks]]\nname = \"carrier\"\noutbound_proxy = \"127.0.0.1:5070\"\n{extra}\n"
        );
        Config::from_toml_with_env(&text, env(&[]))
            .unwrap()
            .validate()
    };
    let s = trunk(
        "username = \"alice\"\npassword = \"s3cret\"\nrealm = \"carrier\"\nregister = true\n\
         from_user = \"+15550100\"\nfrom_domain = \"sip.example.com\"",
    )
    .unwrap();
    let account = &s.trunks[1].account;
    let creds = account.credentials.as_ref().unwrap();
    assert_eq!(
        (creds.username.as_str(), creds.realm.as_deref()),
        ("alice", Some("carrier"))
    );
    assert_eq!(account.register_expires, Some(3600));
    assert_eq!(account.from_user.as_deref(), Some("+15550100"));
    assert_eq!(s.trunks[1].from_host().as_deref(), Some("sip.example.com"));
    assert!(!format!("{creds:?}").contains("s3cret"));
    let plain = trunk("").unwrap();
    assert!(plain.trunks[1].account.credentials.is_none());
    assert_eq!(plain.trunks[1].from_host().as_deref(), Some("127.0.0.1"));
    for (extra, key) in [
        ("username = \"alice\"", "trunks[1].password"),
        ("password = \"x\"", "trunks[1].username"),
        ("realm = \"r\"", "trunks[1].realm"),
        (
            "username = \"al\\\"ice\"\npassword = \"x\"",
            "trunks[1].username",
        ),
        ("register = true", "trunks[1].register"),
        (
            "username = \"a\"\npassword = \"x\"\nregister = true\nregister_expires = 0",
            "trunks[1].register_expires",
        ),
        (
            "username = \"a b\"\npassword = \"x\"\nregister = true",
            "trunks[1].username",
        ),
        ("from_user = \"a@b\"", "trunks[1].from_user"),
        ("from_domain = \"h:5060\"", "trunks[1].from_domain"),
    ] {
        let e = trunk(extra).unwrap_err();
        assert!(e.to_string().contains(key), "{extra}: {e}");
    }
    let text = format!(
        "{DEFAULT_TOML}\n[[trunks]]\nname = \"noproxy\"\nusername = \"a\"\npassword = \"x\"\nregister = true\n"
    );
    let e = Config::from_toml_with_env(&text, env(&[]))
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("trunks[1].register"), "{e}");
}

/// A self-signed pair written to a temp dir: (cert path, key path).
fn tls_pair(tag: &str) -> (String, String) {
    let dir = std::env::temp_dir().join(format!(
        "activeflow-config-tls-{}-{tag}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert.display().to_string(), key.display().to_string())
}

fn validate_with(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Config::from_toml_with_env(DEFAULT_TOML, env(pairs))
        .unwrap()
        .validate()
}

/// RFC 3261 §26.2: the SIP/TLS listener needs an address, a certificate and its key; each
/// missing or bad piece is refused naming its key, and the default has no TLS listener.
#[test]
fn sip_tls_listener_keys_are_checked_together() {
    assert!(validate_with(&[]).unwrap().sip_tls.is_none());
    let (cert, key) = tls_pair("sip");
    let ok = validate_with(&[
        ("ACTIVEFLOW_SIP_TLS_LISTEN", "127.0.0.1:5061"),
        ("ACTIVEFLOW_SIP_TLS_CERT", &cert),
        ("ACTIVEFLOW_SIP_TLS_KEY", &key),
    ])
    .unwrap();
    assert_eq!(
        ok.sip_tls.map(|(addr, _)| addr),
        Some("127.0.0.1:5061".parse().unwrap())
    );
    let cases: [(&[(&str, &str)], &str); 5] = [
        (
            &[("ACTIVEFLOW_SIP_TLS_LISTEN", "127.0.0.1:5061")],
            "sip.tls_cert",
        ),
        (&[("ACTIVEFLOW_SIP_TLS_CERT", &cert)], "sip.tls_listen"),
        (
            &[
                ("ACTIVEFLOW_SIP_TLS_LISTEN", "nowhere"),
                ("ACTIVEFLOW_SIP_TLS_CERT", &cert),
                ("ACTIVEFLOW_SIP_TLS_KEY", &key),
            ],
            "sip.tls_listen",
        ),
        (
            &[
                ("ACTIVEFLOW_SIP_TLS_LISTEN", "127.0.0.1:5061"),
                ("ACTIVEFLOW_SIP_TLS_CERT", "/nonexistent/cert.pem"),
                ("ACTIVEFLOW_SIP_TLS_KEY", &key),
            ],
            "sip.tls_cert",
        ),
        (
            &[
                ("ACTIVEFLOW_SIP_TLS_LISTEN", "127.0.0.1:5061"),
                ("ACTIVEFLOW_SIP_TLS_CERT", &cert),
                ("ACTIVEFLOW_SIP_TLS_KEY", &cert),
            ],
            "sip.tls_key",
        ),
    ];
    for (pairs, key) in cases {
        let e = validate_with(pairs).unwrap_err().to_string();
        assert!(e.contains(key), "{pairs:?}: {e}");
    }
}

/// A trunk's `transport` is udp, tcp or tls; `tls_ca` is a PEM CA file and only goes with
/// `tls`; `outbound_proxy` may be a host name. Errors name `trunks[i].<key>`.
#[test]
fn trunk_transport_tls_ca_and_proxy_names_are_validated() {
    let (ca, _) = tls_pair("trunk");
    let trunk = |extra: &str| {
        let text = format!("{DEFAULT_TOML}\n[[trunks]]\nname = \"carrier\"\n{extra}\n");
        Config::from_toml_with_env(&text, Vec::new())
            .unwrap()
            .validate()
    };
    let ok = trunk(&format!(
        "outbound_proxy = \"sbc.example.com\"\ntransport = \"TLS\"\ntls_ca = {ca:?}"
    ))
    .unwrap();
    let t = &ok.trunks[1];
    assert_eq!(t.transport, Some(crate::sip::resolve::Transport::Tls));
    assert!(t.tls_ca.is_some());
    assert_eq!(
        t.outbound_proxy,
        Some(crate::sip::resolve::ProxyAddress::parse("sbc.example.com").unwrap())
    );
    for (extra, key) in [
        ("transport = \"sctp\"", "trunks[1].transport"),
        (&format!("tls_ca = {ca:?}") as &str, "trunks[1].tls_ca"),
        (
            "outbound_proxy = \"sbc.example.com\"\ntransport = \"tls\"\ntls_ca = \"/nonexistent/ca.pem\"",
            "trunks[1].tls_ca",
        ),
        (
            "outbound_proxy = \"bad host:5060\"",
            "trunks[1].outbound_proxy",
        ),
    ] {
        let e = trunk(extra).unwrap_err().to_string();
        assert!(e.contains(key), "{extra}: {e}");
    }
}

#[test]
fn ringback_tone_is_us_eu_or_uk() {
    use crate::media::ringback::RingbackTone;
    let s = Config::from_toml_with_env(DEFAULT_TOML, env(&[])).unwrap();
    assert_eq!(s.media.ringback_tone, RingbackTone::Us);
    let eu = Config::from_toml_with_env(
        DEFAULT_TOML,
        env(&[("ACTIVEFLOW_MEDIA_RINGBACK_TONE", "eu")]),
    )
    .unwrap();
    assert_eq!(eu.media.ringback_tone, RingbackTone::Eu);
    let e = Config::from_toml_with_env(
        DEFAULT_TOML,
        env(&[("ACTIVEFLOW_MEDIA_RINGBACK_TONE", "fr")]),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("ringback_tone"), "{e}");
}

/// A config with one more trunk (`trunks[1]`) made of `body`.
fn with_trunk(body: &str) -> Result<Settings, ConfigError> {
    let text = format!("{DEFAULT_TOML}\n[[trunks]]\nname = \"carrier\"\n{body}\n");
    Config::from_toml_with_env(&text, env(&[]))?.validate()
}

/// `outbound_proxy` takes every RFC 3261 §25.1 hostport form; `transport` is udp, tcp or tls,
/// or empty for NAPTR (RFC 3263 §4.1).
#[test]
fn trunk_addressing_accepts_hostports_and_checks_transport() {
    use crate::sip::resolve::{Host, Transport};
    for (proxy, host, port) in [
        ("sip.carrier.example", "sip.carrier.example", None),
        (
            "sip.carrier.example:5070",
            "sip.carrier.example",
            Some(5070),
        ),
        ("192.0.2.7", "192.0.2.7", None),
        ("[2001:db8::7]:5080", "[2001:db8::7]", Some(5080)),
        ("[::1]", "[::1]", None),
    ] {
        let s = with_trunk(&format!("outbound_proxy = \"{proxy}\"")).unwrap();
        let p = s.trunks[1].outbound_proxy.clone().unwrap();
        assert_eq!((p.host_text().as_str(), p.port), (host, port), "{proxy}");
        assert_eq!(s.trunks[1].transport, None);
    }
    let s = with_trunk("outbound_proxy = \"pbx.example\"\ntransport = \"TCP\"").unwrap();
    assert_eq!(s.trunks[1].transport, Some(Transport::Tcp));
    assert!(matches!(
        s.trunks[1].outbound_proxy.as_ref().unwrap().host,
        Host::Name(_)
    ));
    for (body, key) in [
        (
            "outbound_proxy = \"pbx.example:99999\"",
            "trunks[1].outbound_proxy",
        ),
        ("outbound_proxy = \"[::1\"", "trunks[1].outbound_proxy"),
        ("outbound_proxy = \"bad host\"", "trunks[1].outbound_proxy"),
        (
            "outbound_proxy = \"h\"\ntransport = \"sctp\"",
            "trunks[1].transport",
        ),
        ("transport = \"tcp\"", "trunks[1].transport"),
    ] {
        let e = with_trunk(body).unwrap_err().to_string();
        assert!(e.contains(key), "{body}: {e}");
    }
    let s = with_trunk("outbound_proxy = \"h\"\ntransport = \"tls\"").unwrap();
    assert_eq!(s.trunks[1].transport, Some(Transport::Tls));
}

/// `sip.dns_servers` (empty = the system's) and `sip.failover_timeout_ms` (default 4000).
#[test]
fn dns_servers_and_failover_timeout_are_checked() {
    let s = Config::from_toml_with_env(DEFAULT_TOML, env(&[]))
        .unwrap()
        .validate()
        .unwrap();
    assert!(s.dns_servers.is_empty());
    assert_eq!(s.raw.sip.failover_timeout_ms, 4000);
    let text = DEFAULT_TOML.replace(
        "dns_servers = []",
        "dns_servers = [\"127.0.0.1:5353\", \"[::1]:53\"]",
    );
    let s = Config::from_toml_with_env(&text, env(&[]))
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(
        s.dns_servers,
        vec![
            "127.0.0.1:5353".parse().unwrap(),
            "[::1]:53".parse().unwrap()
        ]
    );
    let text = DEFAULT_TOML.replace("dns_servers = []", "dns_servers = [\"10.0.0.1\"]");
    let e = Config::from_toml_with_env(&text, env(&[]))
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("sip.dns_servers[0]"), "{e}");
    let e = Config::from_toml_with_env(
        DEFAULT_TOML,
        env(&[("ACTIVEFLOW_SIP_FAILOVER_TIMEOUT_MS", "0")]),
    )
    .unwrap()
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("sip.failover_timeout_ms"), "{e}");
}

/// `[[users]]` and the phone keys: defaults, and errors that name the key.
#[test]
fn users_and_phone_keys_are_checked() {
    let s = Config::from_toml_with_env(DEFAULT_TOML, env(&[]))
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(s.phones.auth.realm, "activeflow");
    assert_eq!(
        s.phones.auth.algorithms,
        [
            crate::sip::auth::Algorithm::Sha256,
            crate::sip::auth::Algorithm::Md5
        ]
    );
    assert!(s.phones.auth.users.is_empty());
    assert_eq!(s.phones.bans.limit, 5);
    assert_eq!(s.phones.bans.window, std::time::Duration::from_secs(60));
    assert_eq!(s.phones.bans.ban, std::time::Duration::from_secs(300));
    assert_eq!((s.phones.expiry.min, s.phones.expiry.max), (60, 3600));
    let with = |extra: &str| {
        Config::from_toml_with_env(&format!("{DEFAULT_TOML}\n{extra}"), env(&[]))
            .unwrap()
            .validate()
    };
    let s = with("[[users]]\nusername = \"alice\"\npassword = \"secret\"\n").unwrap();
    assert_eq!(
        s.phones.auth.users.get("alice").map(String::as_str),
        Some("secret")
    );
    // The password never shows in Debug output (logs).
    assert!(!format!("{:?} {:?}", s.phones, s.raw.users).contains("secret"));
    for (extra, key) in [
        ("[[users]]\nusername = \"\"\npassword = \"x\"\n", "users[0].username"),
        ("[[users]]\nusername = \"a@b\"\npassword = \"x\"\n", "users[0].username"),
        ("[[users]]\nusername = \"a\"\npassword = \"\"\n", "users[0].password"),
        (
            "[[users]]\nusername = \"a\"\npassword = \"x\"\n[[users]]\nusername = \"a\"\npassword = \"y\"\n",
            "users[1].username",
        ),
    ] {
        let e = with(extra).unwrap_err();
        assert!(e.to_string().contains(key), "{extra}: {e}");
    }
    for (key, value, named) in [
        ("ACTIVEFLOW_SIP_REALM", "", "sip.realm"),
        ("ACTIVEFLOW_SIP_REALM", "a\"b", "sip.realm"),
        ("ACTIVEFLOW_SIP_AUTH_FAIL_LIMIT", "0", "sip.auth_fail_limit"),
        ("ACTIVEFLOW_SIP_AUTH_ALGORITHMS", "", "sip.auth_algorithms"),
        (
            "ACTIVEFLOW_SIP_AUTH_ALGORITHMS",
            "MD5,md5",
            "sip.auth_algorithms[1]",
        ),
        (
            "ACTIVEFLOW_SIP_AUTH_ALGORITHMS",
            "SHA-512",
            "sip.auth_algorithms[0]",
        ),
        (
            "ACTIVEFLOW_SIP_AUTH_FAIL_WINDOW_SECS",
            "0",
            "sip.auth_fail_window_secs",
        ),
        (
            "ACTIVEFLOW_SIP_AUTH_BAN_SECS",
            "99999999",
            "sip.auth_ban_secs",
        ),
        (
            "ACTIVEFLOW_SIP_REGISTER_MIN_EXPIRES",
            "0",
            "sip.register_min_expires",
        ),
        (
            "ACTIVEFLOW_SIP_REGISTER_MAX_EXPIRES",
            "30",
            "sip.register_max_expires",
        ),
    ] {
        let e = Config::from_toml_with_env(DEFAULT_TOML, env(&[(key, value)]))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains(named), "{key}={value}: {e}");
    }
}

/// The trunk of README's "Connecting a carrier" example is a valid `[[trunks]]` entry, so the
/// example an operator copies works (DNS name, TLS with the system roots, account, registration).
/// It registers over TLS, so it needs the SIP/TLS listener its Contact names: without
/// `sip.tls_listen` it is refused, naming `register`.
#[test]
fn the_readme_carrier_trunk_validates() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("[[trunks]]\nname = \"carrier\"")
        .expect("README has the carrier trunk");
    let end = start + readme[start..].find("\n\n").expect("the trunk block ends");
    let text = format!("{DEFAULT_TOML}\n{}\n", &readme[start..end]);
    let e = Config::from_toml_with_env(&text, env(&[]))
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("trunks[1].register") && e.contains("sip.tls_listen"),
        "{e}"
    );
    let (cert, key) = tls_pair("readme-carrier");
    let tls = [
        ("ACTIVEFLOW_SIP_TLS_LISTEN", "127.0.0.1:5061"),
        ("ACTIVEFLOW_SIP_TLS_CERT", cert.as_str()),
        ("ACTIVEFLOW_SIP_TLS_KEY", key.as_str()),
    ];
    let s = Config::from_toml_with_env(&text, env(&tls))
        .unwrap()
        .validate()
        .unwrap();
    let t = &s.trunks[1];
    assert_eq!(t.name, "carrier");
    assert_eq!(t.transport, Some(crate::sip::resolve::Transport::Tls));
    assert_eq!(t.account.register_expires, Some(3600));
    assert_eq!(t.from_host().as_deref(), Some("carrier.example"));
}

#[test]
fn events_webhook_format_defaults_to_native_and_takes_voipbin() {
    let c = Config::from_toml_with_env(DEFAULT_TOML, env(&[])).unwrap();
    assert_eq!(c.events.webhook_format, "native");
    let c = Config::from_toml_with_env(
        DEFAULT_TOML,
        env(&[("ACTIVEFLOW_EVENTS_WEBHOOK_FORMAT", "voipbin")]),
    )
    .unwrap();
    assert_eq!(c.events.webhook_format, "voipbin");
    c.validate().unwrap();
    // A file without the key (older configs) gets the default.
    let text = DEFAULT_TOML.replace("webhook_format = \"native\"", "");
    let c = Config::from_toml_with_env(&text, env(&[])).unwrap();
    assert_eq!(c.events.webhook_format, "native");
}
