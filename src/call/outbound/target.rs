//! Where a leg we place goes (DESIGN §4): a `tel` number goes to
//! `sip:<number>@<outbound_proxy>` of the named trunk (or the first trunk with a proxy); a `sip`
//! URI goes to its own host (over TCP or TLS when it says `;transport=tcp|tls`, over TLS when it
//! is `sips:`, RFC 3261 §19.1.1, §18.1.1, §26.2.2), or through the named trunk's proxy by the
//! trunk's `transport`. Pure: resolving a host name to an address, and the TLS handshake, are
//! the leg's (they must not block a thread).

use std::net::{IpAddr, SocketAddr};

use crate::call::trunk::{ProxyAddr, Trunk};
use crate::sip::transport::{TlsClient, TlsTarget, TransportKind};

/// The default SIP port (RFC 3261 §19.1.2).
const SIP_PORT: u16 = 5060;
/// The default port of `sips:` URIs (RFC 3261 §19.1.2).
const SIPS_PORT: u16 = 5061;

/// A destination as a flow gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A telephone number, routed through a trunk.
    Tel(String),
    /// A SIP URI (`sip:bob@host[:port]`).
    Sip(String),
}

impl Target {
    /// The user part or number (for records and `result`).
    pub fn label(&self) -> &str {
        match self {
            Target::Tel(n) | Target::Sip(n) => n,
        }
    }
}

/// The first hop of a request: an address, or a host name still to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    Addr(SocketAddr),
    Host(String, u16),
}

impl From<&ProxyAddr> for NextHop {
    fn from(p: &ProxyAddr) -> NextHop {
        match p {
            ProxyAddr::Addr(a) => NextHop::Addr(*a),
            ProxyAddr::Host(h, port) => NextHop::Host(h.clone(), *port),
        }
    }
}

/// Where and how a request is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub request_uri: String,
    /// The dialled user (number or URI user part), for the call record.
    pub user: String,
    pub next_hop: NextHop,
    /// The transport to send to `next_hop` by (the trunk's, or the URI's `transport`
    /// parameter or `sips:` scheme; UDP if none).
    pub transport: TransportKind,
    /// Over TLS, the trunk's own CA (`tls_ca`); `None` trusts the system roots.
    pub tls_ca: Option<TlsClient>,
}

impl Route {
    /// Over TLS, whom the connection must reach: the next hop's host name (or IP literal) and
    /// the trust anchors (RFC 3261 §26.3.1). `None` for UDP and TCP.
    pub fn tls_target(&self) -> Option<TlsTarget> {
        if self.transport != TransportKind::Tls {
            return None;
        }
        let server_name = match &self.next_hop {
            NextHop::Addr(a) => a.ip().to_string(),
            NextHop::Host(h, _) => h.clone(),
        };
        Some(TlsTarget {
            server_name,
            client: self.tls_ca.clone(),
        })
    }
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
    #[error("unsupported transport {0:?} (udp, tcp and tls are)")]
    UnsupportedTransport(String),
}

