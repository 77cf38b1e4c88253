//! The activeflow's waits on its call: a media request in progress (`talk`, `play`, `beep`,
//! `echo`, `digits_send`, `recording_*`) and `digits_receive`. Digits go to `call.digits` as
//! VoIPBIN's call-manager (`digitsReceived`) puts them: appended during `digits_receive`, the
//! terminating key included; any other time a key replaces it (the last key is typed ahead).

use actix::prelude::*;
use serde_json::{json, Value};

use super::Activeflow;
use crate::flow::media::DigitsReceive;
use crate::flow::{ActionId, CALL_DIGITS};
use crate::media::{MediaJob, MediaResult};

/// Digits kept in `call.digits` at most; older ones are dropped first.
const MAX_BUFFERED_DIGITS: usize = 128;

/// What the activeflow is waiting for.
pub(super) enum Awaiting {
    Media {
        job: MediaJob,
        next: Option<ActionId>,
    },
    Digits {
        spec: DigitsReceive,
        next: Option<ActionId>,
        timer: Option<SpawnHandle>,
    },
    /// A `block` action, until an operator's `continue`.
    Block { next: Option<ActionId> },
    /// `fetch`, a `webhook_send` with `sync` or a `message_send`, until the exchange ends.
    Http { next: Option<ActionId> },
    /// `connect`: legs ringing, or one bridged with the caller.
    Connect(super::connect::Connecting),
    /// `transfer`: our REFER, until the peer's last NOTIFY.
    Transfer(super::transfer::Referring),
    /// The caller transferred itself away: the activeflow keeps the two parties it left
    /// bridged until one hangs up.
    Transferred(super::referred::Bridge),
    /// `queue_join`: waiting in a queue, or bridged with its agent.
    Queue(Box<super::queue::Queued>),
}

impl Activeflow {
    /// Starts `digits_receive`; true when it is already satisfied (the cursor moves on now).
    pub(super) fn await_digits(
        &mut self,
        spec: DigitsReceive,
        next: Option<ActionId>,
        ctx: &mut Context<Self>,
    ) -> bool {
        if self.length_reached(&spec) {
            self.merge_result(self.digits_result("length", None));
            return true;
        }
        // A key typed ahead that terminates this collection ends it at once (VoIPBIN
        // `checkDigitsCondition`).
        let typed = self.variables.get(CALL_DIGITS).unwrap_or_default();
        if let Some(key) = typed.chars().find(|c| spec.key.contains(*c)) {
            self.merge_result(self.digits_result("key", Some(key)));
            return true;
        }
        let timer = (spec.duration_ms > 0).then(|| {
            let timeout = std::time::Duration::from_millis(spec.duration_ms);
            ctx.run_later(timeout, |act, ctx| act.finish_digits("timeout", None, ctx))
        });
        self.awaiting = Some(Awaiting::Digits { spec, next, timer });
        false
    }

    /// A key the caller pressed.
    pub(super) fn on_digit(&mut self, digit: char, ctx: &mut Context<Self>) {
        let Some(Awaiting::Digits { spec, .. }) = &self.awaiting else {
            self.set_variable(CALL_DIGITS, digit.to_string());
            return;
        };
        let terminates = spec.key.contains(digit);
        let digits = appended(self.variables.get(CALL_DIGITS).unwrap_or_default(), digit);
        self.set_variable(CALL_DIGITS, digits);
        if let Some(Awaiting::Digits { spec, .. }) = &self.awaiting {
            if self.length_reached(spec) {
                self.finish_digits("length", None, ctx);
            } else if terminates {
                self.finish_digits("key", Some(digit), ctx);
            }
        }
    }

    fn length_reached(&self, spec: &DigitsReceive) -> bool {
        let have = self.variables.get(CALL_DIGITS).map_or(0, str::len);
        spec.length > 0 && have >= spec.length as usize
    }

    fn digits_result(&self, finished_by: &str, key: Option<char>) -> Value {
        json!({
            "digits": self.variables.get(CALL_DIGITS).unwrap_or_default(),
            "finished_by": finished_by,
            "key": key.map(String::from),
        })
    }

    fn finish_digits(&mut self, finished_by: &str, key: Option<char>, ctx: &mut Context<Self>) {
        let Some(Awaiting::Digits { next, timer, .. }) = self.awaiting.take() else {
            return;
        };
        if let Some(t) = timer {
            ctx.cancel_future(t);
        }
        self.merge_result(self.digits_result(finished_by, key));
        self.resume(next, ctx);
    }

    /// The call finished a media request: record how, then go on (a failed prompt is an
    /// action error in `result`, not the end of the flow).
    pub(super) fn on_media_done(
        &mut self,
        job: MediaJob,
        result: MediaResult,
        ctx: &mut Context<Self>,
    ) {
        if self.on_amd_done(job, &result, ctx) {
            return;
        }
        if self.on_queue_media_done(job, &result, ctx) {
            return;
        }
        let next = match &self.awaiting {
            Some(Awaiting::Media { job: waiting, next }) if *waiting == job => *next,
            _ => return,
        };
        self.awaiting = None;
        match result {
            Ok(value) => {
                if let Some((key, v)) = crate::engine::stream::result_variables(&value) {
                    self.set_variable(key, v);
                }
                self.merge_result(value)
            }
            Err(e) => self.fail_current(e),
        }
        self.resume(next, ctx);
    }

    /// Records why the current action failed (in its `result` and the error counter).
    pub(super) fn fail_current(&mut self, error: impl std::fmt::Display) {
        if let Some((kind, _)) = self.current {
            crate::metrics::action_failed(kind);
        }
        tracing::warn!(activeflow_id = %self.id, call_id = %self.call_id(), error = %error, "action failed");
        self.merge_result(json!({ "error": error.to_string() }));
    }
}

/// `digits` with `digit` added, keeping at most `MAX_BUFFERED_DIGITS` (oldest dropped).
fn appended(digits: &str, digit: char) -> String {
    let mut digits = digits.to_owned();
    digits.push(digit);
    if digits.len() > MAX_BUFFERED_DIGITS {
        digits.remove(0);
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_appended_up_to_the_cap() {
        assert_eq!(appended("12", '#'), "12#");
        let full = "1".repeat(MAX_BUFFERED_DIGITS);
        let next = appended(&full, '2');
        assert_eq!(next.len(), MAX_BUFFERED_DIGITS);
        assert!(next.ends_with('2'));
    }
}
