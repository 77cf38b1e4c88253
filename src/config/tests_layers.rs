//! Config layering (default, file, environment), environment overrides by schema, relative
//! paths of a config file, and the masked rendering of `activeflow config`.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// A file's text layered over the default, with `pairs` as the environment.
fn layered(text: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_toml_with_env(text, env(pairs))
}

/// A fresh directory for one test.
fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "activeflow-config-layers-{}-{tag}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_file_holds_only_what_it_changes() {
    // The keys issue 21 names: a file without them used to be refused.
    let c = layered(
        "[media]\nrtp_ports = \"30000-30099\"\n[storage]\npath = \"x.db\"\n[sip]\nt1_ms = 250\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.media.rtp_ports, "30000-30099");
    assert_eq!(c.media.prompts_dir, "config/prompts");
    assert_eq!(
        c.media.tts_command,
        "espeak-ng -v {language} -w {output} {text}"
    );
    assert_eq!(
        (c.storage.path.as_str(), c.storage.retention_days),
        ("x.db", 30)
    );
    // Tables merge key by key: the rest of [sip] is the default's.
    assert_eq!((c.sip.t1_ms, c.sip.listen.as_str()), (250, "0.0.0.0:5060"));
    assert_eq!(c.sip.realm, "activeflow");
    // Lists the file does not set keep the default's entries.
    assert_eq!(c.trunks.len(), 1);
    assert_eq!(
        (c.routes[0].number.as_str(), c.routes[0].flow.as_str()),
        ("*", "demo")
    );
    c.validate().unwrap();
    // An empty file is the default.
    let empty = layered("", &[]).unwrap().validate().unwrap();
    assert_eq!(empty.sip_listen.port(), 5060);
}

#[test]
fn arrays_in_a_file_replace_the_default_ones() {
    let c = layered(
        "[[trunks]]\nname = \"carrier\"\nallow = [\"198.51.100.7\"]\n\
         [[routes]]\nnumber = \"100\"\nflow = \"ivr\"\n[http]\ndeny = []\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.trunks.len(), 1, "the default trunk `local` is replaced");
    assert_eq!(c.trunks[0].name, "carrier");
    assert_eq!(c.routes.len(), 1);
    assert_eq!(c.routes[0].number, "100");
    assert!(c.http.deny.is_empty());
    assert_eq!(
        c.http.timeout_ms, 10_000,
        "the rest of [http] is the default's"
    );
}

#[test]
fn unknown_keys_are_refused_by_their_full_name() {
    for (text, key) in [
        (
            "[sip]\nlisten_addr = \"127.0.0.1:5060\"\n",
            "sip.listen_addr",
        ),
        ("[extra]\nx = 1\n", "extra"),
        ("[[trunks]]\nname = \"a\"\nhots = \"x\"\n", "trunks[0].hots"),
        (
            "[[api.tokens]]\nname = \"a\"\ntoken = \"t\"\nscopes = [\"read\"]\nscope = \"x\"\n",
            "api.tokens[0].scope",
        ),
        (
            "[[users]]\nusername = \"a\"\npassword = \"p\"\nrealm = \"r\"\n",
            "users[0].realm",
        ),
    ] {
        let e = layered(text, &[]).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains("unknown key"), "{text}: {e}");
    }
}

