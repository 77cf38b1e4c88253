//! The action cursor over a stack of action lists (ARCHITECTURE §7 sub-stacks): the main flow at the
//! bottom, pushed lists (`fetch`, `fetch_flow`) above. When a stack runs out the cursor returns to
//! the action after the push; jump targets resolve in the current stack, then its parents.
//! Fetched lists are this activeflow's own copies: together they hold at most
//! [`MAX_FETCHED_BYTES`] (registered flows pushed by `fetch_flow` are shared, not counted).

use std::sync::Arc;

use super::record::json_bytes_up_to;
use super::MAX_STACK_DEPTH;
use crate::flow::{find_action, Action, ActionId, Flow};

/// Bytes (JSON, about) of fetched action lists one activeflow may hold on its stacks at once.
/// One `fetch` answer is at most `http.max_response_bytes` (1 MiB by default); without this, a
/// server answering a fetch that fetches again would pile up `MAX_STACK_DEPTH` answers (100
/// MiB) per activeflow. 4 MiB keeps ordinary nesting (a few small lists) untouched.
pub(crate) const MAX_FETCHED_BYTES: usize = 4 * 1024 * 1024;

/// An action list shared, never copied: a registered flow's, or one pushed by fetch (with its
/// size, counted against [`MAX_FETCHED_BYTES`]).
enum Actions {
    Flow(Arc<Flow>),
    List(Arc<Vec<Action>>, usize),
}

impl Actions {
    fn as_slice(&self) -> &[Action] {
        match self {
            Actions::Flow(f) => &f.actions,
            Actions::List(l, _) => l,
        }
    }
}

struct Stack {
    actions: Actions,
    /// Index of the action that runs next in this stack.
    next: usize,
}

pub(crate) struct Cursor {
    stacks: Vec<Stack>,
    /// Bytes of the fetched lists on `stacks`.
    fetched_bytes: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum CursorError {
    #[error("jump target {0} not found in any stack")]
    UnknownTarget(ActionId),
    #[error("more than {MAX_STACK_DEPTH} nested stacks")]
    TooDeep,
    #[error("fetched actions would hold more than {MAX_FETCHED_BYTES} bytes in this activeflow")]
    TooLarge,
}

impl Cursor {
    /// A cursor before the first action of `flow`.
    pub(crate) fn new(flow: Arc<Flow>) -> Self {
        Cursor {
            stacks: vec![Stack {
                actions: Actions::Flow(flow),
                next: 0,
            }],
            fetched_bytes: 0,
        }
    }

    /// Moves onto the next action (falling out of exhausted sub-stacks); `None` when the flow
    /// has run out of actions.
    pub(crate) fn advance(&mut self) -> Option<&Action> {
        loop {
            let top = self.stacks.last()?;
            if top.next < top.actions.as_slice().len() {
                break;
            }
            if self.stacks.len() == 1 {
                return None;
            }
            self.pop();
        }
        let top = self.stacks.last_mut()?;
        let index = top.next;
        top.next += 1;
        top.actions.as_slice().get(index)
    }

    /// Makes `target` the next action, searching the current stack then its parents (popping
    /// the stacks above the one that holds it).
    pub(crate) fn jump(&mut self, target: &ActionId) -> Result<(), CursorError> {
        let depth = self
            .stacks
            .iter()
            .rposition(|s| find_action(s.actions.as_slice(), target).is_some())
            .ok_or(CursorError::UnknownTarget(*target))?;
        while self.stacks.len() > depth + 1 {
            self.pop();
        }
        let top = self
            .stacks
            .last_mut()
            .ok_or(CursorError::UnknownTarget(*target))?;
        top.next = find_action(top.actions.as_slice(), target)
            .ok_or(CursorError::UnknownTarget(*target))?;
        Ok(())
    }

