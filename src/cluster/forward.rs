//! Requests forwarded to a record's owner node (issue 20): a node that does not hold an
//! activeflow or call live asks the node that does over NATS request/reply, on the owner's own
//! subject `activeflow.node.<node_id>.api`. This file owns the wire types, the asking side and
//! the serving loop; what an op does is the API's (a [`Handler`] it hands in), so this module
//! knows no HTTP. The owner trusts what arrives on NATS: the asking node checked the caller's
//! token, so NATS must be private to the cluster, or require credentials: `nats_url` carries
//! them (`nats://user:password@host`, `nats://token@host`; `nats_auth.rs`).
//!
//! A request carries the asker's timeout: the owner drops one that waited that long for a
//! free slot (the asker has answered 503 by then). One already running when the asker gives
//! up still completes: a 503 does not mean "not done", and the asker never retries it.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Cluster, NodeId};

/// Requests one node serves at once; more wait in the subscription's buffer.
pub const MAX_CONCURRENT_REQUESTS: usize = 64;

/// What a forwarded request asks the owner to do (the API route it stands for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardOp {
    /// `POST /v1/activeflows/{id}/stop`
    Stop,
    /// `POST /v1/activeflows/{id}/continue`
    Continue,
    /// `PUT /v1/activeflows/{id}/variables`
    Variables,
    /// `DELETE /v1/activeflows/{id}`
    Delete,
    /// `POST /v1/calls/{id}/hangup`
    Hangup,
}

impl ForwardOp {
    /// Every op, for metrics seeded at zero.
    pub const ALL: [ForwardOp; 5] = [
        ForwardOp::Stop,
        ForwardOp::Continue,
        ForwardOp::Variables,
        ForwardOp::Delete,
        ForwardOp::Hangup,
    ];

    /// The metrics label (a fixed word).
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardOp::Stop => "stop",
            ForwardOp::Continue => "continue",
            ForwardOp::Variables => "variables",
            ForwardOp::Delete => "delete",
            ForwardOp::Hangup => "hangup",
        }
    }
}

/// One forwarded API request: the op, the record's id, and the request body when the route
/// has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardRequest {
    pub op: ForwardOp,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// How long the asker waits (`forward_timeout_ms`); the owner drops the request once it
    /// has waited that long for a slot. Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// Response headers the owner's answer carries back ([`ForwardReply::headers`]).
pub const CARRIED_HEADERS: [&str; 2] = ["content-type", "retry-after"];

/// The owner's answer: the HTTP status, JSON body (null for none) and [`CARRIED_HEADERS`]
/// its own API gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardReply {
    pub status: u16,
    pub body: Value,
    /// Lower-case names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl ForwardReply {
    /// A reply for a request the owner could not read.
    fn malformed(message: String) -> ForwardReply {
        ForwardReply {
            status: 400,
            body: serde_json::json!({"error": {"code": "bad_request", "message": message}}),
            headers: BTreeMap::new(),
        }
    }
}

/// Why a forwarded request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Nobody serves the owner's subject, or it did not answer within `forward_timeout_ms`.
    #[error("node {node} did not answer ({why})")]
    Unavailable { node: NodeId, why: &'static str },
    /// It answered something that is not a [`ForwardReply`].
    #[error("node {node} answered a malformed reply: {message}")]
    BadReply { node: NodeId, message: String },
}

/// The subject node `node` serves forwarded API requests on (under `cluster.prefix`).
pub fn api_subject(cluster: &Cluster, node: &NodeId) -> String {
    format!("{}.node.{node}.api", cluster.prefix)
}

/// Asks `owner` to run `request`, waiting at most `cluster.timers.forward_timeout` (sent as
/// the request's `timeout_ms` unless it has one).
pub async fn forward(
    cluster: &Cluster,
    owner: &NodeId,
    request: &ForwardRequest,
) -> Result<ForwardReply, ForwardError> {
    let mut request = request.clone();
    let budget = u64::try_from(cluster.timers.forward_timeout.as_millis()).unwrap_or(u64::MAX);
    request.timeout_ms.get_or_insert(budget);
    let payload = serde_json::to_vec(&request).map_err(|e| ForwardError::BadReply {
        node: owner.clone(),
        message: e.to_string(),
    })?;
    let unavailable = |why| ForwardError::Unavailable {
        node: owner.clone(),
        why,
    };
    let asked = cluster
        .nats
        .request(api_subject(cluster, owner), payload.into());
    let answer = match tokio::time::timeout(cluster.timers.forward_timeout, asked).await {
        Err(_) => return Err(unavailable("timeout")),
        Ok(Err(e)) => {
            return Err(match e.kind() {
                async_nats::RequestErrorKind::NoResponders => unavailable("no responders"),
                async_nats::RequestErrorKind::TimedOut => unavailable("timeout"),
                _ => unavailable("nats error"),
            })
        }
        Ok(Ok(message)) => message,
    };
    serde_json::from_slice(&answer.payload).map_err(|e| ForwardError::BadReply {
        node: owner.clone(),
        message: e.to_string(),
    })
}

/// Whether `request`, taken off the subscription at `received`, waited past its asker's timeout.
fn expired(request: &ForwardRequest, received: Instant) -> bool {
    request
        .timeout_ms
        .is_some_and(|ms| received.elapsed() >= Duration::from_millis(ms))
}

/// What serves a forwarded request on the owner: the API's own code path for the op. Runs on
/// the actix thread that started [`serve`] (the API's futures need not be `Send`).
pub type Handler = Rc<dyn Fn(ForwardRequest) -> Pin<Box<dyn Future<Output = ForwardReply>>>>;

/// Serves this node's subject until the subscription ends: each request runs `handler` as a
/// local task, at most [`MAX_CONCURRENT_REQUESTS`] at once; a request that does not parse
/// gets a 400 reply. Must run inside a `LocalSet` (an actix arbiter or System).
pub async fn serve(cluster: Cluster, handler: Handler) -> Result<(), async_nats::SubscribeError> {
    let subject = api_subject(&cluster, &cluster.node_id);
    let mut requests = cluster.nats.subscribe(subject.clone()).await?;
    tracing::info!(%subject, "cluster: serving forwarded api requests");
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_REQUESTS));
    while let Some(message) = requests.next().await {
        let received = Instant::now();
        let Some(reply_to) = message.reply.clone() else {
            continue; // a publish without a reply subject asks nothing
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (nats, handler) = (cluster.nats.clone(), handler.clone());
        tokio::task::spawn_local(async move {
            let reply = match serde_json::from_slice::<ForwardRequest>(&message.payload) {
                Ok(request) if expired(&request, received) => {
                    tracing::warn!(op = request.op.as_str(), id = %request.id,
                        "cluster: forwarded request dropped: the asker gave up waiting");
                    return;
                }
                Ok(request) => handler(request).await,
                Err(e) => ForwardReply::malformed(format!("forwarded request: {e}")),
            };
            match serde_json::to_vec(&reply) {
                Ok(bytes) => {
                    if let Err(e) = nats.publish(reply_to, bytes.into()).await {
                        tracing::warn!(error = %e, "cluster: forwarded reply not sent");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cluster: forwarded reply not encoded"),
            }
            drop(permit);
        });
    }
    Ok(())
}
