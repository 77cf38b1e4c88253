//! Text-to-speech through the configured command, with no shell: the template is split into argv
//! first and placeholders are filled inside each argument, so the text is always one argument.
//! Output goes to a temp file renamed into the disk cache, kept within its quota. At most
//! `media.max_tts_processes` commands run at once. Must not touch the memory cache.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::quota::{self, DiskUsage};
use super::slots::Slots;
use super::{AudioError, LibraryConfig};
use crate::media::wav::{self, WavError};

/// How much of the command line and of stderr an error carries.
const SHOWN_COMMAND_CHARS: usize = 200;
const SHOWN_STDERR_BYTES: usize = 1024;

/// Checks a `talk` language; empty means English.
pub(super) fn language(language: &str) -> Result<&str, AudioError> {
    if language.is_empty() {
        return Ok("en");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-');
    // Starting with a letter or digit keeps a language from ever looking like an option.
    let valid = language.len() <= 32
        && language.chars().all(allowed)
        && language.starts_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(language)
    } else {
        Err(AudioError::BadLanguage {
            language: language.to_owned(),
        })
    }
}

/// Fills `{language}`, `{output}` and `{text}` in one pass, so a value is never re-expanded. An
/// argument that only starts with `-` because of a value gets a leading space, so the caller's
/// text cannot turn into an option of the TTS program.
pub(super) fn substitute(template: &str, language: &str, output: &str, text: &str) -> String {
    let mut out = String::with_capacity(template.len() + text.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let tail = &rest[open..];
        let (value, after) = if let Some(after) = tail.strip_prefix("{language}") {
            (language, after)
        } else if let Some(after) = tail.strip_prefix("{output}") {
            (output, after)
        } else if let Some(after) = tail.strip_prefix("{text}") {
            (text, after)
        } else {
            ("{", &tail[1..])
        };
        out.push_str(value);
        rest = after;
    }
    out.push_str(rest);
    if out.starts_with('-') && !template.starts_with('-') {
        out.insert(0, ' ');
    }
    out
}

/// The command line as shown in errors: arguments with spaces quoted, cut at a char boundary.
pub(super) fn shown_command(argv: &[String]) -> String {
    let line = argv
        .iter()
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("{a:?}")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    match line.char_indices().nth(SHOWN_COMMAND_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// The disk-cache file for this command, language and text.
fn cache_name(template: &str, language: &str, text: &str) -> String {
    let mut hash = Sha256::new();
    for part in [template, language, text] {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("tts-{hex}")
}

/// Where the disk cache keeps the speech for `language` and `text`.
pub(super) fn cache_path(config: &LibraryConfig, language: &str, text: &str) -> PathBuf {
    let name = cache_name(&config.tts_command, language, text);
    config.cache_dir.join(format!("{name}.wav"))
}

/// A temp file beyond which no TTS run can still be writing: the quota removes it.
pub(super) fn stale_temp_age(config: &LibraryConfig) -> Duration {
    config.tts_timeout.saturating_mul(2)
}

/// Removes the TTS temp file unless it was renamed into the cache, however synthesis ends:
/// also when the caller drops the future (the call hung up), which kills the command and would
/// otherwise leave its output outside the quota for good.
struct TempFile {
    path: PathBuf,
    /// Renamed into the cache or already removed: nothing left for the drop to do.
    settled: bool,
}

impl TempFile {
    /// Removes it now, on the error paths that can wait for it.
    async fn remove(mut self) {
        self.settled = true;
        remove_quietly(&self.path).await;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let path = std::mem::take(&mut self.path);
        // Dropped on an arbiter thread when the call hangs up: unlink off it.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || remove_blocking(&path))),
            Err(_) => remove_blocking(&path),
        }
    }
}

fn remove_blocking(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove TTS temp file");
        }
    }
}

/// Why reading a WAV from disk failed.
enum ReadFailure {
    Io(io::Error),
    Wav(WavError),
}

