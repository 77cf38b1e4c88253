//! The media session's jobs: starting, finishing and reporting plays (prompts, speech, beeps),
//! echo, digit sending and recordings. Audio is resolved off the tick path.

use std::sync::Arc;

use serde_json::json;
use tokio::time::Instant;

use super::{Echo, Session};
use crate::media::capture::Capture;
use crate::media::playout::{DigitSender, Playback};
use crate::media::request::{AudioSource, MediaError, MediaJob, MediaRequest, RecordingRequest};
use crate::media::tone;

/// `digits_send` while muted `out`: no event reaches the caller, so none is reported sent.
pub(super) const MUTED_DIGITS: &str =
    "the call is muted towards the caller (mute out): no digits sent";

impl Session {
    pub(super) fn start(&mut self, job: MediaJob, request: MediaRequest) {
        match request {
            MediaRequest::Play {
                sources,
                stop_on_digit,
            } => self.load(job, sources, stop_on_digit),
            MediaRequest::SendDigits {
                digits,
                duration_ms,
                interval_ms,
            } => {
                if self.config.dtmf_payload_type.is_none() {
                    let why = "the caller did not offer telephone-event, so digits cannot be sent";
                    return self.report(job, Err(MediaError::Audio(why.into())));
                }
                if self.mute.outgoing {
                    return self.report(job, Err(MediaError::Audio(MUTED_DIGITS.into())));
                }
                match DigitSender::new(job, &digits, duration_ms, interval_ms) {
                    Some(sender) => {
                        if let Some(old) = self.digits_out.replace(Box::new(sender)) {
                            self.report(old.job, Err(MediaError::Audio("replaced".into())));
                        }
                        self.ensure_ticking();
                    }
                    None => {
                        let why = format!("{digits:?} holds a character that is not a DTMF key");
                        self.report(job, Err(MediaError::Audio(why)));
                    }
                }
            }
            MediaRequest::Relay(link) => self.start_relay(job, link),
            MediaRequest::Amd(params) => self.start_amd(job, params),
            MediaRequest::ExternalMediaStart(request) => self.start_external(job, request),
            MediaRequest::ExternalMediaStop => self.stop_external(job),
            MediaRequest::Mute {
                incoming,
                outgoing,
                on,
            } => self.set_mute(job, incoming, outgoing, on),
            MediaRequest::Conference(link) => self.start_conference(job, link),
            MediaRequest::Echo { duration, dtmf } => {
                self.finish_echo();
                self.echo = Some(Echo {
                    job,
                    until: Instant::now() + duration,
                    dtmf,
                    packets: 0,
                });
                self.ensure_ticking();
            }
            MediaRequest::StartRecording(request) => {
                self.stop_recording("replaced");
                if request.beep_start {
                    self.pending_recording = Some(Box::new((job, request)));
                    let beep = AudioSource::Beep { duration_ms: 500 };
                    self.load(job, vec![beep], false);
                } else {
                    self.begin_recording(job, request);
                }
            }
            MediaRequest::StopRecording => {
                let id = self.capture.as_ref().map(|c| c.request.id.to_string());
                self.stop_recording("stop_action");
                self.report(job, Ok(json!({ "recording_id": id })));
            }
        }
    }

    /// Resolves audio off the tick path; playing starts when it is ready.
    pub(super) fn load(&mut self, job: MediaJob, sources: Vec<AudioSource>, stop_on_digit: bool) {
        self.finish_playback(true);
        if let Some(old) = self.loading_job.replace(job) {
            // Replaced before its audio was even ready: it never played.
            let result = json!({ "played_ms": 0, "length_ms": 0, "interrupted": true });
            self.report(old, Ok(result));
        }
        let library = self.config.library.clone();
        self.loading = Some(Box::pin(async move {
            let mut audio = Vec::with_capacity(sources.len());
            for source in sources {
                if let AudioSource::Ringback { duration_ms } = source {
                    // One shared cadence, repeated: no per-call copy of the tone.
                    let (cadence, period_ms) = library.ringback();
                    let repeats = duration_ms.div_ceil(period_ms.max(1)).max(1);
                    audio.extend((0..repeats).map(|_| cadence.clone()));
                    continue;
                }
                let loaded = match &source {
                    AudioSource::Prompt(url) => library.prompt(url).await,
                    AudioSource::Speech { text, language } => library.speech(text, language).await,
                    AudioSource::Beep { duration_ms } => Ok(tone::beep(*duration_ms).into()),
                    AudioSource::Ringback { .. } => continue,
                };
                match loaded {
                    Ok(a) => audio.push(a),
                    Err(e) => return (job, stop_on_digit, Err(e.to_string())),
                }
            }
            (job, stop_on_digit, Ok(audio))
        }));
    }

    pub(super) fn on_loaded(
        &mut self,
        job: MediaJob,
        stop_on_digit: bool,
        loaded: Result<Vec<Arc<[i16]>>, String>,
    ) {
        match loaded {
            Ok(audio) => {
                self.playback_codec = self.config.codec;
                self.playback = Some(Box::new(Playback::new(
                    job,
                    &audio,
                    self.config.codec,
                    stop_on_digit,
                )));
                self.ensure_ticking();
            }
            Err(e) => {
                if self
                    .pending_recording
                    .as_deref()
                    .is_some_and(|(j, _)| *j == job)
                {
                    self.pending_recording = None;
                }
                self.report(job, Err(MediaError::Audio(e)));
            }
        }
    }

    pub(super) fn finish_playback(&mut self, interrupted: bool) {
        if let Some(p) = self.playback.take() {
            if let Some(pending) = self.pending_recording.take() {
                if pending.0 == p.job {
                    // The start beep is over (or cut short): recording begins now.
                    let (job, request) = *pending;
                    return self.begin_recording(job, request);
                }
                self.pending_recording = Some(pending);
            }
            let result = json!({
                "played_ms": p.played_ms(),
                "length_ms": p.total_ms(),
                "interrupted": interrupted,
            });
            self.report(p.job, Ok(result));
        }
    }

    pub(super) fn finish_echo(&mut self) {
        if let Some(e) = self.echo.take() {
            self.report(e.job, Ok(json!({ "echoed_packets": e.packets })));
        }
    }

    pub(super) fn begin_recording(&mut self, job: MediaJob, request: RecordingRequest) {
        let id = request.id;
        if let Err(e) =
            self.config
                .recordings
                .begin(id, &request.activeflow_id, &self.config.call_id)
        {
            return self.report(job, Err(MediaError::Recording(e)));
        }
        self.capture = Some(Box::new(Capture::new(request, Instant::now().into_std())));
        self.ensure_ticking();
        self.report(job, Ok(json!({ "recording_id": id.to_string() })));
    }

    pub(super) fn stop_recording(&mut self, reason: &'static str) {
        if let Some(mut capture) = self.capture.take() {
            let rest = capture.take_rest();
            if !rest.is_empty() {
                self.config.recordings.write(capture.request.id, rest);
            }
            self.config.recordings.finish(capture.request.id, reason);
        }
    }
}
