//! The I/O half of RFC 3263: NAPTR, SRV and A/AAAA lookups through one shared hickory resolver
//! (built once, from `/etc/resolv.conf` or `sip.dns_servers`), whose cache keeps every answer
//! for its TTL. Follows the [`plan`](super::plan) and hands back the ordered targets; never
//! blocks a thread (callers spawn the future on their actor).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;

use super::select::{naptr_choices, order_srv, plan, NaptrRecord, Plan, SrvRecord};
use super::{ProxyAddress, ResolvedTarget, Transport, SUPPORTED_TRANSPORTS};

/// Targets kept from one resolution: enough to fail over through any sane SRV set, bounded so
/// a hostile zone cannot make a leg try thousands.
const MAX_TARGETS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The resolver could not be built (`/etc/resolv.conf` unreadable, say).
    #[error("dns resolver: {0}")]
    Setup(String),
    /// Neither NAPTR, SRV nor A/AAAA gave an address.
    #[error("{0} did not resolve to any address")]
    NotFound(String),
}

/// One resolver for the whole engine (cheap to clone: the cache is shared).
#[derive(Clone)]
pub struct SipResolver {
    inner: Arc<TokioResolver>,
}

impl std::fmt::Debug for SipResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipResolver").finish_non_exhaustive()
    }
}

impl SipResolver {
    /// The system's name servers when `servers` is empty, else exactly those (`sip.dns_servers`).
    pub fn new(servers: &[SocketAddr]) -> Result<SipResolver, ResolveError> {
        let setup = |e: &dyn std::fmt::Display| ResolveError::Setup(e.to_string());
        let mut builder = if servers.is_empty() {
            match TokioResolver::builder_tokio() {
                Ok(builder) => builder,
                Err(e) => {
                    // No usable /etc/resolv.conf (a bare container): literal addresses and the
                    // hosts file still work; names fail to resolve (counted), the engine runs.
                    tracing::warn!(error = %e, "no system DNS configuration; set sip.dns_servers");
                    TokioResolver::builder_with_config(
                        ResolverConfig::from_name_servers(Vec::new()),
                        TokioRuntimeProvider::default(),
                    )
                }
            }
        } else {
            let name_servers = servers
                .iter()
                .map(|s| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = s.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = s.port();
                    NameServerConfig::new(s.ip(), true, vec![udp, tcp])
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers),
                TokioRuntimeProvider::default(),
            )
        };
        let options = builder.options_mut();
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        // A call waits for this: fail over to the next server quickly, not after 5 s × 2.
        options.timeout = Duration::from_secs(2);
        options.attempts = 2;
        let inner = builder.build().map_err(|e| setup(&e))?;
        Ok(SipResolver {
            inner: Arc::new(inner),
        })
    }

    /// The targets for `address` in the order to try them (RFC 3263 §4); `transport` is the
    /// configured one (`None`: NAPTR decides).
    pub async fn resolve(
        &self,
        address: &ProxyAddress,
        transport: Option<Transport>,
    ) -> Result<Vec<ResolvedTarget>, ResolveError> {
        let targets = match plan(address, transport) {
            Plan::Literal(target) => vec![target],
            Plan::Address {
                name,
                port,
                transport,
            } => self.addresses(&name, port, transport).await,
            Plan::Srv { name, transport } => self.srv_or_address(&name, transport).await,
            Plan::Naptr { name } => self.naptr(&name).await,
        };
        crate::metrics::sip_dns_resolution(!targets.is_empty());
        if targets.is_empty() {
            return Err(ResolveError::NotFound(address.to_string()));
        }
        Ok(targets)
    }

    /// §4.1: NAPTR picks the transport; the first record whose SRV set gives addresses wins.
    /// With none usable, SRV per supported transport (UDP first), then A/AAAA over UDP.
    async fn naptr(&self, name: &str) -> Vec<ResolvedTarget> {
        let records = self.naptr_records(name).await;
        for (transport, srv_name) in naptr_choices(&records, SUPPORTED_TRANSPORTS) {
            let found = self.srv(&srv_name, transport).await;
            if !found.is_empty() {
                return found;
            }
        }
        for &transport in SUPPORTED_TRANSPORTS {
            let found = self
                .srv(&format!("{}.{name}", transport.srv_prefix()), transport)
                .await;
            if !found.is_empty() {
                return found;
            }
        }
        self.addresses(name, Transport::Udp.default_port(), Transport::Udp)
            .await
    }

    /// §4.2: SRV for the known transport, else A/AAAA with its default port.
    async fn srv_or_address(&self, name: &str, transport: Transport) -> Vec<ResolvedTarget> {
        let found = self
            .srv(&format!("{}.{name}", transport.srv_prefix()), transport)
            .await;
        if !found.is_empty() {
            return found;
        }
        self.addresses(name, transport.default_port(), transport)
            .await
    }

    async fn naptr_records(&self, name: &str) -> Vec<NaptrRecord> {
        let Ok(lookup) = self.inner.lookup(fqdn(name), RecordType::NAPTR).await else {
            return Vec::new();
        };
        lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::NAPTR(n) => Some(NaptrRecord {
                    order: n.order,
                    preference: n.preference,
                    flags: String::from_utf8_lossy(&n.flags).into_owned(),
                    services: String::from_utf8_lossy(&n.services).into_owned(),
                    replacement: n.replacement.to_ascii(),
                }),
                _ => None,
            })
            .collect()
    }

    /// The SRV set for `srv_name`, ordered (RFC 2782), each target's addresses in turn.
    async fn srv(&self, srv_name: &str, transport: Transport) -> Vec<ResolvedTarget> {
        let Ok(lookup) = self.inner.lookup(fqdn(srv_name), RecordType::SRV).await else {
            return Vec::new();
        };
        let records: Vec<SrvRecord> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) => Some(SrvRecord {
                    priority: s.priority,
                    weight: s.weight,
                    port: s.port,
                    target: s.target.to_ascii().trim_end_matches('.').to_string(),
                }),
                _ => None,
            })
            .collect();
        let mut targets = Vec::new();
        for record in order_srv(&records, &mut random_up_to) {
            targets.extend(self.addresses(&record.target, record.port, transport).await);
            if targets.len() >= MAX_TARGETS {
                break;
            }
        }
        targets.truncate(MAX_TARGETS);
        targets
    }

    /// A/AAAA for `name` (a literal address in an SRV target is taken as is).
    async fn addresses(&self, name: &str, port: u16, transport: Transport) -> Vec<ResolvedTarget> {
        let ips: Vec<IpAddr> = match name.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => match self.inner.lookup_ip(fqdn(name)).await {
                Ok(found) => found.iter().collect(),
                Err(e) => {
                    tracing::debug!(name, error = %e, "A/AAAA lookup failed");
                    Vec::new()
                }
            },
        };
        ips.into_iter()
            .take(MAX_TARGETS)
            .map(|ip| ResolvedTarget {
                addr: SocketAddr::new(ip, port),
                transport,
            })
            .collect()
    }
}

