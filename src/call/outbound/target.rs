//! Where a leg we place goes (DESIGN §4): a `tel` number goes to
//! `sip:<number>@<outbound_proxy>` of the named trunk (or the first trunk with a proxy); a `sip`
//! URI goes to its own host (over TCP when it says `;transport=tcp`, RFC 3261 §19.1.1, §18.1.1),
//! or through the named trunk's proxy (UDP: trunks have no transport yet); a phone's
//! registered contact goes to the address and transport its REGISTER came from (it may be
//! behind NAT: its Contact's own address may be private). Pure: resolving a
//! host name to an address is the leg's (it must not block a thread).

use std::net::{IpAddr, SocketAddr};

use crate::call::trunk::Trunk;
use crate::sip::transport::{Peer, TransportKind};

/// The default SIP port (RFC 3261 §19.1.2).
const SIP_PORT: u16 = 5060;

/// A destination as a flow gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A telephone number, routed through a trunk.
    Tel(String),
    /// A SIP URI (`sip:bob@host[:port]`).
    Sip(String),
    /// One contact a `[[users]]` phone registered: `uri` is the Request-URI, `source` where
    /// the REGISTER came from (RFC 3261 §10.3; RFC 5626-lite NAT handling).
    Registered {
        user: String,
        uri: String,
        source: Peer,
    },
}

impl Target {
    /// The user part or number (for records and `result`).
    pub fn label(&self) -> &str {
        match self {
            Target::Tel(n) | Target::Sip(n) => n,
            Target::Registered { user, .. } => user,
        }
    }
}

/// The first hop of a request: an address, or a host name still to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    Addr(SocketAddr),
    Host(String, u16),
}

/// Where and how a request is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub request_uri: String,
    /// The dialled user (number or URI user part), for the call record.
    pub user: String,
    pub next_hop: NextHop,
    /// The transport to send to `next_hop` by (the URI's `transport` parameter; UDP if none).
    pub transport: TransportKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no trunk named {0:?}")]
    UnknownTrunk(String),
    #[error("trunk {0:?} has no outbound_proxy")]
    NoProxy(String),
    #[error("no trunk has an outbound_proxy for tel destinations")]
    NoTrunk,
    #[error("not a SIP URI: {0:?} (expected sip:user@host[:port])")]
    BadUri(String),
    #[error("not a telephone number: {0:?}")]
    BadNumber(String),
    #[error("unsupported transport {0:?} (udp and tcp are)")]
    UnsupportedTransport(String),
}

/// Routes `target` through the trunk named `trunk` (or the first with a proxy for numbers).
pub fn route(target: &Target, trunk: Option<&str>, trunks: &[Trunk]) -> Result<Route, RouteError> {
    let proxy = match trunk {
        Some(name) => {
            let t = trunks
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| RouteError::UnknownTrunk(name.to_string()))?;
            Some(
                t.outbound_proxy
                    .ok_or_else(|| RouteError::NoProxy(name.to_string()))?,
            )
        }
        None => None,
    };
    match target {
        // A phone is reached directly, never through a trunk.
        Target::Registered { user, uri, source } => Ok(Route {
            request_uri: uri.clone(),
            user: user.clone(),
            next_hop: NextHop::Addr(source.addr),
            transport: source.transport,
        }),
        Target::Tel(number) => {
            let valid = !number.is_empty()
                && number
                    .chars()
                    .enumerate()
                    .all(|(i, c)| c.is_ascii_digit() || (i == 0 && c == '+') || "*#".contains(c));
            if !valid {
                return Err(RouteError::BadNumber(number.clone()));
            }
            let proxy = match proxy {
                Some(p) => p,
                None => trunks
                    .iter()
                    .find_map(|t| t.outbound_proxy)
                    .ok_or(RouteError::NoTrunk)?,
            };
            Ok(Route {
                request_uri: format!("sip:{number}@{proxy}"),
                user: number.clone(),
                next_hop: NextHop::Addr(proxy),
                transport: TransportKind::Udp,
            })
        }
        Target::Sip(uri) => {
            let parsed = parse_sip_uri(uri).ok_or_else(|| RouteError::BadUri(uri.clone()))?;
            let (next_hop, transport) = match proxy {
                Some(p) => (NextHop::Addr(p), TransportKind::Udp),
                None => {
                    let hop = match parsed.host.parse::<IpAddr>() {
                        Ok(ip) => NextHop::Addr(SocketAddr::new(ip, parsed.port)),
                        Err(_) => NextHop::Host(parsed.host.clone(), parsed.port),
                    };
                    (hop, uri_transport(uri)?)
                }
            };
            Ok(Route {
                request_uri: uri.trim().to_string(),
                user: parsed.user,
                next_hop,
                transport,
            })
        }
    }
}

/// Looks a host name up without blocking the thread; the first address found.
pub(super) async fn resolve_host(host: String, port: u16) -> Option<SocketAddr> {
    tokio::net::lookup_host((host.as_str(), port))
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
}

/// The `transport` URI parameter (RFC 3261 §19.1.1; case-insensitive); UDP when absent.
fn uri_transport(uri: &str) -> Result<TransportKind, RouteError> {
    let params = uri.split('?').next().unwrap_or_default().split(';').skip(1);
    for param in params {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if !name.trim().eq_ignore_ascii_case("transport") {
            continue;
        }
        let value = value.trim();
        return if value.eq_ignore_ascii_case("tcp") {
            Ok(TransportKind::Tcp)
        } else if value.eq_ignore_ascii_case("udp") {
            Ok(TransportKind::Udp)
        } else {
            Err(RouteError::UnsupportedTransport(value.to_string()))
        };
    }
    Ok(TransportKind::Udp)
}

struct SipUri {
    user: String,
    host: String,
    port: u16,
}

