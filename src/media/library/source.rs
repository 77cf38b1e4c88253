//! Where a `play` prompt comes from: an http(s) URL, or a file that must lie inside the prompts
//! directory once every symlink and `..` is resolved. Decides and checks only; it must not read
//! audio or touch the cache.

use std::io;
use std::path::{Component, Path, PathBuf};

use super::AudioError;

#[derive(Debug, PartialEq, Eq)]
pub(super) enum PromptSource {
    /// Absolute, or relative to the prompts directory; not yet checked.
    File(PathBuf),
    Http,
}

/// Sorts a prompt string into file or HTTP without touching the disk.
pub(super) fn classify(prompt: &str) -> Result<PromptSource, AudioError> {
    match reqwest::Url::parse(prompt) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(PromptSource::Http),
        Ok(url) if url.scheme() == "file" => {
            url.to_file_path()
                .map(PromptSource::File)
                .map_err(|()| AudioError::BadFileUrl {
                    prompt: prompt.to_owned(),
                })
        }
        // "ftp://…", "data://…": a URL we do not fetch. "a:b.wav" parses as a URL too but is a
        // legal file name, so only an explicit "://" makes it a scheme.
        _ if prompt.contains("://") => Err(AudioError::UnsupportedScheme {
            prompt: prompt.to_owned(),
        }),
        _ => Ok(PromptSource::File(PathBuf::from(prompt))),
    }
}

/// Resolves `requested` against `prompts_dir` and returns its canonical path, refusing anything
/// that ends up outside the (canonical) prompts directory.
pub(super) fn resolve_in(
    prompts_dir: &Path,
    requested: &Path,
    prompt: &str,
) -> Result<PathBuf, AudioError> {
    let outside = || AudioError::OutsidePromptsDir {
        prompt: prompt.to_owned(),
        dir: prompts_dir.to_path_buf(),
    };
    // `..` is refused outright, even where it would stay inside: it only ever means trouble here.
    if requested
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(outside());
    }
    let dir = prompts_dir
        .canonicalize()
        .map_err(|source| AudioError::PromptsDir {
            dir: prompts_dir.to_path_buf(),
            source,
        })?;
    let candidate = if requested.is_absolute() {
        // Checked before canonicalising so a missing file elsewhere is "outside", not "missing".
        if !requested.starts_with(prompts_dir) && !requested.starts_with(&dir) {
            return Err(outside());
        }
        requested.to_path_buf()
    } else {
        dir.join(requested)
    };
    let canonical = candidate.canonicalize().map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            AudioError::PromptNotFound {
                path: candidate.clone(),
            }
        } else {
            AudioError::Read {
                path: candidate.clone(),
                source,
            }
        }
    })?;
    // A symlink inside may point anywhere: judge where it lands.
    if !canonical.starts_with(&dir) || canonical == dir {
        return Err(outside());
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_urls_and_paths() {
        assert_eq!(
            classify("welcome.wav").ok(),
            Some(PromptSource::File("welcome.wav".into()))
        );
        assert_eq!(
            classify("sub/x.wav").ok(),
            Some(PromptSource::File("sub/x.wav".into()))
        );
        assert_eq!(
            classify("a:b.wav").ok(),
            Some(PromptSource::File("a:b.wav".into()))
        );
        assert_eq!(
            classify("/srv/prompts/x.wav").ok(),
            Some(PromptSource::File("/srv/prompts/x.wav".into()))
        );
        assert_eq!(
            classify("file:///srv/prompts/a%20b.wav").ok(),
            Some(PromptSource::File("/srv/prompts/a b.wav".into()))
        );
        assert_eq!(classify("http://h/x.wav").ok(), Some(PromptSource::Http));
        assert_eq!(classify("HTTPS://h/x.wav").ok(), Some(PromptSource::Http));
        assert!(matches!(
            classify("ftp://h/x.wav"),
            Err(AudioError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            classify("file://otherhost/x.wav"),
            Err(AudioError::BadFileUrl { .. })
        ));
    }
}
