//! The store as the rest of the engine holds it (`Storage::store`): every call goes to the
//! backend, and a successful [`Store::rejoin`] ends the fenced state the writer reported
//! (`storage` up again in `/readyz`; it went down when a batch was refused as fenced).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::Value;

use super::model::{
    EndedCall, EndedCursor, EndedRange, FlowRow, FlowSource, NodeLoss, Recovery, Rejected, Store,
    Stored, Write,
};
use super::writer::Shared;
use super::StorageError;
use crate::health::{Component, PartState};

pub(super) struct Watched {
    pub(super) store: Arc<dyn Store>,
    pub(super) shared: Arc<Shared>,
}

impl Store for Watched {
    fn apply(&self, batch: &[Write]) -> Result<(), StorageError> {
        self.store.apply(batch)
    }
    fn apply_each(&self, batch: &[Write]) -> Result<Vec<Rejected>, StorageError> {
        self.store.apply_each(batch)
    }
    fn recover(&self, reason: &str, now: &str) -> Result<Recovery, StorageError> {
        self.store.recover(reason, now)
    }
    fn declare_node_lost(
        &self,
        node: &str,
        incarnation: &str,
        reason: &str,
        now: &str,
    ) -> Result<Option<NodeLoss>, StorageError> {
        self.store.declare_node_lost(node, incarnation, reason, now)
    }
    fn rejoin(&self, incarnation: &str) -> Result<(), StorageError> {
        self.store.rejoin(incarnation)?;
        if self.shared.fenced_down.swap(false, Ordering::SeqCst) {
            tracing::warn!(
                incarnation,
                "storage: rejoined the cluster; writes commit again"
            );
            self.shared.health.set(Component::Storage, PartState::Up);
        }
        Ok(())
    }
    fn up_runs(&self) -> Result<Vec<(String, String)>, StorageError> {
        self.store.up_runs()
    }
    fn replace_file_flows(&self, flows: &[FlowRow]) -> Result<(), StorageError> {
        self.store.replace_file_flows(flows)
    }
    fn flows(&self, source: FlowSource) -> Result<Vec<FlowRow>, StorageError> {
        self.store.flows(source)
    }
    fn activeflows(
        &self,
        status: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Stored>, StorageError> {
        self.store.activeflows(status, before, limit)
    }
    fn activeflow(&self, id: &str) -> Result<Option<Stored>, StorageError> {
        self.store.activeflow(id)
    }
    fn first_activeflow_since(&self, at: &str) -> Result<Option<u64>, StorageError> {
        self.store.first_activeflow_since(at)
    }
    fn first_call_since(&self, at: &str) -> Result<Option<u64>, StorageError> {
        self.store.first_call_since(at)
    }
    fn activeflow_variables(&self, id: &str) -> Result<Option<Value>, StorageError> {
        self.store.activeflow_variables(id)
    }
    fn calls(
        &self,
        status: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Stored>, StorageError> {
        self.store.calls(status, before, limit)
    }
    fn call(&self, id: &str) -> Result<Option<Stored>, StorageError> {
        self.store.call(id)
    }
    fn ended_calls(
        &self,
        range: &EndedRange,
        after: Option<&EndedCursor>,
        limit: usize,
    ) -> Result<Vec<EndedCall>, StorageError> {
        self.store.ended_calls(range, after, limit)
    }
}
