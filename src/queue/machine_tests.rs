//! Unit tests of the queue state machine: strategies, skipping busy agents, never ringing a
//! busy agent, FIFO order, rounds, leaving and counting.

use super::*;
use crate::flow::outbound::AddressType;

fn agent(n: u8) -> Address {
    Address {
        kind: AddressType::Sip,
        target: format!("sip:agent{n}@127.0.0.1"),
    }
}

fn ticket(n: u64) -> Ticket {
    Ticket {
        activeflow: Uuid::nil(),
        n,
    }
}

fn machine(strategy: Strategy, agents: u8) -> (QueueMachine, Instant) {
    let now = Instant::now();
    let list: Vec<Address> = (1..=agents).map(agent).collect();
    (QueueMachine::new(strategy, &list, 10, now), now)
}

fn state(m: &QueueMachine, n: u8) -> AgentState {
    m.agents()
        .find(|(a, _)| **a == agent(n))
        .map(|(_, s)| s)
        .unwrap()
}

#[test]
fn ringall_rings_every_free_agent_and_the_first_answer_frees_the_rest() {
    let (mut m, now) = machine(Strategy::RingAll, 3);
    m.join(ticket(1), now).unwrap();
    let rings = m.dispatch(now);
    assert_eq!(
        rings,
        [Ring {
            ticket: ticket(1),
            agents: vec![agent(1), agent(2), agent(3)]
        }]
    );
    let waited = m.answered(ticket(1), &agent(2), now + Duration::from_secs(3));
    assert_eq!(waited, Some(Duration::from_secs(3)));
    assert_eq!(state(&m, 1), AgentState::Available);
    assert_eq!(state(&m, 2), AgentState::Busy);
    assert_eq!(m.waiting_count(), 0);
    assert_eq!(m.totals.serviced, 1);
    // A late answer of an agent no longer ringing for it changes nothing.
    assert_eq!(m.answered(ticket(1), &agent(1), now), None);
}

#[test]
fn a_busy_agent_is_skipped_and_the_next_tried() {
    let (mut m, now) = machine(Strategy::RoundRobin, 2);
    m.join(ticket(1), now).unwrap();
    assert_eq!(m.dispatch(now)[0].agents, [agent(1)]);
    m.ring_failed(ticket(1), &agent(1));
    assert_eq!(m.dispatch(now)[0].agents, [agent(2)]);
    m.ring_failed(ticket(1), &agent(2));
    // Every agent tried: a pause, then a new round from the round-robin position.
    assert!(m.dispatch(now).is_empty());
    assert!(m.dispatch(now + Duration::from_secs(1)).is_empty());
    let later = m.dispatch(now + ROUND_PAUSE);
    assert_eq!(later[0].agents, [agent(1)]);
}

#[test]
fn roundrobin_moves_on_between_callers() {
    let (mut m, now) = machine(Strategy::RoundRobin, 3);
    for n in 1..=2 {
        m.join(ticket(n), now).unwrap();
        let rings = m.dispatch(now);
        assert_eq!(rings.len(), 1);
        let a = rings[0].agents[0].clone();
        m.answered(ticket(n), &a, now).unwrap();
        m.released(ticket(n), &a, now);
    }
    m.join(ticket(3), now).unwrap();
    assert_eq!(m.dispatch(now)[0].agents, [agent(3)]);
}

#[test]
fn longest_idle_picks_the_agent_free_for_longest() {
    let (mut m, now) = machine(Strategy::LongestIdle, 2);
    m.join(ticket(1), now).unwrap();
    assert_eq!(m.dispatch(now)[0].agents, [agent(1)]);
    m.answered(ticket(1), &agent(1), now).unwrap();
    m.released(ticket(1), &agent(1), now + Duration::from_secs(5));
    m.join(ticket(2), now).unwrap();
    // Agent 2 idle since `now`, agent 1 only since now + 5 s.
    assert_eq!(
        m.dispatch(now + Duration::from_secs(6))[0].agents,
        [agent(2)]
    );
}

