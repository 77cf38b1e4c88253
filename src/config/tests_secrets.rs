//! Errors about secret keys never quote the secret: a wrong-typed password or token is "must be
//! a string" by its full name, a TOML syntax error is told by line, column and key without the
//! source line.

use super::*;

fn layered(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_with_env(text, Vec::<(String, String)>::new())
}

#[test]
fn a_wrong_typed_secret_is_named_not_quoted() {
    for (text, key, secret) in [
        (
            "[[users]]\nusername = \"a\"\npassword = 918273645\n",
            "users[0].password",
            "918273645",
        ),
        ("[api]\ntoken = 736251409\n", "api.token", "736251409"),
        (
            "[[api.tokens]]\nname = \"d\"\ntoken = 4242424242\nscopes = [\"read\"]\n",
            "api.tokens[0].token",
            "4242424242",
        ),
        (
            "[[trunks]]\nname = \"a\"\n[[trunks]]\nname = \"b\"\npassword = 55501234\n",
            "trunks[1].password",
            "55501234",
        ),
        (
            "[events]\nwebhook_secret = 1.8273\n",
            "events.webhook_secret",
            "1.8273",
        ),
        (
            "[events]\nwebhook_uri = [\"https://hooks.example/listSecret\"]\n",
            "events.webhook_uri",
            "listSecret",
        ),
        (
            "[storage]\nurl = { password = \"inlineSecret\" }\n",
            "storage.url",
            "inlineSecret",
        ),
        (
            "[cluster]\nnats_url = 4222999\n",
            "cluster.nats_url",
            "4222999",
        ),
    ] {
        let e = layered(text).unwrap_err().to_string();
        assert_eq!(e, format!("config key {key}: must be a string"), "{text}");
        assert!(!e.contains(secret), "{text}: {e}");
    }
    // A key that is not a secret keeps serde's message, naming the key.
    let e = layered("[sip]\nt1_ms = \"fast\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("sip.t1_ms") && e.contains("fast"), "{e}");
}

#[test]
fn a_syntax_error_gives_line_column_and_key_not_the_text() {
    for (text, at, secret) in [
        (
            "[api]\ntoken = abc123unquoted\n",
            "line 2, column 9 (key api.token)",
            "abc123unquoted",
        ),
        (
            "[sip]\nt1_ms = 250\n[[trunks]]\nname = \"a\"\n[[trunks]]  # the carrier\nname = \"b\"\n\
             password = s3cretUnquoted\n",
            "line 7, column 12 (key trunks[1].password)",
            "s3cretUnquoted",
        ),
        (
            "[[api.tokens]]\nname = \"d\"\ntoken = \"tokSecret\" trailing\n",
            "line 3, column 21 (key api.tokens[0].token)",
            "tokSecret",
        ),
        (
            "[events]\nwebhook_secret = \"unterminatedSecret\n",
            "line 2, column",
            "unterminatedSecret",
        ),
        // A key the schema does not know is not echoed: it may be a pasted secret.
        (
            "[api]\nkeySecret = valueSecret\n",
            "line 2, column 13: ",
            "Secret",
        ),
        ("[api]\npastedSecret\n", "line 2, column 13: ", "pastedSecret"),
    ] {
        let file = FileLayer {
            text,
            name: "activeflow.toml",
            dir: None,
        };
        let e = Config::from_layers(Some(file), Vec::<(String, String)>::new())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config: activeflow.toml: "), "{e}");
        assert!(e.contains(at), "{text}: {e}");
        assert!(!e.contains(secret), "{text}: {e}");
        // What the parser expected is kept, on one line.
        assert!(!e.contains('\n'), "{e}");
    }
}
