//! SIP over TLS (RFC 3261 §26.2, §18; `sips:` per RFC 5630): the accept loop (ACL and caps as
//! for TCP, then the handshake), connections of our own that check the server's certificate
//! against a host name and trust anchors, and the client configs those come from. Once a
//! handshake is done, the stream runs through `tcp.rs` (same framing, queues and timers);
//! nothing here reads or writes SIP.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::connections::{Connections, Slot, TcpOptions};
use super::log_limit::RECEIVE_LOG;
use super::tcp::{self, Serving};
use super::{InboundHandler, Peer, SipSender, TransportError, TransportKind};
use crate::net::Cidr;
use crate::tls::TlsConfig;

/// An accepted connection that has not finished its handshake by then is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Addresses whose TLS server name and trust anchors are remembered; beyond, the least
/// recently learned or used one is forgotten (it is learned again on its next dial:
/// [`SipSender::connect_tls`]). A trunk's targets, dialled and used often, stay.
const MAX_TARGETS: usize = 4096;

/// System CA bundles, first found wins (Debian/Ubuntu, Fedora/RHEL, Alpine/BSD).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// Trust anchors for TLS connections we open, as a rustls client config on ring.
#[derive(Clone)]
pub struct TlsClient(Arc<rustls::ClientConfig>);

#[derive(Debug, thiserror::Error)]
pub enum TlsClientError {
    #[error("{path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("tls client config: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsClient {
    /// Trusts only the CA certificate(s) in the PEM file at `path` (a trunk's `tls_ca`).
    pub fn from_ca_file(path: &Path) -> Result<TlsClient, TlsClientError> {
        let err = |reason: String| TlsClientError::Ca {
            path: path.display().to_string(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| err(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(e.to_string()))?;
        if certs.is_empty() {
            return Err(err("the file holds no CERTIFICATE block".into()));
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| err(format!("not a usable CA certificate: {e}")))?;
        }
        Self::with_roots(roots)
    }

    /// Trusts the system's CA bundle (`SSL_CERT_FILE`, else `/etc/ssl/certs/...`), or the
    /// Mozilla roots built in when no bundle is found.
    pub fn system() -> Result<TlsClient, TlsClientError> {
        let mut roots = rustls::RootCertStore::empty();
        let from_env = std::env::var("SSL_CERT_FILE").ok();
        let candidates = from_env
            .iter()
            .map(String::as_str)
            .chain(SYSTEM_BUNDLES.iter().copied());
        for path in candidates {
            if let Ok(certs) = CertificateDer::pem_file_iter(path) {
                let (added, _) = roots.add_parsable_certificates(certs.flatten());
                if added > 0 {
                    break;
                }
            }
        }
        if roots.is_empty() {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        Self::with_roots(roots)
    }

    fn with_roots(roots: rustls::RootCertStore) -> Result<TlsClient, TlsClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsClient(Arc::new(config)))
    }
}

impl PartialEq for TlsClient {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TlsClient {}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsClient(..)")
    }
}

/// Who a TLS connection of ours must reach: the host name the route named (SNI and the
/// certificate check, RFC 3261 §26.3.1; an IP literal checks an IP SAN) and whom to trust
/// (`None`: the system roots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTarget {
    pub server_name: String,
    pub client: Option<TlsClient>,
}

/// The TLS half of a [`SipSender`]: its connection table and what it knows of servers.
pub(super) struct TlsSide {
    pub(super) conns: Arc<Connections>,
    /// Set by [`serve_tls`].
    pub(super) listen: OnceLock<SocketAddr>,
    /// Each target with the tick it was last learned or used (least recent is evicted).
    targets: DashMap<SocketAddr, (TlsTarget, u64)>,
    clock: AtomicU64,
    system: OnceLock<Option<TlsClient>>,
}

impl TlsSide {
    pub(super) fn new(options: TcpOptions) -> TlsSide {
        TlsSide {
            conns: Arc::new(Connections::new(options)),
            listen: OnceLock::new(),
            targets: DashMap::new(),
            clock: AtomicU64::new(0),
            system: OnceLock::new(),
        }
    }

    pub(super) fn learn(&self, addr: SocketAddr, target: TlsTarget) {
        if self.targets.len() >= MAX_TARGETS && !self.targets.contains_key(&addr) {
            // Evict the least recent entry, never the whole table (a trunk's names and CAs).
            let oldest = self
                .targets
                .iter()
                .min_by_key(|e| e.value().1)
                .map(|e| *e.key());
            if let Some(oldest) = oldest {
                self.targets.remove(&oldest);
            }
        }
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        self.targets.insert(addr, (target, tick));
    }

