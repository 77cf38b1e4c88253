//! Typed configuration in layers: the embedded default, a TOML file holding only the keys it
//! changes, then `ACTIVEFLOW_<SECTION>_<KEY>` environment overrides; validated completely
//! before any socket is bound. Every error names the offending key.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::api::auth::AccessPolicy;
use crate::call::Trunk;
use crate::http::HttpPolicy;
use crate::media::rtp_ports::PortRange;
use crate::net::{Cidr, ParseCidrError};
use crate::tls::TlsConfig;

mod access;
mod trunk;
mod trunk_transport;
use access::{api_access, tls_files};
mod trunk_account;
use trunk_transport::sip_tls;
mod phones;
pub use phones::UserConfig;
mod cluster;
pub use cluster::{ClusterConfig, StorageBackend};
mod env;
mod layers;
pub use layers::FileLayer;
mod paths;
mod schema;
mod secrets;
mod show;
pub use show::{masked_url, MASK};

/// The embedded default configuration (`config/default.toml`): the base layer every config
/// file is merged over.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// A configuration error; the message always names the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
    #[error("config: {0}")]
    Parse(String),
    #[error("config key {key}: {message}")]
    Invalid { key: String, message: String },
    #[error("environment variable {var} (config key {key}): {message}")]
    Env {
        var: String,
        key: String,
        message: String,
    },
    /// An `ACTIVEFLOW_*` variable whose name is not UTF-8 (shown lossily).
    #[error("environment variable {var}: {message}")]
    EnvName { var: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub api: ApiConfig,
    pub metrics: MetricsConfig,
    pub engine: EngineConfig,
    pub flows: FlowsConfig,
    pub storage: StorageConfig,
    /// Cluster mode (issue 20); absent = a single node.
    #[serde(default)]
    pub cluster: ClusterConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub events: EventsConfig,
    #[serde(default)]
    pub trunks: Vec<TrunkConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Phones that authenticate with SIP digest and may register (`[[users]]`).
    #[serde(default)]
    pub users: Vec<phones::UserConfig>,
    /// Log output (`[log]`).
    #[serde(default)]
    pub log: LogConfig,
}

