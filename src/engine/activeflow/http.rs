//! The activeflow's HTTP actions. `fetch` asks a server for actions (a JSON list, or an object
//! with `actions`; the request as VoIPBIN's `ActionFetchGet` sends it: the action's method,
//! a JSON body naming the activeflow and its reference, plus — our addition, not for `GET` —
//! its variables),
//! validates them and pushes them as a sub-stack; any failure ends the activeflow
//! with `error`, since the flow has nothing to go on with. `webhook_send` retries 5xx answers and
//! connection failures with backoff; `sync` waits for the outcome, otherwise the request joins
//! its destination's bounded queue (`http.webhook_queue`; full → action error, counted) and the
//! flow goes on at once. A webhook that fails is an action error, not the end of the flow.

use std::sync::Arc;

use actix::prelude::*;
use serde_json::{json, Value};
use tracing::Instrument;

use super::waiting::Awaiting;
use super::Activeflow;
use crate::engine::registry::lock;
use crate::engine::{ActiveflowId, EndReason};
use crate::flow::integration::{Fetch, HttpMethod, WebhookSend};
use crate::flow::{Action, ActionId, Variables};
use crate::http::{Attempted, HttpClient, HttpError, Response, WEBHOOK_RETRY};

/// Why `fetch` produced no actions.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} did not answer a JSON action list: {message}")]
    NotActions { url: String, message: String },
    #[error("{url} answered invalid actions: {message}")]
    Invalid { url: String, message: String },
    #[error(transparent)]
    Stack(#[from] crate::engine::cursor::CursorError),
}

/// VoIPBIN's fetch request type (bin-flow-manager actionhandler `ActionFetchGet`).
const FETCH_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// The body of a `fetch` request, sent whatever its method (VoIPBIN sends it with `GET` too):
/// `activeflow_id` and `reference_id` as VoIPBIN sends them (a UUID: the nil one for an
/// activeflow started over the API, which has no reference). Only a non-`GET` request also
/// carries the `variables` (our addition): a `GET` stays as small as VoIPBIN's, since proxies
/// and CDNs may refuse or drop a large `GET` body.
fn fetch_body(
    id: ActiveflowId,
    reference_id: &str,
    method: HttpMethod,
    variables: &Variables,
) -> Vec<u8> {
    let reference_id = match reference_id {
        "" => uuid::Uuid::nil().to_string(),
        r => r.to_owned(),
    };
    let mut body = json!({ "activeflow_id": id, "reference_id": reference_id });
    if method != HttpMethod::Get {
        body["variables"] = json!(variables);
    }
    body.to_string().into_bytes()
}

fn method(m: HttpMethod) -> reqwest::Method {
    match m {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
        HttpMethod::Delete => reqwest::Method::DELETE,
    }
}

impl Activeflow {
    /// Starts `fetch`; the activeflow waits for the answer.
    pub(super) fn start_fetch(
        &mut self,
        fetch: Fetch,
        next: Option<ActionId>,
        ctx: &mut Context<Self>,
    ) {
        let client = self.links.http.clone();
        let reference_id = lock(&self.record).reference_id.clone();
        let body = Some((
            FETCH_CONTENT_TYPE,
            fetch_body(self.id, &reference_id, fetch.event_method, &self.variables),
        ));
        self.awaiting = Some(Awaiting::Http { next });
        let url = fetch.event_url;
        let request = async move {
            let response = client.send(method(fetch.event_method), &url, body).await;
            parse_actions(&url, response)
        };
        ctx.spawn(request.into_actor(self).map(|fetched, act, ctx| {
            let Some(Awaiting::Http { .. }) = act.awaiting.take() else {
                return;
            };
            match fetched.and_then(|(status, actions)| {
                let n = actions.len();
                act.cursor
                    .push(Arc::new(actions))
                    .map(|()| json!({ "status": status, "actions": n }))
                    .map_err(FetchError::from)
            }) {
                Ok(result) => {
                    act.merge_result(result);
                    // The fetched actions run next; the cursor returns here when they run out.
                    act.resume(None, ctx);
                }
                Err(e) => {
                    act.fail_current(e);
                    act.end(EndReason::Error, ctx);
                }
            }
        }));
    }