    /// The name and config to check `addr`'s server with: learned, or the system roots and
    /// the address itself.
    fn client_for(&self, addr: SocketAddr) -> Result<(ServerName<'static>, TlsClient), String> {
        let target = self.targets.get_mut(&addr).map(|mut t| {
            t.1 = self.clock.fetch_add(1, Ordering::Relaxed);
            t.0.clone()
        });
        let name = target
            .as_ref()
            .map_or_else(|| addr.ip().to_string(), |t| t.server_name.clone());
        let name = ServerName::try_from(name.clone())
            .map_err(|_| format!("{name:?} is not a valid TLS server name"))?;
        let client = match target.and_then(|t| t.client) {
            Some(c) => c,
            None => self
                .system
                .get_or_init(|| match TlsClient::system() {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::error!(error = %e, "sip tls: no client config");
                        None
                    }
                })
                .clone()
                .ok_or("no TLS client config")?,
        };
        Ok((name, client))
    }
}

/// Accept loop for SIP over TLS; like [`tcp::serve_tcp`] (same ACL, caps and framing), with a
/// handshake of at most [`HANDSHAKE_TIMEOUT`] before a connection counts as open. Ends when
/// the listener fails.
pub async fn serve_tls(
    listener: std::net::TcpListener,
    config: TlsConfig,
    handler: Arc<dyn InboundHandler>,
    sender: SipSender,
    max_message_size: usize,
    allow: Vec<Cidr>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let _ = sender.tls.listen.set(listener.local_addr()?);
    let _ = sender
        .serving
        .set(Serving::new(handler.clone(), max_message_size));
    let acceptor = TlsAcceptor::from(Arc::new(config.server_config()));
    loop {
        let (stream, addr, slot) =
            tcp::accept(&listener, &allow, handler.as_ref(), &sender.tls.conns).await;
        let (acceptor, sender) = (acceptor.clone(), sender.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let registered = sender.tls.conns.register(addr);
                    let (reader, writer) = tokio::io::split(stream);
                    let peer = Peer {
                        addr,
                        transport: TransportKind::Tls,
                    };
                    tcp::run(reader, writer, peer, registered, sender, slot).await;
                }
                Ok(Err(e)) => handshake_failed(addr, true, &e.to_string()),
                Err(_) => handshake_failed(addr, true, "handshake timed out"),
            }
        });
    }
}

fn handshake_failed(addr: SocketAddr, inbound: bool, reason: &str) {
    crate::metrics::sip_tls_handshake_failed(inbound);
    crate::metrics::sip_tcp_closed("tls_handshake");
    if let Some(suppressed) = RECEIVE_LOG.allow() {
        tracing::info!(%addr, inbound, reason, suppressed, "sip tls handshake failed");
    }
}

/// [`SipSender::connect_tls`]: learns `target` for `addr`, then opens a connection unless one
/// is open or opening (a send queued on an opening one goes out once it is up, or is dropped
/// with it).
pub(super) async fn connect(
    sender: &SipSender,
    addr: SocketAddr,
    target: TlsTarget,
) -> Result<(), TransportError> {
    let server_name = target.server_name.clone();
    let fail = |reason: String| TransportError::Tls {
        addr,
        server_name: server_name.clone(),
        reason,
    };
    sender.tls.learn(addr, target);
    if sender.tls.conns.is_open(addr) {
        return Ok(());
    }
    let Some(serving) = sender.serving.get() else {
        return Err(TransportError::NoTcpConnection(addr));
    };
    let (name, client) = sender.tls.client_for(addr).map_err(&fail)?;
    let slot = sender.tls.conns.admit(addr, false).map_err(|refused| {
        crate::metrics::sip_tcp_refused(refused.label());
        TransportError::TooManyConnections(addr)
    })?;
    let Ok(registered) = sender.tls.conns.register_with(addr, None) else {
        return Ok(()); // another leg is opening it now
    };
    let (done, result) = tokio::sync::oneshot::channel();
    let sender = sender.clone();
    serving.runtime.spawn(async move {
        match establish(&sender, addr, name, client).await {
            Ok(stream) => {
                registered.state.connected(true);
                let _ = done.send(Ok(()));
                start(stream, addr, registered, sender, slot).await;
            }
            Err((reason, why)) => {
                tcp::give_up(&sender, addr, TransportKind::Tls, registered, reason);
                drop(slot); // counted closed before the caller hears of it
                let _ = done.send(Err(why));
            }
        }
    });
    match result.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => Err(fail(why)),
        Err(_) => Err(fail("connection task ended".into())),
    }
}

