//! The activeflow's executed actions in its record: each one appended as it runs (option and
//! result capped, see `ExecutedAction::new`), results merged in as the call reports them, and
//! at most `engine.max_executed_actions` kept in memory. Also tracks which rows storage has as
//! they stand (`persisted`), so a row changed after its write is written again.

use serde_json::Value;

use super::Activeflow;
use crate::engine::record::timestamp;
use crate::engine::registry::lock;
use crate::engine::ExecutedAction;
use crate::flow::Action;

impl Activeflow {
    /// Appends the action just executed (after substitution) with its result so far, and makes
    /// it the current action: both capped as the entry is (`current_action` is written with
    /// every progress write and served by the API, so it must not escape the cap either).
    pub(super) fn record_executed(&mut self, resolved: Action, result: Option<Value>) {
        {
            let now = timestamp();
            let entry = ExecutedAction::new(resolved, now.clone(), result);
            let mut r = lock(&self.record);
            r.current_action = Some(entry.action.clone());
            // Capacity 1, 2, 4, ... rather than the default's first 4: most activeflows wait
            // (answer, sleep, talk) after their first few actions, and 100,000 of them hold these.
            let (len, cap) = (r.executed_actions.len(), r.executed_actions.capacity());
            if len == cap {
                r.executed_actions.reserve_exact(len.max(1));
            }
            r.executed_actions.push_back(entry);
            r.tm_update = now;
        }
        self.trim_executed();
    }

    /// Keeps at most `engine.max_executed_actions` executed actions in memory, dropping the
    /// oldest. Only rows handed to storage are dropped: the rows not yet written are handed to
    /// it first, and while its queue is full they stay (memory is then bounded by
    /// `engine.max_execute_count` instead), so history is never lost to the cap.
    ///
    /// A refused write is retried only after as many more actions as it had rows unwritten (at
    /// least a quarter of the cap): each attempt serializes every unwritten row, so retrying on
    /// every action would cost O(n²) while the queue stays full; this keeps it O(n).
    fn trim_executed(&mut self) {
        let max = self.links.limits.max_executed_actions;
        let (len, dropped, executed) = {
            let r = lock(&self.record);
            (
                r.executed_actions.len(),
                r.executed_actions_dropped,
                r.executed_count(),
            )
        };
        let Some(excess) = len.checked_sub(max).filter(|n| *n > 0) else {
            return;
        };
        let stored = self.storage.is_enabled();
        if stored && self.persisted < dropped + excess && executed >= self.trim_retry_at {
            self.persist_progress();
            if self.persisted < dropped + excess {
                self.trim_retry_at = retry_at(executed, self.persisted, max);
            }
        }
        let droppable = if stored {
            excess.min(self.persisted.saturating_sub(dropped))
        } else {
            excess
        };
        let mut r = lock(&self.record);
        r.executed_actions.drain(..droppable);
        r.executed_actions_dropped += droppable;
    }

    /// Adds `value`'s fields to the `result` of the action being executed. Its row may already
    /// be with storage (the progress write before a wait): moving `persisted` back to it makes
    /// the next write (progress or end) send that row again, and storage replaces a row by its
    /// index, so the stored record gets the digits, statuses and outcomes learnt after the wait.
    ///
    /// A party's REFER during `connect` is recorded as its own `transfer` entry while the
    /// `connect` still runs (see `transfer`): results go past such entries to the action.
    pub(super) fn merge_result(&mut self, value: Value) {
        let mut record = lock(&self.record);
        let skipped = record
            .executed_actions
            .iter()
            .rev()
            .take_while(|e| super::referred::is_inbound_record(&e.action))
            .count();
        let len = record.executed_actions.len();
        if skipped == len {
            return;
        }
        let index = record.executed_count().saturating_sub(1 + skipped);
        let Some(last) = record.executed_actions.get_mut(len - 1 - skipped) else {
            return;
        };
        match (&mut last.result, value) {
            (Some(Value::Object(existing)), Value::Object(new)) => existing.extend(new),
            (slot, value) => *slot = Some(value),
        }
        last.cap_result();
        self.persisted = self.persisted.min(index);
    }
}

/// When trimming may hand rows to storage again after a write refused at `executed` actions
/// with rows from `persisted` on unwritten: after as many more actions as there were unwritten
/// rows (at least a quarter of the cap `max`), so attempts serialize O(actions) rows in all.
fn retry_at(executed: usize, persisted: usize, max: usize) -> usize {
    let unwritten = executed.saturating_sub(persisted);
    executed + unwritten.max(max / 4).max(1)
}

#[cfg(test)]
mod tests {
    use super::retry_at;

    /// Rows serialized by every attempt over `actions` actions with the cap at `max`, every
    /// write refused (a full queue), attempting only when due.
    fn rows_serialized(actions: usize, max: usize) -> usize {
        let (mut due, mut rows) = (0, 0);
        for executed in (max + 1)..=actions {
            if executed >= due {
                rows += executed;
                due = retry_at(executed, 0, max);
            }
        }
        rows
    }

    #[test]
    fn refused_writes_are_retried_at_a_doubling_interval() {
        assert_eq!(retry_at(100, 0, 100), 200);
        assert_eq!(retry_at(110, 100, 100), 135);
        assert_eq!(retry_at(5, 5, 2), 6);
        // Retrying on every action would serialize about actions²/2 rows (5·10⁷ here); the
        // doubling interval keeps it within a few times the actions.
        let rows = rows_serialized(10_000, 100);
        assert!(rows <= 4 * 10_000, "{rows}");
    }
}
