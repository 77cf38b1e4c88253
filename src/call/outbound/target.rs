//! Where a leg we place goes (DESIGN §4): a `tel` number goes to
//! `sip:<number>@<outbound_proxy>` of the named trunk (or the first trunk with a proxy), over
//! the trunk's `transport`; a `sip` URI goes to its own host (over the transport its
//! `;transport=` names, RFC 3261 §19.1.1), or through the named trunk's proxy. Pure: turning
//! the next hop into addresses (RFC 3263) is the leg's, without blocking a thread.

use std::net::IpAddr;

use crate::call::trunk::Trunk;
use crate::sip::resolve::{Host, ProxyAddress, Transport};

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

/// Where and how a request is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub request_uri: String,
    /// The dialled user (number or URI user part), for the call record.
    pub user: String,
    /// The first hop, as written (a name is resolved per RFC 3263 into targets to try in turn).
    pub next_hop: ProxyAddress,
    /// The transport asked for (a trunk's `transport`, a URI's `;transport=`); `None`: DNS
    /// picks (NAPTR, RFC 3263 §4.1), UDP when it names none.
    pub transport: Option<Transport>,
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
    let named = match trunk {
        Some(name) => {
            let t = trunks
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| RouteError::UnknownTrunk(name.to_string()))?;
            let proxy = t
                .outbound_proxy
                .clone()
                .ok_or_else(|| RouteError::NoProxy(name.to_string()))?;
            Some((proxy, t.transport))
        }
        None => None,
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
            let (proxy, transport) = match named {
                Some(p) => p,
                None => trunks
                    .iter()
                    .find_map(|t| t.outbound_proxy.clone().map(|p| (p, t.transport)))
                    .ok_or(RouteError::NoTrunk)?,
            };
            // The proxy as configured (its host name, not a resolved address), and the
            // transport when it is not UDP (RFC 3261 §19.1.1).
            let param = match transport {
                Some(Transport::Tcp) => ";transport=tcp",
                Some(Transport::Tls) => ";transport=tls",
                Some(Transport::Udp) | None => "",
            };
            Ok(Route {
                request_uri: format!("sip:{number}@{proxy}{param}"),
                user: number.clone(),
                next_hop: proxy,
                transport,
            })
        }
        Target::Sip(uri) => {
            let parsed = parse_sip_uri(uri).ok_or_else(|| RouteError::BadUri(uri.clone()))?;
            let (next_hop, transport) = match named {
                Some(p) => p,
                None => (parsed.hop, uri_transport(uri)?),
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

/// The `transport` URI parameter (RFC 3261 §19.1.1; case-insensitive); `None` when absent.
fn uri_transport(uri: &str) -> Result<Option<Transport>, RouteError> {
    let params = uri.split('?').next().unwrap_or_default().split(';').skip(1);
    for param in params {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if !name.trim().eq_ignore_ascii_case("transport") {
            continue;
        }
        let value = value.trim();
        return match Transport::parse(value).filter(|t| t.kind().is_some()) {
            Some(t) => Ok(Some(t)),
            None => Err(RouteError::UnsupportedTransport(value.to_string())),
        };
    }
    Ok(None)
}

struct SipUri {
    user: String,
    hop: ProxyAddress,
}

/// `sip:[user@]host[:port][;params][?headers]`; `sips:` is refused (no TLS transport here).
fn parse_sip_uri(uri: &str) -> Option<SipUri> {
    let rest = uri.trim().strip_prefix("sip:")?;
    let rest = rest.split(['?', ';']).next()?;
    let (user, host_port) = match rest.rsplit_once('@') {
        Some((u, h)) => (u.to_string(), h),
        None => (String::new(), rest),
    };
    let hop = ProxyAddress::parse(host_port).ok()?;
    // A bare IPv6 address is not a URI host (RFC 3261 §25.1 wants brackets).
    if matches!(hop.host, Host::Ip(IpAddr::V6(_))) && !host_port.starts_with('[') {
        return None;
    }
    Some(SipUri { user, hop })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(s: &str) -> ProxyAddress {
        ProxyAddress::parse(s).unwrap()
    }

    fn trunks() -> Vec<Trunk> {
        vec![
            Trunk {
                name: "acl-only".into(),
                allow: Vec::new(),
                outbound_proxy: None,
                transport: None,
            },
            Trunk {
                name: "carrier".into(),
                allow: Vec::new(),
                outbound_proxy: Some(hop("10.0.0.9:5070")),
                transport: None,
            },
            Trunk {
                name: "named".into(),
                allow: Vec::new(),
                outbound_proxy: Some(hop("sip.carrier.example")),
                transport: Some(Transport::Tcp),
            },
        ]
    }

    #[test]
    fn tel_goes_to_the_first_trunk_with_a_proxy() {
        let r = route(&Target::Tel("+15550100".into()), None, &trunks()).unwrap();
        assert_eq!(r.request_uri, "sip:+15550100@10.0.0.9:5070");
        assert_eq!(r.next_hop, hop("10.0.0.9:5070"));
        assert_eq!(r.transport, None);
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

    /// The Request-URI names the trunk's host as configured (not an address DNS gave), with
    /// `;transport=tcp` when the trunk is reached over TCP (RFC 3261 §19.1.1).
    #[test]
    fn a_trunk_by_name_keeps_its_host_and_transport() {
        let r = route(&Target::Tel("+15550100".into()), Some("named"), &trunks()).unwrap();
        assert_eq!(
            r.request_uri,
            "sip:+15550100@sip.carrier.example;transport=tcp"
        );
        assert_eq!(r.next_hop, hop("sip.carrier.example"));
        assert_eq!(r.transport, Some(Transport::Tcp));
    }

    #[test]
    fn sip_goes_to_its_host_or_the_named_proxy() {
        let r = route(
            &Target::Sip("sip:bob@127.0.0.1:5062".into()),
            None,
            &trunks(),
        )
        .unwrap();
        assert_eq!(r.next_hop, hop("127.0.0.1:5062"));
        assert_eq!(r.user, "bob");
        let r = route(&Target::Sip("sip:bob@example.com".into()), None, &trunks()).unwrap();
        assert_eq!(r.next_hop, hop("example.com"));
        let r = route(&Target::Sip("sip:[::1]:5099".into()), None, &trunks()).unwrap();
        assert_eq!(r.next_hop, hop("[::1]:5099"));
        let r = route(
            &Target::Sip("sip:bob@example.com;transport=udp".into()),
            Some("carrier"),
            &trunks(),
        )
        .unwrap();
        assert_eq!(r.next_hop, hop("10.0.0.9:5070"));
        for bad in [
            "bob@h",
            "sips:bob@h",
            "sip:bob@",
            "sip:b@h:port",
            "sip:b@h h",
            "sip:b@::1",
        ] {
            assert!(
                route(&Target::Sip(bad.into()), None, &trunks()).is_err(),
                "{bad}"
            );
        }
    }

    /// RFC 3261 §19.1.1 / §18.1.1: `;transport=tcp` on a `sip:` destination sends the leg over
    /// TCP; `udp` means UDP; no parameter lets RFC 3263 choose; a trunk's own transport wins.
    #[test]
    fn the_uri_transport_parameter_picks_tcp() {
        let via = |uri: &str, trunk: Option<&str>| {
            route(&Target::Sip(uri.into()), trunk, &trunks()).map(|r| r.transport)
        };
        assert_eq!(
            via("sip:bob@127.0.0.1:5062;transport=tcp", None),
            Ok(Some(Transport::Tcp))
        );
        assert_eq!(
            via("sip:bob@[::1];lr;Transport=TCP?x=y", None),
            Ok(Some(Transport::Tcp))
        );
        assert_eq!(via("sip:bob@127.0.0.1:5062", None), Ok(None));
        assert_eq!(
            via("sip:bob@127.0.0.1;transport=udp", None),
            Ok(Some(Transport::Udp))
        );
        assert_eq!(via("sip:bob@h;transport=tcp", Some("carrier")), Ok(None));
        assert_eq!(
            via("sip:bob@h;transport=udp", Some("named")),
            Ok(Some(Transport::Tcp))
        );
        assert_eq!(
            via("sip:bob@h;transport=tls", None),
            Err(RouteError::UnsupportedTransport("tls".into()))
        );
    }
}
