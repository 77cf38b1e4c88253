//! The queue manager actor: owns every queue's definition and state machine (`machine`), takes
//! joins, agent reports and departures from activeflows, and sends each caller's activeflow its
//! orders (joined, ring these agents, closed). The activeflow dials and bridges; this actor
//! only decides. Also answers the REST API. Held in memory only: queues do not survive a
//! restart (documented in README). Must not dial, play media or block.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::{json, Value};

use super::definition::{address_json, QueueId, QueueSpec};
use super::engaged::Engaged;
use super::machine::{AgentState, Leave, QueueMachine, Ticket};
use crate::flow::outbound::Address;

/// Queues defined at most.
pub const MAX_QUEUES: usize = 1000;
/// Callers waiting in one queue at most (more are refused: `queue.result` = `full`).
pub const MAX_WAITING: usize = 1000;
/// How often rounds paused after every agent failed are looked at again.
const TICK: Duration = Duration::from_millis(500);

/// What the queue tells a caller's activeflow.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum QueueOrder {
    /// In the queue: play `spec.hold`, wait at most `spec.wait_timeout_ms`.
    Joined {
        ticket: Ticket,
        spec: Arc<QueueSpec>,
    },
    /// Not taken: unknown queue or full.
    Refused { ticket: Ticket, reason: JoinRefused },
    /// Dial these agents; report each one's outcome.
    Ring {
        ticket: Ticket,
        agents: Vec<Address>,
    },
    /// The queue was deleted while the caller waited.
    Closed { ticket: Ticket },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRefused {
    NotFound,
    Full,
}

impl JoinRefused {
    /// The `queue.result` word.
    pub fn as_str(self) -> &'static str {
        match self {
            JoinRefused::NotFound => "not_found",
            JoinRefused::Full => "full",
        }
    }
}

/// A caller's activeflow joins a queue.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub queue_id: QueueId,
    pub ticket: Ticket,
    pub orders: Recipient<QueueOrder>,
}

/// What became of an agent leg the caller's activeflow placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentEvent {
    /// Busy, no answer, failed, or cancelled before answering.
    Failed,
    Answered,
    /// The bridged call ended.
    Released,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Report {
    pub queue_id: QueueId,
    pub ticket: Ticket,
    pub agent: Address,
    pub event: AgentEvent,
}

/// The caller leaves without an agent.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Depart {
    pub queue_id: QueueId,
    pub ticket: Ticket,
    pub how: Leave,
}

/// Errors of the API messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("queue {0} not found")]
    NotFound(QueueId),
    #[error("{0} queues exist already (the most this engine keeps)")]
    TooMany(usize),
}

#[derive(Message)]
#[rtype(result = "Result<Value, QueueError>")]
pub struct CreateQueue(pub QueueSpec);

#[derive(Message)]
#[rtype(result = "Result<Value, QueueError>")]
pub struct UpdateQueue(pub QueueId, pub QueueSpec);

#[derive(Message)]
#[rtype(result = "Result<Value, QueueError>")]
pub struct DeleteQueue(pub QueueId);

#[derive(Message)]
#[rtype(result = "Result<Value, QueueError>")]
pub struct GetQueue(pub QueueId);

#[derive(Message)]
#[rtype(result = "Vec<Value>")]
pub struct ListQueues;

struct Entry {
    spec: Arc<QueueSpec>,
    machine: QueueMachine,
    callers: HashMap<Ticket, Recipient<QueueOrder>>,
    tm_create: String,
    tm_update: String,
}

