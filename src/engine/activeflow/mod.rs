//! The activeflow actor: one per activeflow, on the same arbiter as its call session. Walks the
//! cursor, executes actions (a panicking or failing action ends only this activeflow, reason
//! `error`; so does a panic in any handler, or a stop without an end: see `abandon`), records
//! each in `executed_actions`, and ends exactly once — tearing down its call unless the call
//! ended first. Hands its progress to storage without waiting, and reports its
//! end (record, registry, metrics) only once storage has committed it (see `storage`).

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

mod abandon;
mod amd;
mod chain;
mod conference;
mod connect;
mod early;
mod ending;
mod history;
mod http;
mod outbound;
mod publish;
mod queue;
mod referred;
#[cfg(test)]
mod supervision_tests;
mod transfer;
mod variables;
mod waiting;

use super::cursor::Cursor;
use super::execute::{execute, CallRequest, ExecState, Outcome, Step};
use super::registry::lock;
use super::supervisor::{
    Links, Parent, StartActiveflow, CALL_HANGUP, CALL_PROGRESSING, CALL_TERMINATING,
};
use super::{ActiveflowId, ActiveflowRecord, ActiveflowRegistry, EndReason, MAX_CHAIN_DEPTH};
use crate::call::{CallCommand, CallEndCause, CallEvent, CallId, HangupCause};
use crate::flow::variables::CALL_STATUS;
use crate::flow::{Action, ActionId, ActionKind, Flow, HangupReason, Variables};
use crate::media::MediaJob;
use crate::storage::Storage;
pub use variables::{GetVariables, MergeError, MergeVariables};
use waiting::Awaiting;

/// Longest wait for storage to commit an end before it is reported anyway (a stalled disk must
/// not keep activeflows running for ever; it is logged).
pub(super) const END_COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Ends the activeflow with `reason` (operator stop, shutdown). Idempotent; answers once the
/// end is recorded (committed to storage and shown in the registry).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop {
    pub reason: EndReason,
}

/// Resumes an activeflow waiting in a `block` action (`POST /v1/activeflows/{id}/continue`).
#[derive(Message)]
#[rtype(result = "Result<(), ContinueError>")]
pub struct Continue;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContinueError {
    #[error("not waiting in a block action")]
    NotBlocked,
    #[error("already ended")]
    Ended,
}

/// The call this activeflow drives.
pub struct CallLink {
    pub id: CallId,
    pub commands: Recipient<CallCommand>,
    /// Its SIP Call-ID header (for the activeflow's span).
    pub sip_call_id: String,
}

pub struct Activeflow {
    id: ActiveflowId,
    record: Arc<Mutex<ActiveflowRecord>>,
    registry: Arc<ActiveflowRegistry>,
    /// The flow it was started with (its `on_complete_flow_id` names the successor).
    flow: Arc<Flow>,
    links: Links,
    cursor: Cursor,
    variables: Variables,
    goto_counts: HashMap<ActionId, u32>,
    execute_count: u32,
    max_execute_count: u32,
    call: Option<CallLink>,
    /// The call is over (or was torn down by us); send it nothing more.
    call_released: bool,
    /// Our call reported its answer (`connect` then rings it with in-band ringback).
    call_answered: bool,
    /// We asked our call to answer (an `answer` action, or a media action answering first).
    answer_sent: bool,
    reference_type: &'static str,
    started_at: Instant,
    wait: Option<SpawnHandle>,
    /// A call action in progress (media playing, digits being collected).
    awaiting: Option<Awaiting>,
    /// Numbers media requests so a late completion is never taken for the current one.
    last_job: u64,
    /// The action in progress and when it became current (for the duration histogram).
    current: Option<(&'static str, Instant)>,
    /// The end has begun: nothing more runs.
    ended: bool,
    /// Why, once the end has begun (its write is with storage; see `abandon`).
    pending_end: Option<EndReason>,
    /// The end is recorded: the record says ended.
    finished: bool,
    storage: Storage,
    /// Executed actions (by index, counting any dropped from memory) handed to storage as they
    /// stand: every write sends the rows from here on. A result merged into an action moves it
    /// back (see `merge_result`).
    persisted: usize,
    /// The executed count before which trimming does not hand rows to storage again after a
    /// write refused on a full queue (see `trim_executed`).
    trim_retry_at: usize,
    /// `Stop` senders waiting for the end to be recorded.
    end_waiters: Vec<oneshot::Sender<()>>,
    /// A bridged party's REFER being carried out (see `transfer`).
    transfer: Option<Box<referred::InboundTransfer>>,
    /// Bridged parties' REFERs taken so far (at most `referred::MAX_REFERS`).
    refers: u8,
    /// An `amd` detection in progress (waited for, or running behind the flow with `async`).
    amd: Option<amd::Detecting>,
    /// A call we placed waiting for its answer; calls placed by `call` with `chained`.
    outbound: outbound::Outbound,
}

impl Activeflow {
    pub(crate) fn new(
        record: Arc<Mutex<ActiveflowRecord>>,
        registry: Arc<ActiveflowRegistry>,
        flow: Arc<Flow>,
        variables: Variables,
        links: Links,
        call: Option<CallLink>,
    ) -> Self {
        let (id, reference_type) = {
            let r = lock(&record);
            (r.id, r.reference_type.as_str())
        };
        Activeflow {
            id,
            record,
            registry,
            cursor: Cursor::new(flow.clone()),
            flow,
            max_execute_count: links.limits.max_execute_count,
            storage: links.storage.clone(),
            links,
            variables,
            goto_counts: HashMap::new(),
            execute_count: 0,
            call,
            call_released: false,
            call_answered: false,
            answer_sent: false,
            reference_type,
            started_at: Instant::now(),
            wait: None,
            awaiting: None,
            last_job: 0,
            current: None,
            ended: false,
            pending_end: None,
            finished: false,
            persisted: 0,
            trim_retry_at: 0,
            end_waiters: Vec::new(),
            transfer: None,
            refers: 0,
            amd: None,
            outbound: Default::default(),
        }
    }

