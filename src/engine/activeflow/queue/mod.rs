//! `queue_join`: the caller (answered first) joins a queue of the queue manager and hears the
//! queue's `wait_actions` in a loop while the manager picks agents; on its `Ring` orders this
//! activeflow dials them (`connect`'s `dial_leg`) and bridges the first to answer
//! (`bridge_caller`), reporting every outcome back. The flow goes on when the bridged agent
//! hangs up (`queue.result` = `answered`), at `wait_timeout` (`timeout`), or when the queue is
//! unknown, full or deleted; the caller hanging up while waiting is `abandoned`. Must not
//! decide which agent rings (the manager's machine does).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::{json, Value};

mod hold;

use super::connect::leg_status;
use super::waiting::Awaiting;
use super::Activeflow;
use crate::call::{CallCommand, CallEvent, CallId, HangupCause};
use crate::engine::EndReason;
use crate::flow::outbound::Address;
use crate::flow::ActionId;
use crate::media::MediaJob;
use crate::queue::definition::address_json;
use crate::queue::manager::{AgentEvent, Depart, Join, Report};
use crate::queue::{Leave, QueueId, QueueOrder, QueueSpec, Ticket};

/// The variable a flow branches on after `queue_join`.
pub(super) const QUEUE_RESULT: &str = "queue.result";
/// Agent attempts kept in the action's result at most (the rest are counted).
const MAX_ATTEMPTS: usize = 32;

/// One leg placed to an agent.
struct AgentLeg {
    agent: Address,
    target: String,
    call_id: CallId,
    commands: Option<Recipient<CallCommand>>,
}

/// A caller in a queue.
pub(super) struct Queued {
    queue_id: QueueId,
    ticket: Ticket,
    next: Option<ActionId>,
    joined_at: Instant,
    /// The definition as the caller joined (none until the manager took it).
    spec: Option<Arc<QueueSpec>>,
    hold_index: usize,
    hold_job: Option<MediaJob>,
    hold_timer: Option<SpawnHandle>,
    timeout: Option<SpawnHandle>,
    /// Legs ringing (or, once answered, the bridged one).
    legs: Vec<AgentLeg>,
    /// The bridged leg's index, since when, and the caller's relay job.
    bridged: Option<(usize, Instant, MediaJob)>,
    attempts: Vec<Value>,
    attempts_dropped: usize,
}

impl Queued {
    fn attempt(&mut self, target: &str, status: &str, code: Option<u16>) {
        if self.attempts.len() < MAX_ATTEMPTS {
            self.attempts
                .push(json!({ "target": target, "status": status, "code": code }));
        } else {
            self.attempts_dropped += 1;
        }
    }
}

impl Activeflow {
    /// Joins the queue; true when the flow goes on at once (a bad id).
    pub(super) fn start_queue_join(
        &mut self,
        queue_id: String,
        next: Option<ActionId>,
        ctx: &mut Context<Self>,
    ) -> bool {
        let Ok(queue_id) = queue_id.parse::<QueueId>() else {
            self.set_variable(QUEUE_RESULT, "not_found");
            self.merge_result(json!({ "result": "not_found", "error": "queue_id is not a uuid" }));
            return true;
        };
        self.last_job += 1;
        let ticket = Ticket {
            activeflow: self.id.0,
            n: self.last_job,
        };
        self.links.queues.do_send(Join {
            queue_id,
            ticket,
            orders: ctx.address().recipient(),
        });
        self.set_variable("queue.id", queue_id.to_string());
        self.awaiting = Some(Awaiting::Queue(Box::new(Queued {
            queue_id,
            ticket,
            next,
            joined_at: Instant::now(),
            spec: None,
            hold_index: 0,
            hold_job: None,
            hold_timer: None,
            timeout: None,
            legs: Vec::new(),
            bridged: None,
            attempts: Vec::new(),
            attempts_dropped: 0,
        })));
        false
    }

    /// The queue this activeflow waits in, when `ticket` is its current join.
    fn queued(&mut self, ticket: Ticket) -> Option<&mut Queued> {
        match &mut self.awaiting {
            Some(Awaiting::Queue(q)) if q.ticket == ticket => Some(q),
            _ => None,
        }
    }

    fn on_queue_order(&mut self, order: QueueOrder, ctx: &mut Context<Self>) {
        match order {
            QueueOrder::Joined { ticket, spec } => {
                let Some(q) = self.queued(ticket) else { return };
                let wait = Duration::from_millis(spec.wait_timeout_ms);
                q.spec = Some(spec);
                // Tagged with its join: a timer that outlives it never touches a later wait.
                q.timeout = Some(ctx.run_later(wait, move |act, ctx| {
                    act.leave_queue(ticket, Leave::Timeout, ctx);
                }));
                self.play_hold(ctx);
            }
            QueueOrder::Refused { ticket, reason } => {
                if self.queued(ticket).is_none() {
                    return;
                }
                let Some(Awaiting::Queue(q)) = self.awaiting.take() else {
                    return;
                };
                self.set_variable(QUEUE_RESULT, reason.as_str());
                self.merge_result(
                    json!({ "queue_id": q.queue_id.to_string(), "result": reason.as_str() }),
                );
                self.resume(q.next, ctx);
            }
            QueueOrder::Ring { ticket, agents } => self.ring_agents(ticket, agents, ctx),
            QueueOrder::Closed { ticket } => self.leave_queue(ticket, Leave::Closed, ctx),
        }
    }