/// How log lines are written (stderr).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// `log.format`: human-readable lines or one JSON object per line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// UDP and TCP listen address (same port).
    pub listen: String,
    /// Address put in Contact and SDP; empty means the listen address.
    #[serde(default)]
    pub public_address: String,
    /// Largest SIP message accepted, in bytes.
    #[serde(default = "default_max_message_size")]
    pub max_message_size: usize,
    /// RFC 3261 timer T1 in milliseconds.
    #[serde(default = "default_t1")]
    pub t1_ms: u64,
    /// RFC 3261 timer T2 in milliseconds.
    #[serde(default = "default_t2")]
    pub t2_ms: u64,
    /// RFC 3261 timer T4 in milliseconds.
    #[serde(default = "default_t4")]
    pub t4_ms: u64,
    /// An INVITE queued longer than this before its session starts means overload: new INVITEs
    /// get 503 + Retry-After for a moment.
    #[serde(default = "default_overload_lag")]
    pub overload_lag_ms: u64,
    /// Messages queued per TCP connection; a full queue closes the connection (stalled reader).
    #[serde(default = "default_tcp_write_queue")]
    pub tcp_write_queue: usize,
    /// TCP connections open at once, accepted and our own.
    #[serde(default = "default_tcp_max_connections")]
    pub tcp_max_connections: usize,
    /// TCP connections accepted from one source IP.
    #[serde(default = "default_tcp_max_connections_per_ip")]
    pub tcp_max_connections_per_ip: usize,
    /// A TCP connection silent this long, and held by no dialog, is closed.
    #[serde(default = "default_tcp_idle_timeout")]
    pub tcp_idle_timeout_s: u64,
    /// A TCP write that makes no progress this long closes the connection.
    #[serde(default = "default_tcp_write_timeout")]
    pub tcp_write_timeout_s: u64,
    /// RFC 4028 session interval we ask for and accept at most, in seconds; 0 = no timers.
    #[serde(default = "default_session_expires")]
    pub session_expires_seconds: u32,
    /// The shortest session interval we accept (RFC 4028 Min-SE, at least 90).
    #[serde(default = "default_min_se")]
    pub min_se_seconds: u32,
    /// Out-of-dialog requests (new INVITEs, OPTIONS, REGISTER, ...) accepted per second from one
    /// source IP (token bucket, one second's burst); 0 = no limit.
    #[serde(default = "default_max_new_calls_per_source")]
    pub max_new_calls_per_source_per_second: u32,
    /// Source networks never rate-limited: the operator's own trunks and proxies (besides every
    /// single-address entry of a trunk's `allow`, exempt as well).
    #[serde(default = "default_rate_limit_exempt")]
    pub rate_limit_exempt: Vec<String>,
    /// SIP over TLS listen address (RFC 3261 §26.2, e.g. `0.0.0.0:5061`); empty = no TLS
    /// listener. Needs `tls_cert` and `tls_key`.
    #[serde(default)]
    pub tls_listen: String,
    /// PEM certificate chain of the SIP/TLS listener.
    #[serde(default)]
    pub tls_cert: String,
    /// PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: String,
    /// DNS servers (`ip:port`) for RFC 3263 resolution of trunks and URIs; empty = the
    /// system's (`/etc/resolv.conf`).
    #[serde(default)]
    pub dns_servers: Vec<String>,
    /// A request with no provisional response from one target this long goes to the next
    /// resolved target (RFC 3263 §4.3); the last target waits for Timer B/F as usual.
    #[serde(default = "default_failover_timeout")]
    pub failover_timeout_ms: u64,
    /// Digest realm phones (`[[users]]`) authenticate in (RFC 3261 §22.1).
    #[serde(default = "phones::default_realm")]
    pub realm: String,
    /// Digest algorithms challenged with, most preferred first (`SHA-256`, `MD5`).
    #[serde(default = "phones::default_auth_algorithms")]
    pub auth_algorithms: Vec<String>,
    /// Failed authentications from one source IP within `auth_fail_window_secs` that ban it.
    #[serde(default = "phones::default_auth_fail_limit")]
    pub auth_fail_limit: u32,
    #[serde(default = "phones::default_auth_fail_window")]
    pub auth_fail_window_secs: u64,
    /// How long a banned source's requests are dropped unanswered.
    #[serde(default = "phones::default_auth_ban")]
    pub auth_ban_secs: u64,
    /// Shortest registration accepted (RFC 3261 §10.3 step 7: shorter gets 423).
    #[serde(default = "phones::default_register_min_expires")]
    pub register_min_expires: u32,
    /// Longest registration granted (longer requests are shortened to this).
    #[serde(default = "phones::default_register_max_expires")]
    pub register_max_expires: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    pub rtp_ports: String,
    pub prompts_dir: String,
    pub tts_command: String,
    /// Where `recording_start` writes `<id>.wav` files.
    #[serde(default = "default_recordings_dir")]
    pub recordings_dir: String,
    /// Where synthesised speech is cached.
    #[serde(default = "default_cache_dir")]
    pub cache_dir: String,
    /// An answered call not on hold from which no RTP arrives this long ends (`rtp_timeout`);
    /// 0 = never.
    #[serde(default = "default_rtp_timeout_seconds")]
    pub rtp_timeout_seconds: u64,
    /// TTS commands running at once, per engine; 0 = one per core.
    #[serde(default)]
    pub max_tts_processes: usize,
    /// http(s) prompt downloads at once, per engine.
    #[serde(default = "default_max_prompt_fetches")]
    pub max_prompt_fetches: usize,
    /// The TTS disk cache's size; least recently used files are removed beyond it.
    #[serde(default = "default_cache_max_bytes")]
    pub cache_max_bytes: u64,
    /// Recordings older than this are deleted (at start, then hourly); 0 = keep.
    #[serde(default = "default_recordings_retention_days")]
    pub recordings_retention_days: u32,
    /// The in-band ringback a caller already answered hears while `connect` rings: `us`,
    /// `eu` or `uk`.
    #[serde(default)]
    pub ringback_tone: crate::media::ringback::RingbackTone,
}

fn default_max_prompt_fetches() -> usize {
    16
}

fn default_cache_max_bytes() -> u64 {
    512 << 20
}

fn default_recordings_retention_days() -> u32 {
    30
}

impl MediaConfig {
    /// The library's caps, `max_tts_processes` 0 resolved to one per core.
    pub fn limits(&self) -> crate::media::library::MediaLimits {
        crate::media::library::MediaLimits {
            max_tts_processes: match self.max_tts_processes {
                0 => crate::media::library::default_tts_processes(),
                n => n,
            },
            max_prompt_fetches: self.max_prompt_fetches,
            cache_max_bytes: self.cache_max_bytes,
            slot_wait: crate::media::library::SLOT_WAIT,
        }
    }
}

