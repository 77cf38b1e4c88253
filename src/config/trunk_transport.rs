//! Validation of how SIP travels over TLS and to trunks: `sip.tls_listen` with its key pair
//! (loaded now, so a bad file stops the start naming its key), and each trunk's
//! `outbound_proxy` (address or host name), `transport` and `tls_ca`.

use std::net::{IpAddr, SocketAddr};

use super::{invalid, parse_addr, tls_files, ConfigError, SipConfig, TrunkConfig};
use crate::call::trunk::{ProxyAddr, Trunk};
use crate::net::Cidr;
use crate::sip::transport::{TlsClient, TransportKind};
use crate::tls::TlsConfig;

/// `sip.tls_listen` + `sip.tls_cert` + `sip.tls_key`: all three or none.
pub(super) fn sip_tls(sip: &SipConfig) -> Result<Option<(SocketAddr, TlsConfig)>, ConfigError> {
    if sip.tls_listen.is_empty() {
        if !sip.tls_cert.is_empty() || !sip.tls_key.is_empty() {
            return Err(invalid(
                "sip.tls_listen",
                "required with sip.tls_cert and sip.tls_key (the address to serve SIP over TLS on)",
            ));
        }
        return Ok(None);
    }
    let listen = parse_addr("sip.tls_listen", &sip.tls_listen)?;
    match tls_files("sip", &sip.tls_cert, &sip.tls_key)? {
        Some(config) => Ok(Some((listen, config))),
        None => Err(invalid(
            "sip.tls_cert",
            "sip.tls_cert and sip.tls_key are required with sip.tls_listen",
        )),
    }
}

/// One `[[trunks]]` entry (its ACL already parsed) as the call layer uses it.
pub(super) fn trunk(i: usize, t: &TrunkConfig, allow: Vec<Cidr>) -> Result<Trunk, ConfigError> {
    let transport = match t.transport.to_ascii_lowercase().as_str() {
        "" | "udp" => TransportKind::Udp,
        "tcp" => TransportKind::Tcp,
        "tls" => TransportKind::Tls,
        other => {
            return Err(invalid(
                format!("trunks[{i}].transport"),
                format!("{other:?} is not one of udp, tcp, tls"),
            ))
        }
    };
    let tls_ca = if t.tls_ca.is_empty() {
        None
    } else if transport != TransportKind::Tls {
        return Err(invalid(
            format!("trunks[{i}].tls_ca"),
            "only with transport = \"tls\"",
        ));
    } else {
        let ca = TlsClient::from_ca_file(t.tls_ca.as_ref())
            .map_err(|e| invalid(format!("trunks[{i}].tls_ca"), e.to_string()))?;
        Some(ca)
    };
    let outbound_proxy = if t.outbound_proxy.is_empty() {
        None
    } else {
        let default_port = if transport == TransportKind::Tls {
            5061
        } else {
            5060
        };
        let proxy = proxy_addr(&t.outbound_proxy, default_port).ok_or_else(|| {
            invalid(
                format!("trunks[{i}].outbound_proxy"),
                format!(
                    "{:?} is not host[:port], ip[:port] or [ipv6][:port]",
                    t.outbound_proxy
                ),
            )
        })?;
        Some(proxy)
    };
    Ok(Trunk {
        name: t.name.clone(),
        allow,
        outbound_proxy,
        transport,
        tls_ca,
        // The account keys are read by `trunk.rs`.
        account: Default::default(),
    })
}

/// `10.0.0.1:5060`, `[2001:db8::1]:5060`, `sbc.example.com:5061`, or any of them without port.
fn proxy_addr(value: &str, default_port: u16) -> Option<ProxyAddr> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Some(ProxyAddr::Addr(addr));
    }
    if let Ok(ip) = value.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Some(ProxyAddr::Addr(SocketAddr::new(ip, default_port)));
    }
    let (host, port) = match value.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok().filter(|p| *p != 0)?),
        None => (value, default_port),
    };
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
        });
    valid.then(|| ProxyAddr::Host(host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_forms() {
        let addr = |s: &str| ProxyAddr::Addr(s.parse().unwrap());
        assert_eq!(
            proxy_addr("10.0.0.1:5070", 5060),
            Some(addr("10.0.0.1:5070"))
        );
        assert_eq!(proxy_addr("10.0.0.1", 5061), Some(addr("10.0.0.1:5061")));
        assert_eq!(proxy_addr("[::1]:5070", 5060), Some(addr("[::1]:5070")));
        assert_eq!(proxy_addr("[::1]", 5060), Some(addr("[::1]:5060")));
        assert_eq!(
            proxy_addr("SBC.example.com:5061", 5060),
            Some(ProxyAddr::Host("sbc.example.com".into(), 5061))
        );
        assert_eq!(
            proxy_addr("localhost", 5061),
            Some(ProxyAddr::Host("localhost".into(), 5061))
        );
        for bad in [
            "", "host:", "host:0", "host:x", "a b:5060", "-a.com", "a..b", "h/x:1",
        ] {
            assert_eq!(proxy_addr(bad, 5060), None, "{bad}");
        }
    }
}
