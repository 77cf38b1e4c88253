//! Every metric name, unit, label value and histogram bucket in one place (ARCHITECTURE §13).
//! Other modules call the small recording helpers here and never spell a metric name themselves;
//! labels are low-cardinality words, never ids, numbers or URIs.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Gauge, Histogram,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

mod capacity;
pub use capacity::{
    rtp_ports_pool, sip_unavailable, Unavailable, RTP_PORTS_CAPACITY, RTP_PORTS_IN_USE,
    SIP_UNAVAILABLE_TOTAL, UNAVAILABLE_REASONS,
};

/// `activeflow_build_info{version}`: always 1; the version is the crate's (one series per
/// binary, so a fixed word for the life of the process).
pub const BUILD_INFO: &str = "activeflow_build_info";

pub const ACTIVEFLOW_RUNNING: &str = "activeflow_running";
pub const ACTIVEFLOW_STARTED_TOTAL: &str = "activeflow_started_total";
pub const ACTIVEFLOW_ENDED_TOTAL: &str = "activeflow_ended_total";
pub const ACTIVEFLOW_DURATION_SECONDS: &str = "activeflow_duration_seconds";
pub const ACTIVEFLOW_ACTIONS_EXECUTED_TOTAL: &str = "activeflow_actions_executed_total";
pub const ACTIVEFLOW_ACTION_ERRORS_TOTAL: &str = "activeflow_action_errors_total";
pub const ACTIVEFLOW_ACTION_DURATION_SECONDS: &str = "activeflow_action_duration_seconds";
pub const ACTIVEFLOW_LIMIT_EXCEEDED_TOTAL: &str = "activeflow_limit_exceeded_total";
pub const SIP_REQUESTS_RECEIVED_TOTAL: &str = "sip_requests_received_total";
pub const SIP_RESPONSES_SENT_TOTAL: &str = "sip_responses_sent_total";
pub const SIP_RETRANSMISSIONS_TOTAL: &str = "sip_retransmissions_total";
pub const SIP_MALFORMED_TOTAL: &str = "sip_malformed_total";
pub const SIP_RATE_LIMITED_TOTAL: &str = "activeflow_sip_rate_limited_total";
pub const SIP_DIALOG_TRANSACTIONS_REFUSED_TOTAL: &str =
    "activeflow_sip_dialog_transactions_refused_total";
pub const SIP_PRACKS_SENT_TOTAL: &str = "activeflow_sip_pracks_sent_total";
pub const SIP_PRACK_TIMEOUTS_TOTAL: &str = "activeflow_sip_prack_timeouts_total";
pub const CONNECT_EARLY_MEDIA_TOTAL: &str = "activeflow_connect_early_media_total";
pub const CALLS_ACTIVE: &str = "calls_active";
pub const REGISTRATIONS_ACTIVE: &str = "activeflow_registrations_active";
pub const SIP_AUTH_FAILURES_TOTAL: &str = "activeflow_sip_auth_failures_total";
pub const SIP_AUTH_BANNED_TOTAL: &str = "activeflow_sip_auth_banned_total";
/// `reason` values of `activeflow_sip_auth_failures_total`
/// (`sip::auth::server::AuthFailure::label`).
pub const AUTH_FAILURE_REASONS: &[&str] = &[
    "unknown_user",
    "wrong_password",
    "malformed",
    "bad_nonce",
    "replay",
];
pub const CALLS_TOTAL: &str = "calls_total";
pub const CALL_SETUP_SECONDS: &str = "call_setup_seconds";
pub const MEDIA_SESSIONS_ACTIVE: &str = "activeflow_media_sessions_active";
pub const EXTERNAL_MEDIA_STREAMS_ACTIVE: &str = "activeflow_external_media_streams_active";
pub const EXTERNAL_MEDIA_FRAMES_DROPPED_TOTAL: &str =
    "activeflow_external_media_frames_dropped_total";
/// `encapsulation` label values of the external media metrics.
pub const EXTERNAL_MEDIA_ENCAPSULATIONS: &[&str] = &["rtp", "websocket"];
pub const RTP_PACKETS_SENT_TOTAL: &str = "activeflow_rtp_packets_sent_total";
pub const RTP_PACKETS_RECEIVED_TOTAL: &str = "activeflow_rtp_packets_received_total";
pub const RTP_LATE_TICKS_TOTAL: &str = "activeflow_rtp_late_ticks_total";
pub const DTMF_RECEIVED_TOTAL: &str = "activeflow_dtmf_received_total";
pub const CALL_TRANSFERS_TOTAL: &str = "activeflow_call_transfers_total";
pub const RTP_PACKETS_DROPPED_TOTAL: &str = "activeflow_rtp_packets_dropped_total";
pub const STORAGE_QUEUE_FULL_TOTAL: &str = "activeflow_storage_queue_full_total";
pub const STORAGE_WRITES_TOTAL: &str = "activeflow_storage_writes_total";
pub const STORAGE_WRITE_ERRORS_TOTAL: &str = "activeflow_storage_write_errors_total";
pub const STORAGE_WRITE_REJECTED_TOTAL: &str = "activeflow_storage_write_rejected_total";
pub const STORAGE_BATCH_SECONDS: &str = "activeflow_storage_batch_seconds";
pub const WEBHOOK_DELIVERIES_TOTAL: &str = "activeflow_webhook_deliveries_total";
pub const EVENTS_WINDOW_EXCEEDED_TOTAL: &str = "activeflow_events_window_exceeded_total";
pub const EVENTS_READERS: &str = "activeflow_events_readers";
pub const EVENTS_READERS_REFUSED_TOTAL: &str = "activeflow_events_readers_refused_total";
pub const EVENTS_READERS_DROPPED_TOTAL: &str = "activeflow_events_readers_dropped_total";
pub const ACTOR_PANICS_TOTAL: &str = "activeflow_actor_panics_total";
pub const SIP_TCP_CONNECTIONS_ACTIVE: &str = "activeflow_sip_tcp_connections_active";
pub const SIP_TCP_CONNECTIONS_REFUSED_TOTAL: &str = "activeflow_sip_tcp_connections_refused_total";
pub const SIP_TCP_CONNECTIONS_CLOSED_TOTAL: &str = "activeflow_sip_tcp_connections_closed_total";
pub const SIP_TLS_HANDSHAKE_FAILURES_TOTAL: &str = "activeflow_sip_tls_handshake_failures_total";
pub const SIP_TCP_MESSAGES_DROPPED_TOTAL: &str = "activeflow_sip_tcp_messages_dropped_total";
pub const SIP_DNS_RESOLUTIONS_TOTAL: &str = "activeflow_sip_dns_resolutions_total";
pub const SIP_FAILOVERS_TOTAL: &str = "activeflow_sip_failovers_total";
pub const COMPONENT_UP: &str = "activeflow_component_up";
pub const COMPONENT_RESTARTS_TOTAL: &str = "activeflow_component_restarts_total";
pub const WEBHOOK_WORKERS_ACTIVE: &str = "activeflow_webhook_workers_active";
pub const OUTBOUND_REFUSED_TOTAL: &str = "activeflow_outbound_refused_total";
pub const OUTBOUND_CALL_REQUESTS_TOTAL: &str = "activeflow_outbound_call_requests_total";
pub const TRUNK_REGISTERED: &str = "activeflow_trunk_registered";
pub const TRUNK_REGISTER_FAILURES_TOTAL: &str = "activeflow_trunk_register_failures_total";
pub const MEDIA_FILES_PURGED_TOTAL: &str = "activeflow_media_files_purged_total";

