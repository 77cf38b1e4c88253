//! The API's cluster paths (issue 20): an op on an activeflow or call this node does not hold
//! live is forwarded to the node that does (`cluster::forward`), when the store says another
//! node owns it and it has not ended; everything else runs here. The owner runs the same
//! local function the HTTP handler runs ([`local`]) and its status and body come back as is.
//! Also tags this node's in-memory records with `node_id`, as the shared store tags its rows.
//! An id neither live here nor in the store yet (created on another node a few ms ago, still in
//! its writer's batch) is looked up again for up to [`OWNER_LOOKUP`] before the local 404.
//! A reply that is not a [`ForwardReply`] (or has no valid status) is 502.

use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use serde_json::Value;

use super::{activeflows, calls, history, ApiError, ApiState};
use crate::call::CallId;
use crate::cluster::control::count_forwarded;
use crate::cluster::forward::{
    forward, ForwardError, ForwardOp, ForwardReply, ForwardRequest, Handler, CARRIED_HEADERS,
};
use crate::cluster::{Cluster, NodeId};
use crate::engine::ActiveflowId;

/// Seconds a client is told to wait when the owner did not answer.
const RETRY_AFTER_SECONDS: u32 = 1;
/// How long an id found nowhere is looked up again in the store (another node's writer commits
/// within its 10 ms batch window plus the commit).
pub const OWNER_LOOKUP: Duration = Duration::from_millis(200);
/// Pause between those lookups.
const OWNER_LOOKUP_EVERY: Duration = Duration::from_millis(25);

/// Runs `op` on record `id` here, or on its owner when that is another, live node.
pub(super) async fn forward_or_local(
    state: &ApiState,
    op: ForwardOp,
    id: &str,
    body: Option<Value>,
) -> Result<HttpResponse, ApiError> {
    let Some(cluster) = &state.cluster else {
        return local(state, op, id, body).await;
    };
    let Some(owner) = remote_owner(state, cluster, op, id).await? else {
        return local(state, op, id, body).await;
    };
    let request = ForwardRequest {
        op,
        id: id.to_string(),
        body,
        timeout_ms: None,
    };
    match forward(cluster, &owner, &request).await {
        Ok(reply) => match relay(reply) {
            Some(response) => {
                count_forwarded(op, "ok");
                Ok(response)
            }
            None => {
                count_forwarded(op, "bad_reply");
                Ok(bad_gateway(&format!(
                    "node {owner} answered an invalid status"
                )))
            }
        },
        Err(e @ ForwardError::Unavailable { .. }) => {
            count_forwarded(op, "unavailable");
            Err(ApiError::Busy {
                message: format!("{id} is held by another node: {e}; retry"),
                retry_after_seconds: RETRY_AFTER_SECONDS,
            })
        }
        Err(e) => {
            count_forwarded(op, "bad_reply");
            Ok(bad_gateway(&e.to_string()))
        }
    }
}

/// The owner's answer as this node's response: its status, body and carried headers; `None`
/// when the status is not a valid HTTP status.
fn relay(reply: ForwardReply) -> Option<HttpResponse> {
    let status = StatusCode::from_u16(reply.status).ok()?;
    let mut response = HttpResponse::build(status);
    for (name, value) in &reply.headers {
        let carried = CARRIED_HEADERS.contains(&name.as_str());
        let header = HeaderName::try_from(name.as_str()).ok();
        if let (true, Some(name), Ok(value)) = (carried, header, HeaderValue::from_str(value)) {
            response.insert_header((name, value));
        }
    }
    if reply.body.is_null() {
        return Some(response.finish());
    }
    if !reply.headers.contains_key("content-type") {
        response.content_type("application/json");
    }
    Some(response.body(reply.body.to_string()))
}

/// 502: the owner answered something that is not an answer.
fn bad_gateway(message: &str) -> HttpResponse {
    HttpResponse::BadGateway()
        .json(serde_json::json!({"error": {"code": "bad_gateway", "message": message}}))
}

