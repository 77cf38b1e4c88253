//! Validation of how trunks are reached: `[[trunks]] outbound_proxy` (`host`, `host:port`,
//! IPv4, `[IPv6]`, `[IPv6]:port`) and `transport`, and the `[sip]` keys of RFC 3263 resolution
//! (`dns_servers`, `failover_timeout_ms`). Errors name the key.

use std::net::SocketAddr;

use super::{invalid, ConfigError, SipConfig, TrunkConfig};
use crate::sip::resolve::{ProxyAddress, Transport};

/// The trunk's proxy and configured transport (`None`: NAPTR decides, RFC 3263 §4.1).
pub(super) fn addressing(
    i: usize,
    t: &TrunkConfig,
) -> Result<(Option<ProxyAddress>, Option<Transport>), ConfigError> {
    let transport = match t.transport.trim() {
        "" => None,
        value => Some(Transport::parse(value).ok_or_else(|| {
            invalid(
                format!("trunks[{i}].transport"),
                format!("{value:?} is not one of udp, tcp, tls"),
            )
        })?),
    };
    if t.outbound_proxy.trim().is_empty() {
        if transport.is_some() {
            return Err(invalid(
                format!("trunks[{i}].transport"),
                "needs trunks[].outbound_proxy (the transport is how the proxy is reached)",
            ));
        }
        return Ok((None, None));
    }
    let proxy = ProxyAddress::parse(&t.outbound_proxy).map_err(|e| {
        invalid(
            format!("trunks[{i}].outbound_proxy"),
            format!("{e}; expected host, host:port, an IP address or [IPv6]:port"),
        )
    })?;
    Ok((Some(proxy), transport))
}

/// `sip.dns_servers` as addresses, and `sip.failover_timeout_ms` checked.
pub(super) fn dns_servers(sip: &SipConfig) -> Result<Vec<SocketAddr>, ConfigError> {
    if !(100..=60_000).contains(&sip.failover_timeout_ms) {
        return Err(invalid("sip.failover_timeout_ms", "must be 100..=60000"));
    }
    sip.dns_servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.trim().parse().map_err(|_| {
                invalid(
                    format!("sip.dns_servers[{i}]"),
                    format!("{s:?} is not an address like 127.0.0.1:53"),
                )
            })
        })
        .collect()
}
