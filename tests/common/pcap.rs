//! A pcap writer for SIPp's `play_pcap_audio`: RTP PCMU packets 20 ms apart over
//! Ethernet/IPv4/UDP from 127.0.0.1:6000 to :6002 (SIPp replays the RTP with the capture's
//! timing to the call's media address). Knows nothing of what the audio is.

use std::path::Path;

/// Writes one RTP packet per payload (RFC 3550 §5.1: version 2, marker on the first,
/// sequence k, timestamp 160·k, `ssrc`), payload type 0 (PCMU), 20 ms apart.
pub fn write_pcmu_pcap(path: &Path, ssrc: u32, payloads: impl IntoIterator<Item = Vec<u8>>) {
    let mut out = Vec::new();
    // Global header: magic, v2.4, zone 0, sigfigs 0, snaplen 65535, linktype 1 (Ethernet).
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (k, payload) in payloads.into_iter().enumerate() {
        let mut rtp = vec![0x80, if k == 0 { 0x80 } else { 0 }];
        rtp.extend_from_slice(&(k as u16).to_be_bytes());
        rtp.extend_from_slice(&((k * 160) as u32).to_be_bytes());
        rtp.extend_from_slice(&ssrc.to_be_bytes());
        rtp.extend(payload);
        let udp_len = 8 + rtp.len();
        let ip_len = 20 + udp_len;
        let mut packet = Vec::with_capacity(14 + ip_len);
        packet.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        let checksum = ip_checksum(&ip);
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        packet.extend_from_slice(&ip);
        packet.extend_from_slice(&6000u16.to_be_bytes());
        packet.extend_from_slice(&6002u16.to_be_bytes());
        packet.extend_from_slice(&(udp_len as u16).to_be_bytes());
        packet.extend_from_slice(&0u16.to_be_bytes());
        packet.extend_from_slice(&rtp);
        let micros = k as u64 * 20_000;
        out.extend_from_slice(&((1_700_000_000 + micros / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(packet.len() as u32).to_le_bytes());
        out.extend_from_slice(&(packet.len() as u32).to_le_bytes());
        out.extend_from_slice(&packet);
    }
    std::fs::write(path, out).expect("pcap written");
}

/// The IPv4 header checksum (RFC 791).
fn ip_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