    /// Dials the agents the queue picked; an agent none of whose legs could be placed is
    /// reported failed at once.
    fn ring_agents(&mut self, ticket: Ticket, agents: Vec<Address>, ctx: &mut Context<Self>) {
        let Some(q) = self.queued(ticket) else { return };
        if q.bridged.is_some() {
            return;
        }
        let (trunk, ring_timeout) = q
            .spec
            .as_ref()
            .map_or((None, 20_000), |s| (s.trunk.clone(), s.ring_timeout_ms));
        let queue_id = q.queue_id;
        let source = self.source_of(None);
        let mut placed = Vec::new();
        let mut failed = Vec::new();
        for agent in agents {
            let mut any = false;
            let dests = [agent.clone()];
            let targets: Vec<_> = self.targets(&dests).into_iter().map(|(_, t)| t).collect();
            for target in targets {
                let leg = target.and_then(|t| {
                    self.dial_leg(t, trunk.clone(), source.clone(), ring_timeout, false, ctx)
                });
                match leg {
                    Ok(leg) => {
                        any = true;
                        placed.push(AgentLeg {
                            agent: agent.clone(),
                            target: agent.target.clone(),
                            call_id: leg.call_id,
                            commands: Some(leg.commands),
                        });
                    }
                    Err(e) => {
                        tracing::info!(activeflow_id = %self.id, error = %e, "queue agent leg not placed");
                        failed.push((agent.clone(), e.reason()));
                    }
                }
            }
            if !any {
                self.links.queues.do_send(Report {
                    queue_id,
                    ticket,
                    agent,
                    event: AgentEvent::Failed,
                });
            }
        }
        if let Some(q) = self.queued(ticket) {
            q.legs.extend(placed);
            for (agent, reason) in failed {
                q.attempt(&agent.target, reason, None);
            }
        }
    }

    /// An event of an agent leg (routed here by `on_leg_event` while in a queue).
    pub(super) fn on_queue_leg_event(&mut self, event: CallEvent, ctx: &mut Context<Self>) {
        let (id, answered, cause) = match event {
            CallEvent::Answered { call_id } => (call_id, true, None),
            CallEvent::Ended { call_id, cause } => (call_id, false, Some(cause)),
            _ => return,
        };
        let Some(Awaiting::Queue(q)) = &mut self.awaiting else {
            return;
        };
        let Some(index) = q.legs.iter().position(|l| l.call_id == id) else {
            return;
        };
        let (queue_id, ticket) = (q.queue_id, q.ticket);
        if answered {
            if q.bridged.is_some() {
                // Another agent was faster: this one is hung up (and was freed already).
                if let Some(c) = q.legs[index].commands.take() {
                    c.do_send(CallCommand::Hangup(HangupCause::Normal));
                }
                return;
            }
            return self.agent_answered(index, ctx);
        }
        if q.bridged.is_some_and(|(w, _, _)| w == index) {
            return self.agent_hung_up(ctx);
        }
        let leg = q.legs.remove(index);
        if q.bridged.is_some() {
            if let Some((w, _, _)) = &mut q.bridged {
                if *w > index {
                    *w -= 1;
                }
            }
            return;
        }
        let (status, code) = leg_status(cause.unwrap_or(crate::call::CallEndCause::Failed));
        q.attempt(&leg.target, status, code);
        // An extension agent may still ring on another contact.
        if !q.legs.iter().any(|l| l.agent == leg.agent) {
            self.links.queues.do_send(Report {
                queue_id,
                ticket,
                agent: leg.agent,
                event: AgentEvent::Failed,
            });
        }
    }

    /// The first agent to answer: hold audio stops, the other legs are cancelled, the caller
    /// and the agent are bridged, the queue is told.
    fn agent_answered(&mut self, index: usize, ctx: &mut Context<Self>) {
        self.stop_hold(ctx);
        let Some(Awaiting::Queue(q)) = &mut self.awaiting else {
            return;
        };
        if let Some(t) = q.timeout.take() {
            ctx.cancel_future(t);
        }
        for (i, leg) in q.legs.iter_mut().enumerate() {
            if i != index {
                if let Some(c) = leg.commands.take() {
                    c.do_send(CallCommand::Hangup(HangupCause::Normal));
                }
            }
        }
        let commands = q.legs[index].commands.clone();
        let (agent, target) = (q.legs[index].agent.clone(), q.legs[index].target.clone());
        let (queue_id, ticket, waited) = (q.queue_id, q.ticket, q.joined_at.elapsed());
        q.attempt(&target, "answered", Some(200));
        let caller_job = self.bridge_caller(commands.as_ref());
        if let Some(Awaiting::Queue(q)) = &mut self.awaiting {
            q.bridged = Some((index, Instant::now(), caller_job));
        }
        self.links.queues.do_send(Report {
            queue_id,
            ticket,
            agent,
            event: AgentEvent::Answered,
        });
        self.set_variable("queue.agent", target);
        self.set_variable("queue.wait_ms", (waited.as_millis() as u64).to_string());
    }

