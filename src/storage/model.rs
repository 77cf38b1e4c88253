//! What the storage layer reads and writes: plain rows (strings and JSON text) built by the
//! layers that own the records, the [`Write`]s the writer batches, and the [`Store`] trait a
//! backend implements. Knows no engine, call or HTTP types, so every layer may depend on it.

use serde_json::Value;

use super::StorageError;

/// The activeflow's header as it stands (an upsert) — see `ActiveflowRecord`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveflowRow {
    pub id: String,
    pub sequence: u64,
    pub flow_id: String,
    pub status: &'static str,
    pub end_reason: Option<&'static str>,
    pub reference_type: &'static str,
    pub reference_id: String,
    pub reference_activeflow_id: Option<String>,
    /// VoIPBIN's record fields (`engine::record`); `None` reads back as VoIPBIN's "none".
    pub on_complete_flow_id: Option<String>,
    pub forward_action_id: Option<String>,
    pub webhook_uri: Option<String>,
    pub webhook_method: Option<&'static str>,
    /// JSON of the current action.
    pub current_action: Option<String>,
    /// JSON of the final variables (ended records only).
    pub variables: Option<String>,
    pub tm_create: String,
    pub tm_update: String,
    pub tm_end: Option<String>,
}

/// One executed action: its position in `executed_actions` (from 0) and its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRow {
    pub index: usize,
    pub body: String,
}

/// A call's record as it stands (an upsert) — see `CallInfo`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRow {
    pub id: String,
    pub sequence: u64,
    pub sip_call_id: String,
    pub direction: &'static str,
    pub source: String,
    pub destination: String,
    pub peer: String,
    pub status: &'static str,
    pub end_cause: Option<String>,
    pub tm_create: String,
    pub tm_answer: Option<String>,
    pub tm_end: Option<String>,
}

/// Where a flow came from: `flows.dir` files are reloaded from disk at start, API flows from
/// the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowSource {
    File,
    Api,
}

impl FlowSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowSource::File => "file",
            FlowSource::Api => "api",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlowRow {
    pub id: String,
    pub name: String,
    pub source: FlowSource,
    /// The flow's JSON.
    pub body: String,
    pub tm_update: String,
}

/// One change, applied in queue order; a batch of them is one transaction.
#[derive(Debug, Clone)]
pub enum Write {
    /// Upserts the header (never over an ended row) and the actions given (by index, so a
    /// repeated action is harmless).
    Activeflow {
        row: ActiveflowRow,
        actions: Vec<ActionRow>,
    },
    /// `DELETE /v1/activeflows/{id}`: soft delete (sets `tm_delete`): gone from listings,
    /// still readable by id, history included.
    DeleteActiveflow(String),
    /// Upserts a call (never over an ended row).
    Call(CallRow),
    Flow(FlowRow),
    DeleteFlow(String),
    /// Retention: drops ended activeflows and calls whose `tm_end` is before this timestamp.
    Purge {
        ended_before: String,
    },
    /// Changes nothing; its acknowledgement means everything queued before it is committed.
    Barrier,
}

/// A row of a batch's write that failed on its own and was left out (see
/// [`Store::apply_each`]).
#[derive(Debug)]
pub struct Rejected {
    /// The write's position in the batch.
    pub index: usize,
    /// Which of its rows.
    pub part: RejectedPart,
    pub error: StorageError,
}

/// What of a write was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectedPart {
    /// The whole write (for an activeflow: its header, even without its variables).
    Whole,
    /// An activeflow's final variables: the header was stored without them.
    Variables,
    /// One executed action, by its index in `executed_actions`.
    Action(usize),
}

/// A record read back from the store: its creation sequence and the JSON the API serves
/// (the same fields the in-memory record serializes to).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub sequence: u64,
    pub json: Value,
}

/// What start-up recovery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Activeflows that were `running` and are now ended with `engine_restart`.
    pub activeflows: usize,
    /// Calls that were not ended and now are.
    pub calls: usize,
    /// The highest sequences in use, so new records list after the old ones.
    pub last_activeflow_sequence: u64,
    pub last_call_sequence: u64,
}

/// A storage backend. Writes arrive in batches from one writer thread; reads may come from any
/// thread (the API runs them off its event loop). A networked database implements the same.
pub trait Store: Send + Sync + 'static {
    /// Applies `batch` as one transaction, in order.
    fn apply(&self, batch: &[Write]) -> Result<(), StorageError>;
    /// Applies `batch` in order, leaving out each row that fails on its own (an error that
    /// is not [`StorageError::is_transient`]) and returning those; a transient error fails the
    /// call, and the writer retries the batch. The writer calls it only after [`Store::apply`]
    /// failed on the whole batch. This default makes each write its own transaction, so a
    /// retry may apply the writes before a transient error twice (harmless: writes are
    /// upserts, replayed in order); a backend overrides it with one transaction and savepoints.
    fn apply_each(&self, batch: &[Write]) -> Result<Vec<Rejected>, StorageError> {
        let mut rejected = Vec::new();
        for (index, write) in batch.iter().enumerate() {
            match self.apply(std::slice::from_ref(write)) {
                Ok(()) => {}
                Err(error) if error.is_transient() => return Err(error),
                Err(error) => rejected.push(Rejected {
                    index,
                    part: RejectedPart::Whole,
                    error,
                }),
            }
        }
        Ok(rejected)
    }
    /// Marks records left `running` by a dead process as ended (`reason`, at `now`).
    fn recover(&self, reason: &str, now: &str) -> Result<Recovery, StorageError>;
    /// Replaces every `file` flow with `flows` (the directory as loaded now).
    fn replace_file_flows(&self, flows: &[FlowRow]) -> Result<(), StorageError>;
    /// Every flow of `source`.
    fn flows(&self, source: FlowSource) -> Result<Vec<FlowRow>, StorageError>;
    /// Activeflows newest first with a sequence below `before`, at most `limit`.
    fn activeflows(
        &self,
        status: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Stored>, StorageError>;
    fn activeflow(&self, id: &str) -> Result<Option<Stored>, StorageError>;
    /// The lowest sequence of an activeflow created at or after `at` (this engine's timestamp
    /// form): where a VoIPBIN timestamp page token ("created before") starts. `None` when all
    /// are older, or the backend does not say.
    fn first_activeflow_since(&self, _at: &str) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }
    /// As [`Store::first_activeflow_since`], for calls.
    fn first_call_since(&self, _at: &str) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }
    /// The final variables of an ended activeflow.
    fn activeflow_variables(&self, id: &str) -> Result<Option<Value>, StorageError>;
    fn calls(
        &self,
        status: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Stored>, StorageError>;
    fn call(&self, id: &str) -> Result<Option<Stored>, StorageError>;
}
