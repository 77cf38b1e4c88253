//! Wiring: binds every socket from a validated config ([`Listeners::bind`]), then starts the
//! layers on them ([`start`]): arbiters for call and activeflow actors, the supervisor, the SIP
//! receive thread, TCP, the API and metrics servers. Tests bind port 0 and read the addresses back.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::{web, HttpResponse, HttpServer};
use metrics_exporter_prometheus::PrometheusHandle;
use socket2::{Domain, Protocol, Socket, Type};

use crate::api::{self, ApiState};
use crate::call::outbound::Dialer;
use crate::call::registration::Registrations;
use crate::call::session::SessionShared;
use crate::call::{CallRegistry, Dispatcher, DispatcherConfig, OverloadGuard};
use crate::config::Settings;
use crate::engine::{
    ActiveflowRegistry, EngineLimits, RouteTable, Services, Supervisor, Supervisors,
};
use crate::events::{EventBus, EventsOptions, ReaderLimits};
use crate::flow::FlowStore;
use crate::health::Health;
use crate::media::library::{AudioLibrary, LibraryConfig};
use crate::media::{Recordings, RtpPortPool};
use crate::sip::transaction::{LingerTable, Timers};
use crate::sip::transport::{self, SipSender, UdpReceiver};
use crate::storage::{FlowSource, Storage, StorageError};
use crate::tls::TlsConfig;

/// Kernel socket buffer for SIP over UDP; the default drops datagrams under load.
const UDP_BUFFER_BYTES: usize = 4 << 20;
/// Recordings whose records stay listed (their files stay on disk regardless).
const RECORDINGS_RETAINED: usize = 10_000;
/// How long `App::stop` waits for ending activeflows to commit before closing storage.
const STOP_COMMIT_WAIT: Duration = Duration::from_secs(5);
/// How often expired lingering responses are dropped.
const LINGER_SWEEP: Duration = Duration::from_millis(500);

