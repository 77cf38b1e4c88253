//! The bound on calls the `call` action places: every activeflow knows how many `call`
//! generations stand between it and the activeflow that started the tree (an inbound call, the
//! API, `POST /v1/calls`), and the whole tree shares one budget of placed calls. So a flow
//! that calls itself, or `call` nested in inline `actions`, stops at `MAX_CALL_HOPS`
//! generations and `MAX_CALLS_PER_TREE` calls instead of filling the engine. Carried in the
//! activeflow's `Links` (and to an `on_complete_flow_id` successor); must not place calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// `call` generations at most: an activeflow placed by the third nested `call` may not place
/// more (its `call` fails with `too_many_hops`).
pub const MAX_CALL_HOPS: u8 = 3;
/// Calls the `call` action places at most over the life of one tree: the activeflow that
/// started it, the activeflows its calls run, theirs, and their `on_complete_flow_id`
/// successors (beyond, a destination fails with `call_limit`).
pub const MAX_CALLS_PER_TREE: usize = 64;

/// Why `call` may not place a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallTreeError {
    #[error("this activeflow was placed by {MAX_CALL_HOPS} nested `call` actions: it may not place more")]
    TooManyHops,
    #[error("{MAX_CALLS_PER_TREE} calls placed by this activeflow and the ones its calls run")]
    CallLimit,
}

impl CallTreeError {
    /// The `reason` word of the action's result.
    pub fn reason(self) -> &'static str {
        match self {
            CallTreeError::TooManyHops => "too_many_hops",
            CallTreeError::CallLimit => "call_limit",
        }
    }
}

/// Where an activeflow stands in its tree of placed calls.
#[derive(Debug, Clone, Default)]
pub struct CallTree {
    /// 0: not placed by `call`; n: placed by the n-th nested `call`.
    hops: u8,
    /// Calls placed by `call` anywhere in the tree.
    placed: Arc<AtomicUsize>,
}

impl CallTree {
    pub fn hops(&self) -> u8 {
        self.hops
    }

    /// The tree position of the activeflows this one's `call` places.
    pub fn child(&self) -> Result<CallTree, CallTreeError> {
        if self.hops >= MAX_CALL_HOPS {
            return Err(CallTreeError::TooManyHops);
        }
        Ok(CallTree {
            hops: self.hops + 1,
            placed: self.placed.clone(),
        })
    }

    /// Takes one call from the tree's budget.
    pub fn take_call(&self) -> Result<(), CallTreeError> {
        self.placed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_CALLS_PER_TREE).then_some(n + 1)
            })
            .map(|_| ())
            .map_err(|_| CallTreeError::CallLimit)
    }

    /// Gives back a call `take_call` took that was not placed after all.
    pub fn return_call(&self) {
        let _ = self
            .placed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_stop_at_the_hop_limit() {
        let mut tree = CallTree::default();
        for hops in 1..=MAX_CALL_HOPS {
            tree = tree.child().unwrap();
            assert_eq!(tree.hops(), hops);
        }
        assert_eq!(tree.child().unwrap_err(), CallTreeError::TooManyHops);
        assert_eq!(CallTreeError::TooManyHops.reason(), "too_many_hops");
    }

    #[test]
    fn the_whole_tree_shares_one_budget() {
        let root = CallTree::default();
        let child = root.child().unwrap();
        for n in 0..MAX_CALLS_PER_TREE {
            let who = if n % 2 == 0 { &root } else { &child };
            who.take_call().unwrap();
        }
        assert_eq!(child.take_call(), Err(CallTreeError::CallLimit));
        assert_eq!(root.take_call(), Err(CallTreeError::CallLimit));
        root.return_call();
        assert!(child.take_call().is_ok());
        assert!(CallTree::default().take_call().is_ok(), "another tree");
    }
}