/// The node holding record `id` when it is not this one and the record has not ended: this
/// node's memory first (held here), then the store's `node_id`.
async fn remote_owner(
    state: &ApiState,
    cluster: &Cluster,
    op: ForwardOp,
    id: &str,
) -> Result<Option<NodeId>, ApiError> {
    let Ok(uuid) = id.parse::<uuid::Uuid>() else {
        return Ok(None); // the local path answers 404
    };
    let started = Instant::now();
    let json = loop {
        let key = uuid.to_string();
        let stored = if op == ForwardOp::Hangup {
            if state.calls.call(&CallId(uuid)).is_some() {
                return Ok(None);
            }
            history::read(&state.storage, move |s| s.call(&key)).await?
        } else {
            if state.registry.get(&ActiveflowId(uuid)).is_some() {
                return Ok(None);
            }
            history::read(&state.storage, move |s| s.activeflow(&key)).await?
        };
        match stored.flatten() {
            Some(found) => break found.json,
            None if started.elapsed() < OWNER_LOOKUP => {
                tokio::time::sleep(OWNER_LOOKUP_EVERY).await;
            }
            None => return Ok(None),
        }
    };
    let owner = json["node_id"].as_str().filter(|n| !n.is_empty());
    Ok(match owner {
        Some(node) if node != cluster.node_id.as_str() && json["status"] != "ended" => {
            Some(NodeId::new(node))
        }
        _ => None,
    })
}

/// The op's local code path: what the HTTP handler runs on the node holding the record.
pub(super) async fn local(
    state: &ApiState,
    op: ForwardOp,
    id: &str,
    body: Option<Value>,
) -> Result<HttpResponse, ApiError> {
    match op {
        ForwardOp::Stop => activeflows::stop_local(state, id).await,
        ForwardOp::Continue => activeflows::resume_local(state, id).await,
        ForwardOp::Delete => activeflows::delete_local(state, id).await,
        ForwardOp::Variables => {
            let body = serde_json::from_value(body.unwrap_or(Value::Null))
                .map_err(|e| ApiError::BadRequest(format!("variables: {e}")))?;
            activeflows::put_variables_local(state, id, body).await
        }
        ForwardOp::Hangup => calls::hangup_local(state, id).await,
    }
}

/// The owner's side: runs each forwarded request through [`local`] and replies with the
/// status and JSON body the API would have answered.
pub fn handler(state: web::Data<ApiState>) -> Handler {
    Rc::new(move |request: ForwardRequest| {
        let state = state.clone();
        Box::pin(async move {
            let result = local(&state, request.op, &request.id, request.body).await;
            let response = result.unwrap_or_else(|e| e.error_response());
            let status = response.status().as_u16();
            let headers = CARRIED_HEADERS
                .iter()
                .filter_map(|name| {
                    let value = response.headers().get(*name)?.to_str().ok()?;
                    Some(((*name).to_string(), value.to_string()))
                })
                .collect();
            let body = match actix_web::body::to_bytes(response.into_body()).await {
                Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            ForwardReply {
                status,
                body,
                headers,
            }
        })
    })
}

/// `record` as JSON with this node's `node_id` when clustered (the store adds it to its rows).
pub(super) fn tagged<T: serde::Serialize>(state: &ApiState, record: &T) -> Result<Value, ApiError> {
    let mut json = serde_json::to_value(record).map_err(|e| ApiError::Internal(e.to_string()))?;
    tag(state, &mut json);
    Ok(json)
}

/// Adds this node's `node_id` to an in-memory record's JSON when clustered.
pub(super) fn tag(state: &ApiState, json: &mut Value) {
    if let (Some(cluster), Some(map)) = (&state.cluster, json.as_object_mut()) {
        map.insert("node_id".into(), cluster.node_id.as_str().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, headers: &[(&str, &str)]) -> ForwardReply {
        ForwardReply {
            status,
            body: serde_json::json!({"error": {"code": "unavailable"}}),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
                .collect(),
        }
    }

    /// The owner's own 503 keeps its Retry-After (RFC 9110 §10.2.3); other headers stay home.
    #[test]
    fn an_owners_reply_keeps_its_carried_headers() {
        let response = relay(reply(503, &[("retry-after", "7"), ("x-other", "no")])).unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get("retry-after").unwrap(), "7");
        assert!(response.headers().get("x-other").is_none());
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/json"
        );
    }

    #[test]
    fn an_invalid_status_is_no_reply_and_502() {
        assert!(relay(reply(1000, &[])).is_none());
        assert_eq!(bad_gateway("x").status(), StatusCode::BAD_GATEWAY);
    }
}