/// Serves an `HttpServer` on a bound listener, over TLS when a [`TlsConfig`] is given (a macro:
/// `HttpServer`'s service types cannot be named outside actix-web).
macro_rules! listen {
    ($server:expr, $listener:expr, $tls:expr) => {
        match $tls {
            None => $server.listen($listener),
            Some(tls) => $server.listen_rustls_0_23($listener, TlsConfig::server_config(tls)),
        }
    };
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("binding {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("starting {what}: {source}")]
    Start {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// Every socket the engine serves on, bound before anything starts.
pub struct Listeners {
    pub sip_udp: UdpSocket,
    pub sip_tcp: TcpListener,
    /// `sip.tls_listen`, when set.
    pub sip_tls: Option<TcpListener>,
    pub api: TcpListener,
    pub metrics: TcpListener,
}

impl Listeners {
    /// Binds UDP and TCP SIP on one port (port 0 picks one free for both), API and metrics.
    pub fn bind(settings: &Settings) -> Result<Listeners, AppError> {
        let bind_err = |what, addr| move |source| AppError::Bind { what, addr, source };
        let sip = settings.sip_listen;
        let (sip_udp, sip_tcp) = bind_sip_pair(sip).map_err(bind_err("sip", sip))?;
        let sip_tls = match &settings.sip_tls {
            Some((addr, _)) => Some(TcpListener::bind(addr).map_err(bind_err("sip tls", *addr))?),
            None => None,
        };
        let api =
            TcpListener::bind(settings.api_listen).map_err(bind_err("api", settings.api_listen))?;
        let metrics = TcpListener::bind(settings.metrics_listen)
            .map_err(bind_err("metrics", settings.metrics_listen))?;
        Ok(Listeners {
            sip_udp,
            sip_tcp,
            sip_tls,
            api,
            metrics,
        })
    }
}

fn bind_sip_pair(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    // With port 0, the UDP port picked may be taken for TCP: try a few.
    let mut last_err = None;
    for _ in 0..16 {
        let udp = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        let _ = udp.set_recv_buffer_size(UDP_BUFFER_BYTES);
        let _ = udp.set_send_buffer_size(UDP_BUFFER_BYTES);
        udp.bind(&addr.into())?;
        let udp: UdpSocket = udp.into();
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("no free port pair")))
}

/// A running engine.
pub struct App {
    pub flows: Arc<FlowStore>,
    pub registry: Arc<ActiveflowRegistry>,
    pub calls: Arc<CallRegistry>,
    /// Shard 0 of the supervisors (any shard answers for all).
    pub supervisor: Addr<Supervisor>,
    pub supervisors: Arc<Supervisors>,
    pub dispatcher: Arc<Dispatcher>,
    pub recordings: Arc<Recordings>,
    pub ready: Arc<AtomicBool>,
    /// The watched parts' state; [`Health::fatal`] resolves when one died for good.
    pub health: Health,
    pub storage: Storage,
    pub sip_addr: SocketAddr,
    /// The SIP/TLS listener's address (`sip.tls_listen`).
    pub sip_tls_addr: Option<SocketAddr>,
    pub api_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub events: EventBus,
    /// Trunk registrations (removed at shutdown).
    pub registrations: Arc<Registrations>,
    /// This node in its cluster (`[cluster]`); `None` for a single node.
    pub cluster: Option<crate::cluster::Cluster>,
    udp: Option<UdpReceiver>,
    servers: Vec<actix_web::dev::ServerHandle>,
    arbiters: Vec<Arbiter>,
}

impl App {
    /// Stops the receive thread, HTTP servers and arbiters (after the drain), committing what
    /// storage has queued first.
    pub async fn stop(mut self) {
        if let Some(udp) = self.udp.take() {
            // Joining blocks for at most one receive poll interval.
            let _ = tokio::task::spawn_blocking(move || udp.stop()).await;
        }
        // Activeflows told to stop show their end once it is committed; let them.
        let deadline = tokio::time::Instant::now() + STOP_COMMIT_WAIT;
        while self.registry.running() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.storage.close().await;
        // Peers drop a node that leaves at once, rather than declaring it lost; it beats
        // until its last records are committed (or given up), so none is left unreaped.
        if let Some(m) = self.cluster.as_ref().and_then(|c| c.membership()) {
            m.leave().await;
        }
        // Open event streams would hold the API server's graceful stop for its whole timeout.
        self.events.close();
        for s in self.servers.drain(..) {
            s.stop(true).await;
        }
        for a in self.arbiters.drain(..) {
            a.stop();
        }
    }
}

/// Starts the engine on already-bound listeners. Must run inside an actix `System`.
pub async fn start(
    settings: &Settings,
    flows: Arc<FlowStore>,
    listeners: Listeners,
    metrics: Option<PrometheusHandle>,
) -> Result<App, AppError> {
    let start_err = |what| move |source| AppError::Start { what, source };
    let sip_addr = listeners.sip_udp.local_addr().map_err(start_err("sip"))?;
    let api_addr = listeners.api.local_addr().map_err(start_err("api"))?;
    let sip_tls_addr = match &listeners.sip_tls {
        Some(l) => Some(l.local_addr().map_err(start_err("sip tls"))?),
        None => None,
    };
    let metrics_addr = listeners
        .metrics
        .local_addr()
        .map_err(start_err("metrics"))?;
    let raw = &settings.raw;

    let workers = match raw.engine.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
    let handles: Vec<ArbiterHandle> = arbiters.iter().map(Arbiter::handle).collect();

    let cluster = match raw.cluster.is_enabled() {
        true => Some(crate::cluster::Cluster::connect(&raw.cluster).await?),
        false => None,
    };
    let registry = Arc::new(ActiveflowRegistry::new(raw.engine.ended_retained));
    let calls = Arc::new(CallRegistry::new());
    let health = Health::new();
    // Before the store's API flows join them: what a cluster's flow resync never removes.
    let file_flows: std::collections::HashSet<_> = flows.list().iter().map(|f| f.id).collect();
    let storage = open_storage(
        settings,
        &flows,
        &registry,
        &calls,
        &health,
        cluster.as_ref(),
    )?;
    let limits = EngineLimits::from(&raw.engine);
    let routes = Arc::new(RouteTable::new(&raw.routes));
    let http =
        crate::http::HttpClient::new(settings.http.clone()).map_err(|e| AppError::Start {
            what: "http client",
            source: std::io::Error::other(e.to_string()),
        })?;
    // Made now, attached to the SIP layer below (whose offer sinks are these supervisors).
    let dialer = Arc::new(Dialer::new(
        settings.trunks.clone(),
        raw.engine.max_activeflows,
    ));
    let events = EventBus::start(&events_options(&raw.events), http.clone());
    if let Some(cluster) = &cluster {
        crate::cluster::events::start(cluster, &events, raw.events.window).await?;
    }
    let queues = crate::queue::QueueManager::new().start();
    let conferences = crate::conference::Conferences::with_events(events.clone());
    // One supervisor shard per arbiter: a call's offer and its activeflow never leave the
    // thread of its call session.
    let shards: Vec<Addr<Supervisor>> = handles
        .iter()
        .map(|h| {
            let (f, r, rt) = (flows.clone(), registry.clone(), routes.clone());
            let services = Services {
                http: http.clone(),
                storage: storage.clone(),
                dialer: dialer.clone(),
                events: events.clone(),
                queues: queues.clone(),
                conferences: conferences.clone(),
            };
            actix::Supervisor::start_in_arbiter(h, move |_| {
                Supervisor::new(f, rt, r, limits, services.clone())
            })
        })
        .collect();
    let supervisors = Arc::new(Supervisors::new(shards.clone()));
    let Some(supervisor) = shards.first().cloned() else {
        return Err(AppError::Start {
            what: "supervisor",
            source: std::io::Error::other("no arbiter"),
        });
    };

    let udp = Arc::new(listeners.sip_udp);
    let sender = SipSender::with_tcp_options(udp.clone(), sip_addr, tcp_options(&raw.sip));
    let linger = Arc::new(LingerTable::new());
    let location = Arc::new(crate::sip::registrar::LocationService::new(
        settings.phones.expiry,
    ));
    let phones = Arc::new(crate::call::PhoneGate::new(
        crate::sip::auth::server::Authenticator::new(
            settings.phones.auth.clone(),
            tokio::time::Instant::now().into_std(),
        )
        .map_err(|e| AppError::Start {
            what: "sip digest nonces",
            source: std::io::Error::other(e),
        })?,
        crate::sip::auth::server::AuthBans::new(
            settings.phones.bans,
            settings.sip_rate_limit_exempt.clone(),
        ),
        location.clone(),
    ));
    let sweep = linger.clone();
    let phone_sweep = phones.clone();
    actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(LINGER_SWEEP);
        loop {
            tick.tick().await;
            let now = tokio::time::Instant::now();
            sweep.purge(now);
            phone_sweep.purge(now.into_std());
        }
    });
    let recordings = Recordings::start(
        std::path::Path::new(&raw.media.recordings_dir),
        RECORDINGS_RETAINED,
        &health,
    )
    .map_err(start_err("recordings (media.recordings_dir)"))?;
    recordings.keep_for(raw.media.recordings_retention_days);
    let library = Arc::new(
        AudioLibrary::with_limits(
            LibraryConfig {
                prompts_dir: raw.media.prompts_dir.clone().into(),
                tts_command: raw.media.tts_command.clone(),
                cache_dir: raw.media.cache_dir.clone().into(),
                fetch_timeout: settings.http.timeout,
                http_policy: settings.http.clone(),
                max_download_bytes: 16 << 20,
                tts_timeout: Duration::from_secs(10),
            },
            raw.media.limits(),
        )
        .with_ringback(raw.media.ringback_tone),
    );
    let shared = Arc::new(SessionShared {
        sender: sender.clone(),
        registry: calls.clone(),
        offers: shards.iter().map(|s| s.clone().recipient()).collect(),
        timers: Timers {
            t1: Duration::from_millis(raw.sip.t1_ms),
            t2: Duration::from_millis(raw.sip.t2_ms),
            t4: Duration::from_millis(raw.sip.t4_ms),
        },
        public_ip: settings.public_address,
        rtp_ports: RtpPortPool::new(settings.rtp_ports, settings.public_address),
        linger: linger.clone(),
        overload: OverloadGuard::new(Duration::from_millis(raw.sip.overload_lag_ms)),
        library,
        recordings: recordings.clone(),
        storage: storage.clone(),
        events: events.clone(),
        max_call: (raw.engine.max_call_seconds > 0)
            .then(|| Duration::from_secs(raw.engine.max_call_seconds)),
        session_expires: (raw.sip.session_expires_seconds > 0)
            .then_some(raw.sip.session_expires_seconds),
        min_se: raw.sip.min_se_seconds,
        rtp_timeout: (raw.media.rtp_timeout_seconds > 0)
            .then(|| Duration::from_secs(raw.media.rtp_timeout_seconds)),
        resolver: crate::sip::resolve::SipResolver::new(&settings.dns_servers).map_err(|e| {
            AppError::Start {
                what: "dns resolver (sip.dns_servers, /etc/resolv.conf)",
                source: std::io::Error::other(e.to_string()),
            }
        })?,
        failover_timeout: Duration::from_millis(raw.sip.failover_timeout_ms),
        location: location.clone(),
    });
    dialer.attach(shared.clone());
    let registrations = Arc::new(Registrations::start(&settings.trunks, &shared));
    let dispatcher = Arc::new(Dispatcher::new(
        shared,
        handles.clone(),
        DispatcherConfig {
            allow: settings
                .trunks
                .iter()
                .flat_map(|t| t.allow.clone())
                .collect(),
            max_active_calls: raw.engine.max_activeflows,
            // Lingering sessions (absorbing retransmissions) are small but must stay bounded.
            max_sessions: raw.engine.max_activeflows.saturating_mul(8).max(1024),
            rate_limit: crate::sip::rate_limit::SourceRateLimiter::new(
                raw.sip.max_new_calls_per_source_per_second,
                settings.sip_rate_limit_exempt.clone(),
            ),
            phones: phones.clone(),
            cluster_reachable: cluster.as_ref().map_or_else(
                || Arc::new(std::sync::atomic::AtomicBool::new(true)),
                |c| c.reachable.clone(),
            ),
        },
    ));
    let max_size = raw.sip.max_message_size;
    let udp_rx =
        transport::spawn_udp_receiver(udp, dispatcher.clone(), sender.clone(), max_size, &health)
            .map_err(start_err("sip udp receiver"))?;
    let tcp_listener = listeners.sip_tcp;
    let (h, s) = (dispatcher.clone(), sender.clone());
    // The TCP ACL at accept: the union of every trunk's `allow`, as the dispatcher checks it;
    // with `[[users]]`, phones connect from anywhere (the dispatcher challenges them).
    let tcp_allow: Vec<crate::net::Cidr> = if phones.is_enabled() {
        ["0.0.0.0/0", "::/0"]
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect()
    } else {
        settings
            .trunks
            .iter()
            .flat_map(|t| t.allow.clone())
            .collect()
    };
    let tcp_arbiter = handles.first().cloned().unwrap_or_else(Arbiter::current);
    if let (Some(listener), Some((_, tls))) = (listeners.sip_tls, settings.sip_tls.clone()) {
        let (h, s, allow) = (dispatcher.clone(), sender, tcp_allow.clone());
        tcp_arbiter.spawn(async move {
            if let Err(e) = transport::serve_tls(listener, tls, h, s, max_size, allow).await {
                tracing::error!(error = %e, "sip tls listener failed");
            }
        });
    }
    tcp_arbiter.spawn(async move {
        if let Err(e) = transport::serve_tcp(tcp_listener, h, s, max_size, tcp_allow).await {
            tracing::error!(error = %e, "sip tcp listener failed");
        }
    });

    let ready = Arc::new(AtomicBool::new(false));
    let state = web::Data::new(ApiState {
        registry: registry.clone(),
        flows: flows.clone(),
        calls: calls.clone(),
        supervisors: supervisors.clone(),
        recordings: recordings.clone(),
        storage: storage.clone(),
        events: events.clone(),
        access: settings.api_access.clone(),
        ready: ready.clone(),
        health: health.clone(),
        trunks: settings.trunks.clone(),
        registrations: registrations.clone(),
        location,
        queues,
        conferences: conferences.clone(),
        cluster: cluster.clone(),
        routes: routes.clone(),
    });
    if settings.api_access.is_open() {
        tracing::warn!(
            listen = %api_addr,
            "api: no token configured (api.token, api.token_file, api.tokens): the API is open \
             to every local process; only requests addressed to localhost are served"
        );
    }
    if !api_addr.ip().is_loopback() && settings.api_tls.is_none() {
        tracing::warn!(
            listen = %api_addr,
            "api: listening beyond loopback without TLS (api.tls_cert, api.tls_key): bearer \
             tokens cross the network in clear"
        );
    }
    if let Some(cluster) = &cluster {
        let handler = api::forward::handler(state.clone());
        let (f, s) = (flows.clone(), storage.clone());
        crate::cluster::control::start(cluster.clone(), handler, f, s, file_flows);
    }
    let api_server = HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .configure(api::configure)
    })
    .workers(1)
    .disable_signals();
    let api_server = listen!(api_server, listeners.api, settings.api_tls.as_ref())
        .map_err(start_err("api"))?
        .run();
    let metrics_server = metrics_server(listeners.metrics, settings.metrics_tls.as_ref(), metrics)
        .map_err(start_err("metrics"))?;
    let servers = vec![api_server.handle(), metrics_server.handle()];
    actix_rt::spawn(api_server);
    actix_rt::spawn(metrics_server);
    if let Some(c) = &cluster {
        let (r, k, s) = (registry.clone(), calls.clone(), storage.clone());
        let hooks = crate::cluster::membership::Hooks {
            fenced: Box::new(move || s.take_fenced()),
            supervisor: supervisor.clone(),
            store: storage.store(),
            load: Box::new(move || crate::cluster::beat::Load {
                activeflows: r.running(),
                calls: k.active(),
            }),
            sip: sip_addr,
            api: api_addr,
        };
        crate::cluster::membership::Membership::start(c, hooks).await?;
    }
    ready.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(App {
        flows,
        registry,
        calls,
        supervisor,
        supervisors,
        dispatcher,
        recordings,
        ready,
        health,
        storage,
        sip_addr,
        sip_tls_addr,
        api_addr,
        metrics_addr,
        events,
        registrations,
        cluster,
        udp: Some(udp_rx),
        servers,
        arbiters,
    })
}

