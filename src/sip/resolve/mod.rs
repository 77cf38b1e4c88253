//! RFC 3263 client resolution ("Locating SIP Servers"): which transport, address and port a
//! request for a host goes to, as an ordered list of targets to fail over through (§4.3).
//! `address.rs` parses what an operator writes (`host`, `host:port`, IPv4, `[IPv6]:port`);
//! `select.rs` is the sans-IO part (NAPTR filtering, SRV ordering, the plan of lookups);
//! `dns.rs` does the lookups with one shared hickory resolver. Knows nothing of calls.

mod address;
mod dns;
mod select;

pub use address::{Host, ParseProxyError, ProxyAddress};
pub use dns::{ResolveError, SipResolver};
pub use select::{
    naptr_choices, order_srv, plan, NaptrRecord, Plan, SrvRecord, SUPPORTED_TRANSPORTS,
};

use std::fmt;
use std::net::SocketAddr;

use super::transport::TransportKind;

/// A SIP transport as RFC 3263 names them (NAPTR services, SRV prefixes), independent of the
/// transports this build can send by: [`Transport::kind`] maps it at the boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// The config spelling (`udp`, `tcp`, `tls`).
    pub fn parse(value: &str) -> Option<Transport> {
        match value.to_ascii_lowercase().as_str() {
            "udp" => Some(Transport::Udp),
            "tcp" => Some(Transport::Tcp),
            "tls" => Some(Transport::Tls),
            _ => None,
        }
    }

    /// The SRV owner prefix (RFC 3263 §4.2): `_sip._udp`, `_sip._tcp`, `_sips._tcp`.
    pub fn srv_prefix(self) -> &'static str {
        match self {
            Transport::Udp => "_sip._udp",
            Transport::Tcp => "_sip._tcp",
            Transport::Tls => "_sips._tcp",
        }
    }

    /// The NAPTR service field (RFC 3263 §4.1): `SIP+D2U`, `SIP+D2T`, `SIPS+D2T`.
    pub fn naptr_service(self) -> &'static str {
        match self {
            Transport::Udp => "SIP+D2U",
            Transport::Tcp => "SIP+D2T",
            Transport::Tls => "SIPS+D2T",
        }
    }

    /// The port when neither the address nor SRV gives one (RFC 3261 §19.1.2).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Udp | Transport::Tcp => 5060,
            Transport::Tls => 5061,
        }
    }

    /// The transport of a peer's `kind` (a phone registered over it, say).
    pub fn of(kind: TransportKind) -> Transport {
        match kind {
            TransportKind::Udp => Transport::Udp,
            TransportKind::Tcp => Transport::Tcp,
            TransportKind::Tls => Transport::Tls,
        }
    }

    /// The transport kind the SIP sender sends by.
    pub fn kind(self) -> TransportKind {
        match self {
            Transport::Udp => TransportKind::Udp,
            Transport::Tcp => TransportKind::Tcp,
            Transport::Tls => TransportKind::Tls,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One place to send a request: an address and the transport to reach it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedTarget {
    pub addr: SocketAddr,
    pub transport: Transport,
}