fn default_rtp_timeout_seconds() -> u64 {
    60
}

fn default_recordings_dir() -> String {
    "data/recordings".into()
}

fn default_cache_dir() -> String {
    "data/cache".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: String,
    /// A token granting every scope; empty = none.
    #[serde(default)]
    pub token: String,
    /// A file holding `token` (read at start, trailing newline trimmed); empty = none.
    #[serde(default)]
    pub token_file: String,
    /// Scoped tokens (`[[api.tokens]]`).
    #[serde(default)]
    pub tokens: Vec<ApiTokenConfig>,
    /// PEM certificate chain: with `tls_key`, the API listens HTTPS.
    #[serde(default)]
    pub tls_cert: String,
    /// PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: String,
}

/// One `[[api.tokens]]` entry: a named token, in clear or as its SHA-256, and its scopes.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenConfig {
    pub name: String,
    #[serde(default)]
    pub token: String,
    /// Hex SHA-256 of the token (`printf %s TOKEN | sha256sum`): the config holds no secret.
    #[serde(default)]
    pub token_sha256: String,
    /// Some of `read`, `control`, `flows`, `admin`.
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: String,
    /// PEM certificate chain: with `tls_key`, `/metrics` is served over HTTPS.
    #[serde(default)]
    pub tls_cert: String,
    /// PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: String,
}

/// Outgoing HTTP from flows (`fetch`, `webhook_send`, http(s) prompts).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub timeout_ms: u64,
    pub max_response_bytes: usize,
    /// Destinations (CIDRs) flows may reach even inside `deny`.
    pub allow: Vec<String>,
    /// Destinations flows may not reach: by default loopback, private, link-local and
    /// carrier-grade NAT ranges, so a flow cannot probe the operator's own network.
    pub deny: Vec<String>,
    /// Non-`sync` `webhook_send` requests waiting per destination (scheme, host, port);
    /// beyond, the action fails (counted).
    pub webhook_queue: usize,
    /// Non-`sync` `webhook_send` requests in flight at once per destination.
    pub webhook_concurrency: usize,
    /// Destinations with non-`sync` `webhook_send` work queued at once.
    pub webhook_destinations: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            timeout_ms: 10_000,
            max_response_bytes: 1 << 20,
            allow: Vec::new(),
            deny: [
                "0.0.0.0/8",
                "10.0.0.0/8",
                "100.64.0.0/10",
                "127.0.0.0/8",
                "169.254.0.0/16",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "::1/128",
                "fc00::/7",
                "fe80::/10",
                "::/128",
                "64:ff9b::/96",
                "64:ff9b:1::/48",
                "2002::/16",
            ]
            .map(String::from)
            .to_vec(),
            webhook_queue: 1000,
            webhook_concurrency: 4,
            webhook_destinations: 1000,
        }
    }
}

