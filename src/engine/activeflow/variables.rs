//! The activeflow's variables as operators and calls reach them: `MergeVariables` and
//! `GetVariables` (the API's `PUT`/`GET .../variables`), and values the engine learns from the
//! call (digits, `connect` outcomes). Every write is checked against `engine.max_variable_bytes`
//! and `engine.max_variables_bytes`; what a broken cap does depends on who wrote (see each).

use actix::prelude::*;

use super::Activeflow;
use crate::engine::record::timestamp;
use crate::engine::registry::lock;
use crate::flow::Variables;

/// Merges operator-given variables (`PUT /v1/activeflows/{id}/variables`); answers the merged
/// set. A set that would break a cap is refused whole (the API answers 400 naming the cap):
/// the activeflow goes on with its variables as they were.
#[derive(Message)]
#[rtype(result = "Result<Variables, MergeError>")]
pub struct MergeVariables(pub Variables);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    #[error("already ended")]
    Ended,
    #[error(transparent)]
    TooLarge(#[from] crate::flow::VariableError),
}

/// The live variables (`GET /v1/activeflows/{id}/variables`); `None` once ended (the record
/// then holds the final set).
#[derive(Message)]
#[rtype(result = "Option<Variables>")]
pub struct GetVariables;

impl Handler<MergeVariables> for Activeflow {
    type Result = Result<Variables, MergeError>;

    fn handle(&mut self, msg: MergeVariables, _ctx: &mut Self::Context) -> Self::Result {
        if self.ended {
            return Err(MergeError::Ended);
        }
        self.variables
            .try_merge(msg.0, &self.links.limits.variables)
            .inspect_err(|e| crate::metrics::flow_limit_exceeded(e.limit()))?;
        lock(&self.record).tm_update = timestamp();
        Ok(self.variables.clone())
    }
}

impl Handler<GetVariables> for Activeflow {
    type Result = Option<Variables>;

    fn handle(&mut self, _: GetVariables, _ctx: &mut Self::Context) -> Option<Variables> {
        (!self.ended).then(|| self.variables.clone())
    }
}

impl Activeflow {
    /// Sets a variable the engine learnt from the call (digits, `connect` outcomes) within the
    /// caps. Over one, the value is not written and the current action records the error, but
    /// the activeflow goes on: the caller's key press or a callee's answer did not break the
    /// cap, the flow's own variables filled it (its next `variable_set` ends it).
    pub(super) fn set_variable(&mut self, key: &str, value: impl Into<String>) {
        let limits = self.links.limits.variables;
        if let Err(e) = self.variables.try_set(key, value, &limits) {
            crate::metrics::flow_limit_exceeded(e.limit());
            self.fail_current(e);
        }
    }
}
