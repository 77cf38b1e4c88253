//! The link between two legs' media sessions for `connect` (a B2BUA media path): each session
//! forwards the RTP payloads it receives to the other, which sends them with its own SSRC,
//! sequence and timestamp base (payload passthrough; G.711 µ-law ↔ A-law converted when the
//! legs settled on different codecs). Bounded: a stalled peer loses frames, never memory.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::g711::Codec;

/// Frames queued towards a peer session at most (about 1 s of audio).
const RELAY_QUEUE: usize = 64;

/// One received RTP payload on its way to the other leg.
#[derive(Debug)]
pub struct RelayFrame {
    pub kind: FrameKind,
    pub marker: bool,
    /// The sender's RTP timestamp (the receiving session maps it onto its own base).
    pub timestamp: u32,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Audio(Codec),
    /// An RFC 4733 telephone-event payload.
    Event,
}

/// One session's end of a relay: where its received frames go and where its peer's come from.
#[derive(Clone)]
pub struct RelayLink {
    pub(crate) to_peer: mpsc::Sender<RelayFrame>,
    /// Taken once by the session that runs the relay.
    from_peer: Arc<Mutex<Option<mpsc::Receiver<RelayFrame>>>>,
}

impl RelayLink {
    /// Two linked ends: what one sends, the other receives.
    pub fn pair() -> (RelayLink, RelayLink) {
        let (a_tx, a_rx) = mpsc::channel(RELAY_QUEUE);
        let (b_tx, b_rx) = mpsc::channel(RELAY_QUEUE);
        (
            RelayLink {
                to_peer: a_tx,
                from_peer: Arc::new(Mutex::new(Some(b_rx))),
            },
            RelayLink {
                to_peer: b_tx,
                from_peer: Arc::new(Mutex::new(Some(a_rx))),
            },
        )
    }

    /// The receiving end (once; `None` after).
    pub(crate) fn take_receiver(&self) -> Option<mpsc::Receiver<RelayFrame>> {
        self.from_peer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

impl std::fmt::Debug for RelayLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayLink")
    }
}

impl PartialEq for RelayLink {
    fn eq(&self, other: &Self) -> bool {
        self.to_peer.same_channel(&other.to_peer)
    }
}

impl Eq for RelayLink {}

/// Maps a peer's RTP timestamps onto ours: the first frame lands on our clock "now", later
/// ones keep the peer's spacing (so gaps and DTMF event timestamps survive the relay).
#[derive(Debug, Default)]
pub(crate) struct TimestampMap {
    offset: Option<u32>,
}

impl TimestampMap {
    pub(crate) fn map(&mut self, peer: u32, our_now: u32) -> u32 {
        let offset = *self.offset.get_or_insert(our_now.wrapping_sub(peer));
        peer.wrapping_add(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_ends_cross() {
        let (a, b) = RelayLink::pair();
        let mut from_a = b.take_receiver().unwrap();
        assert!(b.take_receiver().is_none());
        a.to_peer
            .try_send(RelayFrame {
                kind: FrameKind::Event,
                marker: true,
                timestamp: 7,
                payload: vec![1],
            })
            .unwrap();
        assert_eq!(from_a.try_recv().unwrap().timestamp, 7);
        assert_ne!(a, b);
        assert_eq!(a.clone(), a);
    }

    #[test]
    fn timestamps_keep_the_peers_spacing() {
        let mut map = TimestampMap::default();
        assert_eq!(map.map(u32::MAX - 80, 1000), 1000);
        assert_eq!(map.map(79, 5000), 1160);
    }
}
