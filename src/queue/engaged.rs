//! Which agents ring or talk for a queue caller right now, engine-wide: one table in the queue
//! manager, keyed by the agent's normalised address, so an agent listed in two queues (or
//! dropped and re-added by a `PUT`, or left bridged by a deleted queue) is never rung while it
//! rings or talks for another caller. Sans-IO; must not decide who rings (the machines do).

use std::collections::HashMap;

use super::machine::Ticket;
use crate::flow::outbound::{Address, AddressType};

/// Agents engaged at most (beyond, a new one is not recorded and a warning is logged: it may
/// then be rung by a second queue, the behaviour before this table).
pub const MAX_ENGAGED: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engagement {
    Ringing,
    Bridged,
}

/// Agent key → the caller it rings or talks for.
#[derive(Default)]
pub struct Engaged {
    agents: HashMap<String, (Ticket, Engagement)>,
}

/// The key two spellings of one agent share: a SIP URI's scheme and host are case-blind
/// (RFC 3261 §19.1.4; its user part is not), a number's visual separators (RFC 3966 §5.1.1)
/// do not count.
pub fn agent_key(a: &Address) -> String {
    match a.kind {
        AddressType::Tel => {
            let digits: String = a
                .target
                .trim()
                .trim_start_matches("tel:")
                .chars()
                .filter(|c| !matches!(c, '-' | '.' | ' ' | '(' | ')'))
                .collect();
            format!("tel:{digits}")
        }
        AddressType::Sip => {
            let t = a.target.trim();
            let (scheme, rest) = match t.split_once(':') {
                Some((s, r)) if s.eq_ignore_ascii_case("sip") || s.eq_ignore_ascii_case("sips") => {
                    (s.to_ascii_lowercase(), r)
                }
                _ => ("sip".to_owned(), t),
            };
            match rest.rsplit_once('@') {
                Some((user, host)) => format!("{scheme}:{user}@{}", host.to_ascii_lowercase()),
                None => format!("{scheme}:{}", rest.to_ascii_lowercase()),
            }
        }
        AddressType::Extension => format!("ext:{}", a.target.trim()),
    }
}

impl Engaged {
    pub fn is_engaged(&self, a: &Address) -> bool {
        self.agents.contains_key(&agent_key(a))
    }

    /// `agent` now rings for `ticket`.
    pub fn ringing(&mut self, ticket: Ticket, agent: &Address) {
        let key = agent_key(agent);
        if self.agents.len() >= MAX_ENGAGED && !self.agents.contains_key(&key) {
            tracing::warn!("{MAX_ENGAGED} queue agents engaged; {key} not recorded as ringing");
            return;
        }
        self.agents.insert(key, (ticket, Engagement::Ringing));
    }

    /// `agent` answered `ticket`: it is bridged; the others ringing for `ticket` are freed.
    pub fn answered(&mut self, ticket: Ticket, agent: &Address) {
        let key = agent_key(agent);
        self.agents.retain(|k, (t, _)| *t != ticket || *k == key);
        if let Some(e) = self.agents.get_mut(&key) {
            e.1 = Engagement::Bridged;
        }
    }

    /// `agent`'s ring failed, or its bridged call with `ticket` ended.
    pub fn freed(&mut self, ticket: Ticket, agent: &Address) {
        let key = agent_key(agent);
        if self.agents.get(&key).is_some_and(|(t, _)| *t == ticket) {
            self.agents.remove(&key);
        }
    }

    /// The caller `ticket` left without an agent (its activeflow hangs up every leg it rang).
    pub fn left(&mut self, ticket: Ticket) {
        self.agents
            .retain(|_, (t, e)| *t != ticket || *e == Engagement::Bridged);
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(t: &str) -> Address {
        Address {
            kind: AddressType::Sip,
            target: t.to_owned(),
        }
    }

    fn ticket(n: u64) -> Ticket {
        Ticket {
            activeflow: uuid::Uuid::nil(),
            n,
        }
    }

    #[test]
    fn one_agent_spelled_two_ways_has_one_key() {
        assert_eq!(
            agent_key(&sip("SIP:alice@PBX.example")),
            agent_key(&sip("sip:alice@pbx.example"))
        );
        assert_ne!(
            agent_key(&sip("sip:alice@pbx")),
            agent_key(&sip("sip:Alice@pbx")),
            "the user part is case-sensitive"
        );
        let tel = |t: &str| Address {
            kind: AddressType::Tel,
            target: t.to_owned(),
        };
        assert_eq!(agent_key(&tel("+1-555-0100")), agent_key(&tel("+15550100")));
    }

    /// Ringing, then bridged, is engaged until released; a departing caller frees only the
    /// agents still ringing for it.
    #[test]
    fn an_agent_is_engaged_until_its_ring_or_call_ends() {
        let (alice, bob) = (sip("sip:alice@pbx"), sip("sip:bob@pbx"));
        let (t1, t2) = (ticket(1), ticket(2));
        let mut e = Engaged::default();
        e.ringing(t1, &alice);
        e.ringing(t1, &bob);
        assert!(e.is_engaged(&sip("sip:alice@PBX")));
        e.answered(t1, &alice);
        assert!(e.is_engaged(&alice));
        assert!(!e.is_engaged(&bob), "the other ringing agent is freed");
        e.left(t1);
        assert!(e.is_engaged(&alice), "a bridged agent stays engaged");
        e.freed(t2, &alice);
        assert!(
            e.is_engaged(&alice),
            "another caller's report does not free it"
        );
        e.freed(t1, &alice);
        assert!(e.is_empty());
        e.ringing(t2, &bob);
        e.left(t2);
        assert!(!e.is_engaged(&bob));
    }
}
