//! The RTP external media task: resolves the host, checks it against the destination policy,
//! then relays frames between the session's channels and one UDP socket leased from the RTP
//! pool. Our stream to the host has its own SSRC, sequence and timestamp base (RFC 3550 §5.1),
//! the caller's timestamp spacing kept; from the host only PCMU RTP from its address is taken
//! (strict, like the caller's latch), in whole 10 ms units, paced to the caller on this task's
//! 20 ms clock through a bounded playout. Never blocks: full queues drop frames (counted); a
//! refused send is counted (`send_failed_packets`), not hidden.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::playout::HostPlayout;
use super::{destination_permitted, Frame, HostEvent, Stats, ENDED_HOST_CLOSED, RESOLVE_TIMEOUT};
use crate::http::HttpPolicy;
use crate::media::relay::TimestampMap;
use crate::media::rtp::{self, RtpStream};
use crate::media::RtpLease;

/// PCMU (RFC 3551 §6): the only format the host is sent and may send.
const PCMU: u8 = 0;
/// Datagrams read per readiness at most, so a flooding host cannot starve the arbiter.
const READ_BATCH: usize = 32;
/// The host's audio held for playout at most (200 ms): RTP comes in real time, so more than
/// this is a flood (or a clock running fast), dropped and counted.
const PLAYOUT_FRAMES: usize = 10;
/// Payload sizes taken from the host: whole 10 ms units of µ-law (80 bytes), at most 60 ms.
const UNIT_BYTES: usize = 80;
const MAX_PAYLOAD: usize = 480;

pub(super) struct Task {
    pub(super) host: String,
    pub(super) policy: HttpPolicy,
    pub(super) events: mpsc::Sender<HostEvent>,
    pub(super) frames: mpsc::Receiver<Frame>,
    pub(super) stats: Arc<Stats>,
    /// The call's span, named as the parent of this task's lines.
    pub(super) span: tracing::Span,
}

impl Task {
    pub(super) async fn run(mut self, mut lease: RtpLease) {
        let Some(std_socket) = lease.take_socket() else {
            return self.fail("the leased RTP port has no socket".into()).await;
        };
        let local_ip = std_socket.local_addr().map(|a| a.ip()).ok();
        let remote = match self.resolve(local_ip).await {
            Ok(remote) => remote,
            Err(why) => {
                lease.restore_socket(std_socket);
                return self.fail(why).await;
            }
        };
        let socket = match UdpSocket::from_std(std_socket) {
            Ok(s) => s,
            Err(e) => {
                return self
                    .fail(format!("cannot register the RTP socket: {e}"))
                    .await
            }
        };
        let local = match socket.local_addr() {
            Ok(a) => a,
            Err(e) => return self.fail(format!("no local address: {e}")).await,
        };
        if self
            .events
            .send(HostEvent::Ready { local, remote })
            .await
            .is_err()
        {
            return;
        }
        tracing::debug!(parent: &self.span, %local, %remote, "external media stream up");
        if let Err(why) = self.relay(&socket, remote).await {
            let _ = self.events.try_send(HostEvent::Ended(ENDED_HOST_CLOSED));
            tracing::info!(parent: &self.span, %remote, error = %why, "external media RTP socket failed");
        }
        if let Ok(std) = socket.into_std() {
            lease.restore_socket(std);
        }
    }

    async fn fail(&self, why: String) {
        let _ = self.events.send(HostEvent::Failed(why)).await;
    }

    /// The first address of the host that the policy permits, of the family the leased socket
    /// can send to (an IPv4 socket cannot reach an IPv6 address, RFC 6724 order or not).
    async fn resolve(&self, local: Option<IpAddr>) -> Result<SocketAddr, String> {
        let host = self.host.as_str();
        let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(host)).await;
        let addresses: Vec<SocketAddr> = match found {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => return Err(format!("external_host {host:?} does not resolve: {e}")),
            Err(_) => return Err(format!("external_host {host:?} did not resolve in time")),
        };
        choose(host, &addresses, &self.policy, local)
    }

    /// Frames both ways until the session drops its link (`Ok`) or the socket fails. The
    /// host's audio is played on this task's 20 ms clock, one frame per tick.
    async fn relay(&mut self, socket: &UdpSocket, remote: SocketAddr) -> Result<(), String> {
        let mut stream = RtpStream::new();
        let mut timestamps = TimestampMap::default();
        let base = rtp::random_timestamp();
        let mut packet = Vec::with_capacity(12 + 160);
        let mut buffer = vec![0u8; 2048];
        let mut playout = HostPlayout::new(PLAYOUT_FRAMES, false);
        let mut clock = tokio::time::interval(Duration::from_millis(20));
        clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                frame = self.frames.recv() => {
                    let Some(frame) = frame else { return Ok(()) };
                    let ts = timestamps.map(frame.timestamp, base);
                    stream.write_packet(PCMU, frame.marker, ts, &frame.payload, &mut packet);
                    match socket.try_send_to(&packet, remote) {
                        Ok(_) => Stats::add(&self.stats.sent),
                        Err(e) => self.send_failed(&e),
                    }
                }
                ready = socket.readable() => {
                    ready.map_err(|e| e.to_string())?;
                    let idle = playout.is_empty();
                    for _ in 0..READ_BATCH {
                        match socket.try_recv_from(&mut buffer) {
                            Ok((n, from)) => {
                                self.on_datagram(&buffer[..n], from, remote, &mut playout)
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(_) => break,
                        }
                    }
                    if idle && !playout.is_empty() {
                        // A new talkspurt: its first frame now, then one per 20 ms.
                        clock.reset_immediately();
                    }
                }
                _ = clock.tick(), if !playout.is_empty() => {
                    if let Some(frame) = playout.next_frame() {
                        if self.events.try_send(HostEvent::Audio(frame)).is_err() {
                            Stats::add(&self.stats.dropped);
                        }
                    }
                }
            }
        }
    }

    /// Counted; logged the first time only (a wrong route fails every packet).
    fn send_failed(&self, e: &std::io::Error) {
        let before = self.stats.send_failed.fetch_add(1, Ordering::Relaxed);
        if before == 0 {
            tracing::warn!(parent: &self.span, host = %self.host, error = %e, "external media RTP send failed");
        }
    }

    fn on_datagram(
        &self,
        datagram: &[u8],
        from: SocketAddr,
        remote: SocketAddr,
        playout: &mut HostPlayout,
    ) {
        let Some(frame) = accept(datagram, from, remote) else {
            return Stats::add(&self.stats.rejected);
        };
        Stats::add(&self.stats.received);
        let dropped = playout.push(&frame.payload);
        self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
    }
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// Of `host`'s resolved addresses, the first the policy permits and the socket bound to
/// `local` can reach (same family); a clear error naming why when there is none.
fn choose(
    host: &str,
    addresses: &[SocketAddr],
    policy: &HttpPolicy,
    local: Option<IpAddr>,
) -> Result<SocketAddr, String> {
    let permitted: Vec<SocketAddr> = addresses
        .iter()
        .copied()
        .filter(|a| destination_permitted(policy, a.ip()))
        .collect();
    if permitted.is_empty() {
        let all: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
        return Err(format!(
            "external_host {host:?} ({}) is not a permitted media destination (unspecified, \
             multicast, broadcast, or denied by the [http] policy)",
            all.join(", ")
        ));
    }
    let Some(local) = local else {
        return Ok(permitted[0]);
    };
    permitted
        .iter()
        .copied()
        .find(|a| same_family(local, a.ip()))
        .ok_or_else(|| {
            let family = if local.is_ipv4() { "IPv4" } else { "IPv6" };
            format!(
                "external_host {host:?} has no permitted {family} address, and the media socket \
                 ({local}) can reach no other"
            )
        })
}