/// The event stream (`GET /v1/events`) and its webhooks.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Newest events kept for resuming SSE readers (and slow ones).
    pub window: usize,
    /// Gets every event (POST, JSON); empty = none.
    pub webhook_uri: String,
    /// The body `webhook_uri` (and a flow's webhook naming no `webhook_format`) gets:
    /// `native` (this engine's events) or `voipbin` (VoIPBIN's `{type, data}`).
    pub webhook_format: String,
    /// Events waiting for webhook delivery (per destination) before new ones are dropped.
    pub webhook_queue: usize,
    /// Signs every event webhook request (`X-Activeflow-Signature`, HMAC-SHA256); empty = unsigned.
    pub webhook_secret: String,
    /// Idle SSE readers get a `: keep-alive` comment this often.
    pub keepalive_ms: u64,
    /// SSE readers (`GET /v1/events` streams) at once; more get 503 + Retry-After.
    pub max_readers: usize,
    /// An SSE reader that takes no data this long is dropped (it resumes with Last-Event-ID).
    pub reader_stall_timeout_ms: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            window: 65_536,
            webhook_uri: String::new(),
            webhook_format: "native".into(),
            webhook_queue: 10_000,
            webhook_secret: String::new(),
            keepalive_ms: 15_000,
            max_readers: 256,
            reader_stall_timeout_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    pub max_activeflows: usize,
    pub max_execute_count: u32,
    /// How long running activeflows may go on after SIGTERM before they end with `shutdown`.
    #[serde(default = "default_grace")]
    pub shutdown_grace_seconds: u64,
    /// How many ended activeflows stay listed in memory (oldest dropped first).
    #[serde(default = "default_ended_retained")]
    pub ended_retained: usize,
    /// Arbiter threads for call sessions and activeflows; 0 = one per core.
    #[serde(default)]
    pub workers: usize,
    /// A hard cap on every call's life from its INVITE, in seconds; 0 = none.
    #[serde(default)]
    pub max_call_seconds: u64,
    /// Bytes one variable's value may hold.
    #[serde(default = "default_max_variable_bytes")]
    pub max_variable_bytes: usize,
    /// Bytes one activeflow's variables (names and values) may hold together.
    #[serde(default = "default_max_variables_bytes")]
    pub max_variables_bytes: usize,
    /// Executed actions one activeflow keeps in memory (older ones are in storage only).
    #[serde(default = "default_max_executed_actions")]
    pub max_executed_actions: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsConfig {
    pub dir: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `"sqlite"` (embedded, `path`; the default) or `"postgres"` (`url`; needed by a cluster).
    #[serde(default = "default_storage_backend")]
    pub backend: String,
    /// `postgres://user@host:port/db` when `backend = "postgres"`.
    #[serde(default)]
    pub url: String,
    pub path: String,
    pub retention_days: u32,
    /// The largest row a write may store, in bytes; a write over it is dropped on its own
    /// (logged, `activeflow_storage_write_rejected_total`) and the rest of its batch commits.
    #[serde(default = "default_max_row_bytes")]
    pub max_row_bytes: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    pub name: String,
    #[serde(default)]
    pub allow: Vec<String>,
    /// `host:port`, `ip:port` or `[ipv6]:port`; the port defaults to 5060 (5061 over TLS).
    #[serde(default)]
    pub outbound_proxy: String,
    /// `udp`, `tcp` or `tls`; empty = RFC 3263 NAPTR picks (UDP when DNS names none).
    #[serde(default)]
    pub transport: String,
    /// PEM CA certificate(s): over TLS, the proxy's certificate must chain to these only
    /// (empty = the system's roots).
    #[serde(default)]
    pub tls_ca: String,
    /// Digest credentials for the carrier's challenges (issue 17; validated in `trunk.rs`).
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub realm: String,
    #[serde(default)]
    pub register: bool,
    #[serde(default = "trunk_account::default_register_expires")]
    pub register_expires: u32,
    #[serde(default)]
    pub from_user: String,
    #[serde(default)]
    pub from_domain: String,
}