    /// Pushes a fetched action list as a sub-stack; its actions run next.
    pub(crate) fn push(&mut self, actions: Arc<Vec<Action>>) -> Result<(), CursorError> {
        let left = MAX_FETCHED_BYTES.saturating_sub(self.fetched_bytes);
        let mut bytes = 0;
        for a in actions.iter() {
            // The option dominates; type, ids and punctuation are about 100 bytes.
            bytes += 100 + a.kind.len();
            bytes += json_bytes_up_to(&a.option, left);
            if bytes > left {
                return Err(CursorError::TooLarge);
            }
        }
        self.push_stack(Actions::List(actions, bytes))?;
        self.fetched_bytes += bytes;
        Ok(())
    }

    /// Pushes a registered flow's actions as a sub-stack (`fetch_flow`), shared, not copied.
    pub(crate) fn push_flow(&mut self, flow: Arc<Flow>) -> Result<(), CursorError> {
        self.push_stack(Actions::Flow(flow))
    }

    fn push_stack(&mut self, actions: Actions) -> Result<(), CursorError> {
        if self.stacks.len() >= MAX_STACK_DEPTH {
            return Err(CursorError::TooDeep);
        }
        self.stacks.push(Stack { actions, next: 0 });
        Ok(())
    }

    /// Drops the top stack (not the flow's own, at the bottom).
    fn pop(&mut self) {
        if let Some(Stack {
            actions: Actions::List(_, bytes),
            ..
        }) = self.stacks.pop()
        {
            self.fetched_bytes -= bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(kinds: &[&str]) -> Arc<Vec<Action>> {
        Arc::new(kinds.iter().map(|k| Action::new(*k, json!({}))).collect())
    }

    fn flow(kinds: &[&str]) -> Arc<Flow> {
        Arc::new(Flow::new("t", list(kinds).to_vec()))
    }

    #[test]
    fn walks_falls_out_of_substacks_and_jumps_to_parents() {
        let main = flow(&["answer", "stop", "hangup"]);
        let sub = list(&["sleep", "variable_set"]);
        let mut c = Cursor::new(main.clone());
        assert_eq!(c.advance().unwrap().kind, "answer");
        c.push(sub.clone()).unwrap();
        assert_eq!(c.advance().unwrap().kind, "sleep");
        assert_eq!(c.advance().unwrap().kind, "variable_set");
        // Sub-stack exhausted: back to the action after the push.
        assert_eq!(c.advance().unwrap().kind, "stop");
        c.push(sub.clone()).unwrap();
        c.jump(&main.actions[2].id).unwrap();
        assert_eq!(c.advance().unwrap().kind, "hangup");
        assert!(c.advance().is_none());
        assert_eq!(
            c.jump(&ActionId::new())
                .map_err(|e| matches!(e, CursorError::UnknownTarget(_))),
            Err(true)
        );
    }

    #[test]
    fn depth_is_limited() {
        let mut c = Cursor::new(flow(&["answer"]));
        for _ in 1..MAX_STACK_DEPTH {
            c.push(list(&["sleep"])).unwrap();
        }
        assert_eq!(c.push(list(&["sleep"])), Err(CursorError::TooDeep));
    }

    #[test]
    fn fetched_lists_are_capped_in_bytes_and_freed_when_left() {
        let big = || {
            let pad = "p".repeat(MAX_FETCHED_BYTES / 4);
            Arc::new(vec![Action::new(
                "sleep",
                json!({"duration": 1, "pad": pad}),
            )])
        };
        let main = flow(&["answer", "hangup"]);
        let mut c = Cursor::new(main.clone());
        c.advance();
        for _ in 0..3 {
            c.push(big()).unwrap();
        }
        assert_eq!(c.push(big()), Err(CursorError::TooLarge));
        assert!(c.fetched_bytes > 3 * MAX_FETCHED_BYTES / 4);
        // Falling out of a sub-stack frees its bytes; so does a jump to a parent.
        assert_eq!(c.advance().unwrap().kind, "sleep");
        assert_eq!(c.advance().unwrap().kind, "sleep");
        c.push(big()).unwrap();
        c.jump(&main.actions[1].id).unwrap();
        assert_eq!(c.fetched_bytes, 0);
        // A registered flow is shared, not counted.
        c.push_flow(flow(&["sleep"])).unwrap();
        assert_eq!(c.fetched_bytes, 0);
    }
}