/// Label values known at start-up, exported at zero so no series is ever missing.
pub const REFERENCE_TYPES: &[&str] = &["call", "api"];
pub const END_REASONS: &[&str] = &[
    "completed",
    "stop_action",
    "operator_stop",
    "hangup",
    "ack_timeout",
    "rtp_timeout",
    "max_duration",
    "session_expired",
    "loop_limit",
    "error",
    "shutdown",
    "engine_restart",
    "not_answered",
    "node_lost",
];
/// Every action type the engine runs (the flow module's list, so the two never drift).
pub const ACTION_TYPES: &[&str] = crate::flow::SUPPORTED_TYPES;
/// `limit` label of `activeflow_limit_exceeded_total`: the `[engine]` key of the cap.
pub const FLOW_LIMITS: &[&str] = crate::flow::limits::LIMIT_NAMES;
pub const SIP_METHODS: &[&str] = &[
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "UPDATE", "PRACK", "REGISTER", "MESSAGE",
    "REFER", "NOTIFY", "OTHER",
];
pub const SIP_CODES: &[&str] = &[
    "100", "180", "200", "400", "403", "404", "405", "481", "486", "480", "487", "488", "500",
    "501", "503", "603",
];
/// `SIP_CODES` as numbers, same order.
const SIP_CODE_VALUES: &[u16] = &[
    100, 180, 200, 400, 403, 404, 405, 481, 486, 480, 487, 488, 500, 501, 503, 603,
];
pub const TRANSPORTS: &[&str] = &["udp", "tcp", "tls"];
pub const DIRECTIONS: &[&str] = &["in", "out"];
pub const CALL_OUTCOMES: &[&str] = &["answered", "rejected", "cancelled", "failed"];
pub const DTMF_SOURCES: &[&str] = &["rfc4733", "sip_info"];
/// `direction` of `activeflow_call_transfers_total`: the peer's REFER (`inbound`) or ours
/// (`outbound`).
pub const TRANSFER_DIRECTIONS: &[&str] = &["inbound", "outbound"];
/// `outcome` of `activeflow_call_transfers_total`: a REFER accepted (`requested`), then how it
/// ended.
pub const TRANSFER_OUTCOMES: &[&str] = &["requested", "transferred", "failed", "rejected"];
/// Why strict RTP dropped a packet: another source than the latched one, or no peer address
/// known yet.
pub const RTP_DROP_REASONS: &[&str] = &["source", "no_remote"];
/// Actors whose panics are contained (`activeflow_actor_panics_total`).
pub const ACTORS: &[&str] = &["call_session", "activeflow"];
/// `storage::WriteKind` labels.
pub const STORAGE_WRITE_KINDS: &[&str] = &["running", "ended", "call", "flow", "other"];
/// Watched parts (`health::Component` names, same order).
pub const COMPONENTS: &[&str] = &["sip_udp", "storage_writer", "recording_writer", "storage"];
/// [`WebhookOutcome`] labels, same order.
pub const WEBHOOK_OUTCOMES: &[&str] = &["delivered", "failed", "dropped"];
/// `queue` of `activeflow_webhook_workers_active`: non-sync `webhook_send`, event webhooks.
pub const WEBHOOK_QUEUES: &[&str] = &["webhook_send", "event_webhook"];
/// `work` of `activeflow_outbound_refused_total`: what a cap refused.
/// `origin` of `activeflow_outbound_call_requests_total`: `POST /v1/calls` or the `call` action.
pub const OUTBOUND_CALL_ORIGINS: &[&str] = &["api", "call_action"];
/// `result` of `activeflow_outbound_call_requests_total`.
pub const OUTBOUND_CALL_RESULTS: &[&str] = &["placed", "refused"];
pub const OUTBOUND_WORK: &[&str] = &["webhook_send", "message_send", "tts", "prompt_fetch"];
/// `kind` of `activeflow_media_files_purged_total`.
pub const MEDIA_FILE_KINDS: &[&str] = &["cache", "recording"];
/// Why a TCP connection was refused at accept (or an own connection not opened).
pub const TCP_REFUSE_REASONS: &[&str] = &["acl", "banned", "per_ip_limit", "total_limit"];
/// Why a TCP connection was closed.
pub const TCP_CLOSE_REASONS: &[&str] = &[
    "peer_closed",
    "idle",
    "stalled_message",
    "framing",
    "stalled_reader",
    "write_timeout",
    "write_error",
    "connect_failed",
    "tls_handshake",
];

/// `result` of `activeflow_sip_dns_resolutions_total` (RFC 3263 resolution of a trunk or URI host).
pub const DNS_RESULTS: &[&str] = &["resolved", "not_found"];
/// `reason` of `activeflow_sip_failovers_total`: why a request moved to the next target (RFC 3263
/// §4.3).
pub const FAILOVER_REASONS: &[&str] = &["unavailable", "timeout", "transport"];

/// Seconds buckets for call set-up: milliseconds to tens of seconds.
const SETUP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Seconds buckets for activeflow duration: sub-second flows to hour-long calls.
const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
];
/// Seconds buckets for one action's execution: microseconds (control) to minutes (sleep).
const ACTION_BUCKETS: &[f64] = &[
    0.00001, 0.0001, 0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Errors installing the Prometheus recorder.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics: {0}")]
    Build(String),
}

/// Installs the global Prometheus recorder with telephony buckets and describes every metric.
/// Call once per process; the returned handle renders `/metrics`.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    let err = |e: metrics_exporter_prometheus::BuildError| MetricsError::Build(e.to_string());
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(CALL_SETUP_SECONDS.into()),
            SETUP_BUCKETS,
        )
        .map_err(err)?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(ACTIVEFLOW_DURATION_SECONDS.into()),
            DURATION_BUCKETS,
        )
        .map_err(err)?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(ACTIVEFLOW_ACTION_DURATION_SECONDS.into()),
            ACTION_BUCKETS,
        )
        .map_err(err)?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(STORAGE_BATCH_SECONDS.into()),
            SETUP_BUCKETS,
        )
        .map_err(err)?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(
                crate::queue::metrics::QUEUE_WAIT_SECONDS.into(),
            ),
            crate::queue::metrics::WAIT_BUCKETS,
        )
        .map_err(err)?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(CONFERENCE_MIX_TICK_LATENESS_SECONDS.into()),
            CONFERENCE_LATENESS_BUCKETS,
        )
        .map_err(err)?
        .install_recorder()
        .map_err(err)?;
    describe_all();
    register_zeroes();
    crate::queue::metrics::describe();
    process_collector().describe();
    process_collector().collect();
    Ok(handle)
}

