//! One queue's live state as a sans-IO state machine: its agents (available, ringing for a
//! caller, busy with one), the FIFO of waiting callers, and which agent each caller rings next
//! by strategy. Inputs are method calls with the time passed in; `dispatch` returns the ring
//! orders. No actors, no sockets, no clock of its own (the `manager` actor owns one per queue).
//!
//! ```text
//!  agent:  available --dispatch--> ringing --answered--> busy --released--> available
//!                        ^            |failed / caller left
//!                        +------------+
//!  caller: join -> waiting (ringing 0..n agents) -> answered | timeout | abandoned | ...
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::definition::Strategy;
use crate::flow::outbound::Address;

/// A caller's place in a queue: its activeflow and which of its joins this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket {
    pub activeflow: Uuid,
    pub n: u64,
}

/// A caller that tried every agent waits this long before ringing them again.
pub const ROUND_PAUSE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    Available,
    Ringing,
    /// Bridged with a caller: never rung for another.
    Busy,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Available => "available",
            AgentState::Ringing => "ringing",
            AgentState::Busy => "busy",
        }
    }
}

/// How a caller left the queue: `queue.result` and the wait histogram's `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    Answered,
    Timeout,
    /// The caller hung up while waiting.
    Abandoned,
    /// Its activeflow was stopped (operator, shutdown, an error).
    Stopped,
    /// The queue was deleted.
    Closed,
}

impl Leave {
    pub const ALL: [Leave; 5] = [
        Leave::Answered,
        Leave::Timeout,
        Leave::Abandoned,
        Leave::Stopped,
        Leave::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Leave::Answered => "answered",
            Leave::Timeout => "timeout",
            Leave::Abandoned => "abandoned",
            Leave::Stopped => "stopped",
            Leave::Closed => "closed",
        }
    }
}

struct Agent {
    address: Address,
    state: AgentState,
    /// The caller it rings for or is bridged with.
    holder: Option<Ticket>,
    idle_since: Instant,
}

/// A waiting caller.
pub struct Waiting {
    pub ticket: Ticket,
    pub joined: Instant,
    /// Agents tried in this round (busy, no answer, failed).
    tried: Vec<Address>,
    /// After a round with no answer: no ringing before this.
    not_before: Option<Instant>,
}

/// Ring these agents for this caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    pub ticket: Ticket,
    pub agents: Vec<Address>,
}

/// Counts since the queue was created (VoIPBIN's `total_*_count`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub incoming: u64,
    pub serviced: u64,
    pub abandoned: u64,
    pub timeout: u64,
}

/// The queue is holding as many callers as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the queue holds {0} waiting callers already")]
pub struct QueueFull(pub usize);

pub struct QueueMachine {
    strategy: Strategy,
    agents: Vec<Agent>,
    waiting: VecDeque<Waiting>,
    /// Round robin: the agent index to try first next time.
    next: usize,
    max_waiting: usize,
    pub totals: Totals,
}

impl QueueMachine {
    pub fn new(strategy: Strategy, agents: &[Address], max_waiting: usize, now: Instant) -> Self {
        let mut m = QueueMachine {
            strategy,
            agents: Vec::new(),
            waiting: VecDeque::new(),
            next: 0,
            max_waiting,
            totals: Totals::default(),
        };
        m.set_agents(strategy, agents, now);
        m
    }

    /// A new definition: agents kept keep their state; new ones are available; removed ones
    /// are forgotten (a leg ringing one is still reported, and ignored).
    pub fn set_agents(&mut self, strategy: Strategy, agents: &[Address], now: Instant) {
        self.strategy = strategy;
        let mut old = std::mem::take(&mut self.agents);
        self.agents = agents
            .iter()
            .map(|a| match old.iter().position(|o| o.address == *a) {
                Some(i) => old.swap_remove(i),
                None => Agent {
                    address: a.clone(),
                    state: AgentState::Available,
                    holder: None,
                    idle_since: now,
                },
            })
            .collect();
        if self.next >= self.agents.len() {
            self.next = 0;
        }
    }

    pub fn join(&mut self, ticket: Ticket, now: Instant) -> Result<(), QueueFull> {
        if self.waiting.len() >= self.max_waiting {
            return Err(QueueFull(self.max_waiting));
        }
        self.totals.incoming += 1;
        self.waiting.push_back(Waiting {
            ticket,
            joined: now,
            tried: Vec::new(),
            not_before: None,
        });
        Ok(())
    }

    fn agent_mut(&mut self, ticket: Ticket, agent: &Address) -> Option<&mut Agent> {
        self.agents
            .iter_mut()
            .find(|a| a.address == *agent && a.holder == Some(ticket))
    }

    /// A ring for `ticket` ended without an answer (busy, no answer, failed): the agent is
    /// available again and this caller tries the next one.
    pub fn ring_failed(&mut self, ticket: Ticket, agent: &Address) {
        let Some(a) = self.agent_mut(ticket, agent) else {
            return;
        };
        if a.state != AgentState::Ringing {
            return;
        }
        a.state = AgentState::Available;
        a.holder = None;
        if let Some(w) = self.waiting.iter_mut().find(|w| w.ticket == ticket) {
            w.tried.push(agent.clone());
        }
    }

