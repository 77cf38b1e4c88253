//! The sending half of a WebSocket media stream, written so that a host that stops reading can
//! never block the stream's task: frames wait in a small bounded queue (the oldest are dropped
//! and counted when it is full), the sink is driven only by polling (never by an awaited
//! flush), and a stall deadline says when a host has taken nothing for too long. Must not
//! await anything that depends on the host; the task's `select!` polls this beside the rest.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{Sink, SinkExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::Stats;

/// Frames waiting for the sink at most (1 s); beyond, the oldest is dropped.
pub(super) const SEND_QUEUE: usize = 50;
/// No write progress for this long with frames waiting: the host is gone or stuck; the stream
/// ends (`stalled`).
pub(super) const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames on their way to the host, and whether the sink holds unflushed bytes.
pub(super) struct Outgoing {
    queue: VecDeque<Vec<u8>>,
    /// Frames handed to the sink since its last completed flush.
    unflushed: bool,
    /// The last time the sink took a frame or finished a flush (or the queue was idle).
    last_progress: Instant,
}

impl Outgoing {
    pub(super) fn new() -> Self {
        Outgoing {
            queue: VecDeque::with_capacity(SEND_QUEUE),
            unflushed: false,
            last_progress: Instant::now(),
        }
    }

    /// Queues a frame of the caller's audio; a full queue drops its oldest (counted).
    pub(super) fn push(&mut self, payload: Vec<u8>, stats: &Stats) {
        if !self.busy() {
            // Nothing was waiting: the stall clock starts now.
            self.last_progress = Instant::now();
        }
        if self.queue.len() >= SEND_QUEUE {
            self.queue.pop_front();
            Stats::add(&stats.dropped);
        }
        self.queue.push_back(payload);
    }

    /// Something waits for the host (queued frames or unflushed bytes).
    pub(super) fn busy(&self) -> bool {
        !self.queue.is_empty() || self.unflushed
    }

    /// When the host counts as stalled if it takes nothing more.
    pub(super) fn stall_deadline(&self) -> Instant {
        self.last_progress + STALL_TIMEOUT
    }

    /// Hands queued frames to the sink while it is ready, then flushes. Completes when some
    /// progress was made; stays pending while the host takes nothing (the caller selects it
    /// against everything else, so pending costs nothing). Cancel-safe: all state is in
    /// `self` and the sink.
    pub(super) async fn progress<S>(
        &mut self,
        sink: &mut SplitSink<S, Message>,
        stats: &Stats,
    ) -> Result<(), WsError>
    where
        SplitSink<S, Message>: Sink<Message, Error = WsError> + Unpin,
    {
        poll_fn(|cx| {
            let mut moved = false;
            while !self.queue.is_empty() {
                match sink.poll_ready_unpin(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
                let Some(payload) = self.queue.pop_front() else {
                    break;
                };
                match sink.start_send_unpin(Message::binary(payload)) {
                    Ok(()) => Stats::add(&stats.sent),
                    Err(WsError::WriteBufferFull(_)) => Stats::add(&stats.dropped),
                    Err(e) => return Poll::Ready(Err(e)),
                }
                self.unflushed = true;
                moved = true;
            }
            if self.unflushed {
                match sink.poll_flush_unpin(cx) {
                    Poll::Ready(Ok(())) => {
                        self.unflushed = false;
                        moved = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if moved {
                self.last_progress = Instant::now();
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_its_oldest_frames() {
        let stats = Stats::default();
        let mut out = Outgoing::new();
        assert!(!out.busy());
        for i in 0..(SEND_QUEUE + 3) {
            out.push(vec![i as u8], &stats);
        }
        assert!(out.busy());
        assert_eq!(out.queue.len(), SEND_QUEUE);
        assert_eq!(out.queue.front(), Some(&vec![3u8]), "the oldest went");
        assert_eq!(stats.dropped.load(std::sync::atomic::Ordering::Relaxed), 3);
    }
}
