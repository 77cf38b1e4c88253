//! What an operator writes for a SIP server (`[[trunks]] outbound_proxy`): a host name, an IPv4
//! address or a bracketed IPv6 reference, each with an optional port (RFC 3261 §25.1
//! `hostport`). Whether a port is given matters: an explicit port skips NAPTR and SRV
//! (RFC 3263 §4.2), so it is kept as an `Option`.

use std::fmt;
use std::net::IpAddr;

/// The host part: a literal address (no DNS at all) or a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Ip(IpAddr),
    /// Lower-cased, without a trailing dot.
    Name(String),
}

/// `host[:port]` as configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyAddress {
    pub host: Host,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseProxyError {
    #[error("empty")]
    Empty,
    #[error("{0:?} is not a port (1-65535)")]
    BadPort(String),
    #[error("{0:?} is not an IPv6 address (write it as [::1] or [::1]:5060)")]
    BadIpv6(String),
    #[error("{0:?} is not a host name (letters, digits, '-' and '.' only)")]
    BadHost(String),
}

impl ProxyAddress {
    /// Parses `host`, `host:port`, `1.2.3.4[:port]`, `[v6]`, `[v6]:port` (or a bare v6).
    pub fn parse(value: &str) -> Result<ProxyAddress, ParseProxyError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(ParseProxyError::Empty);
        }
        if let Ok(ip) = value.parse::<IpAddr>() {
            return Ok(ProxyAddress {
                host: Host::Ip(ip),
                port: None,
            });
        }
        let (host, port) = if let Some(rest) = value.strip_prefix('[') {
            let (inside, after) = rest
                .split_once(']')
                .ok_or_else(|| ParseProxyError::BadIpv6(value.to_string()))?;
            let ip = inside
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| ParseProxyError::BadIpv6(value.to_string()))?;
            let port = match after {
                "" => None,
                _ => Some(parse_port(after.strip_prefix(':').unwrap_or(after))?),
            };
            (Host::Ip(IpAddr::V6(ip)), port)
        } else {
            let (name, port) = match value.split_once(':') {
                Some((name, port)) => (name, Some(parse_port(port)?)),
                None => (value, None),
            };
            let host = match name.parse::<std::net::Ipv4Addr>() {
                Ok(ip) => Host::Ip(IpAddr::V4(ip)),
                Err(_) => host_name(name)?,
            };
            (host, port)
        };
        Ok(ProxyAddress { host, port })
    }

    /// The host as a URI writes it (`example.com`, `10.0.0.1`, `[::1]`).
    pub fn host_text(&self) -> String {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
            Host::Ip(ip) => ip.to_string(),
            Host::Name(n) => n.clone(),
        }
    }
}

impl fmt::Display for ProxyAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host_text())?;
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

fn parse_port(text: &str) -> Result<u16, ParseProxyError> {
    text.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| ParseProxyError::BadPort(text.to_string()))
}

/// RFC 1123 host name: labels of letters, digits and '-', not starting or ending with '-'.
fn host_name(name: &str) -> Result<Host, ParseProxyError> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let bad = || ParseProxyError::BadHost(name.to_string());
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(bad());
    }
    for label in trimmed.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(bad());
        }
    }
    // An all-numeric dotted name that did not parse as IPv4 (`1.2.3`, `300.1.1.1`) is a typo.
    if trimmed
        .split('.')
        .all(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(bad());
    }
    Ok(Host::Name(trimmed.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> (String, Option<u16>) {
        let p = ProxyAddress::parse(s).unwrap();
        (p.host_text(), p.port)
    }

    #[test]
    fn accepts_every_hostport_form() {
        assert_eq!(parsed("sip.Example.com"), ("sip.example.com".into(), None));
        assert_eq!(
            parsed("sip.example.com:5070"),
            ("sip.example.com".into(), Some(5070))
        );
        assert_eq!(parsed("10.0.0.9"), ("10.0.0.9".into(), None));
        assert_eq!(parsed("10.0.0.9:5070"), ("10.0.0.9".into(), Some(5070)));
        assert_eq!(parsed("[::1]"), ("[::1]".into(), None));
        assert_eq!(
            parsed("[2001:db8::1]:5080"),
            ("[2001:db8::1]".into(), Some(5080))
        );
        assert_eq!(parsed("::1"), ("[::1]".into(), None));
        assert_eq!(parsed("localhost."), ("localhost".into(), None));
        assert_eq!(
            ProxyAddress::parse("[::1]:5080").unwrap().to_string(),
            "[::1]:5080"
        );
        assert!(matches!(
            ProxyAddress::parse("10.0.0.9").unwrap().host,
            Host::Ip(_)
        ));
    }

    #[test]
    fn refuses_what_is_not_a_hostport() {
        for bad in [
            "",
            "host:",
            "host:0",
            "host:70000",
            "host:x",
            "[::1",
            "[nope]:5060",
            "[::1]x",
            "a b",
            "-a.com",
            "a..com",
            "1.2.3",
            "300.1.1.1:5060",
            "h:1:2",
            "sip:h",
        ] {
            assert!(ProxyAddress::parse(bad).is_err(), "{bad:?}");
        }
    }
}
