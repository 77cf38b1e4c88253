//! The waiting caller's hold audio: the queue's `wait_actions` played in a loop (talk, play
//! and beep as media requests on the caller, sleep as a timer) until an agent is bridged or
//! the caller leaves. A failed item is skipped after a pause, so a missing prompt never spins.
//! Must not touch agent legs.

use std::time::Duration;

use actix::prelude::*;

use super::super::waiting::Awaiting;
use super::super::Activeflow;
use crate::engine::execute::CallRequest;
use crate::media::{MediaJob, MediaResult};
use crate::queue::definition::HoldItem;

/// Pause before the next hold item after one failed.
const HOLD_RETRY: Duration = Duration::from_secs(1);

impl Activeflow {
    /// Plays the current hold item; the next follows when it is done (see
    /// `on_queue_media_done`).
    pub(in crate::engine::activeflow) fn play_hold(&mut self, ctx: &mut Context<Self>) {
        let item = match &self.awaiting {
            Some(Awaiting::Queue(q)) if q.bridged.is_none() => match &q.spec {
                Some(spec) if !spec.hold.is_empty() => {
                    spec.hold[q.hold_index % spec.hold.len()].clone()
                }
                _ => return,
            },
            _ => return,
        };
        match item {
            HoldItem::Media(request) => {
                let job = self.send_call(CallRequest::Media(request));
                if let Some(Awaiting::Queue(q)) = &mut self.awaiting {
                    q.hold_job = job;
                }
            }
            HoldItem::Sleep(d) => self.next_hold_after(d, ctx),
        }
    }

    fn next_hold_after(&mut self, d: Duration, ctx: &mut Context<Self>) {
        let handle = ctx.run_later(d, |act, ctx| {
            if let Some(Awaiting::Queue(q)) = &mut act.awaiting {
                q.hold_timer = None;
                q.hold_index = q.hold_index.wrapping_add(1);
            }
            act.play_hold(ctx);
        });
        if let Some(Awaiting::Queue(q)) = &mut self.awaiting {
            q.hold_timer = Some(handle);
        }
    }

    pub(in crate::engine::activeflow) fn stop_hold(&mut self, ctx: &mut Context<Self>) {
        let Some(Awaiting::Queue(q)) = &mut self.awaiting else {
            return;
        };
        if let Some(t) = q.hold_timer.take() {
            ctx.cancel_future(t);
        }
        if let Some(job) = q.hold_job.take() {
            self.stop_caller_media(job);
        }
    }

    /// A hold item finished: the next one plays (after a pause if it failed). True when the
    /// job was a queue's.
    pub(in crate::engine::activeflow) fn on_queue_media_done(
        &mut self,
        job: MediaJob,
        result: &MediaResult,
        ctx: &mut Context<Self>,
    ) -> bool {
        let Some(Awaiting::Queue(q)) = &mut self.awaiting else {
            return false;
        };
        if q.hold_job != Some(job) {
            return true;
        }
        q.hold_job = None;
        match result {
            Ok(_) => {
                q.hold_index = q.hold_index.wrapping_add(1);
                self.play_hold(ctx);
            }
            Err(e) => {
                tracing::info!(activeflow_id = %self.id, error = %e, "queue hold audio failed");
                self.next_hold_after(HOLD_RETRY, ctx);
            }
        }
        true
    }
}