#[derive(Default)]
pub struct QueueManager {
    queues: HashMap<QueueId, Entry>,
    /// Agents ringing or bridged for any queue's caller (kept across PUT and DELETE).
    engaged: Engaged,
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl QueueManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends the ring orders the queue's machine gives now.
    fn dispatch(&mut self, id: QueueId) {
        let Some(entry) = self.queues.get_mut(&id) else {
            return;
        };
        let engaged = &self.engaged;
        let rings = entry
            .machine
            .dispatch_except(Instant::now(), &|a| engaged.is_engaged(a));
        for ring in rings {
            for agent in &ring.agents {
                self.engaged.ringing(ring.ticket, agent);
            }
            if let Some(orders) = entry.callers.get(&ring.ticket) {
                orders.do_send(QueueOrder::Ring {
                    ticket: ring.ticket,
                    agents: ring.agents,
                });
            }
        }
    }

    fn update_gauge(&self) {
        let waiting: usize = self
            .queues
            .values()
            .map(|e| e.machine.waiting_count())
            .sum();
        super::metrics::set_waiting(waiting);
    }

    /// The queue as the API shows it; an agent engaged for another queue's caller shows
    /// `busy` (it is not rung here meanwhile).
    fn view(&self, id: QueueId, entry: &Entry) -> Value {
        let now = Instant::now();
        let mut v = entry.spec.to_json();
        v["id"] = json!(id.to_string());
        v["agents"] = entry
            .machine
            .agents()
            .map(|(a, state)| {
                let mut j = address_json(a);
                let state = match state {
                    AgentState::Available if self.engaged.is_engaged(a) => AgentState::Busy,
                    s => s,
                };
                j["status"] = json!(state.as_str());
                j
            })
            .collect();
        v["waiting_callers"] = entry
            .machine
            .waiting()
            .map(|(w, ringing)| {
                json!({
                    "activeflow_id": w.ticket.activeflow.to_string(),
                    "wait_ms": now.saturating_duration_since(w.joined).as_millis() as u64,
                    "status": if ringing { "connecting" } else { "waiting" },
                })
            })
            .collect();
        let t = entry.machine.totals;
        v["total_incoming_count"] = json!(t.incoming);
        v["total_serviced_count"] = json!(t.serviced);
        v["total_abandoned_count"] = json!(t.abandoned);
        v["total_timeout_count"] = json!(t.timeout);
        v["tm_create"] = json!(entry.tm_create);
        v["tm_update"] = json!(entry.tm_update);
        v
    }
}

impl Actor for QueueManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(TICK, |act, _| {
            let ids: Vec<QueueId> = act.queues.keys().copied().collect();
            for id in ids {
                act.dispatch(id);
            }
        });
    }
}

impl Handler<Join> for QueueManager {
    type Result = ();

    fn handle(&mut self, msg: Join, _: &mut Self::Context) {
        let Some(entry) = self.queues.get_mut(&msg.queue_id) else {
            msg.orders.do_send(QueueOrder::Refused {
                ticket: msg.ticket,
                reason: JoinRefused::NotFound,
            });
            return;
        };
        if entry.machine.join(msg.ticket, Instant::now()).is_err() {
            msg.orders.do_send(QueueOrder::Refused {
                ticket: msg.ticket,
                reason: JoinRefused::Full,
            });
            return;
        }
        msg.orders.do_send(QueueOrder::Joined {
            ticket: msg.ticket,
            spec: entry.spec.clone(),
        });
        entry.callers.insert(msg.ticket, msg.orders);
        self.update_gauge();
        self.dispatch(msg.queue_id);
    }
}

impl Handler<Report> for QueueManager {
    type Result = ();

    fn handle(&mut self, msg: Report, _: &mut Self::Context) {
        // First: an agent left bridged by a deleted queue is freed all the same.
        match msg.event {
            AgentEvent::Failed | AgentEvent::Released => self.engaged.freed(msg.ticket, &msg.agent),
            AgentEvent::Answered => self.engaged.answered(msg.ticket, &msg.agent),
        }
        let Some(entry) = self.queues.get_mut(&msg.queue_id) else {
            return;
        };
        let now = Instant::now();
        match msg.event {
            AgentEvent::Failed => entry.machine.ring_failed(msg.ticket, &msg.agent),
            AgentEvent::Answered => {
                if let Some(waited) = entry.machine.answered(msg.ticket, &msg.agent, now) {
                    entry.callers.remove(&msg.ticket);
                    super::metrics::left(Leave::Answered, waited);
                }
            }
            AgentEvent::Released => entry.machine.released(msg.ticket, &msg.agent, now),
        }
        self.update_gauge();
        self.dispatch(msg.queue_id);
    }
}

