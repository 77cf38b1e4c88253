//! The TTS disk cache's quota (`media.cache_max_bytes`): after each new file, the least recently
//! used files (by mtime, which a read from disk refreshes) are removed until the total fits.
//! Files being written (`.tmp-`) are never touched. Blocking: call from `spawn_blocking`.

use std::path::Path;
use std::time::SystemTime;

/// Whether `name` is a finished cache file of ours.
fn is_cache_file(name: &str) -> bool {
    name.starts_with("tts-") && name.ends_with(".wav") && !name.contains(".tmp-")
}

/// Removes the least recently used cache files in `dir` until they total at most `max_bytes`;
/// returns how many were removed.
pub(super) fn enforce(dir: &Path, max_bytes: u64) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut files: Vec<(SystemTime, u64, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| is_cache_file(&e.file_name().to_string_lossy()))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
    if total <= max_bytes {
        return 0;
    }
    files.sort();
    let mut removed = 0;
    for (_, len, path) in files {
        if total <= max_bytes {
            break;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                total = total.saturating_sub(len);
                removed += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => total -= len,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot purge a cache file")
            }
        }
    }
    removed
}

/// Marks a cache file as just used (its mtime), so the quota removes it last.
pub(super) fn touch(path: &Path) {
    let touched = std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()));
    if let Err(e) = touched {
        tracing::debug!(file = %path.display(), error = %e, "cannot mark a cache file used");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn least_recently_used_files_go_first_and_others_stay() {
        let dir = super::super::tests::TempDir::new("quota");
        let at = |name: &str, bytes: usize, age_s: u64| {
            let path = dir.path().join(name);
            std::fs::write(&path, vec![0u8; bytes]).unwrap();
            let f = std::fs::File::options().write(true).open(&path).unwrap();
            f.set_modified(SystemTime::now() - Duration::from_secs(age_s))
                .unwrap();
            path
        };
        let old = at("tts-old.wav", 100, 300);
        let used = at("tts-used.wav", 100, 200);
        let new = at("tts-new.wav", 100, 100);
        let temp = at("tts-x.tmp-1-2.wav", 500, 1000);
        let other = at("keep.txt", 500, 1000);
        assert_eq!(enforce(dir.path(), 1000), 0, "under the quota");
        touch(&used);
        assert_eq!(enforce(dir.path(), 200), 1);
        assert!(!old.exists());
        assert!(used.exists() && new.exists() && temp.exists() && other.exists());
        assert_eq!(enforce(dir.path(), 0), 2);
        assert!(!used.exists() && !new.exists() && temp.exists() && other.exists());
    }
}