    fn call_id(&self) -> String {
        self.call
            .as_ref()
            .map(|c| c.id.to_string())
            .unwrap_or_default()
    }

    /// Runs actions until one waits or the activeflow ends, then hands the progress to storage.
    fn run(&mut self, ctx: &mut Context<Self>) {
        self.run_steps(ctx);
        if !self.ended {
            self.persist_progress();
        }
    }

    fn run_steps(&mut self, ctx: &mut Context<Self>) {
        while !self.ended {
            self.finish_current();
            if self.execute_count >= self.max_execute_count {
                self.end(EndReason::LoopLimit, ctx);
                return;
            }
            let Some(action) = self.cursor.advance().cloned() else {
                self.end(EndReason::Completed, ctx);
                return;
            };
            if self.waits_for_answer(&action) {
                return;
            }
            self.execute_count += 1;
            match self.execute_one(&action) {
                Ok((kind, outcome)) => {
                    self.current = Some((kind, Instant::now()));
                    if !self.apply(&action, outcome, ctx) {
                        return;
                    }
                }
                Err(()) => {
                    self.end(EndReason::Error, ctx);
                    return;
                }
            }
        }
    }

    /// Substitutes, executes (catching panics) and records one action. An option whose
    /// substitution fails (values over `engine.max_variables_bytes`, a dot segment in a URL)
    /// is recorded as written, with the error.
    fn execute_one(&mut self, action: &Action) -> Result<(&'static str, Outcome), ()> {
        let limits = self.links.limits.variables;
        let (resolved, result) = match action.substituted(&self.variables, limits.max_total_bytes) {
            Ok(resolved) => {
                let has_call = self.call.is_some() && !self.call_released;
                let mut state = ExecState {
                    variables: &mut self.variables,
                    goto_counts: &mut self.goto_counts,
                    has_call,
                    answered: self.call_answered || self.answer_sent,
                    now: chrono::Utc::now(),
                    limits,
                };
                let result = catch_unwind(AssertUnwindSafe(|| {
                    let kind = resolved.typed().map_err(|e| e.to_string())?;
                    let name = action_label(&kind);
                    execute(resolved.id, &kind, &mut state)
                        .map(|o| (name, o))
                        .map_err(|e| {
                            if let Some(limit) = e.limit() {
                                crate::metrics::flow_limit_exceeded(limit);
                            }
                            e.to_string()
                        })
                }))
                .unwrap_or_else(|_| Err("action panicked".to_string()));
                (resolved, result)
            }
            Err(e) => {
                if let Some(limit) = e.limit() {
                    crate::metrics::flow_limit_exceeded(limit);
                }
                (action.clone(), Err(e.to_string()))
            }
        };
        let (label, recorded_result) = match &result {
            Ok((name, o)) => (*name, o.result.clone()),
            Err(message) => {
                let name = type_label(&resolved.kind);
                crate::metrics::action_executed(name, std::time::Duration::ZERO, true);
                (name, Some(serde_json::json!({ "error": message })))
            }
        };
        // The ids come from the actor's span (`engine::span`).
        tracing::info!(
            action_id = %resolved.id,
            action_type = label,
            ok = result.is_ok(),
            "action executed"
        );
        self.record_executed(resolved, recorded_result);
        self.publish_executed();
        result.map_err(|_| ())
    }