impl Default for TrunkConfig {
    /// A trunk as an empty `[[trunks]]` table reads (for configs built in code).
    fn default() -> Self {
        TrunkConfig {
            name: String::new(),
            allow: Vec::new(),
            outbound_proxy: String::new(),
            transport: String::new(),
            tls_ca: String::new(),
            username: String::new(),
            password: String::new(),
            realm: String::new(),
            register: false,
            register_expires: trunk_account::default_register_expires(),
            from_user: String::new(),
            from_domain: String::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub number: String,
    pub flow: String,
}

fn default_storage_backend() -> String {
    "sqlite".into()
}
fn default_max_row_bytes() -> usize {
    16 << 20
}

/// `10.0.0.1`, `10.0.0.1/32`, `2001:db8::1/128`: one address, not a network.
fn is_single_host(cidr: &str) -> bool {
    match cidr.split_once('/') {
        None => cidr.parse::<IpAddr>().is_ok(),
        Some((ip, prefix)) => match ip.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => prefix == "32",
            Ok(IpAddr::V6(_)) => prefix == "128",
            Err(_) => false,
        },
    }
}

fn default_max_new_calls_per_source() -> u32 {
    100
}
fn default_failover_timeout() -> u64 {
    4000
}
fn default_rate_limit_exempt() -> Vec<String> {
    vec!["127.0.0.0/8".into(), "::1".into()]
}
fn default_max_message_size() -> usize {
    65_535
}
fn default_session_expires() -> u32 {
    1800
}
fn default_min_se() -> u32 {
    90
}
fn default_t1() -> u64 {
    500
}
fn default_t2() -> u64 {
    4_000
}
fn default_t4() -> u64 {
    5_000
}
fn default_overload_lag() -> u64 {
    200
}
fn default_tcp_write_queue() -> usize {
    256
}
fn default_tcp_max_connections() -> usize {
    10_000
}
fn default_tcp_max_connections_per_ip() -> usize {
    64
}
fn default_tcp_idle_timeout() -> u64 {
    600
}
fn default_tcp_write_timeout() -> u64 {
    10
}
fn default_grace() -> u64 {
    10
}
fn default_ended_retained() -> usize {
    10_000
}
fn default_max_variable_bytes() -> usize {
    crate::flow::limits::DEFAULT_MAX_VARIABLE_BYTES
}
fn default_max_variables_bytes() -> usize {
    crate::flow::limits::DEFAULT_MAX_VARIABLES_BYTES
}
fn default_max_executed_actions() -> usize {
    crate::engine::DEFAULT_MAX_EXECUTED_ACTIONS
}

/// The config after validation: addresses parsed, ACLs compiled.
#[derive(Debug, Clone)]
pub struct Settings {
    pub raw: Config,
    pub sip_listen: SocketAddr,
    pub public_address: IpAddr,
    pub rtp_ports: PortRange,
    /// `sip.rate_limit_exempt`, parsed, plus every single-address entry of a trunk's `allow`.
    pub sip_rate_limit_exempt: Vec<Cidr>,
    pub api_listen: SocketAddr,
    /// Who may call the API (`api.token`, `api.token_file`, `api.tokens`).
    pub api_access: AccessPolicy,
    /// `api.tls_cert` + `api.tls_key`, loaded: the API serves HTTPS.
    pub api_tls: Option<TlsConfig>,
    pub metrics_listen: SocketAddr,
    /// `metrics.tls_cert` + `metrics.tls_key`, loaded.
    pub metrics_tls: Option<TlsConfig>,
    /// `sip.tls_listen` with `sip.tls_cert` + `sip.tls_key`, loaded: SIP over TLS is served.
    pub sip_tls: Option<(SocketAddr, TlsConfig)>,
    pub trunks: Vec<Trunk>,
    /// `sip.dns_servers`, parsed (empty: the system's).
    pub dns_servers: Vec<SocketAddr>,
    pub flows_dir: PathBuf,
    pub http: HttpPolicy,
    /// `[[users]]` and the `sip.realm` / `sip.auth_*` / `sip.register_*` keys, checked.
    pub phones: phones::PhoneSettings,
}

impl Config {
    /// Validates every key and returns the parsed settings.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let sip_listen = parse_addr("sip.listen", &self.sip.listen)?;
        let public_address = if self.sip.public_address.is_empty() {
            // A wildcard listen address cannot go into SDP; loopback is the safe local default.
            match sip_listen.ip() {
                ip if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
                ip => ip,
            }
        } else {
            self.sip
                .public_address
                .parse()
                .map_err(|_| invalid("sip.public_address", "not an IP address"))?
        };
        if !(512..=1_048_576).contains(&self.sip.max_message_size) {
            return Err(invalid("sip.max_message_size", "must be 512..=1048576"));
        }
        if self.sip.t1_ms == 0 || self.sip.t2_ms < self.sip.t1_ms {
            return Err(invalid("sip.t1_ms", "need 0 < t1_ms <= t2_ms"));
        }
        if self.sip.min_se_seconds < 90 {
            return Err(invalid(
                "sip.min_se_seconds",
                "must be at least 90 (RFC 4028)",
            ));
        }
        if self.sip.session_expires_seconds != 0
            && self.sip.session_expires_seconds < self.sip.min_se_seconds
        {
            return Err(invalid(
                "sip.session_expires_seconds",
                "must be 0 (off) or at least sip.min_se_seconds",
            ));
        }
        for (key, value) in [
            ("sip.tcp_write_queue", self.sip.tcp_write_queue),
            ("sip.tcp_max_connections", self.sip.tcp_max_connections),
            (
                "sip.tcp_max_connections_per_ip",
                self.sip.tcp_max_connections_per_ip,
            ),
            (
                "sip.tcp_idle_timeout_s",
                self.sip.tcp_idle_timeout_s as usize,
            ),
            (
                "sip.tcp_write_timeout_s",
                self.sip.tcp_write_timeout_s as usize,
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        let rtp_ports = self.media.rtp_ports.parse().map_err(
            |m: crate::media::rtp_ports::ParsePortRangeError| {
                invalid("media.rtp_ports", m.to_string())
            },
        )?;
        if !self.media.tts_command.contains("{output}")
            || !self.media.tts_command.contains("{text}")
        {
            return Err(invalid(
                "media.tts_command",
                "must contain the {output} and {text} placeholders",
            ));
        }
        for (key, value) in [
            ("media.recordings_dir", &self.media.recordings_dir),
            ("media.cache_dir", &self.media.cache_dir),
            ("media.prompts_dir", &self.media.prompts_dir),
        ] {
            if value.is_empty() {
                return Err(invalid(key, "must not be empty"));
            }
        }
        if self.media.max_prompt_fetches == 0 {
            return Err(invalid("media.max_prompt_fetches", "must be at least 1"));
        }
        let api_listen = parse_addr("api.listen", &self.api.listen)?;
        let api_access = api_access(&self.api)?;
        if !api_listen.ip().is_loopback() && api_access.is_open() {
            return Err(invalid(
                "api.token",
                "api.token, api.token_file or api.tokens required when api.listen is not a \
                 loopback address",
            ));
        }
        let api_tls = tls_files("api", &self.api.tls_cert, &self.api.tls_key)?;
        let sip_tls = sip_tls(&self.sip)?;
        let metrics_listen = parse_addr("metrics.listen", &self.metrics.listen)?;
        let metrics_tls = tls_files("metrics", &self.metrics.tls_cert, &self.metrics.tls_key)?;
        if self.engine.max_activeflows == 0 {
            return Err(invalid("engine.max_activeflows", "must be at least 1"));
        }
        if self.engine.max_execute_count == 0 {
            return Err(invalid("engine.max_execute_count", "must be at least 1"));
        }
        // Every activeflow starts with a dozen seeded variables (ids are 36 bytes, about 400
        // bytes in all): caps below these minimums would refuse every call.
        for (key, value, min) in [
            (
                "engine.max_variable_bytes",
                self.engine.max_variable_bytes,
                64,
            ),
            (
                "engine.max_variables_bytes",
                self.engine.max_variables_bytes,
                4096,
            ),
            (
                "engine.max_executed_actions",
                self.engine.max_executed_actions,
                1,
            ),
        ] {
            if value < min {
                return Err(invalid(key, format!("must be at least {min}")));
            }
        }
        if self.engine.max_variable_bytes > self.engine.max_variables_bytes {
            return Err(invalid(
                "engine.max_variable_bytes",
                "must not be more than engine.max_variables_bytes",
            ));
        }
        let mut trunks = Vec::with_capacity(self.trunks.len());
        for (i, t) in self.trunks.iter().enumerate() {
            if t.name.is_empty() {
                return Err(invalid(format!("trunks[{i}].name"), "must not be empty"));
            }
            let allow = t
                .allow
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    c.parse().map_err(|m: ParseCidrError| {
                        invalid(format!("trunks[{i}].allow[{j}]"), m.to_string())
                    })
                })
                .collect::<Result<Vec<Cidr>, _>>()?;
            let (outbound_proxy, transport) = trunk::addressing(i, t)?;
            let outbound_proxy_set = outbound_proxy.is_some();
            let tls_ca = trunk_transport::tls_ca(i, t, transport)?;
            trunk_transport::register_over_tls(i, t, transport, &self.sip)?;
            trunks.push(Trunk {
                name: t.name.clone(),
                allow,
                outbound_proxy,
                transport,
                tls_ca,
                account: trunk_account::account(i, t, outbound_proxy_set)?,
            });
        }
        for (i, r) in self.routes.iter().enumerate() {
            if r.number.is_empty() {
                return Err(invalid(format!("routes[{i}].number"), "must not be empty"));
            }
            if r.flow.is_empty() {
                return Err(invalid(format!("routes[{i}].flow"), "must not be empty"));
            }
        }
        let flows_dir = PathBuf::from(&self.flows.dir);
        let cidrs = |key: &str, list: &[String]| {
            list.iter()
                .enumerate()
                .map(|(i, c)| {
                    c.parse()
                        .map_err(|m: ParseCidrError| invalid(format!("{key}[{i}]"), m.to_string()))
                })
                .collect::<Result<Vec<Cidr>, _>>()
        };
        if self.sip.max_new_calls_per_source_per_second > 1_000_000 {
            return Err(invalid(
                "sip.max_new_calls_per_source_per_second",
                "must be 0 (off) ..= 1000000",
            ));
        }
        let mut sip_rate_limit_exempt =
            cidrs("sip.rate_limit_exempt", &self.sip.rate_limit_exempt)?;
        // A trunk that names its peer's exact address (a carrier's SBC, our own proxy) is
        // trusted at any rate; one that opens a network is where unknown callers come from.
        for t in &self.trunks {
            let hosts: Vec<String> = t
                .allow
                .iter()
                .filter(|c| is_single_host(c))
                .cloned()
                .collect();
            sip_rate_limit_exempt.extend(cidrs("trunks.allow", &hosts)?);
        }
        if self.http.timeout_ms == 0 {
            return Err(invalid("http.timeout_ms", "must be at least 1"));
        }
        if self.http.webhook_queue == 0 {
            return Err(invalid("http.webhook_queue", "must be at least 1"));
        }
        if self.http.webhook_concurrency == 0 {
            return Err(invalid("http.webhook_concurrency", "must be at least 1"));
        }
        if self.http.webhook_destinations == 0 {
            return Err(invalid("http.webhook_destinations", "must be at least 1"));
        }
        validate_events(&self.events)?;
        validate_storage(&self.storage)?;
        cluster::validate(&self.cluster, &self.storage)?;
        let dns_servers = trunk::dns_servers(&self.sip)?;
        let phones = phones::validate(&self)?;
        let http = HttpPolicy {
            allow: cidrs("http.allow", &self.http.allow)?,
            deny: cidrs("http.deny", &self.http.deny)?,
            // The engine's own addresses: a flow must not reach its API or metrics through them.
            own: Some(std::sync::Arc::new(crate::http::OwnAddresses::new([
                public_address,
                sip_listen.ip(),
                api_listen.ip(),
                metrics_listen.ip(),
            ]))),
            timeout: std::time::Duration::from_millis(self.http.timeout_ms),
            max_response_bytes: self.http.max_response_bytes,
            webhook_limits: crate::http::QueueLimits {
                capacity: self.http.webhook_queue,
                concurrency: self.http.webhook_concurrency,
                idle: crate::http::WEBHOOK_WORKER_IDLE,
                destinations: self.http.webhook_destinations,
            },
        };
        Ok(Settings {
            http,
            sip_listen,
            public_address,
            rtp_ports,
            sip_rate_limit_exempt,
            api_listen,
            api_access,
            api_tls,
            metrics_listen,
            metrics_tls,
            sip_tls,
            trunks,
            dns_servers,
            flows_dir,
            phones,
            raw: self,
        })
    }
}

