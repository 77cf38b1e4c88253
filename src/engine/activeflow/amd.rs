//! The activeflow's side of `amd`: remembers the detection it asked for, waits for it (or not,
//! with `async`), and on the verdict sets `amd.result` / `amd.reason`, records the timings in the
//! action's `result` (when it waited) and hangs up on a machine when `machine_handle` says so.
//! The verdict rules live in `engine::amd`; the analysis in `media::amd`.

use actix::prelude::*;
use serde_json::json;

use super::waiting::Awaiting;
use super::Activeflow;
use crate::engine::amd::{verdict, AMD_REASON, AMD_RESULT};
use crate::engine::EndReason;
use crate::flow::amd::{Amd, MachineHandle};
use crate::flow::ActionId;
use crate::media::{MediaJob, MediaResult};

/// A detection in progress on our call.
pub(super) struct Detecting {
    job: MediaJob,
    machine_handle: MachineHandle,
    run_async: bool,
    next: Option<ActionId>,
}

impl Activeflow {
    /// Starts waiting for the verdict of media job `job`; true when the cursor moves on now
    /// (`async`, or the call is already gone).
    pub(super) fn start_amd(
        &mut self,
        spec: Amd,
        job: Option<MediaJob>,
        next: Option<ActionId>,
    ) -> bool {
        let Some(job) = job else { return true };
        // A detection still running is replaced (the media session answers it as replaced).
        self.amd = Some(Detecting {
            job,
            machine_handle: spec.machine_handle,
            run_async: spec.run_async,
            next,
        });
        if spec.run_async {
            return true;
        }
        self.awaiting = Some(Awaiting::Media { job, next });
        false
    }

    /// The media session answered `job`; true when it was our detection (handled here).
    pub(super) fn on_amd_done(
        &mut self,
        job: MediaJob,
        result: &MediaResult,
        ctx: &mut Context<Self>,
    ) -> bool {
        if !self.amd.as_ref().is_some_and(|d| d.job == job) {
            return false;
        }
        let Some(detecting) = self.amd.take() else {
            return false;
        };
        let answer = result.clone().map_err(|e| e.to_string());
        let v = verdict(&answer, detecting.machine_handle);
        tracing::info!(
            activeflow_id = %self.id,
            call_id = %self.call_id(),
            result = %v.result,
            reason = %v.reason,
            "amd verdict"
        );
        self.set_variable(AMD_RESULT, v.result.clone());
        self.set_variable(AMD_REASON, v.reason.clone());
        let waited = !detecting.run_async
            && matches!(self.awaiting, Some(Awaiting::Media { job: j, .. }) if j == job);
        if waited {
            self.awaiting = None;
            match answer {
                Ok(timings) => self.merge_result(timings),
                Err(e) => self.fail_current(e),
            }
        }
        if v.hangup {
            if waited {
                self.merge_result(json!({ "hangup": true }));
            }
            self.end(EndReason::Completed, ctx);
        } else if waited {
            self.resume(detecting.next, ctx);
        }
        true
    }
}
