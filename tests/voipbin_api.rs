//! VoIPBIN API compatibility over a real socket (issue 18): the `/v1.0` prefix and `?token=`,
//! `POST /v1/activeflows` as bin-api-manager `server/activeflows.go` takes it (client id,
//! per-activeflow webhook, flow_id winning over actions, 200), VoIPBIN's record fields
//! (`activeflow_struct_activeflow.rst`), soft delete, timestamp page tokens, clamped page sizes
//! and the reserved `voipbin.` variables.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use common::{flow, http, http_with, start};
use serde_json::{json, Value};

const NIL: &str = "00000000-0000-0000-0000-000000000000";

fn sleeper() -> Value {
    json!({"actions": [{"type": "sleep", "option": {"duration": 60000}}]})
}

fn post(api: std::net::SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    http(api, "POST", path, Some(&body.to_string()))
}

fn message(err: &Value) -> String {
    err["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn every_route_answers_under_v1_0_with_the_token_in_the_query() {
    let e = start(&[], &[], &[("ACTIVEFLOW_API_TOKEN", "s3 cret")]);
    // `?token=` is the bearer token, percent-decoded; a wrong or missing one is a 401.
    let (status, list) = http(e.api, "GET", "/v1.0/activeflows?token=s3%20cret", None);
    assert_eq!(status, 200, "{list}");
    assert!(list["result"].is_array());
    assert_eq!(
        http(e.api, "GET", "/v1/activeflows?token=s3+cret", None).0,
        200
    );
    assert_eq!(http(e.api, "GET", "/v1.0/activeflows", None).0, 401);
    assert_eq!(
        http(e.api, "GET", "/v1.0/activeflows?token=nope", None).0,
        401
    );
    // A header, when sent, is the credential: a bad one is not rescued by the query.
    let wrong = [("Authorization", "Bearer nope")];
    let both = http_with(e.api, "GET", "/v1.0/flows?token=s3%20cret", None, &wrong);
    assert_eq!(both.0, 401);
    let right = [("Authorization", "Bearer s3 cret")];
    assert_eq!(http_with(e.api, "GET", "/v1.0/calls", None, &right).0, 200);
    // Writes under /v1.0 reach the same handlers.
    let (status, a) = post(e.api, "/v1.0/activeflows?token=s3%20cret", &sleeper());
    assert_eq!(status, 200, "{a}");
    let id = a["id"].as_str().unwrap();
    let (status, got) = http(
        e.api,
        "GET",
        &format!("/v1/activeflows/{id}?token=s3%20cret"),
        None,
    );
    assert_eq!((status, &got["id"]), (200, &a["id"]));
    let stop = format!("/v1.0/activeflows/{id}/stop?token=s3%20cret");
    let (status, stopped) = post(e.api, &stop, &json!({}));
    assert_eq!((status, &stopped["status"]), (200, &json!("ended")));
    // The spec is open under both prefixes and documents the alias and the query token.
    let (status, doc) = http(e.api, "GET", "/v1.0/openapi.json", None);
    assert_eq!(status, 200);
    assert!(doc["info"]["description"]
        .as_str()
        .unwrap()
        .contains("/v1.0/"));
    assert_eq!(doc["components"]["securitySchemes"]["token"]["in"], "query");
    assert_eq!(
        http(e.api, "GET", "/v1.0/nothing?token=s3%20cret", None).0,
        404
    );
}

#[test]
fn create_takes_voipbins_fields_and_answers_200() {
    let e = start(
        &[flow(
            "held",
            json!([{"type": "sleep", "option": {"duration": 60000}}]),
        )],
        &[],
        &[],
    );
    // A client-chosen id; the same again is a 409, a non-UUID a 400.
    let id = uuid::Uuid::new_v4().to_string();
    let mut body = sleeper();
    body["id"] = id.clone().into();
    let (status, a) = post(e.api, "/v1/activeflows", &body);
    assert_eq!((status, a["id"].as_str()), (200, Some(id.as_str())), "{a}");
    let (status, err) = post(e.api, "/v1/activeflows", &body);
    assert_eq!(status, 409, "{err}");
    body["id"] = "not-a-uuid".into();
    let (status, err) = post(e.api, "/v1/activeflows", &body);
    assert_eq!(status, 400);
    assert!(message(&err).starts_with("id:"), "{err}");

    // flow_id wins over actions (as VoIPBIN); unknown fields are ignored.
    let (_, flows) = http(e.api, "GET", "/v1/flows", None);
    let held = flows["result"][0]["id"].clone();
    let both = json!({"flow_id": held, "actions": [{"type": "stop"}], "bogus": 1});
    let (status, a) = post(e.api, "/v1/activeflows", &both);
    assert_eq!((status, &a["flow_id"]), (200, &held), "{a}");
    assert_eq!(a["status"], "running");

    // A known field of the wrong type is still a 400 naming it.
    let (status, err) = post(e.api, "/v1/activeflows", &json!({"actions": 5}));
    assert_eq!(status, 400);
    assert!(
        message(&err).contains("actions") || message(&err).contains("sequence"),
        "{err}"
    );

    // The per-activeflow webhook: on the record, checked as a flow's.
    let mut hooked = sleeper();
    hooked["webhook_uri"] = "http://127.0.0.1:9/hook".into();
    hooked["webhook_method"] = "PUT".into();
    let (status, a) = post(e.api, "/v1/activeflows", &hooked);
    assert_eq!(status, 200, "{a}");
    assert_eq!(
        (&a["webhook_uri"], &a["webhook_method"]),
        (&json!("http://127.0.0.1:9/hook"), &json!("PUT"))
    );
    hooked["webhook_uri"] = "ftp://h/x".into();
    let (status, err) = post(e.api, "/v1/activeflows", &hooked);
    assert_eq!(status, 400);
    assert!(message(&err).contains("webhook_uri"), "{err}");
    hooked["webhook_uri"] = "http://127.0.0.1:9/hook".into();
    hooked["webhook_method"] = "PATCH".into();
    let (status, err) = post(e.api, "/v1/activeflows", &hooked);
    assert_eq!(status, 400);
    assert!(message(&err).contains("webhook_method"), "{err}");
    let (_, plain) = post(e.api, "/v1/activeflows", &sleeper());
    assert_eq!(
        (&plain["webhook_uri"], &plain["webhook_method"]),
        (&json!(""), &json!(""))
    );
}

/// Requests spread over the supervisor shards round-robin: of concurrent POSTs with one
/// client-chosen id exactly one starts an activeflow, the rest are 409 and start nothing.
#[test]
fn concurrent_starts_with_one_id_start_exactly_one() {
    let e = start(&[], &[], &[]);
    let api = e.api;
    for round in 1..=5 {
        let mut body = sleeper();
        body["id"] = uuid::Uuid::new_v4().to_string().into();
        let answers: Vec<u16> = std::thread::scope(|s| {
            let posts: Vec<_> = (0..6)
                .map(|_| s.spawn(|| post(api, "/v1/activeflows", &body).0))
                .collect();
            posts.into_iter().map(|p| p.join().unwrap_or(0)).collect()
        });
        let ok = answers.iter().filter(|c| **c == 200).count();
        let taken = answers.iter().filter(|c| **c == 409).count();
        assert_eq!((ok, taken), (1, answers.len() - 1), "{answers:?}");
        assert_eq!(e.registry.running(), round, "an orphaned actor was started");
    }
}

#[test]
fn voipbin_variables_are_reserved_on_create_and_put() {
    let e = start(&[], &[], &[]);
    let mut body = sleeper();
    body["variables"] = json!({"mine": "1", "voipbin.call.id": "forged"});
    let (status, err) = post(e.api, "/v1/activeflows", &body);
    assert_eq!(status, 400);
    assert!(message(&err).contains("\"voipbin.call.id\""), "{err}");
    body["variables"] = json!({"mine": "1"});
    let (status, a) = post(e.api, "/v1/activeflows", &body);
    assert_eq!(status, 200, "{a}");
    let path = format!("/v1/activeflows/{}/variables", a["id"].as_str().unwrap());
    let put = json!({"variables": {"VOIPBIN.activeflow.id": "x"}}).to_string();
    let (status, err) = http(e.api, "PUT", &path, Some(&put));
    assert_eq!(status, 400);
    assert!(message(&err).contains("\"VOIPBIN.activeflow.id\""), "{err}");
    // The canonical spelling of a seeded name is the same entry as its `voipbin.` alias.
    for key in ["activeflow.id", "call.status", "call.source.target"] {
        let put = json!({"variables": { key: "forged" }}).to_string();
        let (status, err) = http(e.api, "PUT", &path, Some(&put));
        assert_eq!(status, 400, "{key}: {err}");
        assert!(message(&err).contains(&format!("{key:?}")), "{err}");
    }
    body["variables"] = json!({"call.source.privacy": "no"});
    let (status, err) = post(e.api, "/v1/activeflows", &body);
    assert_eq!(status, 400, "{err}");
    let put = json!({"variables": {"ok": "y", "call.digits": "1"}}).to_string();
    let (status, vars) = http(e.api, "PUT", &path, Some(&put));
    assert_eq!(
        (status, &vars["variables"]["ok"]),
        (200, &json!("y")),
        "{vars}"
    );
    assert_eq!(
        vars["variables"]["voipbin.activeflow.id"]
            .as_str()
            .or(vars["variables"]["activeflow.id"].as_str()),
        a["id"].as_str(),
        "{vars}"
    );
}

#[test]
fn records_carry_voipbins_fields_and_delete_is_soft() {
    let e = start(&[], &[], &[]);
    let (_, a) = post(
        e.api,
        "/v1/activeflows",
        &json!({"actions": [{"type": "variable_set", "option": {"key": "k", "value": "v"}},
                            {"type": "sleep", "option": {"duration": 60000}}]}),
    );
    let id = a["id"].as_str().unwrap().to_owned();
    let read = || http(e.api, "GET", &format!("/v1/activeflows/{id}"), None).1;
    let mut got = read();
    for _ in 0..50 {
        if got["current_action"]["type"] == "sleep" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        got = read();
    }
    for key in [
        "reference_activeflow_id",
        "on_complete_flow_id",
        "forward_action_id",
    ] {
        assert_eq!(got[key], NIL, "{key}: {got}");
    }
    assert_eq!(got["current_action"]["next_id"], NIL, "{got}");
    assert_eq!(got["executed_actions"][0]["next_id"], NIL, "{got}");
    assert!(got["tm_create"].is_string() && got["tm_update"].is_string());
    assert!(got.get("tm_delete").is_some_and(Value::is_null), "{got}");
    // A start marker until the first action runs (VoIPBIN's action.IDStart).
    let current = &a["current_action"];
    assert!(
        current["id"] == "00000000-0000-0000-0000-000000000001" || current["type"].is_string(),
        "{a}"
    );

    // DELETE answers the record (stopped, tm_delete set) as VoIPBIN's handler does; GET still
    // reads it; listings leave it out.
    let (status, deleted) = http(e.api, "DELETE", &format!("/v1/activeflows/{id}"), None);
    assert_eq!(
        (status, &deleted["status"]),
        (200, &json!("ended")),
        "{deleted}"
    );
    let tm_delete = deleted["tm_delete"].as_str().unwrap().to_owned();
    let after = read();
    assert_eq!(
        (&after["id"], after["tm_delete"].as_str()),
        (&json!(id), Some(tm_delete.as_str()))
    );
    let (_, list) = http(e.api, "GET", "/v1/activeflows", None);
    assert!(
        list["result"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["id"] != json!(id)),
        "{list}"
    );
    let (status, again) = http(e.api, "DELETE", &format!("/v1/activeflows/{id}"), None);
    assert_eq!((status, &again["tm_delete"]), (200, &json!(tm_delete)));
}

#[test]
fn page_tokens_take_voipbin_timestamps_and_sizes_are_clamped() {
    let e = start(&[], &[], &[]);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (_, a) = post(e.api, "/v1/activeflows", &sleeper());
        ids.push(a["id"].as_str().unwrap().to_owned());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let (status, page) = http(e.api, "GET", "/v1/activeflows?page_size=5000", None);
    assert_eq!(status, 200, "{page}");
    let all = page["result"].as_array().unwrap().clone();
    assert_eq!(all.len(), 3);
    assert_eq!(
        http(e.api, "GET", "/v1/activeflows?page_size=0", None).0,
        200
    );
    assert_eq!(
        http(e.api, "GET", "/v1/activeflows?page_size=ten", None).0,
        400
    );

    // "Created before" the middle one: the oldest only. VoIPBIN's spellings of that time.
    let middle = all[1]["tm_create"].as_str().unwrap();
    let voipbin_db = middle.replace('T', " ").trim_end_matches('Z').to_owned();
    for token in [middle.to_owned(), voipbin_db] {
        let path = format!("/v1/activeflows?page_token={}", token.replace(' ', "%20"));
        let (status, older) = http(e.api, "GET", &path, None);
        assert_eq!(status, 200, "{token}: {older}");
        let older: Vec<&str> = older["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap())
            .collect();
        assert_eq!(older, [ids[0].as_str()], "{token}");
    }
    // Before everything: an empty page; after everything: all of them.
    let (_, none) = http(
        e.api,
        "GET",
        "/v1/activeflows?page_token=2000-01-01T00:00:00Z",
        None,
    );
    assert_eq!(none["result"].as_array().unwrap().len(), 0, "{none}");
    let (_, every) = http(
        e.api,
        "GET",
        "/v1/activeflows?page_token=2999-01-01T00:00:00Z",
        None,
    );
    assert_eq!(every["result"].as_array().unwrap().len(), 3, "{every}");
    assert_eq!(
        http(
            e.api,
            "GET",
            "/v1/calls?page_token=2999-01-01T00:00:00Z",
            None
        )
        .0,
        200
    );
    assert_eq!(
        http(
            e.api,
            "GET",
            "/v1/recordings?page_token=2023-04-02T13:43:30Z",
            None
        )
        .0,
        200
    );
    assert_eq!(
        http(e.api, "GET", "/v1/activeflows?page_token=soon", None).0,
        400
    );
}