/// Process metrics (`process_resident_memory_bytes`, `process_cpu_seconds_total`,
/// `process_open_fds`, ...), refreshed on every scrape.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: std::sync::OnceLock<metrics_process::Collector> = std::sync::OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Refreshes process metrics; call before rendering `/metrics`.
pub fn collect_process() {
    process_collector().collect();
}

fn describe_all() {
    capacity::describe();
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label is the running binary's version"
    );
    describe_conference();
    describe_cluster();
    describe_cluster_events();
    describe_gauge!(ACTIVEFLOW_RUNNING, "Activeflows currently running");
    describe_counter!(ACTIVEFLOW_STARTED_TOTAL, "Activeflows started");
    describe_counter!(ACTIVEFLOW_ENDED_TOTAL, "Activeflows ended, by end reason");
    describe_histogram!(
        ACTIVEFLOW_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Activeflow lifetime"
    );
    describe_counter!(
        ACTIVEFLOW_ACTIONS_EXECUTED_TOTAL,
        "Actions executed, by type"
    );
    describe_counter!(
        ACTIVEFLOW_ACTION_ERRORS_TOTAL,
        "Actions that failed, by type"
    );
    describe_histogram!(
        ACTIVEFLOW_ACTION_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Time from an action becoming current to the cursor moving on"
    );
    describe_counter!(
        SIP_REQUESTS_RECEIVED_TOTAL,
        "SIP requests received, by method"
    );
    describe_counter!(
        SIP_RESPONSES_SENT_TOTAL,
        "SIP responses sent, by status code"
    );
    describe_counter!(SIP_RETRANSMISSIONS_TOTAL, "SIP retransmissions, in or out");
    describe_counter!(SIP_MALFORMED_TOTAL, "Malformed SIP messages, by transport");
    describe_counter!(
        SIP_RATE_LIMITED_TOTAL,
        "Out-of-dialog SIP requests over their source's rate (sip.max_new_calls_per_source_per_second), by method"
    );
    describe_counter!(
        SIP_DIALOG_TRANSACTIONS_REFUSED_TOTAL,
        "In-dialog requests refused (503) because their dialog holds its cap of server transactions"
    );
    describe_counter!(
        SIP_PRACKS_SENT_TOTAL,
        "PRACKs we sent for callees' reliable provisional responses (RFC 3262)"
    );
    describe_counter!(
        SIP_PRACK_TIMEOUTS_TOTAL,
        "Calls refused (504) because our reliable provisional got no PRACK within 64*T1"
    );
    describe_counter!(
        CONNECT_EARLY_MEDIA_TOTAL,
        "connect legs whose early media (SDP in 18x) was relayed to the caller, by kind"
    );
    describe_gauge!(CALLS_ACTIVE, "Call sessions currently up");
    describe_gauge!(
        REGISTRATIONS_ACTIVE,
        "Phone contacts currently registered ([[users]])"
    );
    describe_counter!(
        SIP_AUTH_FAILURES_TOTAL,
        "Digest authentications refused, by reason"
    );
    describe_counter!(
        SIP_AUTH_BANNED_TOTAL,
        "Sources banned after sip.auth_fail_limit failed authentications"
    );
    describe_counter!(CALLS_TOTAL, "Calls finished, by direction and outcome");
    describe_histogram!(
        CALL_SETUP_SECONDS,
        metrics::Unit::Seconds,
        "INVITE received to final response sent"
    );
    describe_gauge!(MEDIA_SESSIONS_ACTIVE, "RTP sessions currently open");
    describe_gauge!(
        EXTERNAL_MEDIA_STREAMS_ACTIVE,
        "External media streams (external_media_start) running, by encapsulation"
    );
    describe_counter!(
        EXTERNAL_MEDIA_FRAMES_DROPPED_TOTAL,
        "External media frames lost on a full queue (slow host or stalled session)"
    );
    describe_counter!(RTP_PACKETS_SENT_TOTAL, "RTP packets sent");
    describe_counter!(RTP_PACKETS_RECEIVED_TOTAL, "Valid RTP packets received");
    describe_counter!(
        RTP_LATE_TICKS_TOTAL,
        "20 ms send ticks skipped because the media thread was late"
    );
    describe_counter!(DTMF_RECEIVED_TOTAL, "DTMF digits received, by source");
    describe_counter!(
        CALL_TRANSFERS_TOTAL,
        "Blind transfers by REFER (RFC 3515), by direction and outcome"
    );
    describe_counter!(
        RTP_PACKETS_DROPPED_TOTAL,
        "RTP packets dropped by strict RTP, by reason (source: not the latched peer)"
    );
    describe_counter!(
        STORAGE_QUEUE_FULL_TOTAL,
        "Storage writes that found the queue full, by kind (running: deferred; others waited)"
    );
    describe_counter!(STORAGE_WRITES_TOTAL, "Storage writes committed");
    describe_counter!(
        STORAGE_WRITE_ERRORS_TOTAL,
        "Failed storage commit attempts, a passing cause (disk full, busy, I/O): each retry \
         counts; their writes are kept"
    );
    describe_counter!(
        STORAGE_WRITE_REJECTED_TOTAL,
        "Storage writes dropped because they failed on their own (row over \
         storage.max_row_bytes, a constraint); the rest of their batch committed"
    );
    describe_histogram!(
        STORAGE_BATCH_SECONDS,
        metrics::Unit::Seconds,
        "Time to apply and commit one storage batch"
    );
    describe_counter!(
        WEBHOOK_DELIVERIES_TOTAL,
        "Event webhook deliveries, by outcome (dropped: the queue was full)"
    );
    describe_gauge!(
        SIP_TCP_CONNECTIONS_ACTIVE,
        "Open SIP/TCP and SIP/TLS connections, accepted and our own"
    );
    describe_counter!(
        SIP_TCP_CONNECTIONS_REFUSED_TOTAL,
        "SIP/TCP and SIP/TLS connections refused: source outside every trunk ACL, banned, or over a cap"
    );
    describe_counter!(
        SIP_TCP_CONNECTIONS_CLOSED_TOTAL,
        "SIP/TCP and SIP/TLS connections closed, by reason (stalled_reader: its write queue was full)"
    );
    describe_counter!(
        SIP_TLS_HANDSHAKE_FAILURES_TOTAL,
        "SIP/TLS handshakes that failed (bad or untrusted certificate, timeout), by direction"
    );
    describe_counter!(
        SIP_DNS_RESOLUTIONS_TOTAL,
        "RFC 3263 resolutions of a next hop (NAPTR/SRV/A/AAAA), by result"
    );
    describe_counter!(
        SIP_FAILOVERS_TOTAL,
        "Requests moved to the next resolved target (503, no answer in time, transport error)"
    );
    describe_counter!(
        SIP_TCP_MESSAGES_DROPPED_TOTAL,
        "SIP messages dropped unsent: connect failed or the connection closed with them queued"
    );
    describe_gauge!(
        COMPONENT_UP,
        "1 while a watched part (a thread the engine needs) runs, 0 when dead or not started"
    );
    describe_counter!(
        COMPONENT_RESTARTS_TOTAL,
        "Watched parts restarted after dying, by component"
    );
    describe_gauge!(
        EVENTS_READERS,
        "SSE readers (GET /v1/events streams) connected"
    );
    describe_counter!(
        EVENTS_READERS_REFUSED_TOTAL,
        "SSE readers refused with 503: events.max_readers already connected"
    );
    describe_counter!(
        EVENTS_READERS_DROPPED_TOTAL,
        "SSE readers dropped after taking no data for events.reader_stall_timeout_ms"
    );
    describe_counter!(
        EVENTS_WINDOW_EXCEEDED_TOTAL,
        "SSE readers that lost events: too slow for, or resuming before, the event window"
    );
    describe_gauge!(
        WEBHOOK_WORKERS_ACTIVE,
        "Webhook destinations with a queue and worker now, by queue (idle ones retire)"
    );
    describe_counter!(
        OUTBOUND_CALL_REQUESTS_TOTAL,
        "Outbound calls asked for by POST /v1/calls or the call action, by origin and result \
         (placed, or refused before a leg existed); how placed calls end is in calls_total"
    );
    describe_counter!(
        OUTBOUND_REFUSED_TOTAL,
        "Outgoing work refused by a cap, by work: webhook_send (destination queue full), \
         message_send (capacity), tts and prompt_fetch (no slot within the wait)"
    );
    describe_counter!(
        MEDIA_FILES_PURGED_TOTAL,
        "Files purged: cache (over media.cache_max_bytes), recording (retention or DELETE)"
    );
    describe_counter!(
        ACTIVEFLOW_LIMIT_EXCEEDED_TOTAL,
        "Variable writes and substitutions refused by a size cap, by [engine] key"
    );
    describe_gauge!(
        TRUNK_REGISTERED,
        "1 while the trunk's registration (register = true) is bound, else 0, by trunk name"
    );
    describe_counter!(
        TRUNK_REGISTER_FAILURES_TOTAL,
        "Failed REGISTER attempts (final error, refused credentials, timeout), by trunk name"
    );
    describe_counter!(
        ACTOR_PANICS_TOTAL,
        "Panics contained in an actor (its call or activeflow ended, nothing else harmed)"
    );
}

