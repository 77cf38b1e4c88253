//! Helpers for the queue tests (tests/queue.rs, tests/queue_leave.rs): an engine routing number
//! `queue` to a placeholder flow the test replaces once its queue exists, and the `/v1/queues`
//! and `/v1/flows` calls they make. Starts no peers.

use std::net::SocketAddr;

use serde_json::{json, Value};

use super::{http, start, TestEngine};

/// An engine routing number `queue` to flow `flow_id` (a placeholder until [`set_flow`]).
pub fn engine(flow_id: &str) -> TestEngine {
    let placeholder = json!({"id": flow_id, "name": "queue", "actions": [{"type": "hangup"}]});
    start(&[placeholder], &[("queue", "queue")], &[])
}

/// Creates a queue; its id.
pub fn create_queue(api: SocketAddr, body: Value) -> String {
    let (status, q) = http(api, "POST", "/v1/queues", Some(&body.to_string()));
    assert_eq!(status, 201, "{q}");
    q["id"].as_str().expect("queue id").to_owned()
}

/// Replaces flow `flow_id` with `actions`.
pub fn set_flow(api: SocketAddr, flow_id: &str, actions: Value) {
    let body = json!({"name": "queue", "actions": actions}).to_string();
    let (status, f) = http(api, "PUT", &format!("/v1/flows/{flow_id}"), Some(&body));
    assert_eq!(status, 200, "{f}");
}

/// A `sip` address (an agent or a destination).
pub fn sip(uri: &str) -> Value {
    json!({"type": "sip", "target": uri})
}
