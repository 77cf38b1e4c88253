//! activeflow — an actor-based telephony orchestration engine.
//!
//! ```text
//!  UDP/TCP/TLS ▶ sip::transport ─▶ call::dispatch ─▶ call::CallSession ◀──▶ engine::Activeflow
//!            (framing, parse)   (dialog lookup,    (one actor per SIP     (one actor per
//!                                stateless 4xx)     dialog, transactions)  activeflow)
//!                                                          ▲                     ▲
//!                   engine::Supervisor (shard per arbiter) ┘ spawns, routes      │
//!                                                    api (actix-web) ───────────┘ stop, list
//! ```
//!
//! Dependencies point downward only: `api → engine → call → sip`; `flow` (pure data), `media`,
//! `storage` and `metrics` sit beside them.
//!
//! - [`config`]: typed TOML config with `ACTIVEFLOW_<SECTION>_<KEY>` overrides, validated before
//!   any socket is bound, parsed into the owning layers' types (`net::Cidr`, `call::Trunk`,
//!   `media::rtp_ports::PortRange`, `http::HttpPolicy`).
//! - [`net`]: networks in CIDR notation, shared by trunk ACLs and the HTTP policy; depends on
//!   nothing else.
//! - [`sip`]: message fixes over rsip, TCP framing, UDP/TCP/TLS transport, RFC 3261 §17
//!   transaction state machines, the linger table of completed answers, the per-source rate
//!   limit, digest authentication (`sip::auth`: the digest core, server nonces, the failed-auth
//!   ban table), the registrar's location service (`sip::registrar`) and RFC 3263 server
//!   location (`sip::resolve`: NAPTR/SRV/A lookups, target order for failover). Knows nothing
//!   of calls or flows.
//! - [`media`]: SDP offer/answer, the RTP port pool, one RTP session task per answered call
//!   (prompts, speech, DTMF, echo, recording, the `connect` relay between two legs), the audio
//!   library and recordings. Knows nothing of SIP dialogs or flows.
//! - [`call`]: one sans-IO leg machine (`call::leg`) for both roles, the call we answer and the
//!   leg we place (with REFER/NOTIFY for blind transfer, `call::leg::refer`), and its thin actor shell, the call session (one per SIP dialog); the dialer
//!   that routes legs through trunks and the SIP MESSAGE sender (`call::outbound`); the
//!   dispatcher that matches every message to its dialog by Call-ID and tags and holds requests
//!   to the trunk ACL, or to digest authentication for phones (`call::phones`); the call
//!   registry and the overload guard; a trunk's account: digest answers to its 401/407
//!   (`call::auth`), the caller identity in From, and its registration (`call::registration`,
//!   RFC 3261 §10.2). Turns SIP into `CallEvent`s
//!   sent to a `Recipient`, never importing `engine`.
//! - [`http`]: flows' outgoing HTTP with timeouts, size limits and the `[http]` destination
//!   policy enforced on every resolved address and redirect.
//! - [`flow`]: flow/action model, validation, variables, flow store. Imports none of the others.
//! - [`engine`]: the supervisor actor (one shard per arbiter), one activeflow actor per
//!   activeflow, action execution, the shared activeflow registry. Knows no HTTP.
//! - [`events`]: the event stream: activeflow and call events in a bounded window for SSE
//!   readers (resumable by id) and bounded queues to webhooks. Publishing never blocks. Built
//!   by `engine` and `call` from their records; imports only `flow`, `http` and `metrics`.
//! - [`api`]: REST handlers (actix-web) over the engine; errors mapped to HTTP.
//! - [`storage`]: durable history behind the `Store` trait (embedded SQLite by default): flows,
//!   activeflows with their executed actions, calls; a bounded queue to one writer thread.
//!   Takes plain rows, so every layer may use it; it imports only `clock` and `metrics`.
//! - [`metrics`]: every metric name, unit and bucket in one place.
//! - [`health`]: watched parts (SIP UDP receiver, storage writer, recording writer): each runs
//!   on a thread that is restarted or reported fatal when it dies; `/readyz` reads their state.
//!   Imports only `metrics`.
//! - [`paging`]: newest-first pages with sequence tokens, shared by every list.
//! - [`clock`]: RFC 3339 timestamps shared by `call` and `engine`.
//! - [`tls`]: PEM key pairs loaded into rustls (ring) for the API and metrics listeners.
//! - [`app`]: wires the layers together from a validated config and already-bound sockets.
//! - [`shutdown`]: the drain sequence on SIGINT/SIGTERM.

pub mod api;
pub mod app;
pub mod call;
pub mod clock;
pub mod config;
pub mod engine;
pub mod events;
pub mod flow;
pub mod health;
pub mod http;
pub mod media;
pub mod metrics;
pub mod net;
pub mod paging;
pub mod shutdown;
pub mod sip;
pub mod storage;
pub mod tls;
