//! The console's files over a real socket (no browser; tests/console_browser.rs drives one):
//! every file with its type, the strict Content-Security-Policy and caching headers; no inline
//! script or style in the page; every module the page imports is served; 404 for unknown
//! files; the files need no token while `/v1` still does, and API answers carry their own
//! security headers; `GET /v1/routes`; the activeflow list's `?fields=summary` the console reads.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::{flow, start};
use serde_json::{json, Value};

const TOKEN: &str = "console-test-token";
const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// One answer: status, headers, body.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// `method path` on `api` with `headers`; redirects are not followed.
fn request(api: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut r = client.request(method.parse().unwrap(), format!("http://{api}{path}"));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let response = r.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        Answer {
            status,
            headers,
            body,
        }
    })
}

fn get(api: SocketAddr, path: &str) -> Answer {
    request(api, "GET", path, &[])
}

fn hold() -> Value {
    flow(
        "hold",
        json!([{"type": "answer"}, {"type": "sleep", "option": {"duration": 60000}}]),
    )
}

fn engine_with_token() -> common::TestEngine {
    start(
        &[hold(), flow("other", json!([{"type": "hangup"}]))],
        &[("100", "hold"), ("200", "other"), ("*", "hold")],
        &[("ACTIVEFLOW_API_TOKEN", TOKEN)],
    )
}

