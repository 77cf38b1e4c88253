//! The queue metric families (names per the engine's conventions; the `result` label takes
//! only `machine::Leave` words): waiting callers, wait time, abandoned calls. Names and
//! recording only; `crate::metrics` installs the buckets and calls `describe`.

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use super::machine::Leave;

pub const QUEUE_CALLERS_WAITING: &str = "activeflow_queue_callers_waiting";
pub const QUEUE_WAIT_SECONDS: &str = "activeflow_queue_wait_seconds";
pub const QUEUE_ABANDONED_TOTAL: &str = "activeflow_queue_abandoned_total";

/// Seconds buckets for a wait in a queue: a second to an hour.
pub const WAIT_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Describes the families and exports them at zero from start-up.
pub fn describe() {
    describe_gauge!(
        QUEUE_CALLERS_WAITING,
        "Callers waiting in a queue (queue_join) now, all queues"
    );
    describe_histogram!(
        QUEUE_WAIT_SECONDS,
        metrics::Unit::Seconds,
        "Time callers waited in a queue, by how they left (answered, timeout, abandoned, stopped, closed)"
    );
    describe_counter!(
        QUEUE_ABANDONED_TOTAL,
        "Callers that hung up while waiting in a queue"
    );
    gauge!(QUEUE_CALLERS_WAITING).set(0.0);
    counter!(QUEUE_ABANDONED_TOTAL).absolute(0);
}

pub(super) fn set_waiting(n: usize) {
    gauge!(QUEUE_CALLERS_WAITING).set(n as f64);
}

/// A caller left the queue after `waited`.
pub(super) fn left(how: Leave, waited: Duration) {
    histogram!(QUEUE_WAIT_SECONDS, "result" => how.as_str()).record(waited.as_secs_f64());
    if how == Leave::Abandoned {
        counter!(QUEUE_ABANDONED_TOTAL).increment(1);
    }
}
