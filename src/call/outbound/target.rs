//! Where a leg we place goes (ARCHITECTURE §7): a `tel` number goes to
//! `sip:<number>@<outbound_proxy>` of the named trunk (or the first trunk with a proxy), over
//! the trunk's `transport`; a `sip` URI goes to its own host (over the transport its
//! `;transport=` names, RFC 3261 §19.1.1, over TLS when it is `sips:`, §26.2.2), or through the
//! named trunk's proxy; a phone's registered contact goes to the address and transport its
//! REGISTER came from (it may be behind NAT: its Contact's own address may be private). Pure:
//! turning the next hop into addresses (RFC 3263) and the TLS handshake are the leg's, without
//! blocking a thread.

use std::net::IpAddr;

use crate::call::trunk::Trunk;
use crate::sip::resolve::{Host, ProxyAddress, Transport};
use crate::sip::transport::{Peer, TlsClient, TlsTarget};

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

/// Where and how a request is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub request_uri: String,
    /// The dialled user (number or URI user part), for the call record.
    pub user: String,
    /// The first hop, as written (a name is resolved per RFC 3263 into targets to try in turn).
    pub next_hop: ProxyAddress,
    /// The transport asked for (a trunk's `transport`, a URI's `;transport=` or `sips:`);
    /// `None`: DNS picks (NAPTR, RFC 3263 §4.1), UDP when it names none.
    pub transport: Option<Transport>,
    /// Over TLS, the trunk's own CA (`tls_ca`); `None` trusts the system roots.
    pub tls_ca: Option<TlsClient>,
}

impl Route {
    /// Whom a TLS connection to a target of this route must reach: the next hop's host name
    /// as written (or its IP literal), not a name DNS resolved it through, and the trust
    /// anchors (RFC 3261 §26.3.1, RFC 5922 §4). Used for every target that resolves to TLS.
    pub fn tls_target(&self) -> TlsTarget {
        let server_name = match &self.next_hop.host {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(name) => name.clone(),
        };
        TlsTarget {
            server_name,
            client: self.tls_ca.clone(),
        }
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
                .clone()
                .ok_or_else(|| RouteError::NoProxy(name.to_string()))?;
            Some((proxy, t.transport, t.tls_ca.clone()))
        }
        None => None,
    };
    match target {
        // A phone is reached directly, never through a trunk.
        Target::Registered { user, uri, source } => Ok(Route {
            request_uri: uri.clone(),
            user: user.clone(),
            next_hop: ProxyAddress {
                host: Host::Ip(source.addr.ip()),
                port: Some(source.addr.port()),
            },
            transport: Some(Transport::of(source.transport)),
            tls_ca: None,
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
            let (proxy, transport, tls_ca) = match named {
                Some(p) => p,
                None => trunks
                    .iter()
                    .find_map(|t| {
                        let p = t.outbound_proxy.clone()?;
                        Some((p, t.transport, t.tls_ca.clone()))
                    })
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
                tls_ca,
            })
        }
        Target::Sip(uri) => {
            let parsed = parse_sip_uri(uri).ok_or_else(|| RouteError::BadUri(uri.clone()))?;
            let (next_hop, transport, tls_ca) = match named {
                Some(p) => p,
                None if parsed.sips => (parsed.hop, Some(Transport::Tls), None),
                None => (parsed.hop, uri_transport(uri)?, None),
            };
            Ok(Route {
                request_uri: uri.trim().to_string(),
                user: parsed.user,
                next_hop,
                transport,
                tls_ca,
            })
        }
    }
}

/// The `transport` URI parameter (RFC 3261 §19.1.1; case-insensitive); `None` when absent.
fn uri_transport(uri: &str) -> Result<Option<Transport>, RouteError> {
    // Parameters follow the host: a `;` in the user part (before the last `@`) is not one.
    let host_part = uri.rsplit_once('@').map_or(uri, |(_, h)| h);
    let params = host_part
        .split('?')
        .next()
        .unwrap_or_default()
        .split(';')
        .skip(1);
    for param in params {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if !name.trim().eq_ignore_ascii_case("transport") {
            continue;
        }
        let value = value.trim();
        return match Transport::parse(value) {
            Some(t) => Ok(Some(t)),
            None => Err(RouteError::UnsupportedTransport(value.to_string())),
        };
    }
    Ok(None)
}

struct SipUri {
    user: String,
    hop: ProxyAddress,
    /// `sips:`: TLS all the way (RFC 3261 §26.2.2; port 5061 unless given).
    sips: bool,
}