fn assert_console_headers(a: &Answer, what: &str) {
    assert_eq!(a.header("content-security-policy"), CONSOLE_CSP, "{what}");
    assert_eq!(a.header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(a.header("referrer-policy"), "no-referrer", "{what}");
}

#[test]
fn files_are_served_with_their_type_csp_and_etag() {
    let e = engine_with_token();
    for (path, content_type) in [
        ("/console/", "text/html; charset=utf-8"),
        ("/console/index.html", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/events.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/icon.svg", "image/svg+xml"),
    ] {
        let a = get(e.api, path);
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert_eq!(a.header("content-type"), content_type, "{path}");
        assert_console_headers(&a, path);
        assert_eq!(a.header("cache-control"), "no-cache", "{path}");
        let etag = a.header("etag").to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        assert!(!a.body.is_empty(), "{path}");
        // Revalidation: the same file is a 304 without a body; another tag gets the file.
        let again = request(e.api, "GET", path, &[("If-None-Match", &etag)]);
        assert_eq!((again.status, again.body.as_str()), (304, ""), "{path}");
        assert_eq!(again.header("etag"), etag);
        let stale = request(e.api, "GET", path, &[("If-None-Match", "\"0\"")]);
        assert_eq!(stale.status, 200, "{path}");
    }
    // The index and /console/ are the same document.
    assert_eq!(
        get(e.api, "/console/").body,
        get(e.api, "/console/index.html").body
    );
}

#[test]
fn the_page_has_no_inline_script_or_style_and_every_module_is_served() {
    let e = engine_with_token();
    let html = get(e.api, "/console/").body;
    let lower = html.to_ascii_lowercase();
    // Every <script> loads a file; no <style> element, no style attribute, no inline handler.
    for (at, _) in lower.match_indices("<script") {
        let tag = &lower[at..at + lower[at..].find('>').unwrap()];
        assert!(tag.contains(" src="), "inline script: {tag}");
        let body_end = at + lower[at..].find("</script>").unwrap();
        let inner = &lower[at + tag.len() + 1..body_end];
        assert!(inner.trim().is_empty(), "script with a body: {inner}");
    }
    assert!(!lower.contains("<style"), "a <style> element");
    assert!(!lower.contains(" style="), "a style attribute");
    assert!(!lower.contains("javascript:"), "a javascript: URL");
    let handler = lower.split(|c: char| c.is_whitespace()).any(|word| {
        word.strip_prefix("on").is_some_and(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        })
    });
    assert!(!handler, "an inline event handler in {html}");
    assert!(
        html.contains(r#"<script type="module" src="app.js"></script>"#),
        "{html}"
    );

    // Every module reachable from app.js is served, as JavaScript, with the policy; none builds
    // markup from strings or evaluates code (CSP forbids it; the code must not need it).
    let mut seen = BTreeSet::new();
    let mut todo = vec!["app.js".to_string()];
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let a = get(e.api, &format!("/console/{name}"));
        assert_eq!(a.status, 200, "{name} is imported but not served");
        assert_eq!(a.header("content-type"), "text/javascript; charset=utf-8");
        assert_console_headers(&a, &name);
        for banned in [
            "innerHTML",
            "outerHTML",
            "eval(",
            "new Function",
            "document.write",
        ] {
            assert!(!a.body.contains(banned), "{name} uses {banned}");
        }
        for (at, _) in a.body.match_indices(" from './") {
            let rest = &a.body[at + " from './".len()..];
            todo.push(rest[..rest.find('\'').unwrap()].to_string());
        }
    }
    for expected in [
        "api.js",
        "events.js",
        "model.js",
        "activeflows.js",
        "detail.js",
        "calls.js",
        "flows.js",
        "dom.js",
    ] {
        assert!(seen.contains(expected), "{expected} not imported: {seen:?}");
    }
    // The token lives in sessionStorage (this tab) and goes in a header, never a URL.
    let api_js = get(e.api, "/console/api.js").body;
    assert!(api_js.contains("sessionStorage") && !api_js.contains("localStorage"));
    assert!(api_js.contains("'Authorization', `Bearer ${token}`"));
    assert!(!api_js.contains("?token="));
}

#[test]
fn unknown_files_are_404_writes_405_and_console_redirects_to_its_slash() {
    let e = engine_with_token();
    for path in [
        "/console/nope.js",
        "/console/sub/app.js",
        "/console/..%2Fv1%2Fflows",
    ] {
        let a = get(e.api, path);
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        assert_console_headers(&a, path);
    }
    let a = get(e.api, "/console");
    assert_eq!((a.status, a.header("location")), (308, "/console/"));
    assert_console_headers(&a, "/console");
    // HEAD is a GET without the body; writes are refused.
    let head = request(e.api, "HEAD", "/console/app.js", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-type"),
        "text/javascript; charset=utf-8"
    );
    assert!(head.body.is_empty());
    for method in ["POST", "PUT", "DELETE"] {
        let a = request(e.api, method, "/console/app.js", &[]);
        assert_eq!(
            (a.status, a.header("allow")),
            (405, "GET, HEAD"),
            "{method}"
        );
        assert_console_headers(&a, method);
    }
}

#[test]
fn files_need_no_token_while_the_api_does_and_api_answers_carry_security_headers() {
    let e = engine_with_token();
    assert_eq!(get(e.api, "/console/").status, 200);
    assert_eq!(get(e.api, "/console/api.js").status, 200);

    let refused = get(e.api, "/v1/activeflows");
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "unauthorized");
    assert_eq!(refused.header("content-security-policy"), API_CSP);
    assert_eq!(refused.header("x-content-type-options"), "nosniff");

    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let ok = request(e.api, "GET", "/v1/activeflows", &auth);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.header("content-security-policy"), API_CSP);
    assert_eq!(ok.header("x-content-type-options"), "nosniff");
    // Errors of handlers and of the router carry them too.
    for path in [
        "/v1/activeflows/not-an-id",
        "/v1/nothing-here",
        "/elsewhere",
    ] {
        let a = request(e.api, "GET", path, &auth);
        assert_eq!(a.status, 404, "{path}");
        assert_eq!(a.header("content-security-policy"), API_CSP, "{path}");
        assert_eq!(a.header("x-content-type-options"), "nosniff", "{path}");
    }
    // The open probes as well.
    let probe = get(e.api, "/healthz");
    assert_eq!(probe.status, 200);
    assert_eq!(probe.header("content-security-policy"), API_CSP);
}

#[test]
fn routes_list_the_configured_routes_with_their_flow_ids() {
    let e = engine_with_token();
    assert_eq!(get(e.api, "/v1/routes").status, 401, "read scope needed");
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let flows = request(e.api, "GET", "/v1/flows", &auth).json();
    let id_of = |name: &str| {
        flows["result"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["id"].clone())
            .unwrap()
    };
    let (hold, other) = (id_of("hold"), id_of("other"));
    let a = request(e.api, "GET", "/v1/routes", &auth);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({"result": [
            {"number": "100", "flow": "hold", "flow_id": hold},
            {"number": "200", "flow": "other", "flow_id": other},
            {"number": "*", "flow": "hold", "flow_id": hold},
        ]})
    );
    // Also under VoIPBIN's prefix.
    assert_eq!(
        request(e.api, "GET", "/v1.0/routes", &auth).json(),
        a.json()
    );
    // A route whose flow is deleted resolves to nothing.
    let path = format!("/v1/flows/{}", other.as_str().unwrap());
    assert_eq!(request(e.api, "DELETE", &path, &auth).status, 200);
    let after = request(e.api, "GET", "/v1/routes", &auth).json();
    assert_eq!(
        after["result"][1],
        json!({"number": "200", "flow": "other", "flow_id": null})
    );
}

