//! Strict RTP: which source address the session accepts RTP from and where it sends, as a
//! sans-IO state (addresses and SSRCs in, verdicts out). No sockets, no clocks.
//!
//! ```text
//!   no SDP address ──────────────► nothing accepted, nothing sent
//!   SDP address routable ────────► latched to it at once (loopback counts as routable)
//!   SDP address private/unroutable ─first source seen─► latched there (NAT: send there too)
//!   latched ──packet from the latched address, new SSRC──► accepted (re-latched on the SSRC)
//!   latched ──packet from any other address──────────────► dropped (`source`)
//!   new SDP address (re-INVITE) ─► start over from the top
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Where RTP is accepted from and sent to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Latch {
    /// The address the SDP gave.
    target: Option<SocketAddr>,
    /// The source accepted, once known.
    latched: Option<SocketAddr>,
    /// The SSRC last accepted from the latched source.
    ssrc: Option<u32>,
}

/// What to do with one received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// From the latched source; `new_ssrc` when its SSRC differs from the last one accepted.
    Accept {
        new_ssrc: bool,
    },
    Drop(DropReason),
}

/// Why a packet was dropped (the `reason` label of `activeflow_rtp_packets_dropped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DropReason {
    /// Not from the latched source.
    Source,
    /// No peer address known yet.
    NoRemote,
}

impl DropReason {
    pub(super) const ALL: [DropReason; 2] = [DropReason::Source, DropReason::NoRemote];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            DropReason::Source => "source",
            DropReason::NoRemote => "no_remote",
        }
    }
}

impl Latch {
    pub(super) fn new(target: Option<SocketAddr>) -> Latch {
        let mut latch = Latch::default();
        latch.set_target(target);
        latch
    }

    /// A new SDP address (or none): the latch starts over.
    pub(super) fn set_target(&mut self, target: Option<SocketAddr>) {
        self.target = target;
        self.ssrc = None;
        self.latched = target.filter(|t| is_routable(t.ip()));
    }

    /// The address the SDP gave, if any.
    pub(super) fn target(&self) -> Option<SocketAddr> {
        self.target
    }

    /// Where to send RTP: the latched source, else the SDP address; `None` before either.
    pub(super) fn remote(&self) -> Option<SocketAddr> {
        self.latched.or(self.target)
    }

    pub(super) fn on_packet(&mut self, from: SocketAddr, ssrc: u32) -> Verdict {
        if self.target.is_none() {
            return Verdict::Drop(DropReason::NoRemote);
        }
        match self.latched {
            Some(latched) if latched != from => return Verdict::Drop(DropReason::Source),
            Some(_) => {}
            // The SDP address is unroutable (a NAT'd caller): its first source is the caller.
            None => self.latched = Some(from),
        }
        let new_ssrc = self.ssrc.is_some_and(|s| s != ssrc);
        self.ssrc = Some(ssrc);
        Verdict::Accept { new_ssrc }
    }
}

/// Whether an SDP address can be trusted as the caller's real RTP source. Private (RFC 1918),
/// shared (CGNAT 100.64/10), link-local, unspecified and ULA (fc00::/7) addresses are the
/// inside of a NAT; loopback is routable (a caller on this host really sends from it).
pub(super) fn is_routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_routable_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_routable_v4(v4),
            None => is_routable_v6(v6),
        },
    }
}

fn is_routable_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    !(ip.is_private() || ip.is_link_local() || ip.is_unspecified() || shared)
}

fn is_routable_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    !(ip.is_unspecified() || unique_local || link_local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn unroutable_addresses_are_the_nat_ones() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.1.1",
            "0.0.0.0",
            "fd00::1",
            "fe80::1",
            "::",
            "::ffff:192.168.1.1",
        ] {
            assert!(!is_routable(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["127.0.0.1", "::1", "8.8.8.8", "100.128.0.1", "2001:db8::1"] {
            assert!(is_routable(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn a_routable_sdp_address_is_latched_at_once() {
        let mut latch = Latch::new(Some(addr("127.0.0.1:4000")));
        assert_eq!(latch.remote(), Some(addr("127.0.0.1:4000")));
        assert_eq!(
            latch.on_packet(addr("127.0.0.1:5000"), 1),
            Verdict::Drop(DropReason::Source)
        );
        assert_eq!(
            latch.on_packet(addr("127.0.0.1:4000"), 1),
            Verdict::Accept { new_ssrc: false }
        );
        assert_eq!(
            latch.on_packet(addr("127.0.0.1:4000"), 2),
            Verdict::Accept { new_ssrc: true }
        );
        assert_eq!(latch.remote(), Some(addr("127.0.0.1:4000")));
    }

    #[test]
    fn a_private_sdp_address_latches_the_first_source_and_sends_there() {
        let mut latch = Latch::new(Some(addr("192.168.1.10:4000")));
        assert_eq!(latch.remote(), Some(addr("192.168.1.10:4000")));
        assert_eq!(
            latch.on_packet(addr("203.0.113.5:31000"), 7),
            Verdict::Accept { new_ssrc: false }
        );
        assert_eq!(latch.remote(), Some(addr("203.0.113.5:31000")));
        // A new SSRC from elsewhere does not move the latch.
        assert_eq!(
            latch.on_packet(addr("203.0.113.6:31000"), 8),
            Verdict::Drop(DropReason::Source)
        );
        assert_eq!(latch.remote(), Some(addr("203.0.113.5:31000")));
    }

    #[test]
    fn nothing_is_accepted_or_sent_before_an_address_is_known() {
        let mut latch = Latch::new(None);
        assert_eq!(latch.remote(), None);
        assert_eq!(
            latch.on_packet(addr("127.0.0.1:4000"), 1),
            Verdict::Drop(DropReason::NoRemote)
        );
        assert_eq!(latch.remote(), None);
        latch.set_target(Some(addr("127.0.0.1:4000")));
        assert_eq!(
            latch.on_packet(addr("127.0.0.1:4000"), 1),
            Verdict::Accept { new_ssrc: false }
        );
    }
}