/// Reads and decodes a WAV file off the calling thread.
async fn read_wav(path: PathBuf) -> Result<Result<Vec<i16>, ReadFailure>, AudioError> {
    let what = path.display().to_string();
    tokio::task::spawn_blocking(move || {
        let bytes = std::fs::read(&path).map_err(ReadFailure::Io)?;
        wav::decode_to_8k_mono(&bytes).map_err(ReadFailure::Wav)
    })
    .await
    .map_err(|source| AudioError::Task { what, source })
}

/// What one synthesis may use: a process slot (waiting so long for one), and the disk cache's
/// quota in bytes with its running total.
pub(super) struct Budget<'a> {
    pub(super) processes: &'a Slots,
    /// How long to wait for a process slot.
    pub(super) wait: Duration,
    pub(super) cache_max_bytes: u64,
    pub(super) disk: &'a DiskUsage,
}

/// Speaks `text`, reusing the disk cache when its file decodes.
pub(super) async fn synthesize(
    config: &LibraryConfig,
    language: &str,
    text: &str,
    unique: u64,
    budget: Budget<'_>,
) -> Result<Vec<i16>, AudioError> {
    let template: Vec<&str> = config.tts_command.split_whitespace().collect();
    if template.is_empty() {
        return Err(AudioError::EmptyTtsCommand);
    }
    let dir = &config.cache_dir;
    let cache_dir_error = |source| AudioError::CacheDir {
        dir: dir.clone(),
        source,
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(cache_dir_error)?;
    let name = cache_name(&config.tts_command, language, text);
    let cached = cache_path(config, language, text);
    match read_wav(cached.clone()).await? {
        Ok(samples) => {
            // Used again: the quota removes it last.
            tokio::task::spawn_blocking(move || quota::touch(&cached));
            return Ok(samples);
        }
        Err(ReadFailure::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
        Err(ReadFailure::Io(e)) => {
            tracing::warn!(file = %cached.display(), error = %e, "TTS cache file unreadable; speaking again")
        }
        Err(ReadFailure::Wav(e)) => {
            tracing::warn!(file = %cached.display(), error = %e, "TTS cache file invalid; speaking again")
        }
    }
    // Unique per process and call, and still ending in .wav for programs that insist on it.
    let temp = dir.join(format!("{name}.tmp-{}-{unique}.wav", std::process::id()));
    let output = temp.to_str().ok_or_else(|| {
        cache_dir_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path is not UTF-8",
        ))
    })?;
    let argv: Vec<String> = template
        .iter()
        .map(|arg| substitute(arg, language, output, text))
        .collect();
    let command = shown_command(&argv);
    let process = budget.processes.take(budget.wait).await?;
    let mut temp = TempFile {
        path: temp,
        settled: false,
    };
    let ran = run(&argv, config.tts_timeout, &command).await;
    // The slot caps running commands; reading and storing the output need not hold it.
    drop(process);
    let stderr = match ran {
        Ok(stderr) => stderr,
        Err(e) => {
            temp.remove().await;
            return Err(e);
        }
    };
    let samples = match read_wav(temp.path.clone()).await? {
        Ok(samples) => samples,
        Err(ReadFailure::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
            return Err(AudioError::TtsNoOutput {
                command,
                output: temp.path.clone(),
                stderr,
            })
        }
        Err(ReadFailure::Io(source)) => {
            let path = temp.path.clone();
            temp.remove().await;
            return Err(AudioError::Read { path, source });
        }
        Err(ReadFailure::Wav(source)) => {
            let output = temp.path.clone();
            temp.remove().await;
            return Err(AudioError::TtsBadOutput {
                command,
                output,
                source,
                stderr,
            });
        }
    };
    // Atomic: a concurrent reader sees the old file or the new one, never half of one.
    if let Err(e) = tokio::fs::rename(&temp.path, &cached).await {
        tracing::warn!(file = %cached.display(), error = %e, "cannot store TTS output in the cache");
        temp.remove().await;
        return Ok(samples);
    }
    temp.settled = true;
    let len = tokio::fs::metadata(&cached).await.map_or(0, |m| m.len());
    budget
        .disk
        .stored(dir, len, budget.cache_max_bytes, stale_temp_age(config))
        .await;
    Ok(samples)
}