#[test]
fn env_overrides_reach_sections_and_keys_the_file_leaves_out() {
    let c = layered(
        "[api]\nlisten = \"127.0.0.1:8081\"\n",
        &[
            ("ACTIVEFLOW_CLUSTER_PREFIX", "blue"),
            ("ACTIVEFLOW_LOG_FORMAT", "json"),
            ("ACTIVEFLOW_STORAGE_RETENTION_DAYS", "7"),
            // Underscores inside names: the section first, then the longest key.
            ("ACTIVEFLOW_SIP_T1_MS", "250"),
            ("ACTIVEFLOW_SIP_MAX_NEW_CALLS_PER_SOURCE_PER_SECOND", "5"),
            ("ACTIVEFLOW_EVENTS_WEBHOOK_URI", "http://hooks.example/e"),
            ("ACTIVEFLOW_EVENTS_WEBHOOK_QUEUE", "9"),
            ("ACTIVEFLOW_SIP_AUTH_ALGORITHMS", "MD5"),
        ],
    )
    .unwrap();
    assert_eq!(c.cluster.prefix, "blue");
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.storage.retention_days, 7);
    assert_eq!(c.sip.t1_ms, 250);
    assert_eq!(c.sip.max_new_calls_per_source_per_second, 5);
    assert_eq!(c.events.webhook_uri, "http://hooks.example/e");
    assert_eq!(c.events.webhook_queue, 9);
    assert_eq!(c.sip.auth_algorithms, ["MD5"]);
    assert_eq!(c.api.listen, "127.0.0.1:8081");
}

#[test]
fn strings_stay_strings_whatever_they_look_like() {
    let c = layered(
        "",
        &[
            ("ACTIVEFLOW_API_TOKEN", "123456"),
            ("ACTIVEFLOW_SIP_REALM", "42"),
            ("ACTIVEFLOW_USERS_0_USERNAME", "1001"),
            ("ACTIVEFLOW_USERS_0_PASSWORD", "0042"),
            ("ACTIVEFLOW_EVENTS_WEBHOOK_SECRET", "true"),
        ],
    )
    .unwrap();
    assert_eq!(c.api.token, "123456");
    assert_eq!(c.sip.realm, "42");
    assert_eq!(
        (c.users[0].username.as_str(), c.users[0].password.as_str()),
        ("1001", "0042")
    );
    assert_eq!(c.events.webhook_secret, "true");
    let s = c.validate().unwrap();
    assert!(!s.api_access.is_open());
    assert_eq!(
        s.phones.auth.users.get("1001").map(String::as_str),
        Some("0042")
    );
}

#[test]
fn list_entries_go_by_index_existing_or_next() {
    // Given out of order: entries are made in index order (1 before 2), keys after sections.
    let c = layered(
        "",
        &[
            ("ACTIVEFLOW_ROUTES_2_FLOW", "queue"),
            ("ACTIVEFLOW_ROUTES_2_NUMBER", "200"),
            ("ACTIVEFLOW_TRUNKS_0_OUTBOUND_PROXY", "127.0.0.1:5070"),
            ("ACTIVEFLOW_ROUTES_1_NUMBER", "100"),
            ("ACTIVEFLOW_ROUTES_1_FLOW", "ivr"),
            ("ACTIVEFLOW_ROUTES_0_FLOW", "main"),
            ("ACTIVEFLOW_TRUNKS_1_NAME", "carrier"),
            (
                "ACTIVEFLOW_TRUNKS_1_ALLOW",
                "203.0.113.10/32, 203.0.113.11/32",
            ),
            ("ACTIVEFLOW_TRUNKS_1_REGISTER_EXPIRES", "600"),
            ("ACTIVEFLOW_API_TOKENS_0_NAME", "dashboard"),
            ("ACTIVEFLOW_API_TOKENS_0_TOKEN", "777"),
            ("ACTIVEFLOW_API_TOKENS_0_SCOPES", "read"),
        ],
    )
    .unwrap();
    assert_eq!(c.trunks.len(), 2);
    assert_eq!(
        (
            c.trunks[0].name.as_str(),
            c.trunks[0].outbound_proxy.as_str()
        ),
        ("local", "127.0.0.1:5070")
    );
    assert_eq!(c.trunks[1].name, "carrier");
    assert_eq!(c.trunks[1].allow, ["203.0.113.10/32", "203.0.113.11/32"]);
    assert_eq!(c.trunks[1].register_expires, 600);
    let routes: Vec<(&str, &str)> = c
        .routes
        .iter()
        .map(|r| (r.number.as_str(), r.flow.as_str()))
        .collect();
    assert_eq!(routes, [("*", "main"), ("100", "ivr"), ("200", "queue")]);
    assert_eq!(c.api.tokens[0].token, "777");
    assert_eq!(c.api.tokens[0].scopes, ["read"]);
    c.validate().unwrap();
    // Indexes count in the file's list when it has one.
    let c = layered(
        "[[trunks]]\nname = \"a\"\n[[trunks]]\nname = \"b\"\n",
        &[
            ("ACTIVEFLOW_TRUNKS_1_TRANSPORT", "tcp"),
            ("ACTIVEFLOW_TRUNKS_1_OUTBOUND_PROXY", "pbx.example"),
        ],
    )
    .unwrap();
    assert_eq!(
        (c.trunks[1].name.as_str(), c.trunks[1].transport.as_str()),
        ("b", "tcp")
    );
}

