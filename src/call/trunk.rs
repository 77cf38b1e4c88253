//! A trunk as the call layer uses it: its name, the source networks it takes requests from
//! (the ACL every request passes), the outbound proxy legs and messages go through, and how
//! they reach it (transport; over TLS, whom to trust).

use std::fmt;
use std::net::SocketAddr;

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
}

/// An outbound proxy: an address, or a host name resolved when a leg is placed (its name is
/// also the TLS server name, RFC 3261 §26.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyAddr {
    Addr(SocketAddr),
    Host(String, u16),
}

impl fmt::Display for ProxyAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyAddr::Addr(a) => a.fmt(f),
            ProxyAddr::Host(h, p) => write!(f, "{h}:{p}"),
        }
    }
}