/// The console's list reads `?fields=summary`: records without `executed_actions` but with
/// `execute_count` (older actions that left memory counted too) and `current_action`, from
/// memory and from storage alike; any other `fields` is a 400 naming it.
#[test]
fn the_activeflow_list_has_a_summary_form_without_executed_actions() {
    let e = start(
        &[],
        &[],
        &[
            ("ACTIVEFLOW_API_TOKEN", TOKEN),
            // Ended ones leave memory (storage serves them); memory keeps 2 actions each.
            ("ACTIVEFLOW_ENGINE_ENDED_RETAINED", "0"),
            ("ACTIVEFLOW_ENGINE_MAX_EXECUTED_ACTIONS", "2"),
        ],
    );
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let set = |k: &str| json!({"type": "variable_set", "option": {"key": k, "value": "1"}});
    let start_one = |actions: Value| {
        let body = json!({ "actions": actions }).to_string();
        let a = common::http_with(e.api, "POST", "/v1/activeflows", Some(&body), &auth);
        assert_eq!(a.0, 200, "{}", a.1);
        a.1["id"].as_str().unwrap().to_string()
    };
    let ended = start_one(json!([set("a"), set("b"), set("c")]));
    let running = start_one(json!([
        set("a"),
        set("b"),
        set("c"),
        {"type": "sleep", "option": {"duration": 120000}}
    ]));
    let list = |query: &str| {
        let a = request(e.api, "GET", &format!("/v1/activeflows{query}"), &auth);
        assert_eq!(a.status, 200, "{query}: {}", a.body);
        a.json()
    };
    let find = |page: &Value, id: &str| {
        page["result"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
    };
    // Both listed in full: the running one in memory (sleeping, 2 of its 4 actions kept),
    // the ended one from storage (all 3).
    let full = common::wait_until("both listed", Duration::from_secs(20), || {
        let page = list("");
        let r = find(&page, &running)?;
        let d = find(&page, &ended)?;
        (r["current_action"]["type"] == "sleep" && d["status"] == "ended").then_some(page)
    });
    let full_running = find(&full, &running).unwrap();
    assert_eq!(
        full_running["executed_actions"].as_array().unwrap().len(),
        2
    );
    assert_eq!(full_running["executed_actions_dropped"], 2);
    let full_ended = find(&full, &ended).unwrap();
    assert_eq!(full_ended["executed_actions"].as_array().unwrap().len(), 3);

    let summary = list("?fields=summary");
    for (id, count) in [(&running, 4), (&ended, 3)] {
        let a = find(&summary, id).unwrap();
        let keys: Vec<&String> = a.as_object().unwrap().keys().collect();
        assert!(
            !keys.iter().any(|k| k.starts_with("executed_actions")),
            "{keys:?}"
        );
        assert_eq!(a["execute_count"], count, "{a}");
        // Everything else as in the full record.
        let mut whole = find(&full, id).unwrap();
        let whole = whole.as_object_mut().unwrap();
        whole.remove("executed_actions");
        whole.remove("executed_actions_dropped");
        whole.insert("execute_count".into(), json!(count));
        assert_eq!(&Value::Object(whole.clone()), &a);
    }
    // With the status filter and paging as before.
    let first = list("?fields=summary&status=running&page_size=1");
    assert_eq!(first["result"].as_array().unwrap().len(), 1);
    assert_eq!(first["result"][0]["id"], running.as_str());
    assert_eq!(first["result"][0]["execute_count"], 4);

    let bad = request(e.api, "GET", "/v1/activeflows?fields=everything", &auth);
    assert_eq!(bad.status, 400, "{}", bad.body);
    let message = bad.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.starts_with("fields: \"everything\""), "{message}");
}