/// The event bus's options from `[events]` (already validated).
fn events_options(raw: &crate::config::EventsConfig) -> EventsOptions {
    EventsOptions {
        window: raw.window,
        keep_alive: Duration::from_millis(raw.keepalive_ms),
        webhook_uri: Some(raw.webhook_uri.clone()).filter(|u| !u.is_empty()),
        // Validated: anything else was refused before start-up.
        webhook_format: crate::flow::WebhookFormat::parse(&raw.webhook_format).unwrap_or_default(),
        webhook_queue: raw.webhook_queue,
        webhook_signer: crate::events::WebhookSigner::new(&raw.webhook_secret),
        readers: ReaderLimits {
            max_readers: raw.max_readers,
            stall_timeout: Duration::from_millis(raw.reader_stall_timeout_ms),
        },
    }
}

/// Opens storage (`storage.path`; empty = none), ends what a dead process left running
/// (`engine_restart`), records the flows loaded from files and loads back those created over the
/// API, continues the sequences, and starts the retention purge.
fn open_storage(
    settings: &Settings,
    flows: &FlowStore,
    registry: &ActiveflowRegistry,
    calls: &CallRegistry,
    health: &Health,
    cluster: Option<&crate::cluster::Cluster>,
) -> Result<Storage, AppError> {
    let raw = &settings.raw.storage;
    let postgres = raw.backend == "postgres";
    if raw.path.is_empty() && !postgres {
        tracing::warn!("storage.path is empty: no durable history");
        return Ok(Storage::disabled());
    }
    let (storage, recovery) = if postgres {
        // Shared by a cluster: this node's name and run fence its writes; sequences from a
        // hybrid clock so nodes creating records at once do not collide.
        let node_id = cluster.map_or("", |c| c.node_id.as_str());
        let incarnation = cluster.map_or_else(uuid::Uuid::new_v4, |c| c.incarnation);
        let options = crate::storage::PgOptions {
            max_row_bytes: raw.max_row_bytes,
        };
        let slot = crate::storage::sequence::slot_of(node_id);
        registry.use_clock_sequences(slot);
        calls.use_clock_sequences(slot);
        Storage::open_postgres(&raw.url, options, node_id, &incarnation.to_string(), health)?
    } else {
        let options = crate::storage::SqliteOptions {
            max_row_bytes: raw.max_row_bytes,
        };
        Storage::open_sqlite(std::path::Path::new(&raw.path), options, health)?
    };
    if recovery.activeflows + recovery.calls > 0 {
        tracing::warn!(
            activeflows = recovery.activeflows,
            calls = recovery.calls,
            "storage: ended what the previous process left running (engine_restart)"
        );
    }
    registry.continue_after(recovery.last_activeflow_sequence);
    calls.continue_after(recovery.last_call_sequence);
    if let Some(store) = storage.store() {
        let files: Vec<_> = flows
            .list()
            .iter()
            .map(|f| crate::engine::persist::flow_row(f, FlowSource::File))
            .collect();
        store.replace_file_flows(&files)?;
        // The operator's latest write wins over a file flow with the same id.
        for row in store.flows(FlowSource::Api)? {
            let loaded = crate::flow::Flow::from_json(row.body.as_bytes())
                .and_then(|flow| flows.insert(flow));
            if let Err(e) = loaded {
                tracing::warn!(flow_id = %row.id, error = %e, "storage: stored flow not loaded");
            }
        }
    }
    storage.spawn_retention(raw.retention_days);
    match postgres {
        true => tracing::info!(backend = "postgres", "storage open"),
        false => tracing::info!(path = %raw.path, "storage open"),
    }
    Ok(storage)
}

