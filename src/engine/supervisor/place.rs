//! `POST /v1/calls` on a supervisor shard: places one call per destination (each with its own
//! activeflow, see `engine::originate`) on this shard's arbiter. Refuses all of them (503)
//! while draining, overloaded, or when none could be placed for capacity.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::Supervisor;
use crate::call::CallId;
use crate::engine::originate::{originate, Originate, OriginateError};
use crate::engine::ActiveflowId;
use crate::flow::call_action::Party;
use crate::flow::{Flow, Variables};

/// Place calls that run `flow`.
#[derive(Message)]
#[rtype(result = "Result<Vec<PlacedCall>, PlaceError>")]
pub struct PlaceCalls {
    pub flow: Arc<Flow>,
    pub variables: Variables,
    pub source: Party,
    pub destinations: Vec<Party>,
    pub trunk: Option<String>,
    pub anonymous: bool,
    pub early_execution: bool,
    pub ring_timeout: Duration,
}

/// How one destination went: its call and activeflow, or why it was not placed.
pub struct PlacedCall {
    pub destination: Party,
    pub result: Result<(CallId, ActiveflowId), OriginateError>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("the engine is shutting down")]
    Draining,
    #[error("overloaded: SIP requests are waiting too long to be handled")]
    Overloaded,
    /// Nothing placed: every destination met a full engine (calls or activeflows).
    #[error("at capacity: {0}")]
    AtCapacity(String),
}

impl Handler<PlaceCalls> for Supervisor {
    type Result = Result<Vec<PlacedCall>, PlaceError>;

    fn handle(&mut self, msg: PlaceCalls, ctx: &mut Self::Context) -> Self::Result {
        if self.draining {
            return Err(PlaceError::Draining);
        }
        if self.services.dialer.overloaded() {
            return Err(PlaceError::Overloaded);
        }
        let mut placed = Vec::with_capacity(msg.destinations.len());
        for destination in msg.destinations {
            let request = Originate {
                flow: msg.flow.clone(),
                variables: msg.variables.clone(),
                source: msg.source.clone(),
                destination: destination.clone(),
                trunk: msg.trunk.clone(),
                anonymous: msg.anonymous,
                early_execution: msg.early_execution,
                ring_timeout: msg.ring_timeout,
                parent_call: None,
            };
            let result = originate(&self.registry, self.links(ctx, 1), request)
                .map(|o| (o.call_id, o.activeflow_id));
            crate::metrics::outbound_call_requested("api", result.is_ok());
            placed.push(PlacedCall {
                destination,
                result,
            });
        }
        let full = placed
            .iter()
            .all(|p| p.result.as_ref().is_err_and(OriginateError::is_capacity));
        if full {
            let why = placed
                .iter()
                .find_map(|p| p.result.as_ref().err())
                .map(ToString::to_string)
                .unwrap_or_default();
            return Err(PlaceError::AtCapacity(why));
        }
        Ok(placed)
    }
}
