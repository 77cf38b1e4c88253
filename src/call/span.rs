//! The tracing span of one call: `call_id` (ours), `sip_call_id` (the Call-ID header) and
//! `activeflow_id`, which the engine records once it has started the call's activeflow. The
//! session actor runs inside it (see `session::start`), so every line its handlers, its leg
//! machine and its transactions log carries the three ids; lines logged elsewhere about the
//! call name it as their parent.

use std::fmt::Display;

use tracing::field::{display, Empty};
use tracing::Span;

use super::CallId;

/// The span's name, as text lines show it (`call{call_id=..}:`).
pub const NAME: &str = "call";
/// The field the engine fills in with [`record_activeflow`].
pub const ACTIVEFLOW_ID: &str = "activeflow_id";

/// A new root span for call `id` (a root: a leg an activeflow places is not nested in the
/// activeflow's span, it names the activeflow itself). At `ERROR` level so that it is enabled
/// whatever `RUST_LOG` keeps: a warning must carry the ids as well as an info line.
pub fn new(id: CallId, sip_call_id: &str) -> Span {
    tracing::error_span!(
        parent: None,
        NAME,
        call_id = %id,
        sip_call_id = %sip_call_id,
        activeflow_id = Empty,
    )
}

/// Names the activeflow that drives the call (incoming) or placed it (outbound leg).
pub fn record_activeflow(span: &Span, activeflow_id: impl Display) {
    span.record(ACTIVEFLOW_ID, display(activeflow_id));
}