    /// Applies an outcome; false when the run loop must stop (waiting or ended).
    fn apply(&mut self, action: &Action, outcome: Outcome, ctx: &mut Context<Self>) -> bool {
        if outcome.answer_first {
            // Same mailbox, so the call sends its 200 OK before it starts the media.
            self.send_call(CallRequest::Answer);
        }
        let job = outcome.call.and_then(|request| self.send_call(request));
        let jump = match outcome.step {
            Step::Next => action.next_id,
            Step::Jump(target) => Some(target),
            Step::Wait(d) => {
                let next = action.next_id;
                self.wait = Some(ctx.run_later(d, move |act, ctx| {
                    act.wait = None;
                    act.resume(next, ctx);
                }));
                return false;
            }
            Step::AwaitMedia => match job {
                Some(job) => {
                    self.awaiting = Some(Awaiting::Media {
                        job,
                        next: action.next_id,
                    });
                    return false;
                }
                // The call is already gone; its end event ends this activeflow.
                None => action.next_id,
            },
            Step::Block => {
                self.awaiting = Some(Awaiting::Block {
                    next: action.next_id,
                });
                return false;
            }
            Step::Fetch(fetch) => {
                self.start_fetch(fetch, action.next_id, ctx);
                return false;
            }
            Step::Webhook(hook) => {
                if !self.start_webhook(hook, action.next_id, ctx) {
                    return false;
                }
                action.next_id
            }
            Step::PushFlow(flow_id) => {
                if let Err(e) = self.push_flow(&flow_id) {
                    self.fail_current(e);
                    self.end(EndReason::Error, ctx);
                    return false;
                }
                // The pushed actions run next; `next_id` applies when they run out.
                None
            }
            Step::AwaitDigits(spec) => {
                if !self.await_digits(spec, action.next_id, ctx) {
                    return false;
                }
                action.next_id
            }
            Step::Connect(spec) => {
                if !self.start_connect(spec, action.next_id, ctx) {
                    return false;
                }
                action.next_id
            }
            Step::MessageSend(spec) => {
                self.start_message_send(spec, action.next_id, ctx);
                return false;
            }
            Step::Transfer(spec) => {
                if !self.start_transfer(spec, action.next_id, ctx) {
                    return false;
                }
                action.next_id
            }
            Step::Amd(spec) => {
                if !self.start_amd(spec, job, action.next_id) {
                    return false;
                }
                action.next_id
            }
            Step::ConferenceJoin(conference_id) => {
                if !self.join_conference(&conference_id, action.next_id) {
                    return false;
                }
                action.next_id
            }
            Step::QueueJoin(queue_id) => {
                if !self.start_queue_join(queue_id, action.next_id, ctx) {
                    return false;
                }
                action.next_id
            }
            Step::Call(spec) => {
                self.start_call_action(spec);
                action.next_id
            }
            Step::End(reason) => {
                self.end(reason, ctx);
                return false;
            }
        };
        if let Some(target) = jump {
            if let Err(e) = self.cursor.jump(&target) {
                tracing::warn!(activeflow_id = %self.id, error = %e, "jump failed");
                self.end(EndReason::Error, ctx);
                return false;
            }
        }
        true
    }

    /// Continues after a wait: jumps to `next` if set, then runs.
    fn resume(&mut self, next: Option<ActionId>, ctx: &mut Context<Self>) {
        if let Some(target) = next {
            if let Err(e) = self.cursor.jump(&target) {
                tracing::warn!(activeflow_id = %self.id, error = %e, "jump failed");
                self.end(EndReason::Error, ctx);
                return;
            }
        }
        self.run(ctx);
    }

    /// Sends a request to the call; a media request's job number is returned.
    fn send_call(&mut self, request: CallRequest) -> Option<MediaJob> {
        if self.call.is_none() || self.call_released {
            return None;
        }
        let mut job = None;
        let command = match request {
            CallRequest::Answer => {
                self.answer_sent = true;
                // The flow goes on before `Answered` arrives: the next action (a
                // `condition_call_status` "progressing") must already see the answer, as in
                // VoIPBIN where `answer` returns once the channel is up. A failed answer ends
                // the call, which sets `hangup`.
                if !self.call_answered {
                    self.set_variable(CALL_STATUS, CALL_PROGRESSING);
                }
                CallCommand::Answer
            }
            CallRequest::Media(request) => {
                self.last_job += 1;
                let j = MediaJob(self.last_job);
                job = Some(j);
                CallCommand::Media { job: j, request }
            }
            CallRequest::Hangup(reason) => {
                self.call_released = true;
                self.set_variable(CALL_STATUS, CALL_TERMINATING);
                CallCommand::Hangup(match reason {
                    HangupReason::Busy => HangupCause::Busy,
                    HangupReason::NoAnswer => HangupCause::NoAnswer,
                    _ => HangupCause::Normal,
                })
            }
            CallRequest::HangupNodeLost => {
                self.call_released = true;
                self.set_variable(CALL_STATUS, CALL_TERMINATING);
                CallCommand::Hangup(HangupCause::NodeLost)
            }
        };
        if let Some(call) = &self.call {
            call.commands.do_send(command);
        }
        job
    }