/// Serves `/metrics` from the installed recorder (404 when none is installed, as in tests), over
/// TLS when `metrics.tls_cert`/`tls_key` are set.
fn metrics_server(
    listener: TcpListener,
    tls: Option<&TlsConfig>,
    handle: Option<PrometheusHandle>,
) -> std::io::Result<actix_web::dev::Server> {
    if let Some(h) = handle.clone() {
        // The exporter needs periodic upkeep to bound histogram memory.
        actix_rt::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                h.run_upkeep();
            }
        });
    }
    let handle = web::Data::new(handle);
    let server = HttpServer::new(move || {
        actix_web::App::new().app_data(handle.clone()).route(
            "/metrics",
            web::get().to(|h: web::Data<Option<PrometheusHandle>>| async move {
                match h.as_ref() {
                    Some(h) => {
                        crate::metrics::collect_process();
                        HttpResponse::Ok()
                            .content_type("text/plain; version=0.0.4")
                            .body(h.render())
                    }
                    None => HttpResponse::NotFound().finish(),
                }
            }),
        )
    })
    .workers(1)
    .disable_signals();
    Ok(listen!(server, listener, tls)?.run())
}

/// TCP limits and timers from the `[sip]` section.
fn tcp_options(sip: &crate::config::SipConfig) -> transport::TcpOptions {
    transport::TcpOptions {
        write_queue: sip.tcp_write_queue,
        max_connections: sip.tcp_max_connections,
        max_connections_per_ip: sip.tcp_max_connections_per_ip,
        idle_timeout: Duration::from_secs(sip.tcp_idle_timeout_s),
        write_timeout: Duration::from_secs(sip.tcp_write_timeout_s),
        ..transport::TcpOptions::default()
    }
}