#[test]
fn a_busy_agent_is_never_rung_and_callers_are_served_in_order() {
    let (mut m, now) = machine(Strategy::RingAll, 1);
    m.join(ticket(1), now).unwrap();
    m.join(ticket(2), now).unwrap();
    let rings = m.dispatch(now);
    assert_eq!(
        rings,
        [Ring {
            ticket: ticket(1),
            agents: vec![agent(1)]
        }]
    );
    m.answered(ticket(1), &agent(1), now).unwrap();
    assert!(m.dispatch(now).is_empty(), "the only agent is busy");
    m.released(ticket(1), &agent(1), now);
    assert_eq!(m.dispatch(now)[0].ticket, ticket(2));
}

#[test]
fn leaving_frees_ringing_agents_and_counts() {
    let (mut m, now) = machine(Strategy::RingAll, 2);
    m.join(ticket(1), now).unwrap();
    m.dispatch(now);
    let waited = m.leave(
        ticket(1),
        Leave::Abandoned,
        now + Duration::from_millis(700),
    );
    assert_eq!(waited, Some(Duration::from_millis(700)));
    assert_eq!(state(&m, 1), AgentState::Available);
    assert_eq!(m.totals.abandoned, 1);
    // Leaving twice counts once; a stale ring report is ignored.
    assert_eq!(m.leave(ticket(1), Leave::Abandoned, now), None);
    m.ring_failed(ticket(1), &agent(1));
    assert_eq!(m.totals.abandoned, 1);
    m.join(ticket(2), now).unwrap();
    m.leave(ticket(2), Leave::Timeout, now);
    assert_eq!(m.totals.timeout, 1);
    assert_eq!(m.totals.incoming, 2);
}

#[test]
fn the_waiting_list_is_bounded() {
    let (mut m, now) = machine(Strategy::RingAll, 1);
    for n in 0..10 {
        m.join(ticket(n), now).unwrap();
    }
    assert_eq!(m.join(ticket(10), now), Err(QueueFull(10)));
}

#[test]
fn a_new_agent_list_keeps_the_states_of_agents_kept() {
    let (mut m, now) = machine(Strategy::RingAll, 2);
    m.join(ticket(1), now).unwrap();
    m.dispatch(now);
    m.answered(ticket(1), &agent(2), now).unwrap();
    m.set_agents(Strategy::RingAll, &[agent(2), agent(3)], now);
    assert_eq!(state(&m, 2), AgentState::Busy);
    assert_eq!(state(&m, 3), AgentState::Available);
    assert_eq!(m.agents().count(), 2);
}

#[test]
fn an_answer_from_an_agent_removed_meanwhile_still_takes_the_caller_out() {
    let (mut m, now) = machine(Strategy::RingAll, 2);
    m.join(ticket(1), now).unwrap();
    m.dispatch(now);
    m.set_agents(Strategy::RingAll, &[agent(2)], now);
    assert!(m.answered(ticket(1), &agent(1), now).is_some());
    assert_eq!(m.waiting_count(), 0);
    assert_eq!(state(&m, 2), AgentState::Available, "freed with the caller");
}

/// An agent engaged for another queue's caller (or kept busy across a `PUT` that dropped and
/// re-added it) is not offered; once free, it is.
#[test]
fn an_agent_engaged_elsewhere_is_not_rung() {
    let (mut m, now) = machine(Strategy::RingAll, 2);
    m.join(ticket(1), now).unwrap();
    let rings = m.dispatch_except(now, &|a| *a == agent(1));
    assert_eq!(rings[0].agents, [agent(2)]);
    m.ring_failed(ticket(1), &agent(2));
    assert!(m.dispatch_except(now, &|a| *a == agent(1)).is_empty());
    let freed = m.dispatch_except(now, &|_| false);
    assert_eq!(freed[0].agents, [agent(1)], "free again: rung");
}

/// Deleting the queue returns every waiting caller with its wait (`activeflow_queue_wait_seconds`
/// `result="closed"`).
#[test]
fn close_returns_each_caller_with_its_wait() {
    let (mut m, now) = machine(Strategy::RingAll, 1);
    m.join(ticket(1), now).unwrap();
    m.join(ticket(2), now + Duration::from_secs(1)).unwrap();
    let closed = m.close(now + Duration::from_secs(3));
    assert_eq!(
        closed,
        [
            (ticket(1), Duration::from_secs(3)),
            (ticket(2), Duration::from_secs(2))
        ]
    );
    assert_eq!(m.waiting_count(), 0);
}
