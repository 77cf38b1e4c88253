//! A table of open SIP/TCP (or SIP/TLS: one table each) connections, accepted or opened by us
//! (RFC 3261 §18.1.1, §18.2.2):
//! one bounded write queue per connection, caps in total and per source IP, and the holds that
//! keep a connection a dialog uses from being closed for idleness. No I/O here: `tcp.rs` runs
//! the connections; this file only decides and counts.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::{mpsc, oneshot, Notify};

/// TCP limits and timers (from the `[sip]` config section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpOptions {
    /// Messages queued per connection before it counts as a stalled reader.
    pub write_queue: usize,
    /// Connections open at once, accepted and our own.
    pub max_connections: usize,
    /// Connections accepted from one source IP.
    pub max_connections_per_ip: usize,
    /// Silence after which a connection no dialog holds is closed.
    pub idle_timeout: Duration,
    /// A write making no progress this long closes the connection.
    pub write_timeout: Duration,
    /// How long opening a connection of our own may take.
    pub connect_timeout: Duration,
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions {
            write_queue: 256,
            max_connections: 10_000,
            max_connections_per_ip: 64,
            idle_timeout: Duration::from_secs(600),
            write_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a connection may not be opened or accepted (the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    Acl,
    /// Banned for failed authentication (`InboundHandler::may_connect`).
    Banned,
    PerIpLimit,
    TotalLimit,
}

impl Refused {
    pub(super) fn label(self) -> &'static str {
        match self {
            Refused::Acl => "acl",
            Refused::Banned => "banned",
            Refused::PerIpLimit => "per_ip_limit",
            Refused::TotalLimit => "total_limit",
        }
    }
}

/// Where a connection of our own stands, with who waits to hear that its connect failed.
#[derive(Debug, Default)]
enum Connect {
    /// Accepted, or ours and connected.
    #[default]
    Up,
    /// Ours, connecting: these hear if it fails (a dropped sender means it connected).
    Pending(Vec<oneshot::Sender<()>>),
    Failed,
}

/// Shared between a connection's task and the table: the close request and the last write.
#[derive(Debug, Default)]
pub(super) struct ConnState {
    close: Notify,
    close_reason: Mutex<Option<&'static str>>,
    last_write_ms: AtomicU64,
    connect: Mutex<Connect>,
}

impl ConnState {
    fn connecting() -> ConnState {
        ConnState {
            connect: Mutex::new(Connect::Pending(Vec::new())),
            ..ConnState::default()
        }
    }

    /// A receiver that gets `()` if this connection's connect fails (RFC 3263 §4.3: the request
    /// goes to the next target); `None` when it is already up.
    pub(super) fn watch_connect(&self) -> Option<oneshot::Receiver<()>> {
        let mut c = self.connect.lock().unwrap_or_else(|e| e.into_inner());
        let (tx, rx) = oneshot::channel();
        match &mut *c {
            Connect::Up => return None,
            Connect::Pending(waiting) => waiting.push(tx),
            Connect::Failed => {
                let _ = tx.send(());
            }
        }
        Some(rx)
    }

    /// The connect finished: tell the watchers if it failed (dropping them says it worked).
    pub(super) fn connected(&self, ok: bool) {
        let mut c = self.connect.lock().unwrap_or_else(|e| e.into_inner());
        let next = if ok { Connect::Up } else { Connect::Failed };
        if let Connect::Pending(waiting) = std::mem::replace(&mut *c, next) {
            if !ok {
                for w in waiting {
                    let _ = w.send(());
                }
            }
        }
    }

    /// Asks the connection's task to close with `reason` (first reason wins).
    pub(super) fn close(&self, reason: &'static str) {
        let mut r = self.close_reason.lock().unwrap_or_else(|e| e.into_inner());
        r.get_or_insert(reason);
        self.close.notify_one();
    }

    /// Resolves once [`ConnState::close`] was called; yields its reason.
    pub(super) async fn closed(&self) -> &'static str {
        self.close.notified().await;
        let r = self.close_reason.lock().unwrap_or_else(|e| e.into_inner());
        r.unwrap_or("stalled_reader")
    }

    pub(super) fn wrote(&self, now_ms: u64) {
        self.last_write_ms.store(now_ms, Ordering::Relaxed);
    }

    pub(super) fn last_write_ms(&self) -> u64 {
        self.last_write_ms.load(Ordering::Relaxed)
    }
}

/// One open (or opening) connection as the table sees it.
struct Conn {
    id: u64,
    tx: mpsc::Sender<Bytes>,
    state: Arc<ConnState>,
}

/// What `send` found.
pub(super) enum Queued {
    /// The message is queued on an open or opening connection.
    Sent,
    /// No connection to that address: open one.
    NoConnection,
    /// The queue was full: the connection has been asked to close.
    Full,
}

/// A registered connection's receiving end, handed to the task that runs it.
pub(super) struct Registered {
    pub(super) id: u64,
    pub(super) rx: mpsc::Receiver<Bytes>,
    pub(super) state: Arc<ConnState>,
}

/// The connection table shared by every [`super::SipSender`] clone.
pub(super) struct Connections {
    pub(super) options: TcpOptions,
    conns: DashMap<SocketAddr, Conn>,
    per_ip: DashMap<IpAddr, usize>,
    total: AtomicUsize,
    holds: DashMap<SocketAddr, usize>,
    next_id: AtomicU64,
}

impl Connections {
    pub(super) fn new(options: TcpOptions) -> Connections {
        Connections {
            options,
            conns: DashMap::new(),
            per_ip: DashMap::new(),
            total: AtomicUsize::new(0),
            holds: DashMap::new(),
            next_id: AtomicU64::new(1),
        }
    }