fn register_zeroes() {
    capacity::zeroes();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    conference_zeroes();
    cluster_zeroes();
    cluster_events_zeroes();
    gauge!(ACTIVEFLOW_RUNNING).set(0.0);
    gauge!(CALLS_ACTIVE).set(0.0);
    gauge!(REGISTRATIONS_ACTIVE).set(0.0);
    counter!(SIP_AUTH_BANNED_TOTAL).absolute(0);
    for r in AUTH_FAILURE_REASONS {
        counter!(SIP_AUTH_FAILURES_TOTAL, "reason" => *r).absolute(0);
    }
    for r in REFERENCE_TYPES {
        counter!(ACTIVEFLOW_STARTED_TOTAL, "reference_type" => *r).absolute(0);
    }
    for r in END_REASONS {
        counter!(ACTIVEFLOW_ENDED_TOTAL, "reason" => *r).absolute(0);
    }
    for l in FLOW_LIMITS {
        counter!(ACTIVEFLOW_LIMIT_EXCEEDED_TOTAL, "limit" => *l).absolute(0);
    }
    for t in ACTION_TYPES {
        counter!(ACTIVEFLOW_ACTIONS_EXECUTED_TOTAL, "type" => *t).absolute(0);
        counter!(ACTIVEFLOW_ACTION_ERRORS_TOTAL, "type" => *t).absolute(0);
        let _ = histogram!(ACTIVEFLOW_ACTION_DURATION_SECONDS, "type" => *t);
    }
    for m in SIP_METHODS {
        counter!(SIP_REQUESTS_RECEIVED_TOTAL, "method" => *m).absolute(0);
        counter!(SIP_RATE_LIMITED_TOTAL, "method" => *m).absolute(0);
    }
    for c in SIP_CODES {
        counter!(SIP_RESPONSES_SENT_TOTAL, "code" => *c).absolute(0);
    }
    for d in DIRECTIONS {
        counter!(SIP_RETRANSMISSIONS_TOTAL, "direction" => *d).absolute(0);
        for o in CALL_OUTCOMES {
            counter!(CALLS_TOTAL, "direction" => *d, "outcome" => *o).absolute(0);
        }
    }
    for t in TRANSPORTS {
        counter!(SIP_MALFORMED_TOTAL, "transport" => *t).absolute(0);
    }
    counter!(SIP_DIALOG_TRANSACTIONS_REFUSED_TOTAL).absolute(0);
    counter!(SIP_PRACKS_SENT_TOTAL).absolute(0);
    counter!(SIP_PRACK_TIMEOUTS_TOTAL).absolute(0);
    for kind in ["early_media", "ringback"] {
        counter!(CONNECT_EARLY_MEDIA_TOTAL, "kind" => kind).absolute(0);
    }
    let _ = histogram!(ACTIVEFLOW_DURATION_SECONDS);
    let _ = histogram!(CALL_SETUP_SECONDS);
    gauge!(MEDIA_SESSIONS_ACTIVE).set(0.0);
    for e in EXTERNAL_MEDIA_ENCAPSULATIONS {
        gauge!(EXTERNAL_MEDIA_STREAMS_ACTIVE, "encapsulation" => *e).set(0.0);
        counter!(EXTERNAL_MEDIA_FRAMES_DROPPED_TOTAL, "encapsulation" => *e).absolute(0);
    }
    counter!(RTP_PACKETS_SENT_TOTAL).absolute(0);
    counter!(RTP_PACKETS_RECEIVED_TOTAL).absolute(0);
    counter!(RTP_LATE_TICKS_TOTAL).absolute(0);
    for r in RTP_DROP_REASONS {
        counter!(RTP_PACKETS_DROPPED_TOTAL, "reason" => *r).absolute(0);
    }
    for s in DTMF_SOURCES {
        counter!(DTMF_RECEIVED_TOTAL, "source" => *s).absolute(0);
    }
    for d in TRANSFER_DIRECTIONS {
        for o in TRANSFER_OUTCOMES {
            counter!(CALL_TRANSFERS_TOTAL, "direction" => *d, "outcome" => *o).absolute(0);
        }
    }
    for k in STORAGE_WRITE_KINDS {
        counter!(STORAGE_QUEUE_FULL_TOTAL, "kind" => *k).absolute(0);
    }
    counter!(STORAGE_WRITES_TOTAL).absolute(0);
    counter!(STORAGE_WRITE_ERRORS_TOTAL).absolute(0);
    counter!(STORAGE_WRITE_REJECTED_TOTAL).absolute(0);
    let _ = histogram!(STORAGE_BATCH_SECONDS);
    for o in WEBHOOK_OUTCOMES {
        counter!(WEBHOOK_DELIVERIES_TOTAL, "outcome" => *o).absolute(0);
    }
    counter!(EVENTS_WINDOW_EXCEEDED_TOTAL).absolute(0);
    gauge!(EVENTS_READERS).set(0.0);
    counter!(EVENTS_READERS_REFUSED_TOTAL).absolute(0);
    counter!(EVENTS_READERS_DROPPED_TOTAL).absolute(0);
    for a in ACTORS {
        counter!(ACTOR_PANICS_TOTAL, "actor" => *a).absolute(0);
    }
    for q in WEBHOOK_QUEUES {
        gauge!(WEBHOOK_WORKERS_ACTIVE, "queue" => *q).set(0.0);
    }
    for w in OUTBOUND_WORK {
        counter!(OUTBOUND_REFUSED_TOTAL, "work" => *w).absolute(0);
    }
    for o in OUTBOUND_CALL_ORIGINS {
        for r in OUTBOUND_CALL_RESULTS {
            counter!(OUTBOUND_CALL_REQUESTS_TOTAL, "origin" => *o, "result" => *r).absolute(0);
        }
    }
    for k in MEDIA_FILE_KINDS {
        counter!(MEDIA_FILES_PURGED_TOTAL, "kind" => *k).absolute(0);
    }
    gauge!(SIP_TCP_CONNECTIONS_ACTIVE).set(0.0);
    for r in TCP_REFUSE_REASONS {
        counter!(SIP_TCP_CONNECTIONS_REFUSED_TOTAL, "reason" => *r).absolute(0);
    }
    for r in TCP_CLOSE_REASONS {
        counter!(SIP_TCP_CONNECTIONS_CLOSED_TOTAL, "reason" => *r).absolute(0);
    }
    counter!(SIP_TCP_MESSAGES_DROPPED_TOTAL).absolute(0);
    for d in DIRECTIONS {
        counter!(SIP_TLS_HANDSHAKE_FAILURES_TOTAL, "direction" => *d).absolute(0);
    }
    for r in DNS_RESULTS {
        counter!(SIP_DNS_RESOLUTIONS_TOTAL, "result" => *r).absolute(0);
    }
    for r in FAILOVER_REASONS {
        counter!(SIP_FAILOVERS_TOTAL, "reason" => *r).absolute(0);
    }
    for c in COMPONENTS {
        gauge!(COMPONENT_UP, "component" => *c).set(0.0);
        counter!(COMPONENT_RESTARTS_TOTAL, "component" => *c).absolute(0);
    }
}