/// A row cap below 1 KiB would refuse ordinary rows; SQLite cannot go above 1,000,000,000.
fn validate_storage(storage: &StorageConfig) -> Result<(), ConfigError> {
    if !(1024..=1_000_000_000).contains(&storage.max_row_bytes) {
        return Err(invalid(
            "storage.max_row_bytes",
            "must be 1024..=1000000000",
        ));
    }
    Ok(())
}

fn validate_events(events: &EventsConfig) -> Result<(), ConfigError> {
    if events.max_readers == 0 {
        return Err(invalid("events.max_readers", "must be at least 1"));
    }
    if events.reader_stall_timeout_ms == 0 {
        return Err(invalid(
            "events.reader_stall_timeout_ms",
            "must be at least 1",
        ));
    }
    if !(1..=16_777_216).contains(&events.window) {
        return Err(invalid("events.window", "must be 1..=16777216"));
    }
    if events.webhook_queue == 0 {
        return Err(invalid("events.webhook_queue", "must be at least 1"));
    }
    if events.keepalive_ms == 0 {
        return Err(invalid("events.keepalive_ms", "must be at least 1"));
    }
    if !events.webhook_uri.is_empty() && !is_http_url(&events.webhook_uri) {
        return Err(invalid("events.webhook_uri", "not an http(s) URL"));
    }
    if crate::flow::WebhookFormat::parse(&events.webhook_format).is_none() {
        return Err(invalid(
            "events.webhook_format",
            format!(
                "{:?} is not \"native\" or \"voipbin\"",
                events.webhook_format
            ),
        ));
    }
    Ok(())
}

/// An absolute http:// or https:// URL with a host.
pub fn is_http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        invalid(
            key,
            format!("{value:?} is not an address like 127.0.0.1:5060"),
        )
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_layers;

#[cfg(test)]
mod tests_secrets;