async fn remove_quietly(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove TTS temp file");
        }
    }
}

/// Runs the command to completion within `timeout` (killing it after) and returns its stderr,
/// truncated, when it exits successfully.
async fn run(argv: &[String], timeout: Duration, command: &str) -> Result<String, AudioError> {
    let (program, args) = argv.split_first().ok_or(AudioError::EmptyTtsCommand)?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| AudioError::TtsSpawn {
            command: command.to_owned(),
            source,
        })?;
    let stderr_pipe = child.stderr.take();
    // Filled as it arrives, so a timeout still has what the command said so far.
    let mut stderr = Vec::new();
    let finished = tokio::time::timeout(timeout, async {
        let ((), status) = tokio::join!(read_bounded(stderr_pipe, &mut stderr), child.wait());
        status
    })
    .await;
    let Ok(status) = finished else {
        // Kill and reap now rather than leave it to the drop.
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(AudioError::TtsTimeout {
            command: command.to_owned(),
            timeout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        });
    };
    let status = status.map_err(|source| AudioError::TtsSpawn {
        command: command.to_owned(),
        source,
    })?;
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    if status.success() {
        Ok(stderr)
    } else {
        Err(AudioError::TtsFailed {
            command: command.to_owned(),
            status,
            stderr,
        })
    }
}

/// Reads a pipe to its end, keeping only the first bytes (a chatty child must not fill memory,
/// and must not block on a full pipe either).
async fn read_bounded(pipe: Option<impl AsyncRead + Unpin>, kept: &mut Vec<u8>) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let mut buf = [0u8; 4096];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = SHOWN_STDERR_BYTES.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages() {
        assert_eq!(language("").ok(), Some("en"));
        for ok in ["en", "en-us", "fr+f2", "zh_yue", "a", &"x".repeat(32)] {
            assert_eq!(language(ok).ok(), Some(ok));
        }
        for bad in [
            "en;rm",
            "en us",
            "-w",
            "+x",
            &"x".repeat(33),
            "é",
            "en/../x",
        ] {
            assert!(
                matches!(language(bad), Err(AudioError::BadLanguage { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn placeholders_fill_inside_arguments_once() {
        assert_eq!(
            substitute("{text}", "en", "/o.wav", "hi; rm -rf /"),
            "hi; rm -rf /"
        );
        assert_eq!(
            substitute("--out={output}", "en", "/o.wav", "x"),
            "--out=/o.wav"
        );
        assert_eq!(substitute("{language}:{language}", "fr", "", ""), "fr:fr");
        // A value is never expanded again.
        assert_eq!(substitute("{text}", "en", "/o.wav", "{output}"), "{output}");
        // Unknown braces stay as they are.
        assert_eq!(substitute("{x}{", "en", "/o.wav", "t"), "{x}{");
    }

    #[test]
    fn text_cannot_become_an_option() {
        assert_eq!(substitute("{text}", "en", "/o", "-w /etc/x"), " -w /etc/x");
        assert_eq!(substitute("-v{language}", "en", "/o", ""), "-ven");
    }

    #[test]
    fn shown_command_quotes_and_truncates() {
        let argv = vec!["say".to_owned(), "two words".to_owned(), String::new()];
        assert_eq!(shown_command(&argv), "say \"two words\" \"\"");
        let long = vec!["say".to_owned(), "é".repeat(500)];
        let shown = shown_command(&long);
        assert_eq!(shown.chars().count(), SHOWN_COMMAND_CHARS + 1);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn cache_names_differ_by_every_part() {
        let base = cache_name("espeak-ng {text}", "en", "hello");
        assert_ne!(base, cache_name("espeak-ng {text}", "fr", "hello"));
        assert_ne!(base, cache_name("espeak-ng {text}", "en", "hello!"));
        assert_ne!(base, cache_name("other {text}", "en", "hello"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(cache_name("t", "ab", "c"), cache_name("t", "a", "bc"));
        assert_eq!(base.len(), "tts-".len() + 32);
    }
}