/// The method label: known methods by name, everything else `OTHER` (bounded cardinality).
pub fn method_label(method: &str) -> &'static str {
    SIP_METHODS
        .iter()
        .find(|m| m.eq_ignore_ascii_case(method))
        .copied()
        .unwrap_or("OTHER")
}

/// Handles for one metric, one per label value of a fixed list, created on first use: the hot
/// path then skips the recorder's key hashing and registry lookup (one per SIP message).
struct Cached<T> {
    handles: OnceLock<Vec<T>>,
}

impl<T> Cached<T> {
    const fn new() -> Self {
        Cached {
            handles: OnceLock::new(),
        }
    }

    fn get(
        &self,
        labels: &[&'static str],
        make: impl Fn(&'static str) -> T,
        label: &str,
    ) -> Option<&T> {
        let index = labels.iter().position(|l| *l == label)?;
        self.at(labels, make, index)
    }

    fn at(
        &self,
        labels: &[&'static str],
        make: impl Fn(&'static str) -> T,
        index: usize,
    ) -> Option<&T> {
        self.handles
            .get_or_init(|| labels.iter().map(|l| make(l)).collect())
            .get(index)
    }
}

static REQUESTS: Cached<Counter> = Cached::new();
static RESPONSES: Cached<Counter> = Cached::new();
static ACTIONS: Cached<(Counter, Histogram)> = Cached::new();

pub fn sip_request_received(method: &str) {
    let label = method_label(method);
    match REQUESTS.get(
        SIP_METHODS,
        |m| counter!(SIP_REQUESTS_RECEIVED_TOTAL, "method" => m),
        label,
    ) {
        Some(c) => c.increment(1),
        None => counter!(SIP_REQUESTS_RECEIVED_TOTAL, "method" => label).increment(1),
    }
}

pub fn sip_response_sent(code: u16) {
    let known = SIP_CODE_VALUES.iter().position(|c| *c == code);
    let make = |c: &'static str| counter!(SIP_RESPONSES_SENT_TOTAL, "code" => c);
    if let Some(c) = known.and_then(|i| RESPONSES.at(SIP_CODES, make, i)) {
        c.increment(1);
        return;
    }
    // Status codes are a bounded set (100..=699), so they are a safe label.
    let label = SIP_CODES
        .iter()
        .find(|c| c.parse::<u16>().ok() == Some(code))
        .map(|c| std::borrow::Cow::Borrowed(*c))
        .unwrap_or_else(|| std::borrow::Cow::Owned(code.clamp(100, 699).to_string()));
    counter!(SIP_RESPONSES_SENT_TOTAL, "code" => label).increment(1);
}

/// `inbound`: a retransmitted request absorbed; otherwise one the engine re-sent.
pub fn sip_retransmission(inbound: bool) {
    let d = if inbound { "in" } else { "out" };
    counter!(SIP_RETRANSMISSIONS_TOTAL, "direction" => d).increment(1);
}

/// A refused digest authentication (`reason`: one of `AUTH_FAILURE_REASONS`).
pub fn sip_auth_failure(reason: &'static str) {
    counter!(SIP_AUTH_FAILURES_TOTAL, "reason" => reason).increment(1);
}

/// A source banned for failed authentications.
pub fn sip_auth_banned() {
    counter!(SIP_AUTH_BANNED_TOTAL).increment(1);
}

/// Live registered contacts.
pub fn registrations_active(count: usize) {
    gauge!(REGISTRATIONS_ACTIVE).set(count as f64);
}

/// An out-of-dialog request over its source's rate (refused with 503 or dropped).
pub fn sip_rate_limited(method: &str) {
    counter!(SIP_RATE_LIMITED_TOTAL, "method" => method_label(method)).increment(1);
}

/// An in-dialog request refused because its dialog holds its cap of server transactions.
pub fn prack_sent() {
    counter!(SIP_PRACKS_SENT_TOTAL).increment(1);
}

pub fn prack_timeout() {
    counter!(SIP_PRACK_TIMEOUTS_TOTAL).increment(1);
}

/// A `connect` gave its caller media before the answer: the callee's early media
/// (`early_media`) or our in-band ringback (`ringback`).
pub fn connect_early_media(kind: &'static str) {
    counter!(CONNECT_EARLY_MEDIA_TOTAL, "kind" => kind).increment(1);
}

pub fn sip_dialog_transaction_refused() {
    counter!(SIP_DIALOG_TRANSACTIONS_REFUSED_TOTAL).increment(1);
}

pub fn sip_malformed(transport: &'static str) {
    counter!(SIP_MALFORMED_TOTAL, "transport" => transport).increment(1);
}

/// A SIP/TCP connection opened (+1.0) or closed (-1.0).
pub fn sip_tcp_connections(delta: f64) {
    gauge!(SIP_TCP_CONNECTIONS_ACTIVE).increment(delta);
}

/// A SIP/TCP connection refused; `reason` is one of [`TCP_REFUSE_REASONS`].
pub fn sip_tcp_refused(reason: &'static str) {
    counter!(SIP_TCP_CONNECTIONS_REFUSED_TOTAL, "reason" => reason).increment(1);
}

/// A SIP/TCP connection closed; `reason` is one of [`TCP_CLOSE_REASONS`].
pub fn sip_tcp_closed(reason: &'static str) {
    counter!(SIP_TCP_CONNECTIONS_CLOSED_TOTAL, "reason" => reason).increment(1);
}

/// A SIP/TLS handshake failed; `inbound` for connections we accepted.
pub fn sip_tls_handshake_failed(inbound: bool) {
    let direction = if inbound { "in" } else { "out" };
    counter!(SIP_TLS_HANDSHAKE_FAILURES_TOTAL, "direction" => direction).increment(1);
}

/// One RFC 3263 resolution finished, with at least one target or none.
pub fn sip_dns_resolution(resolved: bool) {
    let result = if resolved { "resolved" } else { "not_found" };
    counter!(SIP_DNS_RESOLUTIONS_TOTAL, "result" => result).increment(1);
}

/// A request moved to its next target; `reason` is one of [`FAILOVER_REASONS`].
pub fn sip_failover(reason: &'static str) {
    counter!(SIP_FAILOVERS_TOTAL, "reason" => reason).increment(1);
}

/// SIP messages dropped unsent on a TCP connection.
pub fn sip_tcp_dropped(messages: u64) {
    counter!(SIP_TCP_MESSAGES_DROPPED_TOTAL).increment(messages);
}

/// Handles of unlabelled metrics touched once or more per call.
struct PerCall {
    calls_active: Gauge,
    call_setup: Histogram,
    running: Gauge,
    duration: Histogram,
    media_sessions: Gauge,
    rtp_sent: Counter,
    rtp_received: Counter,
}

static PER_CALL: OnceLock<PerCall> = OnceLock::new();
static STARTED: Cached<Counter> = Cached::new();
static ENDED: Cached<Counter> = Cached::new();
static INBOUND_CALLS: Cached<Counter> = Cached::new();

fn per_call() -> &'static PerCall {
    PER_CALL.get_or_init(|| PerCall {
        calls_active: gauge!(CALLS_ACTIVE),
        call_setup: histogram!(CALL_SETUP_SECONDS),
        running: gauge!(ACTIVEFLOW_RUNNING),
        duration: histogram!(ACTIVEFLOW_DURATION_SECONDS),
        media_sessions: gauge!(MEDIA_SESSIONS_ACTIVE),
        rtp_sent: counter!(RTP_PACKETS_SENT_TOTAL),
        rtp_received: counter!(RTP_PACKETS_RECEIVED_TOTAL),
    })
}

/// A media session opened (`true`) or closed.
pub fn media_session(opened: bool) {
    let g = &per_call().media_sessions;
    if opened {
        g.increment(1.0);
    } else {
        g.decrement(1.0);
    }
}

/// An external media stream started (`true`) or ended; `encapsulation` is one of
/// [`EXTERNAL_MEDIA_ENCAPSULATIONS`]. At its end, the frames it dropped.
pub fn external_media_stream(encapsulation: &'static str, started: bool, dropped: u64) {
    let g = gauge!(EXTERNAL_MEDIA_STREAMS_ACTIVE, "encapsulation" => encapsulation);
    if started {
        g.increment(1.0);
    } else {
        g.decrement(1.0);
        counter!(EXTERNAL_MEDIA_FRAMES_DROPPED_TOTAL, "encapsulation" => encapsulation)
            .increment(dropped);
    }
}

/// RTP packets sent and received since the last report (sessions batch them).
pub fn rtp_packets(sent: u64, received: u64) {
    let p = per_call();
    p.rtp_sent.increment(sent);
    p.rtp_received.increment(received);
}

pub fn rtp_late_ticks(ticks: u64) {
    counter!(RTP_LATE_TICKS_TOTAL).increment(ticks);
}

/// RTP packets strict RTP dropped; `reason` is one of [`RTP_DROP_REASONS`].
pub fn rtp_packets_dropped(reason: &'static str, packets: u64) {
    counter!(RTP_PACKETS_DROPPED_TOTAL, "reason" => reason).increment(packets);
}

/// A transfer step; `direction` in [`TRANSFER_DIRECTIONS`], `outcome` in [`TRANSFER_OUTCOMES`].
pub fn transfer(direction: &'static str, outcome: &'static str) {
    counter!(CALL_TRANSFERS_TOTAL, "direction" => direction, "outcome" => outcome).increment(1);
}

/// One DTMF digit; `source` is one of [`DTMF_SOURCES`].
pub fn dtmf_received(source: &'static str) {
    counter!(DTMF_RECEIVED_TOTAL, "source" => source).increment(1);
}

pub fn calls_active(delta: f64) {
    per_call().calls_active.increment(delta);
}

pub fn call_finished(direction: &'static str, outcome: &'static str) {
    let make = |o: &'static str| counter!(CALLS_TOTAL, "direction" => "in", "outcome" => o);
    match INBOUND_CALLS.get(CALL_OUTCOMES, make, outcome) {
        Some(c) if direction == "in" => c.increment(1),
        _ => counter!(CALLS_TOTAL, "direction" => direction, "outcome" => outcome).increment(1),
    }
}

pub fn call_setup(elapsed: Duration) {
    per_call().call_setup.record(elapsed.as_secs_f64());
}

pub fn activeflow_started(reference_type: &'static str) {
    let make = |r: &'static str| counter!(ACTIVEFLOW_STARTED_TOTAL, "reference_type" => r);
    match STARTED.get(REFERENCE_TYPES, make, reference_type) {
        Some(c) => c.increment(1),
        None => counter!(ACTIVEFLOW_STARTED_TOTAL, "reference_type" => reference_type).increment(1),
    }
    per_call().running.increment(1.0);
}

pub fn activeflow_ended(reason: &'static str, lifetime: Duration) {
    let make = |r: &'static str| counter!(ACTIVEFLOW_ENDED_TOTAL, "reason" => r);
    match ENDED.get(END_REASONS, make, reason) {
        Some(c) => c.increment(1),
        None => counter!(ACTIVEFLOW_ENDED_TOTAL, "reason" => reason).increment(1),
    }
    let per_call = per_call();
    per_call.running.decrement(1.0);
    per_call.duration.record(lifetime.as_secs_f64());
}

/// One executed action; `kind` must be a known action type name (a bounded set).
pub fn action_executed(kind: &'static str, elapsed: Duration, failed: bool) {
    let make = |t: &'static str| {
        (
            counter!(ACTIVEFLOW_ACTIONS_EXECUTED_TOTAL, "type" => t),
            histogram!(ACTIVEFLOW_ACTION_DURATION_SECONDS, "type" => t),
        )
    };
    match ACTIONS.get(ACTION_TYPES, make, kind) {
        Some((c, h)) => {
            c.increment(1);
            h.record(elapsed.as_secs_f64());
        }
        None => {
            counter!(ACTIVEFLOW_ACTIONS_EXECUTED_TOTAL, "type" => kind).increment(1);
            histogram!(ACTIVEFLOW_ACTION_DURATION_SECONDS, "type" => kind)
                .record(elapsed.as_secs_f64());
        }
    }
    if failed {
        action_failed(kind);
    }
}

/// An action that ran but failed (e.g. a prompt that could not be loaded).
pub fn action_failed(kind: &'static str) {
    counter!(ACTIVEFLOW_ACTION_ERRORS_TOTAL, "type" => kind).increment(1);
}

/// A write found the storage queue full; `kind` is one of [`STORAGE_WRITE_KINDS`].
pub fn storage_queue_full(kind: &'static str) {
    counter!(STORAGE_QUEUE_FULL_TOTAL, "kind" => kind).increment(1);
}

/// One storage batch of `writes` applied in `elapsed`: committed (the writes count), or
/// failed for a passing cause (the attempt counts; its writes are retried).
pub fn storage_batch(writes: usize, elapsed: Duration, committed: bool) {
    if committed {
        counter!(STORAGE_WRITES_TOTAL).increment(writes as u64);
    } else {
        counter!(STORAGE_WRITE_ERRORS_TOTAL).increment(1);
    }
    histogram!(STORAGE_BATCH_SECONDS).record(elapsed.as_secs_f64());
}

/// A storage write dropped because it failed on its own.
pub fn storage_write_rejected() {
    counter!(STORAGE_WRITE_REJECTED_TOTAL).increment(1);
}

/// What became of one event for one webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    Delivered,
    /// Retries exhausted, or a final refusal (4xx, `[http]` policy).
    Failed,
    /// Its queue was full.
    Dropped,
}

static WEBHOOKS: Cached<Counter> = Cached::new();

pub fn webhook_delivery(outcome: WebhookOutcome) {
    let index = outcome as usize;
    let make = |o: &'static str| counter!(WEBHOOK_DELIVERIES_TOTAL, "outcome" => o);
    if let Some(c) = WEBHOOKS.at(WEBHOOK_OUTCOMES, make, index) {
        c.increment(1);
    }
}

/// A webhook destination's worker started (+1.0) or retired (-1.0); `queue` is one of
/// [`WEBHOOK_QUEUES`].
pub fn webhook_workers(queue: &'static str, delta: f64) {
    gauge!(WEBHOOK_WORKERS_ACTIVE, "queue" => queue).increment(delta);
}

/// A registering trunk's series, at zero from its start (trunk names come from the config:
/// few, and known before any traffic).
pub fn trunk_register_init(trunk: &str) {
    gauge!(TRUNK_REGISTERED, "trunk" => trunk.to_string()).set(0.0);
    counter!(TRUNK_REGISTER_FAILURES_TOTAL, "trunk" => trunk.to_string()).absolute(0);
}

/// Whether `trunk`'s registration is bound now.
pub fn trunk_registered(trunk: &str, registered: bool) {
    gauge!(TRUNK_REGISTERED, "trunk" => trunk.to_string()).set(if registered { 1.0 } else { 0.0 });
}

/// One failed REGISTER attempt of `trunk`.
pub fn trunk_register_failure(trunk: &str) {
    counter!(TRUNK_REGISTER_FAILURES_TOTAL, "trunk" => trunk.to_string()).increment(1);
}

/// Outgoing work refused by a cap; `work` is one of [`OUTBOUND_WORK`].
/// One outbound call asked for; `origin` is one of [`OUTBOUND_CALL_ORIGINS`].
pub fn outbound_call_requested(origin: &'static str, placed: bool) {
    let result = if placed { "placed" } else { "refused" };
    counter!(OUTBOUND_CALL_REQUESTS_TOTAL, "origin" => origin, "result" => result).increment(1);
}

pub fn outbound_refused(work: &'static str) {
    counter!(OUTBOUND_REFUSED_TOTAL, "work" => work).increment(1);
}

/// Media files purged; `kind` is one of [`MEDIA_FILE_KINDS`].
pub fn media_files_purged(kind: &'static str, files: u64) {
    counter!(MEDIA_FILES_PURGED_TOTAL, "kind" => kind).increment(files);
}

/// A watched part is up (1) or not (0); `component` is one of [`COMPONENTS`].
pub fn component_up(component: &'static str, up: bool) {
    gauge!(COMPONENT_UP, "component" => component).set(if up { 1.0 } else { 0.0 });
}

/// A watched part was restarted after dying.
pub fn component_restarted(component: &'static str) {
    counter!(COMPONENT_RESTARTS_TOTAL, "component" => component).increment(1);
}

/// An SSE reader was told it lost events (`window_exceeded`).
pub fn events_window_exceeded() {
    counter!(EVENTS_WINDOW_EXCEEDED_TOTAL).increment(1);
}

/// An SSE reader came (`+1`) or went (`-1`).
pub fn events_readers(delta: f64) {
    gauge!(EVENTS_READERS).increment(delta);
}

/// An SSE reader was refused at `events.max_readers`.
pub fn events_reader_refused() {
    counter!(EVENTS_READERS_REFUSED_TOTAL).increment(1);
}

/// A stalled SSE reader was dropped.
pub fn events_reader_dropped() {
    counter!(EVENTS_READERS_DROPPED_TOTAL).increment(1);
}

/// A variable write or substitution was refused by the cap `limit` (one of [`FLOW_LIMITS`]).
pub fn flow_limit_exceeded(limit: &'static str) {
    counter!(ACTIVEFLOW_LIMIT_EXCEEDED_TOTAL, "limit" => limit).increment(1);
}

/// A panic was contained in an actor of kind `actor` (one of [`ACTORS`]).
pub fn actor_panic(actor: &'static str) {
    counter!(ACTOR_PANICS_TOTAL, "actor" => actor).increment(1);
}

// Conferences (`conference_join` / `confbridge_join`, src/conference).
pub const CONFERENCE_ROOMS_ACTIVE: &str = "activeflow_conference_rooms_active";
pub const CONFERENCE_PARTICIPANTS_ACTIVE: &str = "activeflow_conference_participants_active";
pub const CONFERENCE_MIX_TICK_LATENESS_SECONDS: &str =
    "activeflow_conference_mix_tick_lateness_seconds";
pub const CONFERENCE_FRAMES_DROPPED_TOTAL: &str = "activeflow_conference_frames_dropped_total";
/// Seconds buckets for a mixing tick's lateness: 0.1 ms to a whole tick and beyond.
const CONFERENCE_LATENESS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
];