    /// Queues `bytes` on the connection to `addr`, if there is one. Never blocks. With `watch`,
    /// also a receiver that hears if that connection fails to connect (`None`: it is up).
    pub(super) fn queue_watched(
        &self,
        addr: SocketAddr,
        bytes: &Bytes,
        watch: bool,
    ) -> (Queued, Option<oneshot::Receiver<()>>) {
        let Some(conn) = self.conns.get(&addr) else {
            return (Queued::NoConnection, None);
        };
        let queued = match conn.tx.try_send(bytes.clone()) {
            Ok(()) => {
                let watcher = watch.then(|| conn.state.watch_connect()).flatten();
                return (Queued::Sent, watcher);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                conn.state.close("stalled_reader");
                let id = conn.id;
                drop(conn);
                self.conns.remove_if(&addr, |_, c| c.id == id);
                Queued::Full
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                let id = conn.id;
                drop(conn);
                self.conns.remove_if(&addr, |_, c| c.id == id);
                Queued::NoConnection
            }
        };
        (queued, None)
    }

    /// Takes a slot for a new connection to or from `addr` (per-IP cap only for accepted ones).
    pub(super) fn admit(
        self: &Arc<Self>,
        addr: SocketAddr,
        accepted: bool,
    ) -> Result<Slot, Refused> {
        let total = self.total.fetch_add(1, Ordering::AcqRel);
        let mut slot = Slot {
            table: self.clone(),
            ip: None,
            counted: false,
        };
        if total >= self.options.max_connections {
            return Err(Refused::TotalLimit); // `slot` gives the count back
        }
        if accepted {
            let mut n = self.per_ip.entry(addr.ip()).or_insert(0);
            if *n >= self.options.max_connections_per_ip {
                return Err(Refused::PerIpLimit);
            }
            *n += 1;
            slot.ip = Some(addr.ip());
        }
        crate::metrics::sip_tcp_connections(1.0);
        slot.counted = true;
        Ok(slot)
    }

    /// Registers a connection under `addr` (replacing an older one) and returns its queue.
    pub(super) fn register(&self, addr: SocketAddr) -> Registered {
        let (tx, rx) = mpsc::channel(self.options.write_queue.max(1));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::default());
        let old = self.conns.insert(
            addr,
            Conn {
                id,
                tx,
                state: state.clone(),
            },
        );
        if let Some(old) = old {
            old.state.close("peer_closed");
        }
        Registered { id, rx, state }
    }

    /// Like [`Connections::register`] with `first` (if any) already queued, for a connection
    /// of our own still to connect, unless a connection to `addr` appeared meanwhile (then
    /// `first` goes on that one and its state is returned as `Err`, to watch its connect).
    pub(super) fn register_with(
        &self,
        addr: SocketAddr,
        first: Option<&Bytes>,
    ) -> Result<Registered, Arc<ConnState>> {
        match self.conns.entry(addr) {
            dashmap::Entry::Occupied(c) => {
                if let Some(first) = first {
                    let _ = c.get().tx.try_send(first.clone());
                }
                Err(c.get().state.clone())
            }
            dashmap::Entry::Vacant(v) => {
                let (tx, rx) = mpsc::channel(self.options.write_queue.max(1));
                if let Some(first) = first {
                    let _ = tx.try_send(first.clone()); // capacity >= 1, empty
                }
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let state = Arc::new(ConnState::connecting());
                v.insert(Conn {
                    id,
                    tx,
                    state: state.clone(),
                });
                Ok(Registered { id, rx, state })
            }
        }
    }

    /// Forgets connection `id` (a newer one to the same address stays).
    pub(super) fn unregister(&self, addr: SocketAddr, id: u64) {
        self.conns.remove_if(&addr, |_, c| c.id == id);
    }

    /// Whether some dialog holds connections to `addr`.
    pub(super) fn is_held(&self, addr: SocketAddr) -> bool {
        self.holds.get(&addr).is_some_and(|n| *n > 0)
    }

    pub(super) fn hold(self: &Arc<Self>, addr: SocketAddr) -> ConnectionHold {
        *self.holds.entry(addr).or_insert(0) += 1;
        ConnectionHold {
            table: self.clone(),
            addr,
        }
    }

    /// How many connections are open (for tests and readiness).
    /// Whether a connection to `addr` is open (or opening).
    pub(super) fn is_open(&self, addr: SocketAddr) -> bool {
        self.conns.contains_key(&addr)
    }

    pub(super) fn len(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

/// A taken connection slot; dropping it gives the slot back.
pub(super) struct Slot {
    table: Arc<Connections>,
    ip: Option<IpAddr>,
    /// Admitted (in the gauge), not refused.
    counted: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let table = &self.table;
        table.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.ip {
            table.per_ip.remove_if_mut(&ip, |_, n| {
                *n = n.saturating_sub(1);
                *n == 0
            });
        }
        if self.counted {
            crate::metrics::sip_tcp_connections(-1.0);
        }
    }
}

/// Keeps the TCP connection(s) to one peer address open while a dialog uses it (RFC 3261
/// §18.3: a connection is closed only when no one needs it): while any hold for an address is
/// live, no connection to it is closed for idleness. Dropping the hold releases it. Holding an
/// address with no connection is fine: a connection opened later is held too.
#[derive(Debug)]
pub struct ConnectionHold {
    table: Arc<Connections>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("open", &self.len())
            .finish_non_exhaustive()
    }
}

impl Drop for ConnectionHold {
    fn drop(&mut self) {
        self.table.holds.remove_if_mut(&self.addr, |_, n| {
            *n = n.saturating_sub(1);
            *n == 0
        });
    }
}
