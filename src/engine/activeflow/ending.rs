//! How an activeflow hands its progress to storage and ends: the end stops work and the call at
//! once, and is shown (record, registry, metrics, waiting `Stop`s) once storage has committed
//! it, or after `END_COMMIT_TIMEOUT` while storage is failing: the end write then stays queued
//! and is committed when storage recovers (see `storage`).

use actix::prelude::*;

use super::{Activeflow, CallRequest, END_COMMIT_TIMEOUT};
use crate::engine::record::timestamp;
use crate::engine::registry::lock;
use crate::engine::{EndReason, Status};
use crate::flow::{HangupReason, Variables};
use crate::storage::WriteKind;

/// What an ending activeflow carries until its end is recorded.
struct Ending {
    reason: EndReason,
    now: String,
    variables: Variables,
}

impl Activeflow {
    /// The actions executed since the last write, without waiting: on a full queue they go
    /// with the next write (counted in `activeflow_storage_queue_full_total{kind="running"}`).
    pub(super) fn persist_progress(&mut self) {
        if !self.storage.is_enabled() {
            return;
        }
        let (write, executed) = {
            let r = lock(&self.record);
            (
                crate::engine::persist::write(&r, self.persisted),
                r.executed_count(),
            )
        };
        if self.storage.try_write(write, WriteKind::Running) {
            self.persisted = executed;
        }
    }

    /// Ends the activeflow once: stops its work and its call at once, then records the end
    /// when storage has committed it.
    pub(super) fn end(&mut self, reason: EndReason, ctx: &mut Context<Self>) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.pending_end = Some(reason);
        self.finish_current();
        if let Some(handle) = self.wait.take() {
            ctx.cancel_future(handle);
        }
        self.release_legs();
        self.release_queue(reason);
        self.release_transfer();
        self.release_chained();
        self.awaiting = None;
        match reason {
            EndReason::Hangup => {}
            EndReason::NodeLost => {
                self.send_call(CallRequest::HangupNodeLost);
            }
            _ => {
                self.send_call(CallRequest::Hangup(HangupReason::Normal));
            }
        }
        let ending = Ending {
            reason,
            now: timestamp(),
            // Live variables stay in the actor (one copy per call); the record keeps the final set.
            variables: std::mem::take(&mut self.variables),
        };
        if !self.storage.is_enabled() {
            self.record_end(ending, true, ctx);
            return;
        }
        let end = crate::engine::persist::End {
            reason,
            now: &ending.now,
            variables: &ending.variables,
        };
        let write = crate::engine::persist::ended_write(&lock(&self.record), self.persisted, end);
        // Queued now: dropping the wait below at its timeout leaves the write queued.
        let commit = self.storage.write_confirmed(write, WriteKind::Ended);
        let committed = async move {
            tokio::time::timeout(END_COMMIT_TIMEOUT, commit)
                .await
                .unwrap_or(false)
        };
        // `wait`: nothing else is handled until the end is recorded.
        ctx.wait(
            committed
                .into_actor(self)
                .map(move |ok, act, ctx| act.record_end(ending, ok, ctx)),
        );
    }

    /// Shows the end: the record, the registry, metrics, waiting `Stop`s; stops the actor.
    fn record_end(&mut self, ending: Ending, committed: bool, ctx: &mut Context<Self>) {
        let reason = ending.reason;
        if !committed {
            tracing::error!(
                activeflow_id = %self.id,
                "activeflow end not committed to storage yet (failing or rejected); shown \
                 ended now, the write stays queued unless it was rejected"
            );
        }
        self.show_end(reason, ending.now, ending.variables);
        if starts_successor(reason) {
            self.start_successor();
        }
        ctx.stop();
    }

    /// The in-memory part of an end, once: the record, the event, the registry (the capacity
    /// slot), metrics and waiting `Stop`s. Needs no context, so the actor's drop can run it.
    pub(super) fn show_end(&mut self, reason: EndReason, now: String, variables: Variables) {
        if self.finished {
            return;
        }
        {
            let mut r = lock(&self.record);
            r.status = Status::Ended;
            r.end_reason = Some(reason);
            r.variables = variables;
            r.tm_update = now.clone();
            r.tm_end = Some(now);
        }
        self.finished = true;
        self.publish_ended(reason);
        tracing::info!(end_reason = reason.as_str(), "activeflow ended");
        self.registry.ended(self.id);
        crate::metrics::activeflow_ended(reason.as_str(), self.started_at.elapsed());
        for waiter in self.end_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }
}

/// Whether an activeflow ending for `reason` starts its flow's `on_complete_flow_id`. VoIPBIN's
/// `Stop` (bin-flow-manager activeflowhandler/stop.go) starts it on every end, an operator's
/// stop and a failed action included; an engine going down (or found down) starts nothing.
pub(super) fn starts_successor(reason: EndReason) -> bool {
    !matches!(reason, EndReason::Shutdown | EndReason::EngineRestart)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_go_starts_the_on_complete_flow_on_every_end_but_the_engines() {
        for reason in [
            EndReason::Completed,
            EndReason::StopAction,
            EndReason::OperatorStop,
            EndReason::Hangup,
            EndReason::AckTimeout,
            EndReason::RtpTimeout,
            EndReason::MaxDuration,
            EndReason::SessionExpired,
            EndReason::LoopLimit,
            EndReason::Error,
        ] {
            assert!(starts_successor(reason), "{reason:?}");
        }
        assert!(!starts_successor(EndReason::Shutdown));
        assert!(!starts_successor(EndReason::EngineRestart));
    }
}
