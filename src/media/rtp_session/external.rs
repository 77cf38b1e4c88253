//! The media session's side of an external media stream: the caller's audio (as µ-law, muted
//! as silence) goes to the stream's task; the host's audio comes back and goes to the caller on
//! this session's own SSRC, sequence and timestamps (the host's spacing kept). The start job is
//! answered when the task reports the stream up or failed; stop answers with the counts. A
//! stream that ends by itself (host closed, stalled) keeps its counts and `ended_by` for the
//! flow's next `external_media_stop`.

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::Session;
use crate::media::external::{self, ExternalLink, ExternalMediaRequest, Frame, HostEvent, Stats};
use crate::media::g711::Codec;
use crate::media::relay::TimestampMap;
use crate::media::request::{MediaError, MediaJob};

pub(in crate::media) struct External {
    /// The start job, until the task reports the stream up or failed.
    starting: Option<MediaJob>,
    request: ExternalMediaRequest,
    link: ExternalLink,
    timestamps: TimestampMap,
    /// Where the stream runs, once up.
    addresses: Value,
    /// Frames of the host's audio sent to the caller.
    played: u64,
    /// The stream ended by itself: its final counts, kept for the next `external_media_stop`
    /// (or dropped by the next start). Its task is gone; only this remains.
    ended: Option<Value>,
}

impl External {
    /// The stream's counts and how it ended.
    fn result(&self, ended_by: &str) -> Value {
        let mut result = self.link.stats.to_json();
        result["external_media_id"] = json!(self.request.id);
        result["played_packets"] = json!(self.played);
        result["ended_by"] = json!(ended_by);
        result
    }
}

impl Session {
    pub(super) fn start_external(&mut self, job: MediaJob, request: ExternalMediaRequest) {
        self.finish_external("replaced");
        let Some(pool) = &self.config.rtp_ports else {
            let why = "this media session has no RTP port pool for external media";
            return self.report(job, Err(MediaError::Audio(why.into())));
        };
        let policy = self.config.library.http_policy();
        match external::spawn(
            &request,
            &self.config.call_id,
            &self.config.span,
            pool,
            policy,
        ) {
            Ok(link) => {
                self.external = Some(Box::new(External {
                    starting: Some(job),
                    request,
                    link,
                    timestamps: TimestampMap::default(),
                    addresses: Value::Null,
                    played: 0,
                    ended: None,
                }))
            }
            Err(e) => self.report(job, Err(MediaError::Audio(e.to_string()))),
        }
    }

    /// Ends the stream (its task ends with the link); the counts, or `None` without a stream.
    /// A stream that had already ended by itself answers with its own end.
    pub(super) fn finish_external(&mut self, ended_by: &str) -> Option<Value> {
        let e = self.external.take()?;
        if let Some(result) = e.ended {
            return Some(result);
        }
        if let Some(job) = e.starting {
            let why = format!("external media {ended_by} before it started");
            self.report(job, Err(MediaError::Audio(why)));
        }
        Some(e.result(ended_by))
    }

    /// `external_media_stop`: done at once, with the stopped stream's counts.
    pub(super) fn stop_external(&mut self, job: MediaJob) {
        let result = self
            .finish_external("stopped")
            .unwrap_or_else(|| json!({ "external_media_id": null }));
        self.report(job, Ok(result));
    }

    pub(super) fn on_external_event(&mut self, event: Option<HostEvent>) {
        match event {
            Some(HostEvent::Ready { local, remote }) => {
                let Some(e) = &mut self.external else { return };
                e.addresses = json!({
                    "local_address": local.to_string(),
                    "external_address": remote.to_string(),
                });
                if let Some(job) = e.starting.take() {
                    let mut result = e.addresses.clone();
                    result["external_media_id"] = json!(e.request.id);
                    result["encapsulation"] = json!(e.request.encapsulation.as_str());
                    self.report(job, Ok(result));
                }
            }
            Some(HostEvent::Failed(why)) => {
                if let Some(job) = self.external.take().and_then(|e| e.starting) {
                    self.report(job, Err(MediaError::Audio(why)));
                }
            }
            Some(HostEvent::Audio(frame)) => self.play_external(frame),
            Some(HostEvent::Ended(reason)) => self.external_ended(reason),
            // The task ended without saying why (its channel closed).
            None => self.external_ended(external::ENDED_HOST_CLOSED),
        }
    }

    /// The stream ended by itself: its counts are kept (with `ended_by`) for the flow's next
    /// `external_media_stop`, and the end is logged.
    fn external_ended(&mut self, reason: &'static str) {
        let Some(e) = &mut self.external else { return };
        if e.ended.is_some() {
            return;
        }
        let result = e.result(reason);
        let starting = e.starting.take();
        e.ended = Some(result.clone());
        tracing::info!(parent: &self.config.span, ended_by = reason, %result,
            "external media stream ended by itself");
        if let Some(job) = starting {
            let why = format!("external media {reason} before it started");
            self.report(job, Err(MediaError::Audio(why)));
        }
    }

    /// The host's audio, out to the caller.
    fn play_external(&mut self, frame: Frame) {
        let now = self.now_timestamp();
        let codec = self.config.codec;
        let timestamp = match &mut self.external {
            Some(e) if e.request.speak && e.starting.is_none() => {
                e.played += 1;
                e.timestamps.map(frame.timestamp, now)
            }
            _ => return,
        };
        if codec == Codec::Pcmu {
            self.send_rtp(
                codec.payload_type(),
                frame.marker,
                timestamp,
                &frame.payload,
            );
        } else {
            self.pcm.clear();
            Codec::Pcmu.decode(&frame.payload, &mut self.pcm);
            let mut out = std::mem::take(&mut self.frame);
            out.clear();
            codec.encode(&self.pcm, &mut out);
            self.send_rtp(codec.payload_type(), frame.marker, timestamp, &out);
            self.frame = out;
        }
        self.counters.flush_if_due();
    }

    /// The caller's audio (already silence when muted), to the host as µ-law.
    pub(super) fn send_external(&mut self, marker: bool, timestamp: u32, payload: &[u8]) {
        let codec = self.config.codec;
        let listening = self
            .external
            .as_ref()
            .is_some_and(|e| e.request.listen && e.starting.is_none() && e.ended.is_none());
        if !listening {
            return;
        }
        let payload = if codec == Codec::Pcmu {
            payload.to_vec()
        } else {
            self.pcm.clear();
            codec.decode(payload, &mut self.pcm);
            let mut out = Vec::with_capacity(self.pcm.len());
            Codec::Pcmu.encode(&self.pcm, &mut out);
            out
        };
        let frame = Frame {
            marker,
            timestamp,
            payload,
        };
        let Some(e) = &self.external else { return };
        match e.link.to_host.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => Stats::add(&e.link.stats.dropped),
            // The task ended; its end reaches us as a closed event channel.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// The next event of the running stream; `None` when its task ended.
pub(super) async fn next_event(external: &mut Option<Box<External>>) -> Option<HostEvent> {
    match external {
        Some(e) if e.ended.is_none() => e.link.events.recv().await,
        // No stream, or one already over (its closed channel would answer at once, forever).
        _ => std::future::pending().await,
    }
}