impl Handler<Depart> for QueueManager {
    type Result = ();

    fn handle(&mut self, msg: Depart, _: &mut Self::Context) {
        self.engaged.left(msg.ticket);
        let Some(entry) = self.queues.get_mut(&msg.queue_id) else {
            return;
        };
        entry.callers.remove(&msg.ticket);
        if let Some(waited) = entry.machine.leave(msg.ticket, msg.how, Instant::now()) {
            super::metrics::left(msg.how, waited);
        }
        self.update_gauge();
        self.dispatch(msg.queue_id);
    }
}

impl Handler<CreateQueue> for QueueManager {
    type Result = Result<Value, QueueError>;

    fn handle(&mut self, msg: CreateQueue, _: &mut Self::Context) -> Self::Result {
        if self.queues.len() >= MAX_QUEUES {
            return Err(QueueError::TooMany(MAX_QUEUES));
        }
        let id = QueueId::new();
        let spec = msg.0;
        let machine = QueueMachine::new(spec.strategy, &spec.agents, MAX_WAITING, Instant::now());
        let now = now_text();
        let entry = Entry {
            spec: Arc::new(spec),
            machine,
            callers: HashMap::new(),
            tm_create: now.clone(),
            tm_update: now,
        };
        let view = self.view(id, &entry);
        self.queues.insert(id, entry);
        Ok(view)
    }
}

impl Handler<UpdateQueue> for QueueManager {
    type Result = Result<Value, QueueError>;

    fn handle(
        &mut self,
        UpdateQueue(id, spec): UpdateQueue,
        _: &mut Self::Context,
    ) -> Self::Result {
        let entry = self.queues.get_mut(&id).ok_or(QueueError::NotFound(id))?;
        entry
            .machine
            .set_agents(spec.strategy, &spec.agents, Instant::now());
        entry.spec = Arc::new(spec);
        entry.tm_update = now_text();
        let view = self.view(id, &self.queues[&id]);
        self.dispatch(id);
        Ok(view)
    }
}

impl Handler<DeleteQueue> for QueueManager {
    type Result = Result<Value, QueueError>;

    fn handle(&mut self, DeleteQueue(id): DeleteQueue, _: &mut Self::Context) -> Self::Result {
        let mut entry = self.queues.remove(&id).ok_or(QueueError::NotFound(id))?;
        let view = self.view(id, &entry);
        // Agents bridged with this queue's callers stay engaged until their `Released`.
        for (ticket, waited) in entry.machine.close(Instant::now()) {
            self.engaged.left(ticket);
            super::metrics::left(Leave::Closed, waited);
            if let Some(orders) = entry.callers.remove(&ticket) {
                orders.do_send(QueueOrder::Closed { ticket });
            }
        }
        self.update_gauge();
        Ok(view)
    }
}

impl Handler<GetQueue> for QueueManager {
    type Result = Result<Value, QueueError>;

    fn handle(&mut self, GetQueue(id): GetQueue, _: &mut Self::Context) -> Self::Result {
        let entry = self.queues.get(&id).ok_or(QueueError::NotFound(id))?;
        Ok(self.view(id, entry))
    }
}

impl Handler<ListQueues> for QueueManager {
    type Result = Vec<Value>;

    fn handle(&mut self, _: ListQueues, _: &mut Self::Context) -> Self::Result {
        let mut all: Vec<(&QueueId, &Entry)> = self.queues.iter().collect();
        all.sort_by(|a, b| a.1.tm_create.cmp(&b.1.tm_create).then(a.0.cmp(b.0)));
        all.into_iter().map(|(id, e)| self.view(*id, e)).collect()
    }
}