    /// Records the duration of the action that was current.
    fn finish_current(&mut self) {
        if let Some((kind, since)) = self.current.take() {
            crate::metrics::action_executed(kind, since.elapsed(), false);
        }
    }
}

/// The metrics label of a typed action (a bounded set of names).
fn action_label(kind: &ActionKind) -> &'static str {
    kind.type_name()
}

/// The metrics label for an action whose option failed to parse.
fn type_label(kind: &str) -> &'static str {
    crate::flow::SUPPORTED_TYPES
        .iter()
        .find(|t| **t == kind)
        .copied()
        .unwrap_or("unknown")
}

impl Actor for Activeflow {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        crate::metrics::activeflow_started(self.reference_type);
        self.publish_created();
        if let Some(call) = &self.call {
            call.commands
                .do_send(CallCommand::Attach(ctx.address().recipient()));
        }
        self.run(ctx);
    }
}

impl Handler<CallEvent> for Activeflow {
    type Result = ();

    fn handle(&mut self, event: CallEvent, ctx: &mut Self::Context) {
        if self.ended {
            return;
        }
        let Some(event) = self.on_transfer_event(event, ctx) else {
            return;
        };
        let Some(event) = self.on_outbound_event(event, ctx) else {
            return;
        };
        let ours = self.call.as_ref().map(|c| c.id);
        match event {
            CallEvent::Digit { call_id, digit, .. } if Some(call_id) == ours => {
                self.on_digit(digit, ctx)
            }
            CallEvent::MediaDone { job, result } => self.on_media_done(job, result, ctx),
            CallEvent::Answered { call_id } if Some(call_id) == ours => {
                self.call_answered = true;
                self.set_variable(CALL_STATUS, CALL_PROGRESSING);
            }
            CallEvent::Digit { .. }
            | CallEvent::TransferRequested { .. }
            | CallEvent::TransferAnswered { .. }
            | CallEvent::TransferProgress { .. } => {}
            CallEvent::Progress { .. }
            | CallEvent::Answered { .. }
            | CallEvent::EarlyMedia { .. } => self.on_leg_event(event, ctx),
            CallEvent::Ended { call_id, .. } if Some(call_id) != ours => {
                self.on_leg_event(event, ctx)
            }
            CallEvent::Ended { cause, .. } => {
                self.call_released = true;
                self.set_variable(CALL_STATUS, CALL_HANGUP);
                let reason = match cause {
                    CallEndCause::AckTimeout => EndReason::AckTimeout,
                    CallEndCause::RtpTimeout => EndReason::RtpTimeout,
                    CallEndCause::MaxDuration => EndReason::MaxDuration,
                    CallEndCause::SessionExpired => EndReason::SessionExpired,
                    CallEndCause::NodeLost => EndReason::NodeLost,
                    CallEndCause::Failed | CallEndCause::Rejected(_) | CallEndCause::NoAnswer => {
                        EndReason::Error
                    }
                    CallEndCause::RemoteBye
                    | CallEndCause::Cancelled
                    | CallEndCause::Local
                    | CallEndCause::Transferred => EndReason::Hangup,
                };
                self.end(reason, ctx);
            }
        }
    }
}

impl Handler<Continue> for Activeflow {
    type Result = Result<(), ContinueError>;

    fn handle(&mut self, _: Continue, ctx: &mut Self::Context) -> Self::Result {
        if self.ended {
            return Err(ContinueError::Ended);
        }
        let Some(Awaiting::Block { next }) = self.awaiting else {
            return Err(ContinueError::NotBlocked);
        };
        self.awaiting = None;
        self.resume(next, ctx);
        Ok(())
    }
}

impl Handler<Stop> for Activeflow {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Stop, ctx: &mut Self::Context) -> Self::Result {
        self.end(msg.reason, ctx);
        if self.finished {
            return Box::pin(async {});
        }
        let (tx, rx) = oneshot::channel();
        self.end_waiters.push(tx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
