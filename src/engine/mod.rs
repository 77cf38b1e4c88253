//! The engine: a supervisor actor that admits calls and spawns one [`Activeflow`] actor per
//! activeflow, the activeflow actor that walks a flow's actions, and the shared
//! [`ActiveflowRegistry`] operators read. Talks to calls only through `call`'s messages; knows
//! no HTTP.

pub mod activeflow;
pub mod amd;
pub mod call_tree;
mod cursor;
pub mod execute;
mod id;
pub mod originate;
pub mod persist;
pub mod record;
pub mod registry;
pub mod routes;
pub mod span;
pub(crate) mod stream;
pub mod supervisor;

pub use activeflow::{
    Activeflow, Continue, ContinueError, GetVariables, MergeError, MergeVariables, Stop,
};
pub use id::ActiveflowId;
pub use record::{ActiveflowRecord, EndReason, ExecutedAction, ReferenceType, Status};
pub use registry::ActiveflowRegistry;
pub use routes::RouteTable;
pub use supervisor::{
    Drain, Parent, PlaceCalls, PlaceError, PlacedCall, Services, StartActiveflow,
    StartActiveflowAs, StartError, StopAll, Supervisor, Supervisors,
};

/// Engine limits taken from `[engine]`.
#[derive(Debug, Clone, Copy)]
pub struct EngineLimits {
    pub max_activeflows: usize,
    pub max_execute_count: u32,
    /// `engine.max_variable_bytes`, `engine.max_variables_bytes`.
    pub variables: crate::flow::VariableLimits,
    /// `engine.max_executed_actions`.
    pub max_executed_actions: usize,
}

impl From<&crate::config::EngineConfig> for EngineLimits {
    fn from(c: &crate::config::EngineConfig) -> Self {
        EngineLimits {
            max_activeflows: c.max_activeflows,
            max_execute_count: c.max_execute_count,
            variables: crate::flow::VariableLimits {
                max_value_bytes: c.max_variable_bytes,
                max_total_bytes: c.max_variables_bytes,
            },
            max_executed_actions: c.max_executed_actions,
        }
    }
}

/// Default `engine.max_executed_actions`: the default `engine.max_execute_count`, so an
/// activeflow on the default config keeps its whole history in memory (it cannot execute
/// more); an operator who raises the execute count for long-running loops keeps memory
/// bounded, the older entries staying in storage only.
pub const DEFAULT_MAX_EXECUTED_ACTIONS: usize = 1000;

/// Nested stacks (`fetch`, `fetch_flow`) allowed per activeflow (ARCHITECTURE §7).
pub const MAX_STACK_DEPTH: usize = 100;
/// Activeflows one `on_complete_flow_id` chain may hold, the first included (ARCHITECTURE §7).
pub const MAX_CHAIN_DEPTH: u8 = 5;