    /// Sends a webhook; with `sync` the activeflow waits for its outcome.
    pub(super) fn start_webhook(
        &mut self,
        hook: WebhookSend,
        next: Option<ActionId>,
        ctx: &mut Context<Self>,
    ) -> bool {
        let client = self.links.http.clone();
        let send = deliver(client, hook.clone());
        if !hook.sync {
            // Sent from the destination's queue, still inside this activeflow's span.
            let job = Box::pin(Instrument::in_current_span(async move {
                if let Err(e) = send.await {
                    crate::metrics::action_failed("webhook_send");
                    tracing::warn!(error = %e, "webhook failed");
                }
            }));
            // A bounded queue per destination: a flow cannot pile up unbounded requests.
            match self.links.http.queue_webhook(&hook.uri, job) {
                Ok(()) => self.merge_result(json!({ "sync": false })),
                Err(e) => {
                    crate::metrics::outbound_refused("webhook_send");
                    self.merge_result(json!({ "sync": false }));
                    self.fail_current(e);
                }
            }
            return true;
        }
        self.awaiting = Some(Awaiting::Http { next });
        ctx.spawn(send.into_actor(self).map(move |outcome, act, ctx| {
            let Some(Awaiting::Http { next }) = act.awaiting.take() else {
                return;
            };
            match outcome {
                Ok(result) => act.merge_result(result),
                Err(e) => act.fail_current(e),
            }
            act.resume(next, ctx);
        }));
        false
    }
}

/// Reads a fetch answer: a JSON action list, or an object holding one in `actions`.
fn parse_actions(
    url: &str,
    response: Result<Response, HttpError>,
) -> Result<(u16, Vec<Action>), FetchError> {
    let response = response?;
    if !(200..300).contains(&response.status) {
        return Err(FetchError::Status {
            url: url.into(),
            status: response.status,
        });
    }
    let not_actions = |message: String| FetchError::NotActions {
        url: url.into(),
        message,
    };
    let value: Value =
        serde_json::from_slice(&response.body).map_err(|e| not_actions(e.to_string()))?;
    let list = match value {
        Value::Object(mut o) => o.remove("actions").unwrap_or(Value::Null),
        v => v,
    };
    let actions: Vec<Action> =
        serde_json::from_value(list).map_err(|e| not_actions(e.to_string()))?;
    if actions.is_empty() {
        return Err(not_actions("no actions".into()));
    }
    crate::flow::validate_actions(&actions).map_err(|e| FetchError::Invalid {
        url: url.into(),
        message: e.to_string(),
    })?;
    Ok((response.status, actions))
}

/// Why a webhook was not delivered.
#[derive(Debug, thiserror::Error)]
enum WebhookError {
    #[error("{0} (after {1} attempts)")]
    Http(HttpError, u32),
    #[error("{url} answered HTTP {status} (after {attempts} attempts)")]
    Status {
        url: String,
        status: u16,
        attempts: u32,
    },
}

/// Sends a webhook, retrying 5xx answers and transient failures with backoff
/// ([`WEBHOOK_RETRY`]).
async fn deliver(client: HttpClient, hook: WebhookSend) -> Result<Value, WebhookError> {
    let body = (!matches!(hook.method, HttpMethod::Get | HttpMethod::Delete))
        .then_some((hook.data_type.as_str(), hook.data.as_bytes()));
    let Attempted { outcome, attempts } = client
        .send_retrying(method(hook.method), &hook.uri, body, WEBHOOK_RETRY)
        .await;
    match outcome {
        Ok(r) if r.status < 400 => Ok(json!({ "status": r.status, "attempts": attempts })),
        Ok(r) => Err(WebhookError::Status {
            url: hook.uri.clone(),
            status: r.status,
            attempts,
        }),
        Err(e) => Err(WebhookError::Http(e, attempts)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bin-flow-manager actionhandler `ActionFetchGet`: a GET carries only the two ids; a POST
    /// also carries the variables (our addition).
    #[test]
    fn action_fetch_body_names_the_activeflow_its_reference_and_variables_unless_get() {
        let id = ActiveflowId::new();
        let mut vars = Variables::new();
        vars.set("who", "caller");
        let call = "6f1c3f0e-8d3a-4c55-9a43-8f0b2f4d1e01";
        let body = |reference: &str, m: HttpMethod| -> Value {
            serde_json::from_slice(&fetch_body(id, reference, m, &vars)).unwrap()
        };
        assert_eq!(
            body(call, HttpMethod::Post),
            json!({"activeflow_id": id.to_string(), "reference_id": call,
                   "variables": {"who": "caller"}})
        );
        assert_eq!(
            body(call, HttpMethod::Get),
            json!({"activeflow_id": id.to_string(), "reference_id": call})
        );
        assert_eq!(
            body("", HttpMethod::Get)["reference_id"],
            "00000000-0000-0000-0000-000000000000"
        );
    }
}
