//! The single-writer lock of an install folder (`state/lock`).
//!
//! Whoever changes an install (check, update, rollback, the background poller) holds an
//! exclusive `flock` on `state/lock` for the duration. The kernel drops the lock when its
//! holder exits, however it exits, so a killed updater never leaves a stale lock. The file
//! records who holds it, for the message the next one prints.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use appstart_layout::InstallDir;

use crate::error::{Error, Result};

/// A held install lock; released on drop.
#[derive(Debug)]
pub struct InstallLock {
    _file: File,
}

impl InstallLock {
    /// Takes the lock of `install`, waiting up to `wait` for a current holder. `purpose` says
    /// what we are doing, for whoever waits on us.
    pub fn acquire(install: &InstallDir, purpose: &str, wait: Duration) -> Result<Self> {
        let path = install.lock_path();
        appstart_layout::fsutil::create_dir_all(&install.state_dir())?;
        let mut file = lock_file(&path, wait, || holder(&path))?;
        let note = format!(
            "pid {} ({purpose}) since {}",
            std::process::id(),
            appstart_layout::fsutil::now_rfc3339()
        );
        // The note is informational; the lock is the flock, so a failed write is harmless.
        let _ = file
            .set_len(0)
            .and_then(|()| file.write_all(note.as_bytes()));
        Ok(InstallLock { _file: file })
    }
}

/// Opens (creating) `path` and takes an exclusive lock on it, polling for up to `wait`.
/// Past that, fails with [`Error::Locked`] and what `holder` says about the holder.
pub fn lock_file(path: &Path, wait: Duration, holder: impl Fn() -> String) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("opening", path, e))?;
    let start = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                    holder: holder(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("locking", path, e)),
        }
    }
}

fn holder(path: &Path) -> String {
    // The holder's note is a line we wrote; read no more than that.
    appstart_layout::fsutil::read_to_string_capped(path, 4096)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "unknown holder".into())
}
