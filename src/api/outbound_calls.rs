//! `POST /v1/calls`: places one outbound call per destination, each running the flow given by
//! `flow_id` or the inline `actions` once answered (VoIPBIN `PostCallsJSONBody`). Parses and
//! answers; the placing is the engine's (`engine::PlaceCalls`).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::caller_variables::CallerVariables;
use super::{ApiError, ApiState};
use crate::engine::{PlaceCalls, PlaceError, PlacedCall};
use crate::flow::call_action::{self, CallFlow, Party};
use crate::flow::outbound::AddressType;
use crate::flow::{Flow, FlowError, FlowId};

/// How long a client should wait before retrying a refused request (seconds).
const RETRY_AFTER_SECONDS: u32 = 1;

#[utoipa::path(operation_id = "calls_create", post, path = "/v1/calls", tag = "calls",
    request_body(content = serde_json::Value, description = "{source?, destinations (1..16 addresses {type: tel|sip, target, target_name?}), flow_id | actions (exactly one), variables?, trunk?, anonymous? (yes|no|auto|bool), early_execution?, ring_timeout? (ms)}"),
    responses((status = 200, description = "{calls: [one per destination: {id, activeflow_id, flow_id, target, source, destination, direction, status dialing|failed, reason?, error?}], groupcalls: []} (200 as VoIPBIN)", body = serde_json::Value),
              (status = 400, description = "a bad field, named (destinations[1].target, flow_id, actions[0].option.text, variables)", body = serde_json::Value),
              (status = 404, description = "unknown flow_id", body = serde_json::Value),
              (status = 503, description = "overloaded, at capacity or shutting down (Retry-After)", body = serde_json::Value)))]
pub(super) async fn create(
    state: web::Data<ApiState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let mut body = body.into_inner();
    let variables = match body.as_object_mut().and_then(|m| m.remove("variables")) {
        None | Some(Value::Null) => CallerVariables::default(),
        Some(v) => serde_json::from_value(v).map_err(|e| {
            ApiError::BadRequest(format!("variables: must be an object of strings ({e})"))
        })?,
    }
    .checked()?;
    let spec = call_action::from_body(&body).map_err(bad_request)?;
    let flow = match &spec.flow {
        CallFlow::Id(id) => state
            .flows
            .get_by_name_or_id(id)
            .ok_or_else(|| ApiError::NotFound(format!("flow_id: flow {id:?} not found")))?,
        CallFlow::Actions(actions) => {
            let mut inline = Flow::new("", actions.clone());
            inline.id = FlowId::nil();
            std::sync::Arc::new(inline)
        }
    };
    let flow_id = flow.id;
    let source = spec.source.clone().unwrap_or_else(|| Party {
        address: crate::flow::outbound::Address {
            kind: AddressType::Tel,
            target: String::new(),
        },
        name: String::new(),
    });
    let supervisor = state
        .supervisors
        .next()
        .ok_or_else(|| ApiError::Unavailable("no supervisor".into()))?;
    let placed = supervisor
        .send(PlaceCalls {
            flow,
            variables,
            source: source.clone(),
            destinations: spec.destinations,
            trunk: spec.trunk,
            // No call of ours asked for privacy: "auto" shows the caller.
            anonymous: spec.anonymous.hides(false),
            early_execution: spec.early_execution,
            ring_timeout: Duration::from_millis(spec.ring_timeout_ms),
        })
        .await
        .map_err(|e| ApiError::Unavailable(format!("engine unavailable: {e}")))?
        .map_err(|e| match e {
            PlaceError::Draining => ApiError::Unavailable(e.to_string()),
            PlaceError::Overloaded | PlaceError::AtCapacity(_) => ApiError::Busy {
                message: e.to_string(),
                retry_after_seconds: RETRY_AFTER_SECONDS,
            },
        })?;
    let calls: Vec<Value> = placed.iter().map(|p| entry(p, &source, flow_id)).collect();
    Ok(HttpResponse::Ok().json(json!({ "calls": calls, "groupcalls": [] })))
}

fn bad_request(e: FlowError) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

/// VoIPBIN's address object.
fn address(p: &Party) -> Value {
    let kind = match p.address.kind {
        AddressType::Tel => "tel",
        AddressType::Sip => "sip",
        AddressType::Extension => "extension",
    };
    json!({ "type": kind, "target": p.address.target, "target_name": p.name })
}

/// One destination's entry in the answer.
fn entry(p: &PlacedCall, source: &Party, flow_id: FlowId) -> Value {
    let mut out = json!({
        "target": p.destination.address.target,
        "source": address(source),
        "destination": address(&p.destination),
        "direction": "outgoing",
        "flow_id": flow_id.to_string(),
    });
    match &p.result {
        Ok((call_id, activeflow_id)) => {
            out["id"] = json!(call_id.to_string());
            out["activeflow_id"] = json!(activeflow_id.to_string());
            out["status"] = json!("dialing");
        }
        Err(e) => {
            out["id"] = Value::Null;
            out["activeflow_id"] = Value::Null;
            out["status"] = json!("failed");
            out["reason"] = json!(e.reason());
            out["error"] = json!(e.to_string());
        }
    }
    out
}
