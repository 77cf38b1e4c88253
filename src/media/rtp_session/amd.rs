//! The media session's `amd` job: feeds the caller's decoded audio and the 20 ms clock to an
//! [`AmdFeed`] and reports its verdict (with the timings) as the job's result. The analysis
//! itself lives in `media::amd`; this file only wires it to the session.

use tokio::time::Instant;

use super::Session;
use crate::media::amd::{AmdFeed, AmdParams, AmdVerdict};
use crate::media::request::{MediaError, MediaJob};

pub(super) struct AmdRun {
    pub(super) job: MediaJob,
    feed: AmdFeed,
    started: Instant,
    /// Decoded audio of one packet (kept apart from the recording's buffer).
    pcm: Vec<i16>,
}

impl Session {
    pub(super) fn start_amd(&mut self, job: MediaJob, params: AmdParams) {
        if let Some(old) = self.amd.take() {
            self.report(
                old.job,
                Err(MediaError::Audio("replaced by a new amd".into())),
            );
        }
        self.amd = Some(Box::new(AmdRun {
            job,
            feed: AmdFeed::new(params),
            started: Instant::now(),
            pcm: Vec::with_capacity(160),
        }));
        // The clock runs the analysis on when no audio comes.
        self.ensure_ticking();
    }

    /// One received audio payload in the session's codec, with its RTP timestamp (the feed
    /// places it on its timeline by that, so late audio is not counted twice).
    pub(super) fn amd_audio(&mut self, timestamp: u32, payload: &[u8]) {
        let Some(run) = &mut self.amd else { return };
        run.pcm.clear();
        self.config.codec.decode(payload, &mut run.pcm);
        if let Some(verdict) = run.feed.on_audio_at(timestamp, &run.pcm) {
            self.finish_amd(verdict);
        }
    }

    /// Each tick: audio that has not come counts as silence.
    pub(super) fn amd_tick(&mut self, now: Instant) {
        let Some(run) = &mut self.amd else { return };
        if let Some(verdict) = run
            .feed
            .on_clock(now.saturating_duration_since(run.started))
        {
            self.finish_amd(verdict);
        }
    }

    fn finish_amd(&mut self, verdict: AmdVerdict) {
        if let Some(run) = self.amd.take() {
            let result = serde_json::to_value(verdict).unwrap_or_default();
            self.report(run.job, Ok(result));
        }
    }

    /// `Stop` for the amd job: it ends without a verdict (the flow moved on or ended).
    pub(super) fn stop_amd(&mut self, job: MediaJob) {
        if let Some(run) = self.amd.take_if(|r| r.job == job) {
            let analysed = run.feed.analysed_ms();
            self.report(
                run.job,
                Err(MediaError::Audio(format!("stopped after {analysed} ms"))),
            );
        }
    }
}