/// Queried as absolute names: a trunk's host is never a search-list suffix.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// A uniform draw in `0..=n` for the SRV weights (the v4 UUID generator's randomness).
fn random_up_to(n: u32) -> u32 {
    let r = uuid::Uuid::new_v4().as_u128() as u64;
    (r % (u64::from(n) + 1)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3263 §4.2: a numeric address needs no DNS; a name in the hosts file (`localhost`)
    /// resolves without asking the (here unreachable) DNS server, as `getaddrinfo` did before.
    #[tokio::test]
    async fn literals_and_hosts_file_names_need_no_dns_server() {
        let resolver = SipResolver::new(&["127.0.0.1:9".parse().unwrap()]).unwrap();
        let literal = ProxyAddress::parse("[::1]:5080").unwrap();
        let found = resolver
            .resolve(&literal, Some(Transport::Tcp))
            .await
            .unwrap();
        assert_eq!(
            found,
            vec![ResolvedTarget {
                addr: "[::1]:5080".parse().unwrap(),
                transport: Transport::Tcp
            }]
        );
        let started = std::time::Instant::now();
        let host = ProxyAddress::parse("localhost:5070").unwrap();
        let found = resolver.resolve(&host, None).await.unwrap();
        assert!(
            found
                .iter()
                .all(|t| t.addr.ip().is_loopback() && t.addr.port() == 5070),
            "{found:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
