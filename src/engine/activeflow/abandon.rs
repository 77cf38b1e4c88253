//! The activeflow actor going away without having recorded its end: a panic in any handler
//! (actix then drops the actor without calling `stopping`), an unexpected `ctx.stop()`, or its
//! arbiter stopping. Its `Drop` ends it `error` the way `end` would — the call and every
//! `connect`, queue agent, transfer or chained leg hung up, its queue place released, the
//! ended write queued, the record, event, registry slot and metrics shown — so nothing stays
//! `running`. Must not panic: it may run while a panic unwinds.

use super::{Activeflow, CallRequest};
use crate::engine::persist::{ended_write, End};
use crate::engine::record::timestamp;
use crate::engine::registry::lock;
use crate::engine::EndReason;
use crate::flow::HangupReason;
use crate::storage::WriteKind;

impl Drop for Activeflow {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if std::thread::panicking() {
            crate::metrics::actor_panic("activeflow");
        }
        let now = timestamp();
        let reason = match self.pending_end {
            // `end` ran and its write is with storage; only showing it was cut short.
            Some(reason) => reason,
            None => {
                self.abandon(&now);
                EndReason::Error
            }
        };
        tracing::error!(
            activeflow_id = %self.id,
            call_id = %self.call_id(),
            end_reason = reason.as_str(),
            panicked = std::thread::panicking(),
            "activeflow actor stopped before recording its end; ended it"
        );
        let variables = std::mem::take(&mut self.variables);
        self.show_end(reason, now, variables);
    }
}

impl Activeflow {
    /// What `end` does before it waits for storage, without a context: stops the call and the
    /// legs and queues the ended write. Nothing is left to wait for its commit, so it is not
    /// waited for (a crash before it commits is ended by start-up recovery).
    fn abandon(&mut self, now: &str) {
        self.ended = true;
        self.finish_current();
        self.release_legs();
        self.release_queue(EndReason::Error);
        self.release_transfer();
        self.release_chained();
        self.awaiting = None;
        self.send_call(CallRequest::Hangup(HangupReason::Normal));
        if self.storage.is_enabled() {
            let end = End {
                reason: EndReason::Error,
                now,
                variables: &self.variables,
            };
            let write = ended_write(&lock(&self.record), self.persisted, end);
            self.storage.write_eventually(write, WriteKind::Ended);
        }
    }
}
