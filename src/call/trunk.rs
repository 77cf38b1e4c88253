//! A trunk as the call layer uses it: its name, the source networks it takes requests from
//! (the ACL every request passes), the outbound proxy legs and messages go through, how they
//! reach it (transport; over TLS, whom to trust), and its account there (issue 17): digest
//! credentials, the caller identity put in From, and whether the engine registers with it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::net::Cidr;
use crate::sip::transport::{TlsClient, TransportKind};

/// A trunk with its parsed ACL (`[[trunks]]`, validated by the config).
#[derive(Debug, Clone)]
pub struct Trunk {
    pub name: String,
    pub allow: Vec<Cidr>,
    pub outbound_proxy: Option<ProxyAddr>,
    /// How requests reach `outbound_proxy` (`trunks[].transport`).
    pub transport: TransportKind,
    /// Over TLS, the only CA the proxy's certificate may chain to (`trunks[].tls_ca`); `None`
    /// trusts the system roots.
    pub tls_ca: Option<TlsClient>,
    /// Credentials, identity and registration; all off by default.
    pub account: TrunkAccount,
}

/// An outbound proxy: an address, or a host name resolved when a leg is placed (its name is
/// also the TLS server name, RFC 3261 §26.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyAddr {
    Addr(SocketAddr),
    Host(String, u16),
}

impl ProxyAddr {
    /// The host part: an IP address (IPv6 in brackets) or the name.
    pub fn host(&self) -> String {
        match self {
            ProxyAddr::Addr(a) => crate::sip::dialog::host(a.ip()),
            ProxyAddr::Host(h, _) => h.clone(),
        }
    }
}

impl fmt::Display for ProxyAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyAddr::Addr(a) => a.fmt(f),
            ProxyAddr::Host(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

/// What a trunk's carrier knows us by (`username`, `password`, `realm`, `from_user`,
/// `from_domain`, `register`, `register_expires`).
#[derive(Debug, Clone, Default)]
pub struct TrunkAccount {
    /// Digest credentials answering the carrier's 401/407 (RFC 3261 §22.2–22.3).
    pub credentials: Option<Arc<TrunkCredentials>>,
    /// The From user on requests through the trunk, instead of the flow's `source`.
    pub from_user: Option<String>,
    /// The From host on requests through the trunk (default: the proxy's host).
    pub from_domain: Option<String>,
    /// Register `username` at the proxy for this many seconds (RFC 3261 §10.2; `None`: off).
    pub register_expires: Option<u32>,
}

/// A trunk's digest credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct TrunkCredentials {
    pub username: String,
    pub password: String,
    /// When set, only challenges for this realm are answered.
    pub realm: Option<String>,
}

impl fmt::Debug for TrunkCredentials {
    /// Never prints the password (config dumps, tracing).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrunkCredentials")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

impl Trunk {
    /// The host of From on requests through this trunk: `from_domain`, else the proxy's host.
    pub fn from_host(&self) -> Option<String> {
        self.account
            .from_domain
            .clone()
            .or_else(|| self.outbound_proxy.as_ref().map(ProxyAddr::host))
    }
}