/// Opens a connection of our own to `addr` with `first` queued, for a send that found none
/// (like `tcp::open`, and watched the same way); checks the server as
/// [`TlsSide::client_for`] says. `NotServing` when nothing can be opened (not serving yet, or
/// no usable server name).
pub(super) fn open(
    sender: &SipSender,
    addr: SocketAddr,
    slot: Slot,
    first: &bytes::Bytes,
    watch: bool,
) -> tcp::Opened {
    let Some(serving) = sender.serving.get() else {
        return tcp::Opened::NotServing;
    };
    let (name, client) = match sender.tls.client_for(addr) {
        Ok(v) => v,
        Err(reason) => {
            tracing::warn!(%addr, reason, "sip tls: cannot open a connection");
            return tcp::Opened::NotServing;
        }
    };
    let registered = match sender.tls.conns.register_with(addr, Some(first)) {
        Ok(registered) => registered,
        // Another send opened it meanwhile; `first` is queued there.
        Err(state) => {
            return tcp::Opened::Queued(watch.then(|| state.watch_connect()).flatten());
        }
    };
    let watcher = watch.then(|| registered.state.watch_connect()).flatten();
    let sender = sender.clone();
    serving.runtime.spawn(async move {
        match establish(&sender, addr, name, client).await {
            Ok(stream) => {
                registered.state.connected(true);
                start(stream, addr, registered, sender, slot).await
            }
            Err((reason, _)) => {
                tcp::give_up(&sender, addr, TransportKind::Tls, registered, reason);
            }
        }
    });
    tcp::Opened::Queued(watcher)
}

type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

/// TCP connect and TLS handshake, each within `sip.tcp_connect_timeout`; on failure the close
/// reason label and what went wrong (logged here, once).
async fn establish(
    sender: &SipSender,
    addr: SocketAddr,
    name: ServerName<'static>,
    client: TlsClient,
) -> Result<ClientStream, (&'static str, String)> {
    let limit = sender.tls.conns.options.connect_timeout;
    let tcp = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(connect_failed(addr, format!("connect: {e}"))),
        Err(_) => return Err(connect_failed(addr, "connect timed out".into())),
    };
    let _ = tcp.set_nodelay(true);
    let shown = name.to_str().into_owned();
    let connector = TlsConnector::from(client.0);
    let why = match tokio::time::timeout(limit, connector.connect(name, tcp)).await {
        Ok(Ok(stream)) => return Ok(stream),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "handshake timed out".to_string(),
    };
    crate::metrics::sip_tls_handshake_failed(false);
    // Not rate-limited: a certificate error toward a trunk is a configuration fault to fix.
    tracing::warn!(%addr, server_name = %shown, reason = %why, "sip tls: handshake failed");
    Err(("tls_handshake", why))
}

fn connect_failed(addr: SocketAddr, why: String) -> (&'static str, String) {
    tracing::info!(%addr, reason = %why, "sip tls: connect failed");
    ("connect_failed", why)
}

/// Runs an established connection of ours through the shared stream code.
async fn start(
    stream: ClientStream,
    addr: SocketAddr,
    registered: super::connections::Registered,
    sender: SipSender,
    slot: Slot,
) {
    let (reader, writer) = tokio::io::split(stream);
    let peer = Peer {
        addr,
        transport: TransportKind::Tls,
    };
    tcp::run(reader, writer, peer, registered, sender, slot).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str) -> TlsTarget {
        TlsTarget {
            server_name: name.into(),
            client: None,
        }
    }

    /// RFC 3261 §26.3.1: a trunk's server name must survive many other learned targets: a
    /// full table evicts the least recent entry, it is never wiped.
    #[test]
    fn a_full_table_evicts_one_entry_and_keeps_a_used_trunk() {
        let side = TlsSide::new(TcpOptions::default());
        let trunk: SocketAddr = "192.0.2.1:5061".parse().unwrap();
        side.learn(trunk, target("sbc.carrier.example"));
        let addr =
            |i: usize| SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 5061));
        for i in 0..MAX_TARGETS + 10 {
            side.learn(addr(i), target("other"));
            if i % 100 == 0 {
                // The trunk is dialled now and then: it stays recent.
                let _ = side.client_for(trunk);
            }
        }
        assert_eq!(side.targets.len(), MAX_TARGETS);
        assert_eq!(
            side.targets.get(&trunk).map(|t| t.0.server_name.clone()),
            Some("sbc.carrier.example".to_string())
        );
        // The oldest unused entries went first; the newest are kept.
        assert!(!side.targets.contains_key(&addr(0)));
        assert!(side.targets.contains_key(&addr(MAX_TARGETS + 9)));
    }
}
