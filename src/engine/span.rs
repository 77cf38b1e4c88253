//! The tracing span of one activeflow: `activeflow_id`, and `call_id` and `sip_call_id` when it
//! drives a call. Its actor runs inside it (its context future is instrumented where the
//! supervisor or `originate` starts it), so every line the actor logs, from any handler, timer
//! or future it spawns, carries the ids; the call's own span (`call::span`) carries the same
//! three, so a grep on any one id finds both sides.

use tracing::Span;

use super::ActiveflowId;
use crate::call::CallId;

/// The span's name, as text lines show it (`activeflow{activeflow_id=..}:`).
pub const NAME: &str = "activeflow";

/// A new root span for activeflow `id`, with its call's id and SIP Call-ID (started from another activeflow's handler, it is still
/// not nested in that one's span). At `ERROR` level so that it is enabled whatever `RUST_LOG`
/// keeps (see `call::span`).
pub fn new(id: ActiveflowId, call: Option<(CallId, &str)>) -> Span {
    match call {
        Some((call_id, sip_call_id)) => tracing::error_span!(
            parent: None,
            NAME,
            activeflow_id = %id,
            call_id = %call_id,
            sip_call_id = %sip_call_id,
        ),
        None => tracing::error_span!(parent: None, NAME, activeflow_id = %id),
    }
}
