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
//! - [`config`]: typed TOML config in layers (embedded default, a file holding its changes,
//!   `ACTIVEFLOW_<SECTION>_<KEY>` overrides), validated before any socket is bound, parsed
//!   into the owning layers' types (`net::Cidr`, `call::Trunk`, `media::rtp_ports::PortRange`,
//!   `http::HttpPolicy`).
//! - [`net`]: networks in CIDR notation, shared by trunk ACLs and the HTTP policy; depends on
//!   nothing else.
//! - [`sip`]: message fixes over rsip, TCP framing, UDP/TCP/TLS transport, RFC 3261 §17
//!   transaction state machines, the linger table of completed answers, the per-source rate
//!   limit, digest authentication (`sip::auth`: the digest core, server nonces, the failed-auth
//!   ban table), the registrar's location service (`sip::registrar`) and RFC 3263 server
//!   location (`sip::resolve`: NAPTR/SRV/A lookups, target order for failover). Knows nothing
//!   of calls or flows.
//! - [`media`]: SDP offer/answer, the RTP port pool, one RTP session task per answered call
//!   (prompts, speech, DTMF, echo, recording, answering-machine detection `media::amd`, mute,
//!   the `connect` relay between two legs, external media streams to RTP and WebSocket hosts),
//!   the audio library and recordings. Knows nothing of SIP dialogs or flows.
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
//! - [`conference`]: mixing rooms (N−1 mix of decoded PCM on a 20 ms tick), their registry
//!   and bounds; the media session feeds and drains a room through bounded links. Imports
//!   `metrics`, `events` (it publishes joins and leaves) and the id rule of `flow`.
//! - [`flow`]: flow/action model, validation, variables, flow store. Imports none of the others.
//! - [`engine`]: the supervisor actor (one shard per arbiter), one activeflow actor per
//!   activeflow, action execution, the shared activeflow registry, and outbound calls that run
//!   flows (`engine::originate`: `POST /v1/calls`, the `call` action). Knows no HTTP.
//! - [`events`]: the event stream: activeflow and call events in a bounded window for SSE
//!   readers (resumable by id) and bounded queues to webhooks. Publishing never blocks. Built
//!   by `engine` and `call` from their records; webhooks signed with `events.webhook_secret`;
//!   imports only `flow`, `http` and `metrics`.
//! - [`api`]: REST handlers (actix-web) over the engine; errors mapped to HTTP; security headers
//!   on every answer; the CDR export (`api::cdr`, CSV streamed from storage); requests for
//!   another node's records forwarded to their owner (`api::forward`).
//! - [`console`]: the operator's browser console (static HTML, CSS and ES modules embedded in
//!   the binary) served at `/console/` by the API listener; imports nothing of the engine.
//! - [`storage`]: durable history behind the `Store` trait (embedded SQLite by default): flows,
//!   activeflows with their executed actions, calls; a bounded queue to one writer thread;
//!   PostgreSQL for a cluster. Takes plain rows, so every layer may use it; it imports only
//!   `clock`, `health` and `metrics`.
//! - [`cluster`]: many nodes as one on PostgreSQL and NATS: membership by heartbeats in a
//!   JetStream key-value bucket, the reaper lease and node-lost declarations, requests
//!   forwarded to a record's owner, flow change notices, the cluster event stream.
//! - [`metrics`]: metric names, units and buckets (`queue` and `cluster` name their own), all
//!   beyond the core names prefixed `activeflow_`.
//! - [`health`]: watched parts (SIP UDP receiver, storage writer, recording writer): each runs
//!   on a thread that is restarted or reported fatal when it dies; `/readyz` reads their state.
//!   Imports only `metrics`.
//! - [`queue`]: call queues (`queue_join`, `/v1/queues`): definitions, the sans-IO machine of
//!   agents and waiting callers, the actor owning them. Imports `flow`, `media`, `metrics`;
//!   the activeflow (engine) dials and bridges agents on its orders.
//! - [`paging`]: newest-first pages with sequence tokens, shared by every list.
//! - [`clock`]: RFC 3339 timestamps shared by `call` and `engine`.
//! - [`tls`]: PEM key pairs loaded into rustls (ring) for the API and metrics listeners.
//! - [`app`]: wires the layers together from a validated config and already-bound sockets.
//! - [`shutdown`]: the drain sequence on SIGINT/SIGTERM.
//! - [`logging`]: `log.format` (text or JSON lines on stderr); the ids of a line come from the
//!   spans `call::span` and `engine::span` open around their actors. Imports only `config`.

pub mod api;
pub mod app;
pub mod call;
pub mod clock;
pub mod cluster;
pub mod conference;
pub mod config;
pub mod console;
pub mod engine;
pub mod events;
pub mod flow;
pub mod health;
pub mod http;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod net;
pub mod paging;
pub mod queue;
pub mod shutdown;
pub mod sip;
pub mod storage;
pub mod tls;