fn describe_conference() {
    describe_gauge!(CONFERENCE_ROOMS_ACTIVE, "Conference rooms that exist");
    describe_gauge!(
        CONFERENCE_PARTICIPANTS_ACTIVE,
        "Participants in conference rooms"
    );
    describe_histogram!(
        CONFERENCE_MIX_TICK_LATENESS_SECONDS,
        metrics::Unit::Seconds,
        "How late each 20 ms conference mixing tick ran after its scheduled instant"
    );
    describe_counter!(
        CONFERENCE_FRAMES_DROPPED_TOTAL,
        "Conference audio frames dropped, by where (one of CONFERENCE_DROP_POINTS)"
    );
}

/// Where a conference frame can be dropped (`where` of
/// `activeflow_conference_frames_dropped_total`): a session's frame the room's queue had no room
/// for, a received frame trimmed from the room's jitter queue, a mix the session's queue had no
/// room for, a mix trimmed from the session's jitter queue.
pub const CONFERENCE_DROP_POINTS: [&str; 4] =
    ["to_room", "room_jitter", "to_session", "session_jitter"];

fn conference_zeroes() {
    gauge!(CONFERENCE_ROOMS_ACTIVE).set(0.0);
    gauge!(CONFERENCE_PARTICIPANTS_ACTIVE).set(0.0);
    for at in CONFERENCE_DROP_POINTS {
        counter!(CONFERENCE_FRAMES_DROPPED_TOTAL, "where" => at).absolute(0);
    }
    let _ = histogram!(CONFERENCE_MIX_TICK_LATENESS_SECONDS);
}

