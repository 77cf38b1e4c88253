//! The TTS disk cache's quota (`media.cache_max_bytes`): a running byte total, seeded by one scan
//! on first use, says when a new file pushes the cache over; only then is the directory scanned
//! and the least recently used files (by mtime, which every use refreshes) removed until the
//! total fits. Temp files (`.tmp-`) are left alone unless older than a TTS run can last.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Whether `name` is a finished cache file of ours.
fn is_cache_file(name: &str) -> bool {
    name.starts_with("tts-") && name.ends_with(".wav") && !name.contains(".tmp-")
}

/// Whether `name` is a TTS temp file of ours (being written, or left by a crash).
fn is_temp_file(name: &str) -> bool {
    name.starts_with("tts-") && name.contains(".tmp-")
}

/// What one scan did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Enforced {
    /// Cache files and stale temp files removed.
    pub(super) removed: u64,
    /// Bytes of cache files left.
    pub(super) total: u64,
}

/// Scans `dir`: removes temp files last modified more than `stale_temp` ago (no running TTS
/// writes that long), then the least recently used cache files until they total at most
/// `max_bytes`. Blocking: call from `spawn_blocking`.
pub(super) fn enforce(dir: &Path, max_bytes: u64, stale_temp: Duration) -> Enforced {
    let mut enforced = Enforced {
        removed: 0,
        total: 0,
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return enforced;
    };
    let now = SystemTime::now();
    let mut files: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let Ok(modified) = meta.modified() else {
            continue;
        };
        if is_cache_file(&name) {
            files.push((modified, meta.len(), entry.path()));
        } else if is_temp_file(&name)
            && now.duration_since(modified).unwrap_or_default() > stale_temp
            && remove(&entry.path())
        {
            enforced.removed += 1;
        }
    }
    enforced.total = files.iter().map(|(_, len, _)| len).sum();
    files.sort();
    for (_, len, path) in files {
        if enforced.total <= max_bytes {
            break;
        }
        if remove(&path) {
            enforced.removed += 1;
            enforced.total = enforced.total.saturating_sub(len);
        }
    }
    enforced
}

/// Removes a file; true when it is gone (also when someone else removed it first).
fn remove(path: &Path) -> bool {
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot purge a cache file");
            false
        }
    }
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

/// The disk cache's size as the library knows it, so a new file costs an addition rather than a
/// directory scan. It drifts (a file replaced in place counts twice, one stored during a scan
/// is missed, someone else deletes files); every scan resets it to what is on disk.
#[derive(Debug, Default)]
pub(super) struct DiskUsage {
    bytes: AtomicU64,
    seeded: AtomicBool,
}

impl DiskUsage {
    /// After a new file of `len` bytes was stored in `dir`: scans on first use (which also
    /// clears temp files a crash left) and whenever the total goes over `max_bytes`.
    pub(super) async fn stored(&self, dir: &Path, len: u64, max_bytes: u64, stale_temp: Duration) {
        let first = !self.seeded.swap(true, Ordering::Relaxed);
        let total = self.bytes.fetch_add(len, Ordering::Relaxed) + len;
        if !first && total <= max_bytes {
            return;
        }
        let dir = dir.to_owned();
        let scan = tokio::task::spawn_blocking(move || enforce(&dir, max_bytes, stale_temp));
        if let Ok(enforced) = scan.await {
            self.bytes.store(enforced.total, Ordering::Relaxed);
            if enforced.removed > 0 {
                crate::metrics::media_files_purged("cache", enforced.removed);
            }
        }
    }

    #[cfg(test)]
    pub(super) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEVER_STALE: Duration = Duration::from_secs(100_000);

    fn aged(dir: &Path, name: &str, bytes: usize, age_s: u64) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, vec![0u8; bytes]).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(age_s))
            .unwrap();
        path
    }

    #[test]
    fn least_recently_used_files_go_first_and_others_stay() {
        let dir = super::super::tests::TempDir::new("quota");
        let at = |name: &str, bytes: usize, age_s: u64| aged(dir.path(), name, bytes, age_s);
        let old = at("tts-old.wav", 100, 300);
        let used = at("tts-used.wav", 100, 200);
        let new = at("tts-new.wav", 100, 100);
        let temp = at("tts-x.tmp-1-2.wav", 500, 1000);
        let other = at("keep.txt", 500, 1000);
        let under = enforce(dir.path(), 1000, NEVER_STALE);
        assert_eq!((under.removed, under.total), (0, 300), "under the quota");
        touch(&used);
        assert_eq!(enforce(dir.path(), 200, NEVER_STALE).removed, 1);
        assert!(!old.exists());
        assert!(used.exists() && new.exists() && temp.exists() && other.exists());
        assert_eq!(enforce(dir.path(), 0, NEVER_STALE).removed, 2);
        assert!(!used.exists() && !new.exists() && temp.exists() && other.exists());
    }

    #[test]
    fn stale_temp_files_are_removed_even_under_the_quota() {
        let dir = super::super::tests::TempDir::new("quota-temp");
        let stale = aged(dir.path(), "tts-x.tmp-1-2.wav", 10, 100);
        let running = aged(dir.path(), "tts-y.tmp-1-3.wav", 10, 1);
        let other = aged(dir.path(), "x.tmp-1-4.wav", 10, 100);
        let kept = aged(dir.path(), "tts-z.wav", 10, 100);
        let enforced = enforce(dir.path(), 1000, Duration::from_secs(20));
        assert_eq!((enforced.removed, enforced.total), (1, 10));
        assert!(!stale.exists());
        assert!(running.exists() && other.exists() && kept.exists());
    }

    #[tokio::test]
    async fn the_directory_is_scanned_only_when_the_total_goes_over() {
        let dir = super::super::tests::TempDir::new("quota-usage");
        let usage = DiskUsage::default();
        let first = aged(dir.path(), "tts-1.wav", 100, 300);
        // The first use scans: the total is what is on disk.
        usage.stored(dir.path(), 100, 250, NEVER_STALE).await;
        assert_eq!(usage.bytes(), 100);
        // A file the running total does not know about is not seen while under the quota ...
        aged(dir.path(), "tts-2.wav", 100, 200);
        let third = aged(dir.path(), "tts-3.wav", 100, 100);
        usage.stored(dir.path(), 100, 250, NEVER_STALE).await;
        assert_eq!(usage.bytes(), 200);
        assert!(first.exists(), "no scan under the quota");
        // ... and the next file over it scans, purges the oldest and resets the total.
        let fourth = aged(dir.path(), "tts-4.wav", 100, 0);
        usage.stored(dir.path(), 100, 250, NEVER_STALE).await;
        assert!(!first.exists());
        assert!(third.exists() && fourth.exists());
        assert_eq!(usage.bytes(), 200);
    }
}
