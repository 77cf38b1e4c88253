//! The one error type of the audio library. Every variant names the prompt, file, URL or command
//! it is about, so a flow's failure log says what to fix without a debugger.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use crate::media::wav::WavError;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("prompt {prompt:?} is outside the prompts directory {}", dir.display())]
    OutsidePromptsDir { prompt: String, dir: PathBuf },
    #[error(
        "prompt {prompt:?} has an unsupported scheme (use a path, file://, http:// or https://)"
    )]
    UnsupportedScheme { prompt: String },
    #[error("prompt {prompt:?} is not a local file URL")]
    BadFileUrl { prompt: String },
    #[error("prompts directory {} is unusable: {source}", dir.display())]
    PromptsDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("prompt {} not found", path.display())]
    PromptNotFound { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot decode {name}: {source}")]
    Decode {
        name: String,
        #[source]
        source: WavError,
    },
    #[error("no HTTP client to fetch {url}: {source}")]
    HttpClient {
        url: String,
        #[source]
        source: Arc<reqwest::Error>,
    },
    #[error("cannot fetch {url}: {source}")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: destination not allowed by the [http] policy")]
    Denied { url: String },
    #[error("fetching {url} timed out after {timeout:?}")]
    FetchTimeout { url: String, timeout: Duration },
    #[error("fetching {url} returned HTTP {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("{url} is larger than the {limit}-byte download limit")]
    TooLarge { url: String, limit: usize },
    #[error("media.tts_command is empty")]
    EmptyTtsCommand,
    #[error("invalid TTS language {language:?} (1-32 of A-Z a-z 0-9 _ + -, starting with a letter or digit)")]
    BadLanguage { language: String },
    #[error("nothing to say: empty text for TTS command `{command}`")]
    EmptyText { command: String },
    #[error("TTS cache directory {} is unusable: {source}", dir.display())]
    CacheDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot run TTS command `{command}`: {source}")]
    TtsSpawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("TTS command `{command}` failed ({status}); stderr: {}", shown(.stderr))]
    TtsFailed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("TTS command `{command}` timed out after {timeout:?} and was killed; stderr: {}", shown(.stderr))]
    TtsTimeout {
        command: String,
        timeout: Duration,
        stderr: String,
    },
    #[error("TTS command `{command}` wrote no {}; stderr: {}", output.display(), shown(.stderr))]
    TtsNoOutput {
        command: String,
        output: PathBuf,
        stderr: String,
    },
    #[error("TTS command `{command}` wrote an unusable {}: {source}; stderr: {}", output.display(), shown(.stderr))]
    TtsBadOutput {
        command: String,
        output: PathBuf,
        #[source]
        source: WavError,
        stderr: String,
    },
    #[error("{work}: all {limit} slots busy for {waited:?} (media.max_tts_processes / media.max_prompt_fetches)")]
    Busy {
        work: &'static str,
        limit: usize,
        waited: Duration,
    },
    /// The outcome of a load another request ran for the same speech or URL.
    #[error(transparent)]
    Shared(Arc<AudioError>),
    #[error("loading {what} stopped: {source}")]
    Task {
        what: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

fn shown(stderr: &str) -> &str {
    if stderr.trim().is_empty() {
        "(empty)"
    } else {
        stderr.trim_end()
    }
}
