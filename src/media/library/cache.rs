//! The library's in-memory cache: decoded audio by file, URL or (language, text), bounded by entry
//! count and total samples, evicting the least recently used. A std mutex is enough: it is held
//! for a map operation only, never across an `.await`, and never while loading or decoding.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum CacheKey {
    /// A canonical path inside the prompts directory.
    File(PathBuf),
    /// An http(s) URL exactly as the flow gave it.
    Url(String),
    Speech {
        language: String,
        text: String,
    },
}

/// What a file looked like when it was loaded; a different stamp means reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp {
    pub(super) modified: Option<SystemTime>,
    pub(super) len: u64,
}

struct Entry {
    samples: Arc<[i16]>,
    stamp: Option<FileStamp>,
    last_used: u64,
    /// When a hit here last marked the disk copy used (speech only); `None` until the first.
    disk_touched: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<CacheKey, Entry>,
    /// last_used → key, oldest first.
    by_use: BTreeMap<u64, CacheKey>,
    clock: u64,
    samples: usize,
}

pub(super) struct AudioCache {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_samples: usize,
}

impl AudioCache {
    pub(super) fn new(max_entries: usize, max_samples: usize) -> AudioCache {
        AudioCache {
            inner: Mutex::new(Inner::default()),
            max_entries,
            max_samples,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update below leaves the maps consistent before anything can panic.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached audio for `key` if present and loaded from a file with the same `stamp`.
    pub(super) fn get(&self, key: &CacheKey, stamp: Option<FileStamp>) -> Option<Arc<[i16]>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.entries.get_mut(key)?;
        if entry.stamp != stamp {
            return None;
        }
        let previous = std::mem::replace(&mut entry.last_used, now);
        let samples = Arc::clone(&entry.samples);
        if let Some(k) = inner.by_use.remove(&previous) {
            inner.by_use.insert(now, k);
        }
        Some(samples)
    }

    /// Stores `samples`, replacing any entry for `key`, then evicts the least recently used until
    /// both bounds hold. Audio larger than the whole budget is not kept at all.
    pub(super) fn insert(&self, key: CacheKey, samples: Arc<[i16]>, stamp: Option<FileStamp>) {
        if samples.len() > self.max_samples || self.max_entries == 0 {
            return;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        inner.samples += samples.len();
        let entry = Entry {
            samples,
            stamp,
            last_used: now,
            disk_touched: None,
        };
        if let Some(old) = inner.entries.insert(key.clone(), entry) {
            inner.samples -= old.samples.len();
            inner.by_use.remove(&old.last_used);
        }
        inner.by_use.insert(now, key);
        while inner.entries.len() > self.max_entries || inner.samples > self.max_samples {
            let Some((_, oldest)) = inner.by_use.pop_first() else {
                break;
            };
            if let Some(old) = inner.entries.remove(&oldest) {
                inner.samples -= old.samples.len();
            }
        }
    }

    /// Whether a hit on `key` should also mark its disk copy used: on the first hit, then at most
    /// once every `every`, so a phrase heard from memory all day is not the quota's first victim
    /// while hits stay free of file-system work. Records the touch when it says yes.
    pub(super) fn disk_touch_due(&self, key: &CacheKey, every: Duration) -> bool {
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(key) else {
            return false;
        };
        let now = Instant::now();
        let due = entry
            .disk_touched
            .is_none_or(|at| now.saturating_duration_since(at) >= every);
        if due {
            entry.disk_touched = Some(now);
        }
        due
    }

    #[cfg(test)]
    pub(super) fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries.len(), inner.samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(n: usize) -> Arc<[i16]> {
        vec![1i16; n].into()
    }

    fn url(n: u32) -> CacheKey {
        CacheKey::Url(format!("http://example.test/{n}.wav"))
    }

    #[test]
    fn entry_bound_evicts_least_recently_used() {
        let cache = AudioCache::new(2, 1000);
        cache.insert(url(1), audio(10), None);
        cache.insert(url(2), audio(10), None);
        assert!(cache.get(&url(1), None).is_some()); // 2 is now the oldest
        cache.insert(url(3), audio(10), None);
        assert!(cache.get(&url(2), None).is_none());
        assert!(cache.get(&url(1), None).is_some());
        assert!(cache.get(&url(3), None).is_some());
        assert_eq!(cache.usage(), (2, 20));
    }

    #[test]
    fn sample_bound_evicts_until_it_fits() {
        let cache = AudioCache::new(100, 100);
        cache.insert(url(1), audio(40), None);
        cache.insert(url(2), audio(40), None);
        cache.insert(url(3), audio(40), None);
        assert_eq!(cache.usage(), (2, 80));
        assert!(cache.get(&url(1), None).is_none());
        cache.insert(url(4), audio(101), None); // larger than the budget: not kept
        assert_eq!(cache.usage(), (2, 80));
    }

    #[test]
    fn replacing_an_entry_keeps_the_totals_right() {
        let cache = AudioCache::new(10, 1000);
        cache.insert(url(1), audio(40), None);
        cache.insert(url(1), audio(30), None);
        assert_eq!(cache.usage(), (1, 30));
    }

    #[test]
    fn disk_touches_are_due_on_the_first_hit_then_rarely() {
        let cache = AudioCache::new(10, 1000);
        assert!(!cache.disk_touch_due(&url(1), Duration::ZERO), "not cached");
        cache.insert(url(1), audio(5), None);
        assert!(cache.disk_touch_due(&url(1), Duration::from_secs(60)));
        assert!(!cache.disk_touch_due(&url(1), Duration::from_secs(60)));
        assert!(cache.disk_touch_due(&url(1), Duration::ZERO));
    }

    #[test]
    fn a_different_file_stamp_is_a_miss() {
        let cache = AudioCache::new(10, 1000);
        let key = CacheKey::File(PathBuf::from("/prompts/a.wav"));
        let stamp = FileStamp {
            modified: Some(SystemTime::UNIX_EPOCH),
            len: 44,
        };
        cache.insert(key.clone(), audio(5), Some(stamp));
        assert!(cache.get(&key, Some(stamp)).is_some());
        let newer = FileStamp { len: 46, ..stamp };
        assert!(cache.get(&key, Some(newer)).is_none());
    }
}