/// Routes `target` through the trunk named `trunk` (or the first with a proxy for numbers).
pub fn route(target: &Target, trunk: Option<&str>, trunks: &[Trunk]) -> Result<Route, RouteError> {
    let named = match trunk {
        Some(name) => {
            let t = trunks
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| RouteError::UnknownTrunk(name.to_string()))?;
            let proxy = t
                .outbound_proxy
                .as_ref()
                .ok_or_else(|| RouteError::NoProxy(name.to_string()))?;
            Some((t, proxy))
        }
        None => None,
    };
    let via_proxy = |t: &Trunk, proxy: &ProxyAddr| Route {
        request_uri: String::new(),
        user: String::new(),
        next_hop: NextHop::from(proxy),
        transport: t.transport,
        tls_ca: t.tls_ca.clone(),
    };
    match target {
        Target::Tel(number) => {
            let valid = !number.is_empty()
                && number
                    .chars()
                    .enumerate()
                    .all(|(i, c)| c.is_ascii_digit() || (i == 0 && c == '+') || "*#".contains(c));
            if !valid {
                return Err(RouteError::BadNumber(number.clone()));
            }
            let (t, proxy) = match named {
                Some(v) => v,
                None => trunks
                    .iter()
                    .find_map(|t| t.outbound_proxy.as_ref().map(|p| (t, p)))
                    .ok_or(RouteError::NoTrunk)?,
            };
            let param = match t.transport {
                TransportKind::Udp => "",
                TransportKind::Tcp => ";transport=tcp",
                TransportKind::Tls => ";transport=tls",
            };
            Ok(Route {
                request_uri: format!("sip:{number}@{proxy}{param}"),
                user: number.clone(),
                ..via_proxy(t, proxy)
            })
        }
        Target::Sip(uri) => {
            let parsed = parse_sip_uri(uri).ok_or_else(|| RouteError::BadUri(uri.clone()))?;
            let request_uri = uri.trim().to_string();
            if let Some((t, proxy)) = named {
                return Ok(Route {
                    request_uri,
                    user: parsed.user,
                    ..via_proxy(t, proxy)
                });
            }
            let next_hop = match parsed.host.parse::<IpAddr>() {
                Ok(ip) => NextHop::Addr(SocketAddr::new(ip, parsed.port)),
                Err(_) => NextHop::Host(parsed.host.clone(), parsed.port),
            };
            let transport = if parsed.sips {
                TransportKind::Tls
            } else {
                uri_transport(uri)?
            };
            Ok(Route {
                request_uri,
                user: parsed.user,
                next_hop,
                transport,
                tls_ca: None,
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
        } else if value.eq_ignore_ascii_case("tls") {
            Ok(TransportKind::Tls)
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
    sips: bool,
}

/// `sip[s]:[user@]host[:port][;params][?headers]` (the port defaults by scheme).
fn parse_sip_uri(uri: &str) -> Option<SipUri> {
    let uri = uri.trim();
    let (rest, sips) = match uri.strip_prefix("sips:") {
        Some(rest) => (rest, true),
        None => (uri.strip_prefix("sip:")?, false),
    };
    let default_port = if sips { SIPS_PORT } else { SIP_PORT };
    let rest = rest.split(['?', ';']).next()?;
    let (user, host_port) = match rest.rsplit_once('@') {
        Some((u, h)) => (u.to_string(), h),
        None => (String::new(), rest),
    };
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (h.to_string(), port)
    } else {
        match host_port.split_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (host_port.to_string(), default_port),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
    host_ok.then_some(SipUri {
        user,
        host,
        port,
        sips,
    })
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
                transport: TransportKind::Udp,
                tls_ca: None,
                account: Default::default(),
            },
            Trunk {
                name: "carrier".into(),
                allow: Vec::new(),
                outbound_proxy: Some(ProxyAddr::Addr("10.0.0.9:5070".parse().unwrap())),
                transport: TransportKind::Udp,
                tls_ca: None,
                account: Default::default(),
            },
            Trunk {
                name: "secure".into(),
                allow: Vec::new(),
                outbound_proxy: Some(ProxyAddr::Host("sbc.example.com".into(), 5061)),
                transport: TransportKind::Tls,
                tls_ca: None,
                account: Default::default(),
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
            "sips:bob@",
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
            via("sip:bob@h;transport=sctp", None),
            Err(RouteError::UnsupportedTransport("sctp".into()))
        );
        let tel = route(&Target::Tel("+15550100".into()), None, &trunks()).unwrap();
        assert_eq!(tel.transport, TransportKind::Udp);
    }

    /// RFC 3261 §26.2.2 / §19.1.1: a `sips:` URI (default port 5061) or `;transport=tls` goes
    /// over TLS, checked against the URI's host; a TLS trunk reaches its proxy over TLS with the
    /// proxy's host name as the server name, and says `;transport=tls` in the Request-URI.
    #[test]
    fn sips_and_transport_tls_and_tls_trunks_go_over_tls() {
        let r = route(&Target::Sip("sips:bob@example.com".into()), None, &trunks()).unwrap();
        assert_eq!(r.transport, TransportKind::Tls);
        assert_eq!(r.next_hop, NextHop::Host("example.com".into(), 5061));
        let t = r.tls_target().unwrap();
        assert_eq!(t.server_name, "example.com");
        assert_eq!(t.client, None);
        let r = route(
            &Target::Sip("sip:bob@127.0.0.1:5070;transport=TLS".into()),
            None,
            &trunks(),
        )
        .unwrap();
        assert_eq!(r.transport, TransportKind::Tls);
        assert_eq!(r.tls_target().unwrap().server_name, "127.0.0.1");
        let r = route(&Target::Tel("+15550100".into()), Some("secure"), &trunks()).unwrap();
        assert_eq!(r.transport, TransportKind::Tls);
        assert_eq!(
            r.request_uri,
            "sip:+15550100@sbc.example.com:5061;transport=tls"
        );
        assert_eq!(r.next_hop, NextHop::Host("sbc.example.com".into(), 5061));
        assert_eq!(r.tls_target().unwrap().server_name, "sbc.example.com");
        let r = route(&Target::Tel("+15550100".into()), Some("carrier"), &trunks()).unwrap();
        assert_eq!(r.tls_target(), None);
    }
}
