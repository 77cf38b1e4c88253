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
    /// The SIP final response (3xx-6xx) that ended the call unanswered: the one a leg we
    /// placed received, or the one we sent refusing an incoming call.
    pub end_code: Option<u16>,
    /// The audio codec of an answered call (`PCMU`, `PCMA`).
    pub codec: Option<&'static str>,
    pub tm_create: String,
    pub tm_answer: Option<String>,
    pub tm_end: Option<String>,
}

/// An ended call as the CDR export reads it: the call's columns, the activeflow it started
/// (the first, when `on_complete_flow_id` chained more) and, in a shared store, the node
/// that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedCall {
    pub id: String,
    pub activeflow_id: Option<String>,
    /// `None` from a store no other node shares.
    pub node_id: Option<String>,
    pub sip_call_id: String,
    pub direction: String,
    pub source: String,
    pub destination: String,
    pub peer: String,
    pub end_cause: Option<String>,
    pub end_code: Option<u16>,
    pub codec: Option<String>,
    pub tm_create: String,
    pub tm_answer: Option<String>,
    pub tm_end: String,
}

/// Which ended calls [`Store::ended_calls`] reads: those whose `tm_end` lies in
/// `[from, to)`, either bound open when `None`. Bounds are in the stored timestamp form
/// (`2026-01-01T00:00:00.000000Z`, compared as text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndedRange {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Where the next page of [`Store::ended_calls`] starts: after the call that ended at
/// `tm_end` with id `id` (the last one of the page before). Calls are ordered by
/// (`tm_end`, `id`), so the order is total even where end times tie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedCursor {
    pub tm_end: String,
    pub id: String,
}

/// A page query's parameters (see [`EndedRange::page_params`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PageParams {
    /// The lower bound: the later of `from` and the cursor's end time; "" when neither.
    pub(super) lower: String,
    /// `to`; `None` for an open range, which the backend queries without an upper bound.
    pub(super) upper: Option<String>,
    /// The cursor's end time and id; "" without a cursor.
    pub(super) after_end: String,
    pub(super) after_id: String,
}

impl EndedRange {
    /// The parameters of a page's query, each compared as text in the database's collation.
    /// Only bounds that hold under any collation are used: "" (no cursor, no `from`) sorts
    /// before every stored time or id everywhere, so `tm_end >= ""` and `(tm_end, id) >
    /// ("", "")` hold for every row; an open `to` has no stand-in (no "highest string" is
    /// highest under every collation: `~` sorts before digits under ICU's `en-US`), the
    /// backend leaves the condition out. Stored times are all of one fixed form, so they sort
    /// alike under every collation, and in Rust (bytes) as in the database.
    pub(super) fn page_params(&self, after: Option<&EndedCursor>) -> PageParams {
        let (after_end, after_id) = after.map_or((String::new(), String::new()), |c| {
            (c.tm_end.clone(), c.id.clone())
        });
        let from = self.from.clone().unwrap_or_default();
        let lower = if after_end > from {
            after_end.clone()
        } else {
            from
        };
        PageParams {
            lower,
            upper: self.to.clone(),
            after_end,
            after_id,
        }
    }
}

impl EndedCall {
    /// Where the page after this call starts.
    pub fn cursor(&self) -> EndedCursor {
        EndedCursor {
            tm_end: self.tm_end.clone(),
            id: self.id.clone(),
        }
    }
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

/// What [`Store::declare_node_lost`] ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeLoss {
    /// The ids of the activeflows it ended.
    pub activeflows: Vec<String>,
    /// The ids of the calls it ended.
    pub calls: Vec<String>,
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
    /// Marks records left `running` by a dead process as ended (`reason`, at `now`). A store
    /// shared by a cluster ends only its own node's records.
    fn recover(&self, reason: &str, now: &str) -> Result<Recovery, StorageError>;
    /// Cluster (issue 20): declares run `incarnation` of `node` lost and, in the same
    /// transaction, ends that node's running activeflows (end reason `reason`) and its calls
    /// not yet ended (end cause `reason`) at `now`. At most once per run: `None` when that run
    /// is not up (declared already, or unknown). From then on every batch that run's store
    /// writes fails with [`StorageError::Fenced`]. A store no other node shares: `None`.
    fn declare_node_lost(
        &self,
        _node: &str,
        _incarnation: &str,
        _reason: &str,
        _now: &str,
    ) -> Result<Option<NodeLoss>, StorageError> {
        Ok(None)
    }
    /// Cluster: this store writes for run `incarnation` of its node from now on (after its
    /// earlier run was declared lost); marks it up. A store no other node shares: nothing.
    fn rejoin(&self, _incarnation: &str) -> Result<(), StorageError> {
        Ok(())
    }
    /// Cluster: every run marked `up` in the shared store, as (node id, incarnation); the
    /// lease holder declares those that no longer beat. A store no other node shares: none.
    fn up_runs(&self) -> Result<Vec<(String, String)>, StorageError> {
        Ok(Vec::new())
    }
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
    /// The CDR export's page (issue 21): ended calls whose `tm_end` lies in `range`, in
    /// (`tm_end`, `id`) order, starting after `after`, at most `limit`. Keyset pagination:
    /// each page is one index range scan, however deep into the export it is. A shared store
    /// (PostgreSQL) lists every node's calls.
    fn ended_calls(
        &self,
        range: &EndedRange,
        after: Option<&EndedCursor>,
        limit: usize,
    ) -> Result<Vec<EndedCall>, StorageError>;
}
