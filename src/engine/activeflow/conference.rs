//! `conference_join` / `confbridge_join`: puts the activeflow's call in a room and waits, as
//! for any media request, until the room lets it go (kick, delete: the flow moves on with the
//! media session's result). A hang-up or stop ends the call, whose media session then drops
//! its link and the room forgets the participant on its next tick. Digits keep reaching this
//! activeflow (they never enter the mix).

use serde_json::json;

use super::waiting::Awaiting;
use super::Activeflow;
use crate::engine::execute::CallRequest;
use crate::flow::ActionId;
use crate::media::MediaRequest;

/// The action's error when the activeflow has no call to put in the room.
#[derive(Debug, thiserror::Error)]
#[error("the call is gone: it cannot join a conference")]
struct CallGone;

impl Activeflow {
    /// Joins the room; false when the activeflow now waits in it, true when the join failed
    /// (recorded in the action's result) and the cursor moves on.
    pub(super) fn join_conference(&mut self, conference_id: &str, next: Option<ActionId>) -> bool {
        // A call that is gone (hung up, or released by a transfer) cannot join: no participant
        // is made for it and no `conference_joined` published.
        if self.call.is_none() || self.call_released {
            self.fail_current(CallGone);
            return true;
        }
        let call_id = self.call_id();
        let hook = self.links.events.flow_hook(&self.flow, self.id.0);
        let joined = self
            .links
            .conferences
            .join(conference_id, call_id, self.id.to_string(), hook);
        let link = match joined {
            Ok(link) => link,
            Err(e) => {
                self.fail_current(e);
                return true;
            }
        };
        self.merge_result(json!({ "conference_id": conference_id }));
        match self.send_call(CallRequest::Media(MediaRequest::Conference(link))) {
            Some(job) => {
                self.awaiting = Some(Awaiting::Media { job, next });
                false
            }
            // Not reached: the call was checked above (`send_call` checks the same). Should it
            // happen, the link dropped with the request, so the room forgets the participant
            // on its next tick.
            None => {
                self.fail_current(CallGone);
                true
            }
        }
    }
}