/// `sip:[user@]host[:port][;params][?headers]`; `sips:` is refused (no TLS transport here).
fn parse_sip_uri(uri: &str) -> Option<SipUri> {
    let rest = uri.trim().strip_prefix("sip:")?;
    let rest = rest.split(['?', ';']).next()?;
    let (user, host_port) = match rest.rsplit_once('@') {
        Some((u, h)) => (u.to_string(), h),
        None => (String::new(), rest),
    };
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => SIP_PORT,
            None => return None,
        };
        (h.to_string(), port)
    } else {
        match host_port.split_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (host_port.to_string(), SIP_PORT),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
    host_ok.then_some(SipUri { user, host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunks() -> Vec<Trunk> {
        vec![
            Trunk {
                name: "acl-only".into(),
                allow: Vec::new(),
                outbound_proxy: None,
            },
            Trunk {
                name: "carrier".into(),
                allow: Vec::new(),
                outbound_proxy: Some("10.0.0.9:5070".parse().unwrap()),
            },
        ]
    }

    #[test]
    fn tel_goes_to_the_first_trunk_with_a_proxy() {
        let r = route(&Target::Tel("+15550100".into()), None, &trunks()).unwrap();
        assert_eq!(r.request_uri, "sip:+15550100@10.0.0.9:5070");
        assert_eq!(r.next_hop, NextHop::Addr("10.0.0.9:5070".parse().unwrap()));
        assert_eq!(
            route(&Target::Tel("1".into()), Some("acl-only"), &trunks()),
            Err(RouteError::NoProxy("acl-only".into()))
        );
        assert_eq!(
            route(&Target::Tel("1".into()), Some("nope"), &trunks()),
            Err(RouteError::UnknownTrunk("nope".into()))
        );
        assert_eq!(
            route(&Target::Tel("1".into()), None, &trunks()[..1]),
            Err(RouteError::NoTrunk)
        );
        assert!(route(&Target::Tel("12a".into()), None, &trunks()).is_err());
    }

    #[test]
    fn sip_goes_to_its_host_or_the_named_proxy() {
        let r = route(
            &Target::Sip("sip:bob@127.0.0.1:5062".into()),
            None,
            &trunks(),
        )
        .unwrap();
        assert_eq!(r.next_hop, NextHop::Addr("127.0.0.1:5062".parse().unwrap()));
        assert_eq!(r.user, "bob");
        let r = route(&Target::Sip("sip:bob@example.com".into()), None, &trunks()).unwrap();
        assert_eq!(r.next_hop, NextHop::Host("example.com".into(), 5060));
        let r = route(&Target::Sip("sip:[::1]:5099".into()), None, &trunks()).unwrap();
        assert_eq!(r.next_hop, NextHop::Addr("[::1]:5099".parse().unwrap()));
        let r = route(
            &Target::Sip("sip:bob@example.com;transport=udp".into()),
            Some("carrier"),
            &trunks(),
        )
        .unwrap();
        assert_eq!(r.next_hop, NextHop::Addr("10.0.0.9:5070".parse().unwrap()));
        for bad in [
            "bob@h",
            "sips:bob@h",
            "sip:bob@",
            "sip:b@h:port",
            "sip:b@h h",
        ] {
            assert!(
                route(&Target::Sip(bad.into()), None, &trunks()).is_err(),
                "{bad}"
            );
        }
    }

    /// RFC 3261 §10.3 / RFC 5626 §4.4 (lite): a registered contact is sent to the REGISTER's
    /// source address and transport, whatever address its URI names, and never via a trunk.
    #[test]
    fn a_registered_contact_goes_to_its_source() {
        let source = Peer {
            addr: "198.51.100.9:40000".parse().unwrap(),
            transport: TransportKind::Tcp,
        };
        let target = Target::Registered {
            user: "alice".into(),
            uri: "sip:alice@192.168.1.20:5060;transport=tcp".into(),
            source,
        };
        let r = route(&target, Some("carrier"), &trunks()).unwrap();
        assert_eq!(r.request_uri, "sip:alice@192.168.1.20:5060;transport=tcp");
        assert_eq!(r.next_hop, NextHop::Addr(source.addr));
        assert_eq!(r.transport, TransportKind::Tcp);
        assert_eq!((r.user.as_str(), target.label()), ("alice", "alice"));
    }

    /// RFC 3261 §19.1.1 / §18.1.1: `;transport=tcp` on a `sip:` destination sends the leg over
    /// TCP; no parameter (or `udp`) means UDP; a trunk's proxy is reached over UDP.
    #[test]
    fn the_uri_transport_parameter_picks_tcp() {
        let via = |uri: &str, trunk: Option<&str>| {
            route(&Target::Sip(uri.into()), trunk, &trunks()).map(|r| r.transport)
        };
        assert_eq!(
            via("sip:bob@127.0.0.1:5062;transport=tcp", None),
            Ok(TransportKind::Tcp)
        );
        assert_eq!(
            via("sip:bob@[::1];lr;Transport=TCP?x=y", None),
            Ok(TransportKind::Tcp)
        );
        assert_eq!(via("sip:bob@127.0.0.1:5062", None), Ok(TransportKind::Udp));
        assert_eq!(
            via("sip:bob@127.0.0.1;transport=udp", None),
            Ok(TransportKind::Udp)
        );
        assert_eq!(
            via("sip:bob@h;transport=tcp", Some("carrier")),
            Ok(TransportKind::Udp)
        );
        assert_eq!(
            via("sip:bob@h;transport=tls", None),
            Err(RouteError::UnsupportedTransport("tls".into()))
        );
        let tel = route(&Target::Tel("+15550100".into()), None, &trunks()).unwrap();
        assert_eq!(tel.transport, TransportKind::Udp);
    }
}
