//! Removing recordings: one by id (`DELETE /v1/recordings/{id}`; one still being written is
//! refused, stop it first) and by age (`media.recordings_retention_days`: files older are purged
//! at start and then hourly). Both remove the file and its record; a file whose record was
//! already forgotten (or is from an earlier run) goes too. File work is blocking: the API calls
//! [`Recordings::delete`] off its threads, and the purge runs in `spawn_blocking`.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use super::{RecordingId, RecordingStatus, Recordings};

/// How often recordings past their retention are purged.
pub const RETENTION_SWEEP: Duration = Duration::from_secs(3600);

/// Why a recording was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("recording {0} not found")]
    NotFound(RecordingId),
    #[error("recording {0} is still in progress; stop it first (recording_stop, or end the call)")]
    InProgress(RecordingId),
    #[error("recording {id}: cannot remove its file: {source}")]
    Io {
        id: RecordingId,
        #[source]
        source: std::io::Error,
    },
}

impl Recordings {
    /// Removes a finished (or failed) recording's file and record. Blocking.
    pub fn delete(&self, id: RecordingId) -> Result<(), DeleteError> {
        let known = self
            .records
            .remove_if(&id, |_, r| r.status != RecordingStatus::Recording);
        if known.is_none() && self.records.contains_key(&id) {
            return Err(DeleteError::InProgress(id));
        }
        match std::fs::remove_file(self.file_path(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match known {
                Some(_) => Ok(()),
                None => Err(DeleteError::NotFound(id)),
            },
            Err(source) => Err(DeleteError::Io { id, source }),
        }
    }

    /// Removes recordings whose file was last written before `cutoff` (none still being
    /// written); returns how many. Blocking.
    pub fn purge_before(&self, cutoff: SystemTime) -> u64 {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut purged = 0;
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".wav"))
                .and_then(|n| n.parse::<RecordingId>().ok())
            else {
                continue; // not one of ours
            };
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified < cutoff);
            if old && self.delete(id).is_ok() {
                purged += 1;
            }
        }
        if purged > 0 {
            // Only here: a delete through the API is not a purge.
            crate::metrics::media_files_purged("recording", purged);
            tracing::info!(purged, dir = %self.dir.display(), "recordings past retention purged");
        }
        purged
    }

    /// Purges recordings older than `days` now and every [`RETENTION_SWEEP`] on the current
    /// tokio runtime, until the store is dropped; `days` 0 keeps them all.
    pub fn keep_for(self: &Arc<Self>, days: u32) {
        if days == 0 {
            return;
        }
        let store: Weak<Self> = Arc::downgrade(self);
        let age = Duration::from_secs(u64::from(days) * 86_400);
        tokio::spawn(async move {
            let mut sweep = tokio::time::interval(RETENTION_SWEEP);
            loop {
                sweep.tick().await; // the first tick is at once
                let Some(store) = store.upgrade() else { return };
                let cutoff = SystemTime::now() - age;
                let _ = tokio::task::spawn_blocking(move || store.purge_before(cutoff)).await;
            }
        });
    }
}
