//! One process per database: an exclusive `flock(2)` on `<storage.path>.lock`, taken before the
//! database is touched and held for the store's life. A second engine on the same file would
//! run start-up recovery over the first one's running records and interleave two histories; it
//! is refused instead. The kernel drops the lock when the process dies, even by SIGKILL, so a
//! crash never leaves a stale lock behind. A file of its own (not the database) because SQLite
//! takes POSIX locks on the database, which some file systems merge with `flock`.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::storage::StorageError;

/// The held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub(super) struct DatabaseLock {
    _file: Flock<File>,
}

/// The lock file beside the database: `activeflow.db` → `activeflow.db.lock`, named from the
/// database's canonical path so that every spelling of one file (`./data/../data/x.db`, a
/// symlink to the file or to a directory on the way) takes the same lock. The file itself is
/// resolved when it exists (a symlink to it), else its directory (the parent must exist).
pub(super) fn lock_path(database: &Path) -> std::io::Result<PathBuf> {
    let canonical = match std::fs::canonicalize(database) {
        Ok(path) => path,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let name = database.file_name().ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the database path names no file",
                )
            })?;
            let dir = database
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::canonicalize(dir)?.join(name)
        }
        Err(e) => return Err(e),
    };
    let mut name = canonical.into_os_string();
    name.push(".lock");
    Ok(PathBuf::from(name))
}

impl DatabaseLock {
    /// Takes the lock without waiting; [`StorageError::Locked`] names the database and the lock
    /// file when another process holds it.
    pub(super) fn acquire(database: &Path) -> Result<DatabaseLock, StorageError> {
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StorageError::Open {
            path: database.display().to_string(),
            source,
        };
        let path = lock_path(database).map_err(|e| open_err(Box::new(e)))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| open_err(Box::new(e)))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(file) => Ok(DatabaseLock { _file: file }),
            Err((_, Errno::EWOULDBLOCK)) => Err(StorageError::Locked {
                path: database.display().to_string(),
                lock: path.display().to_string(),
            }),
            Err((_, errno)) => Err(open_err(Box::new(std::io::Error::from(errno)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second lock on the same database is refused naming both files (flock locks belong to
    /// the open file, so two opens in one process conflict like two processes); once the first
    /// is dropped the database can be taken again.
    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join(format!("activeflow-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("a.db");
        let first = DatabaseLock::acquire(&db).unwrap();
        let e = DatabaseLock::acquire(&db).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, StorageError::Locked { .. }), "{text}");
        assert!(text.contains(&db.display().to_string()), "{text}");
        assert!(text.contains("a.db.lock"), "{text}");
        assert!(text.contains("another process"), "{text}");
        drop(first);
        DatabaseLock::acquire(&db).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Every spelling of one database takes one lock: a symlink to the file, a symlink to its
    /// directory, a path through `..`, a relative path; another database does not conflict.
    #[test]
    fn every_spelling_of_one_database_takes_the_same_lock() {
        let dir =
            std::env::temp_dir().join(format!("activeflow-lock-alias-{}", std::process::id()));
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let db = data.join("x.db");
        // Before the database exists (a first start): through a linked directory and `..`.
        let linked_dir = dir.join("linked");
        std::os::unix::fs::symlink(&data, &linked_dir).unwrap();
        let first = DatabaseLock::acquire(&db).unwrap();
        for alias in [linked_dir.join("x.db"), data.join("../data/x.db")] {
            let e = DatabaseLock::acquire(&alias).unwrap_err();
            assert!(
                matches!(e, StorageError::Locked { .. }),
                "{}: {e}",
                alias.display()
            );
        }
        drop(first);
        // Once it exists: a symlink to the file itself.
        std::fs::write(&db, b"").unwrap();
        let linked_file = dir.join("alias.db");
        std::os::unix::fs::symlink(&db, &linked_file).unwrap();
        let first = DatabaseLock::acquire(&linked_file).unwrap();
        for alias in [db.clone(), linked_dir.join("x.db")] {
            let e = DatabaseLock::acquire(&alias).unwrap_err();
            assert!(
                matches!(e, StorageError::Locked { .. }),
                "{}: {e}",
                alias.display()
            );
        }
        DatabaseLock::acquire(&data.join("y.db")).unwrap();
        drop(first);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
