//! Starting a call session inside its call's span (`call::span`): the actor's whole context
//! future is instrumented, so its handlers, timers, futures and its drop all log with the
//! call's ids, without entering the span in each handler. The span is made on the session's
//! own arbiter, off the SIP receive path.

use actix::dev::channel;
use actix::prelude::*;
use tracing::Instrument;

use super::CallSession;

/// Mailbox capacity for `send`/`try_send`, as actix's own `start` (`do_send` ignores it).
const MAILBOX_CAPACITY: usize = 16;

impl CallSession {
    /// This call's span, fresh.
    fn new_span(&self) -> tracing::Span {
        crate::call::span::new(self.leg.id, &self.leg.sip_call_id)
    }

    /// Starts the session that `make` builds, on `arbiter`, as `start_in_arbiter` would.
    pub(in crate::call) fn start_traced_in_arbiter(
        arbiter: &ArbiterHandle,
        make: impl FnOnce() -> CallSession + Send + 'static,
    ) -> Addr<CallSession> {
        let (tx, rx) = channel::channel(MAILBOX_CAPACITY);
        arbiter.spawn_fn(move || {
            let session = make();
            let span = session.new_span();
            let context = Context::with_receiver(rx);
            actix_rt::spawn(context.into_future(session).instrument(span));
        });
        Addr::new(tx)
    }

    /// Starts the session on the current arbiter, as `start` would; returns its span too (the
    /// engine records the activeflow that placed the leg on it).
    pub(in crate::call) fn start_traced(self) -> (Addr<CallSession>, tracing::Span) {
        let span = self.new_span();
        let context = Context::new();
        let addr = context.address();
        actix_rt::spawn(context.into_future(self).instrument(span.clone()));
        (addr, span)
    }
}
