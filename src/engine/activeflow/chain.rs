//! The activeflow's links to other flows: `fetch_flow` pushes a registered flow's actions as a
//! sub-stack, and a flow's `on_complete_flow_id` starts the next activeflow in the chain (a
//! child holding its parent's final variables, at most `MAX_CHAIN_DEPTH` deep).

use serde_json::json;

use super::{Activeflow, Parent, StartActiveflow, MAX_CHAIN_DEPTH};
use crate::engine::registry::lock;

/// Why `fetch_flow` could not push.
#[derive(Debug, thiserror::Error)]
pub(super) enum FetchFlowError {
    #[error("flow {0:?} not found")]
    NotFound(String),
    #[error(transparent)]
    Cursor(#[from] crate::engine::cursor::CursorError),
}

impl Activeflow {
    /// Pushes the actions of flow `flow_id` (id or name) as a sub-stack.
    pub(super) fn push_flow(&mut self, flow_id: &str) -> Result<(), FetchFlowError> {
        let flow = self
            .links
            .flows
            .get_by_name_or_id(flow_id)
            .ok_or_else(|| FetchFlowError::NotFound(flow_id.to_owned()))?;
        let result = json!({ "flow_id": flow.id, "actions": flow.actions.len() });
        self.cursor.push_flow(flow)?;
        self.merge_result(result);
        Ok(())
    }

    /// Starts the flow's `on_complete_flow_id` successor with this activeflow's final variables.
    pub(super) fn start_successor(&self) {
        let Some(next_id) = self.flow.on_complete_flow_id else {
            return;
        };
        if self.links.depth >= MAX_CHAIN_DEPTH {
            tracing::warn!(activeflow_id = %self.id, "on_complete_flow_id chain is {MAX_CHAIN_DEPTH} deep; not continued");
            return;
        }
        let Some(flow) = self.links.flows.get(&next_id) else {
            tracing::warn!(activeflow_id = %self.id, flow_id = %next_id, "on_complete_flow_id names no flow");
            return;
        };
        let (variables, reference_type, reference_id) = {
            let r = lock(&self.record);
            (
                r.variables.clone(),
                r.reference_type,
                r.reference_id.clone(),
            )
        };
        self.links.supervisor.do_send(StartActiveflow {
            flow,
            variables,
            parent: Some(Parent {
                id: self.id,
                reference_type,
                reference_id,
                depth: self.links.depth,
                call_tree: self.links.call_tree.clone(),
            }),
        });
    }
}