    /// `agent` answered `ticket`: the caller leaves the queue (answered; its wait returned,
    /// `None` if it was not waiting), the agent is busy, the caller's other ringing agents are
    /// available again. The caller leaves even when the agent is no longer listed (a `PUT`
    /// removed it while it rang): it is bridged all the same.
    pub fn answered(&mut self, ticket: Ticket, agent: &Address, now: Instant) -> Option<Duration> {
        if let Some(a) = self.agent_mut(ticket, agent) {
            if a.state == AgentState::Ringing {
                a.state = AgentState::Busy;
            }
        }
        let waited = self.remove(ticket, now, Some(agent));
        if waited.is_some() {
            self.totals.serviced += 1;
        }
        waited
    }

    /// The call between `ticket` and `agent` ended: the agent is idle from now.
    pub fn released(&mut self, ticket: Ticket, agent: &Address, now: Instant) {
        if let Some(a) = self.agent_mut(ticket, agent) {
            a.state = AgentState::Available;
            a.holder = None;
            a.idle_since = now;
        }
    }

    /// The caller leaves without an agent; its wait, if it was waiting.
    pub fn leave(&mut self, ticket: Ticket, how: Leave, now: Instant) -> Option<Duration> {
        let waited = self.remove(ticket, now, None)?;
        match how {
            Leave::Abandoned => self.totals.abandoned += 1,
            Leave::Timeout => self.totals.timeout += 1,
            _ => {}
        }
        Some(waited)
    }

    /// Removes a waiting caller, freeing the agents ringing for it (but `keep`).
    fn remove(&mut self, ticket: Ticket, now: Instant, keep: Option<&Address>) -> Option<Duration> {
        let at = self.waiting.iter().position(|w| w.ticket == ticket)?;
        let w = self.waiting.remove(at)?;
        for a in &mut self.agents {
            if a.holder == Some(ticket) && Some(&a.address) != keep {
                a.state = AgentState::Available;
                a.holder = None;
            }
        }
        Some(now.saturating_duration_since(w.joined))
    }

    /// Every caller removed (the queue is deleted): their tickets and how long they waited.
    pub fn close(&mut self, now: Instant) -> Vec<(Ticket, Duration)> {
        self.waiting
            .drain(..)
            .map(|w| (w.ticket, now.saturating_duration_since(w.joined)))
            .collect()
    }

    /// [`QueueMachine::dispatch_except`] with no agent engaged elsewhere.
    pub fn dispatch(&mut self, now: Instant) -> Vec<Ring> {
        self.dispatch_except(now, &|_| false)
    }

    /// Offers free agents to waiting callers, oldest first: each caller not ringing anyone
    /// gets the agent(s) its strategy picks among those available it has not tried this
    /// round. A caller that tried every agent starts a new round after `ROUND_PAUSE`. An
    /// agent `engaged` says is ringing or bridged elsewhere (another queue, or this one before
    /// a `PUT` dropped and re-added it) is not offered.
    pub fn dispatch_except(
        &mut self,
        now: Instant,
        engaged: &dyn Fn(&Address) -> bool,
    ) -> Vec<Ring> {
        let mut rings = Vec::new();
        for wi in 0..self.waiting.len() {
            if !self.agents.iter().any(|a| a.state == AgentState::Available) {
                break;
            }
            let ticket = self.waiting[wi].ticket;
            if self.agents.iter().any(|a| a.holder == Some(ticket)) {
                continue;
            }
            let w = &mut self.waiting[wi];
            if w.not_before.is_some_and(|t| now < t) {
                continue;
            }
            if !self.agents.is_empty() && self.agents.iter().all(|a| w.tried.contains(&a.address)) {
                w.tried.clear();
                w.not_before = Some(now + ROUND_PAUSE);
                continue;
            }
            let candidates: Vec<usize> = (0..self.agents.len())
                .filter(|&i| {
                    self.agents[i].state == AgentState::Available
                        && !w.tried.contains(&self.agents[i].address)
                        && !engaged(&self.agents[i].address)
                })
                .collect();
            let picked = self.pick(&candidates);
            if picked.is_empty() {
                continue;
            }
            let mut agents = Vec::with_capacity(picked.len());
            for i in picked {
                let a = &mut self.agents[i];
                a.state = AgentState::Ringing;
                a.holder = Some(ticket);
                agents.push(a.address.clone());
            }
            rings.push(Ring { ticket, agents });
        }
        rings
    }

    fn pick(&mut self, candidates: &[usize]) -> Vec<usize> {
        if candidates.is_empty() {
            return Vec::new();
        }
        match self.strategy {
            Strategy::RingAll => candidates.to_vec(),
            Strategy::RoundRobin => {
                let n = self.agents.len();
                let start = self.next;
                let first = candidates
                    .iter()
                    .copied()
                    .min_by_key(|&i| (i + n - start) % n)
                    .unwrap_or(candidates[0]);
                self.next = (first + 1) % n;
                vec![first]
            }
            Strategy::LongestIdle => candidates
                .iter()
                .copied()
                .min_by_key(|&i| (self.agents[i].idle_since, i))
                .into_iter()
                .collect(),
        }
    }

    /// Each agent with its state.
    pub fn agents(&self) -> impl Iterator<Item = (&Address, AgentState)> {
        self.agents.iter().map(|a| (&a.address, a.state))
    }

    /// The waiting callers, oldest first, with whether an agent rings for them.
    pub fn waiting(&self) -> impl Iterator<Item = (&Waiting, bool)> {
        self.waiting.iter().map(|w| {
            let ringing = self.agents.iter().any(|a| a.holder == Some(w.ticket));
            (w, ringing)
        })
    }

    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
