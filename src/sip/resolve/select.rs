//! The sans-IO half of RFC 3263: what to look up for an address ([`plan`]), which NAPTR records
//! name a transport we support and in what order (§4.1, [`naptr_choices`]), and the order of
//! SRV targets: by priority, then RFC 2782 weighted random within a priority (§4.2,
//! [`order_srv`]). No sockets, no clock; randomness is passed in.

use super::{Host, ProxyAddress, ResolvedTarget, Transport};

/// Transports this build sends by, in the order tried when DNS says nothing (UDP first: a
/// `sip:` URI with no NAPTR and no SRV goes over UDP, RFC 3263 §4.1).
pub const SUPPORTED_TRANSPORTS: &[Transport] = &[Transport::Udp, Transport::Tcp, Transport::Tls];

/// What to look up for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// A literal IP address: this target, no DNS (§4.2: "if the TARGET was a numeric IP
    /// address, the client uses that address").
    Literal(ResolvedTarget),
    /// An explicit port: A/AAAA on the name, that port, no NAPTR or SRV (§4.2).
    Address {
        name: String,
        port: u16,
        transport: Transport,
    },
    /// The transport is known (configured): SRV for it, else A/AAAA with its default port
    /// (§4.1 last paragraphs, §4.2). NAPTR is skipped.
    Srv { name: String, transport: Transport },
    /// Nothing known: NAPTR picks the transport (§4.1); with no usable NAPTR, SRV for each
    /// supported transport in [`SUPPORTED_TRANSPORTS`] order, else A/AAAA over UDP port 5060.
    Naptr { name: String },
}

/// The lookups for `address` reached by `transport` (`None`: let DNS choose).
pub fn plan(address: &ProxyAddress, transport: Option<Transport>) -> Plan {
    let name = match &address.host {
        Host::Ip(ip) => {
            let transport = transport.unwrap_or(Transport::Udp);
            let port = address.port.unwrap_or(transport.default_port());
            return Plan::Literal(ResolvedTarget {
                addr: std::net::SocketAddr::new(*ip, port),
                transport,
            });
        }
        Host::Name(name) => name.clone(),
    };
    match (address.port, transport) {
        (Some(port), t) => Plan::Address {
            name,
            port,
            transport: t.unwrap_or(Transport::Udp),
        },
        (None, Some(transport)) => Plan::Srv { name, transport },
        (None, None) => Plan::Naptr { name },
    }
}

/// One NAPTR record, as much of it as RFC 3263 uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaptrRecord {
    pub order: u16,
    pub preference: u16,
    pub flags: String,
    pub services: String,
    /// The SRV name to query next.
    pub replacement: String,
}

/// The NAPTR records naming a supported SIP transport with the `S` flag (the next lookup is
/// SRV), by order then preference (§4.1); the SRV name each one points to. Records for other
/// services (`E2U+sip`, `SIP+D2S`, unsupported transports) are discarded.
pub fn naptr_choices(records: &[NaptrRecord], supported: &[Transport]) -> Vec<(Transport, String)> {
    let mut usable: Vec<(&NaptrRecord, Transport)> = records
        .iter()
        .filter(|r| r.flags.eq_ignore_ascii_case("s") && !r.replacement.is_empty())
        .filter_map(|r| {
            supported
                .iter()
                .find(|t| r.services.eq_ignore_ascii_case(t.naptr_service()))
                .map(|t| (r, *t))
        })
        .collect();
    usable.sort_by_key(|(r, _)| (r.order, r.preference));
    usable
        .into_iter()
        .map(|(r, t)| (t, r.replacement.trim_end_matches('.').to_string()))
        .collect()
}

/// One SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// The target host, without a trailing dot; `.` (empty here) means "no service".
    pub target: String,
}

/// SRV records in the order to try them (RFC 2782): lowest priority first; within a priority,
/// repeatedly pick one at random with probability proportional to its weight (zero-weight
/// records placed first, so they are picked only when the running sum allows). `random(n)`
/// returns a uniform number in `0..=n`. Records with target `.` are dropped.
pub fn order_srv(records: &[SrvRecord], random: &mut impl FnMut(u32) -> u32) -> Vec<SrvRecord> {
    let mut rest: Vec<SrvRecord> = records
        .iter()
        .filter(|r| !r.target.is_empty() && r.target != ".")
        .cloned()
        .collect();
    rest.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut ordered = Vec::with_capacity(rest.len());
    while let Some(priority) = rest.first().map(|r| r.priority) {
        let end = rest
            .iter()
            .position(|r| r.priority != priority)
            .unwrap_or(rest.len());
        let mut group: Vec<SrvRecord> = rest.drain(..end).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = random(total).min(total);
            let mut running = 0u32;
            let index = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            ordered.push(group.remove(index));
        }
    }
    ordered
}

#[cfg(test)]
mod tests;
