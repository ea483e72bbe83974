//! Notices when the SQLite files are deleted or replaced under a running server. SQLite keeps
//! writing into an unlinked file without complaint, so every answer would be a 201 and every
//! row would be gone after a restart; and a wal-index (`-shm`) truncated under its memory map
//! kills the process with SIGBUS on the next access. Checked before each statement (two
//! `stat`s, about a microsecond each), so such a write is refused as `Unavailable` instead of
//! silently lost, and a cut wal-index is noticed before it is touched (a truncation between
//! the check and the access can still not be caught: this narrows the window, it cannot
//! close it).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
}

fn identity(path: &Path) -> std::io::Result<Identity> {
    let m = std::fs::metadata(path)?;
    Ok(Identity { dev: m.dev(), ino: m.ino(), len: m.len() })
}

pub(crate) struct FileGuard {
    db: PathBuf,
    shm: PathBuf,
    db_id: Identity,
    /// The wal-index appears with the first WAL access, so it is learnt on first sight.
    shm_id: Mutex<Option<Identity>>,
}

impl FileGuard {
    pub(crate) fn open(db: &Path) -> Result<FileGuard, String> {
        let db_id = identity(db).map_err(|e| format!("database file {}: {e}", db.display()))?;
        let mut shm = db.as_os_str().to_owned();
        shm.push("-shm");
        Ok(FileGuard { db: db.to_path_buf(), shm: PathBuf::from(shm), db_id, shm_id: Mutex::new(None) })
    }

    pub(crate) fn check(&self) -> domain::Result<()> {
        let lost = |what: &str| {
            tracing::error!(path = %self.db.display(), what, "the SQLite files changed under the running server; refusing writes");
            domain::Error::Unavailable(format!("the database {what} while the server was running; restart it"))
        };
        match identity(&self.db) {
            Ok(now) if now.dev == self.db_id.dev && now.ino == self.db_id.ino => {}
            Ok(_) => return Err(lost("file was replaced")),
            Err(_) => return Err(lost("file was deleted")),
        }
        let mut known = self.shm_id.lock().unwrap_or_else(|p| p.into_inner());
        match (identity(&self.shm), *known) {
            (Ok(now), None) => *known = Some(now),
            (Ok(now), Some(was)) if now.dev == was.dev && now.ino == was.ino => {
                if now.len < was.len {
                    return Err(lost("wal-index was truncated"));
                }
                known.replace(now);
            }
            (Ok(_), Some(_)) => return Err(lost("wal-index was replaced")),
            (Err(_), Some(_)) => return Err(lost("wal-index was deleted")),
            (Err(_), None) => {}
        }
        Ok(())
    }
}
