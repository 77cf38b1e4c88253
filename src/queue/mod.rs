//! Call queues (`queue_join`, `/v1/queues`): definitions (`definition`), the sans-IO state
//! machine of agents and waiting callers (`machine`), the engine-wide table of agents ringing
//! or bridged (`engaged`), the actor that owns them (`manager`) and their metrics. Depends on
//! `flow` (addresses, wait actions) and `media` (hold requests); never on `engine` or `api`:
//! the activeflow dials agents and bridges, this module decides.

pub mod definition;
pub mod engaged;
pub mod machine;
pub mod manager;
pub mod metrics;

pub use definition::{QueueId, QueueSpec, QueueSpecError, Strategy};
pub use machine::{Leave, Ticket};
pub use manager::{QueueManager, QueueOrder};