/// A room made (`1.0`) or removed (`-1.0`).
pub fn conference_rooms(delta: f64) {
    gauge!(CONFERENCE_ROOMS_ACTIVE).increment(delta);
}

/// A participant joined (`1.0`) or left (`-1.0`).
pub fn conference_participants(delta: f64) {
    gauge!(CONFERENCE_PARTICIPANTS_ACTIVE).increment(delta);
}

/// One mixing tick: how late it ran, the mixes it could not hand over and the received
/// frames it trimmed.
pub fn conference_tick(lateness: Duration, dropped: u64, jitter_dropped: u64) {
    histogram!(CONFERENCE_MIX_TICK_LATENESS_SECONDS).record(lateness.as_secs_f64());
    conference_frames_dropped("to_session", dropped);
    conference_frames_dropped("room_jitter", jitter_dropped);
}

/// `n` conference frames dropped at `at` (one of [`CONFERENCE_DROP_POINTS`]).
pub fn conference_frames_dropped(at: &'static str, n: u64) {
    if n > 0 {
        counter!(CONFERENCE_FRAMES_DROPPED_TOTAL, "where" => at).increment(n);
    }
}

pub const CLUSTER_NODES: &str = "activeflow_cluster_nodes";
pub const CLUSTER_NODES_DECLARED_LOST_TOTAL: &str = "activeflow_cluster_nodes_declared_lost_total";
pub const CLUSTER_REJOINS_TOTAL: &str = "activeflow_cluster_rejoins_total";
/// `state` values of `activeflow_cluster_nodes` (`cluster::beat::NodeState::as_str`).
pub const CLUSTER_NODE_STATES: &[&str] = &["up", "draining", "lost"];

