//! The action cursor over a stack of action lists (DESIGN §4 sub-stacks): the main flow at the
//! bottom, pushed lists (`fetch`, `fetch_flow`) above. When a stack runs out the cursor returns to
//! the action after the push; jump targets resolve in the current stack, then its parents.

use std::sync::Arc;

use super::MAX_STACK_DEPTH;
use crate::flow::{find_action, Action, ActionId, Flow};

/// An action list shared, never copied: a registered flow's, or one pushed by fetch.
enum Actions {
    Flow(Arc<Flow>),
    List(Arc<Vec<Action>>),
}

impl Actions {
    fn as_slice(&self) -> &[Action] {
        match self {
            Actions::Flow(f) => &f.actions,
            Actions::List(l) => l,
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
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum CursorError {
    #[error("jump target {0} not found in any stack")]
    UnknownTarget(ActionId),
    #[error("more than {MAX_STACK_DEPTH} nested stacks")]
    TooDeep,
}

impl Cursor {
    /// A cursor before the first action of `flow`.
    pub(crate) fn new(flow: Arc<Flow>) -> Self {
        Cursor {
            stacks: vec![Stack {
                actions: Actions::Flow(flow),
                next: 0,
            }],
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
            self.stacks.pop();
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
        self.stacks.truncate(depth + 1);
        let top = self
            .stacks
            .last_mut()
            .ok_or(CursorError::UnknownTarget(*target))?;
        top.next = find_action(top.actions.as_slice(), target)
            .ok_or(CursorError::UnknownTarget(*target))?;
        Ok(())
    }

    /// Pushes an action list as a sub-stack; its actions run next.
    pub(crate) fn push(&mut self, actions: Arc<Vec<Action>>) -> Result<(), CursorError> {
        self.push_stack(Actions::List(actions))
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
}