    /// The bridged agent hung up: the flow goes on with `queue.result` = `answered`.
    fn agent_hung_up(&mut self, ctx: &mut Context<Self>) {
        let Some(Awaiting::Queue(q)) = self.awaiting.take() else {
            return;
        };
        let Some((index, since, caller_job)) = q.bridged else {
            return;
        };
        self.stop_caller_media(caller_job);
        let leg = &q.legs[index];
        self.links.queues.do_send(Report {
            queue_id: q.queue_id,
            ticket: q.ticket,
            agent: leg.agent.clone(),
            event: AgentEvent::Released,
        });
        self.set_variable(QUEUE_RESULT, Leave::Answered.as_str());
        let mut result = queue_result(&q, Leave::Answered);
        result["agent"] = address_json(&leg.agent);
        result["wait_ms"] = json!(since.saturating_duration_since(q.joined_at).as_millis() as u64);
        result["duration_ms"] = json!(since.elapsed().as_millis() as u64);
        result["ended_by"] = json!("agent");
        self.merge_result(result);
        self.resume(q.next, ctx);
    }

    /// Leaves without an agent (timeout, the queue deleted): legs hung up, the wait timer
    /// disarmed, the flow goes on. Only while `ticket` is the current join and not bridged:
    /// nothing else's wait is touched.
    fn leave_queue(&mut self, ticket: Ticket, how: Leave, ctx: &mut Context<Self>) {
        match self.queued(ticket) {
            Some(q) if q.bridged.is_none() => {}
            _ => return,
        }
        self.stop_hold(ctx);
        let Some(Awaiting::Queue(mut q)) = self.awaiting.take() else {
            return;
        };
        if let Some(t) = q.timeout.take() {
            ctx.cancel_future(t);
        }
        hang_up_legs(&mut q);
        if how != Leave::Closed {
            self.links.queues.do_send(Depart {
                queue_id: q.queue_id,
                ticket: q.ticket,
                how,
            });
        }
        self.set_variable(QUEUE_RESULT, how.as_str());
        let mut result = queue_result(&q, how);
        result["wait_ms"] = json!(q.joined_at.elapsed().as_millis() as u64);
        self.merge_result(result);
        self.resume(q.next, ctx);
    }

    /// The activeflow is ending while in a queue: a waiting caller leaves (`abandoned` when it
    /// hung up), a bridged one frees its agent; every leg is hung up.
    pub(super) fn release_queue(&mut self, reason: EndReason) {
        let Some(Awaiting::Queue(q)) = &mut self.awaiting else {
            return;
        };
        hang_up_legs(q);
        let (queue_id, ticket) = (q.queue_id, q.ticket);
        if let Some((index, since, _)) = q.bridged {
            let agent = q.legs[index].agent.clone();
            let mut result = queue_result(q, Leave::Answered);
            result["agent"] = address_json(&agent);
            result["wait_ms"] =
                json!(since.saturating_duration_since(q.joined_at).as_millis() as u64);
            result["duration_ms"] = json!(since.elapsed().as_millis() as u64);
            result["ended_by"] = json!("caller");
            self.links.queues.do_send(Report {
                queue_id,
                ticket,
                agent,
                event: AgentEvent::Released,
            });
            self.set_variable(QUEUE_RESULT, Leave::Answered.as_str());
            self.merge_result(result);
            return;
        }
        let how = if reason == EndReason::Hangup {
            Leave::Abandoned
        } else {
            Leave::Stopped
        };
        let wait_ms = q.joined_at.elapsed().as_millis() as u64;
        let mut result = queue_result(q, how);
        result["wait_ms"] = json!(wait_ms);
        self.links.queues.do_send(Depart {
            queue_id,
            ticket,
            how,
        });
        self.set_variable(QUEUE_RESULT, how.as_str());
        self.merge_result(result);
    }
}

fn hang_up_legs(q: &mut Queued) {
    for leg in &mut q.legs {
        if let Some(c) = leg.commands.take() {
            c.do_send(CallCommand::Hangup(HangupCause::Normal));
        }
    }
}

fn queue_result(q: &Queued, how: Leave) -> Value {
    let mut v = json!({
        "queue_id": q.queue_id.to_string(),
        "result": how.as_str(),
        "attempts": q.attempts,
    });
    if q.attempts_dropped > 0 {
        v["attempts_dropped"] = json!(q.attempts_dropped);
    }
    v
}

impl Handler<QueueOrder> for Activeflow {
    type Result = ();

    fn handle(&mut self, order: QueueOrder, ctx: &mut Self::Context) {
        if self.ended {
            return;
        }
        self.on_queue_order(order, ctx);
    }
}