#[test]
fn env_errors_name_the_variable_and_the_key() {
    for (var, value, key, what) in [
        (
            "ACTIVEFLOW_SIP_T1_MS",
            "fast",
            "sip.t1_ms",
            "not an integer",
        ),
        (
            "ACTIVEFLOW_SIP_LISTEN_ADDR",
            "x",
            "sip.listen_addr",
            "no such config key",
        ),
        ("ACTIVEFLOW_NOPE_X", "1", "nope_x", "no such config section"),
        (
            "ACTIVEFLOW_TRUNKS_2_NAME",
            "x",
            "trunks[2].name",
            "next one (1)",
        ),
        (
            "ACTIVEFLOW_TRUNKS_X_NAME",
            "x",
            "trunks",
            "not a list index",
        ),
        ("ACTIVEFLOW_TRUNKS", "x", "trunks", "is a list"),
        (
            "ACTIVEFLOW_TRUNKS_0",
            "x",
            "trunks[0]",
            "name one of the entry's keys",
        ),
        (
            "ACTIVEFLOW_TRUNKS_0_HOST",
            "x",
            "trunks[0].host",
            "no such config key",
        ),
        (
            "ACTIVEFLOW_TRUNKS_0_REGISTER",
            "maybe",
            "trunks[0].register",
            "true or false",
        ),
        ("ACTIVEFLOW_SIP", "x", "sip", "is a section"),
        ("ACTIVEFLOW_HTTP", "x", "http", "is a section"),
    ] {
        let e = layered("", &[(var, value)]).unwrap_err().to_string();
        assert!(
            e.contains(var) && e.contains(&format!("config key {key}")) && e.contains(what),
            "{var}={value}: {e}"
        );
    }
    // A new entry missing a required key is refused by serde, naming the list.
    let e = layered("", &[("ACTIVEFLOW_ROUTES_1_NUMBER", "5")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("flow") && e.contains("routes"), "{e}");
}

#[test]
fn relative_paths_in_a_file_resolve_against_its_directory() {
    let dir = scratch_dir("paths");
    std::fs::write(dir.join("token"), "from-file\n").unwrap();
    let text = "[flows]\ndir = \"flows\"\n[media]\nprompts_dir = \"./prompts\"\n\
                cache_dir = \"../cache\"\n[storage]\npath = \"/var/lib/activeflow/af.db\"\n\
                [api]\ntoken_file = \"token\"\n[metrics]\ntls_cert = \"\"\n\
                [[trunks]]\nname = \"t\"\noutbound_proxy = \"sbc.example\"\ntransport = \"tls\"\ntls_ca = \"ca/carrier.pem\"\n";
    let file = FileLayer {
        text,
        name: "test.toml",
        dir: Some(&dir),
    };
    let c = Config::from_layers(
        Some(file),
        env(&[("ACTIVEFLOW_MEDIA_RECORDINGS_DIR", "rec")]),
    )
    .unwrap();
    let at = |p: &str| dir.join(p).display().to_string();
    assert_eq!(c.flows.dir, at("flows"));
    assert_eq!(c.media.prompts_dir, at("prompts"), "./ is dropped");
    assert_eq!(c.media.cache_dir, format!("{}/../cache", dir.display()));
    assert_eq!(
        c.storage.path, "/var/lib/activeflow/af.db",
        "absolute: unchanged"
    );
    assert_eq!(c.api.token_file, at("token"));
    assert_eq!(c.trunks[0].tls_ca, at("ca/carrier.pem"));
    assert_eq!(c.metrics.tls_cert, "", "empty: unchanged");
    // Environment values, and keys left to the default, stay relative to the working directory.
    assert_eq!(c.media.recordings_dir, "rec");
    assert_eq!(c.metrics.listen, "127.0.0.1:9464");
    let with_default_ca = Config::from_layers(Some(file), env(&[])).unwrap();
    assert_eq!(with_default_ca.trunks[0].tls_ca, at("ca/carrier.pem"));
    // The token file is found next to the config whatever the working directory is.
    let text = "[api]\ntoken_file = \"token\"\n";
    let c = Config::from_layers(
        Some(FileLayer {
            text,
            name: "test.toml",
            dir: Some(&dir),
        }),
        env(&[]),
    )
    .unwrap();
    assert!(!c.validate().unwrap().api_access.is_open());
    // Without a file directory (the embedded default, or text in code), nothing is rewritten.
    let c = layered("[flows]\ndir = \"flows\"\n", &[]).unwrap();
    assert_eq!(c.flows.dir, "flows");
}

/// Through [`Config::load_with_env`] with an empty environment, so an `ACTIVEFLOW_FLOWS_DIR`
/// in the shell running the tests changes nothing.
#[test]
fn load_resolves_against_the_files_directory_made_absolute() {
    let dir = scratch_dir("load");
    let path = dir.join("activeflow.toml");
    std::fs::write(&path, "[flows]\ndir = \"flows\"\n").unwrap();
    let c = Config::load_with_env(Some(&path), env(&[])).unwrap();
    assert_eq!(c.flows.dir, dir.join("flows").display().to_string());
    let e = Config::load_with_env(Some(&dir.join("missing.toml")), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.toml"), "{e}");
    std::fs::write(&path, "[flows\n").unwrap();
    let e = Config::load_with_env(Some(&path), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("activeflow.toml"), "{e}");
    // A bare file name: its directory is the working directory, made absolute.
    assert_eq!(
        paths::base_dir(std::path::Path::new("x.toml")).unwrap(),
        std::env::current_dir().unwrap()
    );
}

/// `trunks = []` and `routes = []` (top-level keys, before any `[section]`) drop the default
/// `local` trunk and `*` -> `demo` route.
#[test]
fn empty_lists_drop_the_default_trunk_and_route() {
    let c = layered("trunks = []\nroutes = []\n[sip]\nt1_ms = 250\n", &[]).unwrap();
    assert!(c.trunks.is_empty() && c.routes.is_empty(), "{c:?}");
    assert_eq!(c.sip.t1_ms, 250);
    let s = c.validate().unwrap();
    assert!(s.trunks.is_empty());
    // Entries then go by index from 0 again.
    let c = layered(
        "routes = []\n",
        &[
            ("ACTIVEFLOW_ROUTES_0_NUMBER", "100"),
            ("ACTIVEFLOW_ROUTES_0_FLOW", "ivr"),
        ],
    )
    .unwrap();
    assert_eq!(c.routes.len(), 1);
    assert_eq!(c.routes[0].number, "100");
    assert_eq!(
        c.trunks[0].name, "local",
        "trunks left out keep the default"
    );
}

#[test]
fn the_masked_rendering_hides_every_secret_and_round_trips() {
    let text = "[api]\ntoken = \"root-secret\"\n\
                [[api.tokens]]\nname = \"d\"\ntoken = \"scoped-secret\"\nscopes = [\"read\"]\n\
                [[trunks]]\nname = \"c\"\noutbound_proxy = \"sbc.example\"\nusername = \"u\"\npassword = \"trunk-secret\"\nrealm = \"r\"\n\
                [[users]]\nusername = \"alice\"\npassword = \"user-secret\"\n\
                [events]\nwebhook_secret = \"hmac-secret\"\nwebhook_uri = \"https://hooks.example/e?token=query-secret&x=1\"\n\
                [storage]\nbackend = \"postgres\"\nurl = \"postgres://af-user-secret:db-secret@10.0.0.5:5432/af?password=other-secret&x=1\"\n\
                [cluster]\nnode_id = \"n1\"\nnats_url = \"nats://nats-user-secret:nats-secret@10.0.0.5:4222\"\n";
    let c = layered(text, &[]).unwrap();
    let shown = c.to_masked_toml().unwrap();
    for secret in [
        "root-secret",
        "scoped-secret",
        "trunk-secret",
        "user-secret",
        "hmac-secret",
        "query-secret",
        "db-secret",
        "other-secret",
        "nats-secret",
        "af-user-secret",
        "nats-user-secret",
    ] {
        assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
    }
    // Userinfo masked whole (a user name may be the secret); the rest of the URL kept.
    assert!(
        shown.contains("postgres://********:********@10.0.0.5:5432/af?password=********&x=1"),
        "{shown}"
    );
    assert!(
        shown.contains("nats://********:********@10.0.0.5:4222"),
        "{shown}"
    );
    assert!(shown.contains("https://hooks.example/********"), "{shown}");
    // The rendering is a config: read back, it holds the same keys (secrets masked).
    let back = layered(&shown, &[]).unwrap();
    assert_eq!(back.api.token, MASK);
    assert_eq!(back.users[0].username, "alice");
    assert_eq!(back.trunks[0].realm, "r");
    assert_eq!(back.to_masked_toml().unwrap(), shown);
    // Webhook services put the credential in the path or any query parameter: only the
    // origin shows. NATS takes a token as the URL's lone user part.
    for (var, value, shown_as, secret) in [
        (
            "ACTIVEFLOW_EVENTS_WEBHOOK_URI",
            "https://hooks.slack.com/services/T0001/B0002/slackPathSecret",
            "https://hooks.slack.com/********",
            "slackPathSecret",
        ),
        (
            "ACTIVEFLOW_EVENTS_WEBHOOK_URI",
            "https://fn.example:8443/api/hook?code=codeSecret",
            "https://fn.example:8443/********",
            "codeSecret",
        ),
        (
            "ACTIVEFLOW_EVENTS_WEBHOOK_URI",
            "https://hookUserSecret@hooks.example/",
            "https://********@hooks.example/",
            "hookUserSecret",
        ),
        (
            "ACTIVEFLOW_EVENTS_WEBHOOK_URI",
            "https://hooks.example",
            "https://hooks.example/",
            "hooks.example/*",
        ),
        (
            "ACTIVEFLOW_EVENTS_WEBHOOK_URI",
            "not a url with natsSecret",
            MASK,
            "natsSecret",
        ),
        (
            "ACTIVEFLOW_CLUSTER_NATS_URL",
            "nats://natsTokenSecret@10.0.0.5:4222",
            "nats://********@10.0.0.5:4222",
            "natsTokenSecret",
        ),
    ] {
        let c = layered("", &[(var, value)]).unwrap().masked();
        let got = if var.contains("NATS") {
            &c.cluster.nats_url
        } else {
            &c.events.webhook_uri
        };
        assert_eq!(got, shown_as, "{value}");
        assert!(!got.contains(secret), "{value}: {got}");
        // Masking the masked rendering changes nothing.
        let again = layered("", &[(var, got.as_str())]).unwrap().masked();
        assert_eq!(again.to_masked_toml().unwrap(), c.to_masked_toml().unwrap());
    }
    assert_eq!(
        masked_url("nats://u:p@h:4222"),
        "nats://********:********@h:4222"
    );
    // Nothing secret set: nothing masked, and the default renders to itself.
    let plain = layered("", &[]).unwrap().to_masked_toml().unwrap();
    assert!(!plain.contains(MASK), "{plain}");
    assert!(plain.contains("token = \"\""), "{plain}");
    assert_eq!(
        layered(&plain, &[]).unwrap().to_masked_toml().unwrap(),
        plain
    );
}
