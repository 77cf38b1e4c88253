//! The audio library shared by every call: turns a `play` prompt (file in the prompts directory or
//! http(s) URL) or a `talk` text (through the TTS command) into 8 kHz mono PCM, and caches it.
//! Its async methods run on actix arbiters (current-thread runtimes), so every file read and
//! decode happens in `spawn_blocking`; it must never block the calling thread. Costly work is
//! capped per engine ([`MediaLimits`]) and concurrent requests for the same speech or URL share
//! one process or download.

mod cache;
mod error;
mod fetch;
mod inflight;
mod quota;
mod slots;
mod source;
mod speech;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_speech;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache::{AudioCache, CacheKey, FileStamp};
use inflight::Inflight;
use quota::DiskUsage;
use slots::Slots;
use source::PromptSource;

use crate::media::wav;

pub use error::AudioError;

/// `media.tts_command` when the config does not set one.
pub const DEFAULT_TTS_COMMAND: &str = "espeak-ng -v {language} -w {output} {text}";
/// In-memory cache bounds: whichever is reached first evicts the least recently used.
pub const CACHE_MAX_ENTRIES: usize = 256;
pub const CACHE_MAX_BYTES: usize = 64 * 1024 * 1024;
/// A phrase served from memory marks its disk file used at most this often: often enough that
/// the disk quota (by mtime) ranks it as hot, rarely enough that hits cost no file-system work.
const DISK_TOUCH_EVERY: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct LibraryConfig {
    /// `media.prompts_dir`: file prompts must resolve inside it.
    pub prompts_dir: PathBuf,
    /// `media.tts_command`: split on whitespace into argv, then `{language}`, `{output}` and
    /// `{text}` are filled in inside each argument.
    pub tts_command: String,
    /// Where TTS output files are kept (created if missing).
    pub cache_dir: PathBuf,
    pub fetch_timeout: Duration,
    /// Where http(s) prompts may come from (`[http]`); its timeout is `fetch_timeout`.
    pub http_policy: crate::http::HttpPolicy,
    pub max_download_bytes: usize,
    pub tts_timeout: Duration,
}

impl LibraryConfig {
    /// The given directories with the default command, 10 s timeouts and a 16 MiB download limit.
    pub fn with_dirs(prompts_dir: PathBuf, cache_dir: PathBuf) -> LibraryConfig {
        LibraryConfig {
            prompts_dir,
            tts_command: DEFAULT_TTS_COMMAND.to_owned(),
            cache_dir,
            fetch_timeout: Duration::from_secs(10),
            http_policy: crate::http::HttpPolicy::permissive(Duration::from_secs(10), 0),
            max_download_bytes: 16 * 1024 * 1024,
            tts_timeout: Duration::from_secs(10),
        }
    }
}

/// Caps on the library's costly work, per engine (`[media]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaLimits {
    /// TTS commands running at once (`media.max_tts_processes`); more wait up to `slot_wait`
    /// for a slot, then fail.
    pub max_tts_processes: usize,
    /// http(s) prompt downloads at once (`media.max_prompt_fetches`); more wait up to
    /// `slot_wait`, then fail.
    pub max_prompt_fetches: usize,
    /// The TTS disk cache's size in bytes (`media.cache_max_bytes`); least recently used files
    /// are removed beyond it.
    pub cache_max_bytes: u64,
    /// How long a request over a cap waits for a slot before it fails ([`SLOT_WAIT`]).
    pub slot_wait: Duration,
}

fn ringback_of(tone: super::ringback::RingbackTone) -> (super::ringback::RingbackTone, Arc<[i16]>) {
    (tone, tone.cadence().into())
}

/// A `talk` or `play` over a cap waits this long for a slot: about one slow synthesis or
/// download, so a burst is smoothed out while a flood fails fast enough to be seen.
pub const SLOT_WAIT: Duration = Duration::from_secs(10);

impl Default for MediaLimits {
    fn default() -> Self {
        MediaLimits {
            max_tts_processes: default_tts_processes(),
            max_prompt_fetches: 16,
            cache_max_bytes: 512 << 20,
            slot_wait: SLOT_WAIT,
        }
    }
}

/// One TTS process per core: speech synthesis is CPU-bound and single-threaded, so more than
/// that only slows every one of them (and the RTP pacing beside them) down.
pub fn default_tts_processes() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