fn describe_cluster() {
    describe_gauge!(
        CLUSTER_NODES,
        "Cluster nodes as this node sees them (heartbeats and lost marks), by state"
    );
    describe_counter!(
        CLUSTER_NODES_DECLARED_LOST_TOTAL,
        "Node runs this node declared lost as the reaper lease holder"
    );
    describe_counter!(
        CLUSTER_REJOINS_TOTAL,
        "Times this node found itself declared lost, ended what it held and rejoined"
    );
}

fn cluster_zeroes() {
    for s in CLUSTER_NODE_STATES {
        gauge!(CLUSTER_NODES, "state" => *s).set(0.0);
    }
    counter!(CLUSTER_NODES_DECLARED_LOST_TOTAL).absolute(0);
    counter!(CLUSTER_REJOINS_TOTAL).absolute(0);
}

/// `activeflow_cluster_nodes{state}` now (`state` one of [`CLUSTER_NODE_STATES`]).
pub fn cluster_nodes(state: &'static str, count: usize) {
    gauge!(CLUSTER_NODES, "state" => state).set(count as f64);
}

pub fn cluster_node_declared_lost() {
    counter!(CLUSTER_NODES_DECLARED_LOST_TOTAL).increment(1);
}

pub fn cluster_rejoined() {
    counter!(CLUSTER_REJOINS_TOTAL).increment(1);
}

pub const CLUSTER_EVENTS_DROPPED_TOTAL: &str = "activeflow_cluster_events_dropped_total";

/// Why an event did not reach the cluster's event stream (`reason` of
/// `activeflow_cluster_events_dropped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterEventDrop {
    /// The publisher's queue was full (NATS slow or down).
    QueueFull,
    /// The NATS client refused the publish.
    PublishFailed,
    /// Published, but JetStream's ack never came (it may or may not be stored).
    Unconfirmed,
}

/// `reason` values of `activeflow_cluster_events_dropped_total`, in [`ClusterEventDrop`] order.
pub const CLUSTER_EVENT_DROP_REASONS: &[&str] = &["queue_full", "publish_failed", "unconfirmed"];

fn describe_cluster_events() {
    describe_counter!(
        CLUSTER_EVENTS_DROPPED_TOTAL,
        "Events of this node that did not reach the cluster's event stream (cluster mode)"
    );
}

fn cluster_events_zeroes() {
    for r in CLUSTER_EVENT_DROP_REASONS {
        counter!(CLUSTER_EVENTS_DROPPED_TOTAL, "reason" => *r).absolute(0);
    }
}

/// One event did not reach the cluster's event stream.
pub fn cluster_event_dropped(reason: ClusterEventDrop) {
    let r = CLUSTER_EVENT_DROP_REASONS[reason as usize];
    counter!(CLUSTER_EVENTS_DROPPED_TOTAL, "reason" => r).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_table_matches_labels() {
        let parsed: Vec<u16> = SIP_CODES.iter().map(|c| c.parse().unwrap()).collect();
        assert_eq!(parsed, SIP_CODE_VALUES);
    }

    #[test]
    fn method_labels_are_bounded() {
        assert_eq!(method_label("invite"), "INVITE");
        assert_eq!(method_label("FOO"), "OTHER");
    }
}