/// `sip[s]:[user@]host[:port][;params][?headers]`. The user part ends at the LAST `@` and
/// only then are `;params`/`?headers` cut, from the host part: a `;` or `?` in the user part
/// (`sip:a;x@h`) is part of the user, never the start of the host. This is how the flow side
/// (`flow::outbound`'s `sip_uri_ok`) reads a target, so both agree on the host dialled.
fn parse_sip_uri(uri: &str) -> Option<SipUri> {
    let uri = uri.trim();
    let (rest, sips) = match uri.strip_prefix("sips:") {
        Some(rest) => (rest, true),
        None => (uri.strip_prefix("sip:")?, false),
    };
    let (user, host_part) = match rest.rsplit_once('@') {
        Some((u, h)) => (u.to_string(), h),
        None => (String::new(), rest),
    };
    let host_port = host_part.split(['?', ';']).next()?;
    let hop = ProxyAddress::parse(host_port).ok()?;
    // A bare IPv6 address is not a URI host (RFC 3261 §25.1 wants brackets).
    if matches!(hop.host, Host::Ip(IpAddr::V6(_))) && !host_port.starts_with('[') {
        return None;
    }
    Some(SipUri { user, hop, sips })
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
                tls_ca: None,
                account: Default::default(),
            },
            Trunk {
                name: "carrier".into(),
                allow: Vec::new(),
                outbound_proxy: Some(hop("10.0.0.9:5070")),
                transport: None,
                tls_ca: None,
                account: Default::default(),
            },
            Trunk {
                name: "named".into(),
                allow: Vec::new(),
                outbound_proxy: Some(hop("sip.carrier.example")),
                transport: Some(Transport::Tcp),
                tls_ca: None,
                account: Default::default(),
            },
            Trunk {
                name: "secure".into(),
                allow: Vec::new(),
                outbound_proxy: Some(hop("sbc.example.com:5061")),
                transport: Some(Transport::Tls),
                tls_ca: None,
                account: Default::default(),
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

    /// RFC 3261 §10.3 / RFC 5626 §4.4 (lite): a registered contact is sent to the REGISTER's
    /// source address and transport, whatever address its URI names, and never via a trunk.
    #[test]
    fn a_registered_contact_goes_to_its_source() {
        let source = Peer {
            addr: "198.51.100.9:40000".parse().unwrap(),
            transport: crate::sip::transport::TransportKind::Tcp,
        };
        let target = Target::Registered {
            user: "alice".into(),
            uri: "sip:alice@192.168.1.20:5060;transport=tcp".into(),
            source,
        };
        let r = route(&target, Some("carrier"), &trunks()).unwrap();
        assert_eq!(r.request_uri, "sip:alice@192.168.1.20:5060;transport=tcp");
        assert_eq!(r.next_hop, hop("198.51.100.9:40000"));
        assert_eq!(r.transport, Some(Transport::Tcp));
        assert_eq!((r.user.as_str(), target.label()), ("alice", "alice"));
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
            Ok(Some(Transport::Tls))
        );
        assert_eq!(
            via("sip:bob@h;transport=sctp", None),
            Err(RouteError::UnsupportedTransport("sctp".into()))
        );
    }

    /// RFC 3261 §26.2.2: a `sips:` URI goes over TLS (RFC 3263 picks port 5061 unless given);
    /// `;transport=tls` and a TLS trunk too, and the TLS server name is the host as written
    /// (§26.3.1), never an address DNS gave.
    #[test]
    fn sips_and_transport_tls_and_tls_trunks_go_over_tls() {
        let r = route(&Target::Sip("sips:bob@example.com".into()), None, &trunks()).unwrap();
        assert_eq!(r.transport, Some(Transport::Tls));
        assert_eq!(r.next_hop, hop("example.com"));
        let t = r.tls_target();
        assert_eq!(t.server_name, "example.com");
        assert_eq!(t.client, None);
        let r = route(
            &Target::Sip("sip:bob@127.0.0.1:5070;transport=TLS".into()),
            None,
            &trunks(),
        )
        .unwrap();
        assert_eq!(r.transport, Some(Transport::Tls));
        assert_eq!(r.tls_target().server_name, "127.0.0.1");
        let r = route(&Target::Tel("+15550100".into()), Some("secure"), &trunks()).unwrap();
        assert_eq!(r.transport, Some(Transport::Tls));
        assert_eq!(
            r.request_uri,
            "sip:+15550100@sbc.example.com:5061;transport=tls"
        );
        assert_eq!(r.tls_target().server_name, "sbc.example.com");
    }

    /// The host is what follows the LAST `@`; `;`/`?` in the user part do not end it. An
    /// unescaped `sip:asterisk-internal;x@trunk.example.com` once went to
    /// `asterisk-internal:5060` while the flow check saw `trunk.example.com`.
    #[test]
    fn params_in_the_user_part_do_not_become_the_host() {
        let go = |uri: &str| route(&Target::Sip(uri.into()), None, &trunks()).unwrap();
        let r = go("sip:asterisk-internal;x@trunk.example.com");
        assert_eq!(r.next_hop, hop("trunk.example.com"));
        assert_eq!(r.user, "asterisk-internal;x");
        assert_eq!(r.transport, None);
        let r = go("sip:a;transport=tcp?b@h:5070;transport=tls");
        assert_eq!(r.next_hop, hop("h:5070"));
        assert_eq!(r.transport, Some(Transport::Tls));
        assert_eq!(go("sip:a@evil@h").next_hop, hop("h"));
        assert_eq!(go("sip:evil%3By@h;lr?x=y").next_hop, hop("h"));
        assert_eq!(go("sip:h;transport=tcp").transport, Some(Transport::Tcp));
    }
}