/// Shared behind an `Arc` by all calls; `Send + Sync`.
pub struct AudioLibrary {
    config: LibraryConfig,
    limits: MediaLimits,
    tts_slots: Slots,
    fetch_slots: Slots,
    /// Loads running now, by key: the same speech or URL is loaded once at a time.
    inflight: Inflight,
    /// Building a client can only fail if TLS cannot initialise; then HTTP prompts fail with this
    /// while files and speech still work.
    http: Result<reqwest::Client, Arc<reqwest::Error>>,
    cache: Arc<AudioCache>,
    /// The TTS disk cache's running size, so its quota needs no scan per synthesis.
    disk: DiskUsage,
    /// One cadence of `media.ringback_tone`, made once and shared by every ringing call.
    ringback: (super::ringback::RingbackTone, Arc<[i16]>),
    /// Makes TTS temp file names unique within the process.
    next_temp: AtomicU64,
}

impl std::fmt::Debug for AudioLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioLibrary")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AudioLibrary {
    /// A library with the default [`MediaLimits`].
    pub fn new(config: LibraryConfig) -> Self {
        Self::with_limits(config, MediaLimits::default())
    }

    pub fn with_limits(config: LibraryConfig, limits: MediaLimits) -> Self {
        let policy = Arc::new(crate::http::HttpPolicy {
            timeout: config.fetch_timeout,
            ..config.http_policy.clone()
        });
        let http = crate::http::build_client(&policy).map_err(|e| {
            tracing::error!(error = %e, "cannot build the HTTP client; http(s) prompts will fail");
            Arc::new(e)
        });
        AudioLibrary {
            config,
            limits,
            tts_slots: Slots::new(limits.max_tts_processes, "tts"),
            fetch_slots: Slots::new(limits.max_prompt_fetches, "prompt_fetch"),
            inflight: Inflight::default(),
            http,
            cache: Arc::new(AudioCache::new(
                CACHE_MAX_ENTRIES,
                CACHE_MAX_BYTES / std::mem::size_of::<i16>(),
            )),
            disk: DiskUsage::default(),
            next_temp: AtomicU64::new(0),
            ringback: ringback_of(super::ringback::RingbackTone::default()),
        }
    }

    /// Uses `tone` (`media.ringback_tone`) for in-band ringback.
    pub fn with_ringback(mut self, tone: super::ringback::RingbackTone) -> Self {
        self.ringback = ringback_of(tone);
        self
    }

    /// Where flows may send things (`[http]`): external media destinations are checked too.
    pub fn http_policy(&self) -> &crate::http::HttpPolicy {
        &self.config.http_policy
    }

    /// One cadence of the configured ringback tone and its length in ms.
    pub fn ringback(&self) -> (Arc<[i16]>, u32) {
        (self.ringback.1.clone(), self.ringback.0.period_ms())
    }

    /// A prompt for `play`: a path relative to the prompts directory (`welcome.wav`,
    /// `sub/x.wav`), a `file://` URL or absolute path that resolves inside it, or an http(s) URL.
    /// Files are cached by canonical path and reloaded when their mtime or size changes; URLs are
    /// fetched once and cached by URL.
    pub async fn prompt(&self, url: &str) -> Result<Arc<[i16]>, AudioError> {
        match source::classify(url)? {
            PromptSource::Http => self.http_prompt(url).await,
            PromptSource::File(path) => self.file_prompt(url, path).await,
        }
    }

    /// Text-to-speech for `talk` through `tts_command`; cached on disk under `cache_dir` and in
    /// memory by (language, text). An empty language means `en`.
    pub async fn speech(&self, text: &str, language: &str) -> Result<Arc<[i16]>, AudioError> {
        let language = speech::language(language)?;
        if text.trim().is_empty() {
            return Err(AudioError::EmptyText {
                command: self.config.tts_command.clone(),
            });
        }
        let key = CacheKey::Speech {
            language: language.to_owned(),
            text: text.to_owned(),
        };
        if let Some(hit) = self.speech_hit(&key, language, text) {
            return Ok(hit);
        }
        let load = async {
            // A request that led just after another finished finds its result here.
            if let Some(hit) = self.speech_hit(&key, language, text) {
                return Ok(hit);
            }
            let unique = self.next_temp.fetch_add(1, Ordering::Relaxed);
            let budget = speech::Budget {
                processes: &self.tts_slots,
                wait: self.limits.slot_wait,
                cache_max_bytes: self.limits.cache_max_bytes,
                disk: &self.disk,
            };
            let samples: Arc<[i16]> =
                speech::synthesize(&self.config, language, text, unique, budget)
                    .await?
                    .into();
            self.cache.insert(key.clone(), Arc::clone(&samples), None);
            Ok(samples)
        };
        self.inflight.once(key.clone(), load).await
    }

    /// Speech from memory; now and then also marks its disk file used (off this thread), since
    /// the disk quota ranks files by mtime and only a disk read would refresh it otherwise.
    fn speech_hit(&self, key: &CacheKey, language: &str, text: &str) -> Option<Arc<[i16]>> {
        let hit = self.cache.get(key, None)?;
        if self.cache.disk_touch_due(key, DISK_TOUCH_EVERY) {
            let path = speech::cache_path(&self.config, language, text);
            drop(tokio::task::spawn_blocking(move || quota::touch(&path)));
        }
        Some(hit)
    }

    async fn file_prompt(&self, prompt: &str, path: PathBuf) -> Result<Arc<[i16]>, AudioError> {
        let dir = self.config.prompts_dir.clone();
        let cache = Arc::clone(&self.cache);
        let owned = prompt.to_owned();
        tokio::task::spawn_blocking(move || load_file(&dir, &owned, &path, &cache))
            .await
            .map_err(|source| AudioError::Task {
                what: prompt.to_owned(),
                source,
            })?
    }

    async fn http_prompt(&self, url: &str) -> Result<Arc<[i16]>, AudioError> {
        let key = CacheKey::Url(url.to_owned());
        if let Some(hit) = self.cache.get(&key, None) {
            return Ok(hit);
        }
        self.inflight
            .once(key.clone(), self.download(url, key))
            .await
    }

    /// Downloads and decodes an http(s) prompt within a fetch slot, then caches it.
    async fn download(&self, url: &str, key: CacheKey) -> Result<Arc<[i16]>, AudioError> {
        if let Some(hit) = self.cache.get(&key, None) {
            return Ok(hit);
        }
        let client = self.http.as_ref().map_err(|e| AudioError::HttpClient {
            url: url.to_owned(),
            source: Arc::clone(e),
        })?;
        let literal_ok = reqwest::Url::parse(url)
            .map(|u| crate::http::literal_host_permitted(&self.config.http_policy, &u))
            .unwrap_or(true);
        if !literal_ok {
            return Err(AudioError::Denied {
                url: url.to_owned(),
            });
        }
        let slot = self.fetch_slots.take(self.limits.slot_wait).await?;
        let body = fetch::fetch(
            client,
            url,
            self.config.max_download_bytes,
            self.config.fetch_timeout,
        )
        .await?;
        drop(slot);
        let name = url.to_owned();
        let samples: Arc<[i16]> = tokio::task::spawn_blocking(move || {
            wav::decode_to_8k_mono(&body).map_err(|source| AudioError::Decode { name, source })
        })
        .await
        .map_err(|source| AudioError::Task {
            what: url.to_owned(),
            source,
        })??
        .into();
        self.cache.insert(key, Arc::clone(&samples), None);
        Ok(samples)
    }
}

/// Blocking: resolve, stat, and either hit the cache or read and decode the file.
fn load_file(
    prompts_dir: &std::path::Path,
    prompt: &str,
    requested: &std::path::Path,
    cache: &AudioCache,
) -> Result<Arc<[i16]>, AudioError> {
    let path = source::resolve_in(prompts_dir, requested, prompt)?;
    let read_error = |source| AudioError::Read {
        path: path.clone(),
        source,
    };
    let meta = std::fs::metadata(&path).map_err(read_error)?;
    let stamp = FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    };
    let key = CacheKey::File(path.clone());
    if let Some(hit) = cache.get(&key, Some(stamp)) {
        return Ok(hit);
    }
    let bytes = std::fs::read(&path).map_err(read_error)?;
    let samples: Arc<[i16]> = wav::decode_to_8k_mono(&bytes)
        .map_err(|source| AudioError::Decode {
            name: path.display().to_string(),
            source,
        })?
        .into();
    cache.insert(key, Arc::clone(&samples), Some(stamp));
    Ok(samples)
}