/// A datagram from the host as a frame: PCMU RTP from exactly the host's address, with a
/// payload of whole 10 ms units up to 60 ms, else `None`.
pub(super) fn accept(datagram: &[u8], from: SocketAddr, remote: SocketAddr) -> Option<Frame> {
    if from != remote {
        return None;
    }
    let (header, payload) = rtp::parse(datagram)?;
    let size_ok =
        !payload.is_empty() && payload.len() % UNIT_BYTES == 0 && payload.len() <= MAX_PAYLOAD;
    (header.payload_type == PCMU && size_ok).then(|| Frame {
        marker: header.marker,
        timestamp: header.timestamp,
        payload: payload.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pt: u8) -> Vec<u8> {
        let mut out = Vec::new();
        RtpStream::with(7, 1).write_packet(pt, true, 160, &[0xff; 160], &mut out);
        out
    }

    #[test]
    fn only_pcmu_from_the_host_is_accepted() {
        let host: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let frame = accept(&packet(0), host, host).unwrap();
        assert_eq!((frame.marker, frame.timestamp), (true, 160));
        assert_eq!(frame.payload.len(), 160);
        assert!(accept(&packet(0), other, host).is_none(), "another source");
        assert!(accept(&packet(8), host, host).is_none(), "PCMA");
        assert!(accept(b"junk", host, host).is_none(), "not RTP");
        let sized = |n: usize| {
            let mut out = Vec::new();
            RtpStream::with(7, 1).write_packet(0, false, 0, &vec![0xff; n], &mut out);
            accept(&out, host, host).is_some()
        };
        assert!(sized(80) && sized(240) && sized(480));
        assert!(!sized(100), "not whole 10 ms");
        assert!(!sized(560), "over 60 ms");
    }

    /// A dual-stack name (AAAA first, as RFC 6724 often orders it) from an IPv4 socket: the
    /// IPv4 address; a denied address is skipped; nothing usable is a clear error.
    #[test]
    fn the_address_is_permitted_and_of_the_sockets_family() {
        let policy = HttpPolicy {
            deny: vec!["10.0.0.0/8".parse().unwrap()],
            ..HttpPolicy::permissive(std::time::Duration::from_secs(1), 1)
        };
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let v4: IpAddr = "192.0.2.10".parse().unwrap();
        let dual = [
            a("[2001:db8::5]:4000"),
            a("10.1.2.3:4000"),
            a("203.0.113.5:4000"),
        ];
        assert_eq!(
            choose("bot", &dual, &policy, Some(v4)),
            Ok(a("203.0.113.5:4000"))
        );
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            choose("bot", &dual, &policy, Some(v6)),
            Ok(a("[2001:db8::5]:4000"))
        );
        let only_v6 = [a("[2001:db8::5]:4000"), a("10.1.2.3:4000")];
        let err = choose("bot", &only_v6, &policy, Some(v4)).unwrap_err();
        assert!(err.contains("no permitted IPv4 address"), "{err}");
        let denied = [a("10.1.2.3:4000"), a("[::ffff:10.1.2.3]:4000")];
        let err = choose("bot", &denied, &policy, Some(v4)).unwrap_err();
        assert!(err.contains("not a permitted media destination"), "{err}");
    }

    #[test]
    fn only_addresses_of_the_sockets_family_are_used() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(same_family(v4, "203.0.113.9".parse().unwrap()));
        assert!(!same_family(v4, v6));
        assert!(same_family(v6, "2001:db8::2".parse().unwrap()));
    }
}
