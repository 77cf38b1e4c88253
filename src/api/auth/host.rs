//! The DNS-rebinding guard of a token-less API: a request counts as local only when its `Host`
//! names a loopback address or `localhost` (any port). A page on an attacker's site that
//! rebinds its own name to 127.0.0.1 still sends `Host: attacker.example`, so it is refused
//! even though its packets arrive on loopback. Sans-IO.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `host` (a `Host` header value: `name`, `name:port`, `v4:port`, `[v6]:port`) names
/// this machine's loopback interface.
pub fn is_loopback_host(host: &str) -> bool {
    let Some(name) = strip_port(host) else {
        return false;
    };
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6
            .parse::<Ipv6Addr>()
            .is_ok_and(|ip| is_loopback(ip.into()));
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    // Only dotted-quad literals: `127.1` or `0x7f.1` are names to a resolver, not addresses.
    name.parse::<Ipv4Addr>()
        .is_ok_and(|ip| is_loopback(ip.into()))
}

/// `host` without `:port`; `None` when the port is not a number or the value is empty.
fn strip_port(host: &str) -> Option<&str> {
    let host = host.trim();
    let (name, port) = if host.starts_with('[') {
        match host.rfind(']') {
            Some(end) => (&host[..=end], host[end + 1..].strip_prefix(':')),
            None => return None,
        }
    } else {
        match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    (!name.is_empty() && port_ok).then_some(name)
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_names_and_addresses_with_any_port() {
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.255.1.2:1",
            "[::1]",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn everything_else_is_refused() {
        for host in [
            "",
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "evil.localhost",
            "127.0.0.1.nip.io",
            "10.0.0.1:8080",
            "0.0.0.0:8080",
            "127.1",
            "0x7f.0.0.1",
            "[::]:8080",
            "::1",
            "[::1",
            "localhost:",
            "localhost:80x",
            "127.0.0.1:8080:1",
            "localhost@evil.example",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
