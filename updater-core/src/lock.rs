//! The single-writer lock of an install folder (`state/lock`).
//!
//! Whoever changes an install (check, update, rollback, the background poller) holds an
//! exclusive `flock` on `state/lock` for the duration. The kernel drops the lock when its
//! holder exits, however it exits, so a killed updater never leaves a stale lock. The file
//! records who holds it, for the message the next one prints.
//!
//! That note can outlive its writer: a killed holder leaves it, and a new holder has the lock
//! a moment before its own note is written. So the note is written only once the lock is
//! held (truncating first), cleared when the lock is released, and believed only while the
//! pid it names is alive; otherwise the message says "another process (starting)" rather
//! than naming a holder that has finished.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use appstart_layout::InstallDir;

use crate::error::{Error, Result};

/// A held install lock; released on drop, when its note is cleared.
#[derive(Debug)]
pub struct InstallLock {
    file: File,
}

/// What the next updater reads while the lock is held but its note is not (or no longer)
/// its holder's.
const STARTING: &str = "another process (starting)";

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
        Ok(InstallLock { file })
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        // Still holding the lock: the note goes before the lock does, so nobody reads it
        // after we have finished. Harmless if it fails (`holder` checks the pid too).
        let _ = self.file.set_len(0);
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

/// Who holds the lock at `path`, for [`Error::Locked`]: the note's writer while it is alive.
fn holder(path: &Path) -> String {
    // The holder's note is a line we wrote; read no more than that.
    let note = appstart_layout::fsutil::read_to_string_capped(path, 4096).unwrap_or_default();
    describe_holder(note.trim(), is_alive)
}

/// `note` ("pid 42 (update) since ...") as the holder, if `alive` says its pid still runs.
fn describe_holder(note: &str, alive: impl Fn(u32) -> bool) -> String {
    let pid = note
        .strip_prefix("pid ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|pid| pid.parse::<u32>().ok());
    match pid {
        Some(pid) if alive(pid) => format!("another updater ({note})"),
        // Empty, unreadable, or left by a holder that has exited: the live holder has taken
        // the lock and not yet written its note.
        _ => STARTING.into(),
    }
}

/// Whether process `pid` exists (Unix: signal 0 is delivered, or refused for permission).
#[cfg(unix)]
fn is_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether process `pid` exists and has not exited.
#[cfg(windows)]
fn is_alive(pid: u32) -> bool {
    use windows_sys::Win32::Foundation::{CloseHandle, STILL_ACTIVE};
    use windows_sys::Win32::System::Threading::{
        GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
    };
    // SAFETY: a handle we open, query and close; a null handle means no such process (or
    // one we may not see, which cannot hold a lock in our install folder either).
    unsafe {
        let handle = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
        if handle.is_null() {
            return false;
        }
        let mut code = 0u32;
        let ok = GetExitCodeProcess(handle, &mut code) != 0;
        CloseHandle(handle);
        ok && code == STILL_ACTIVE as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_pid_is_named_and_a_finished_or_missing_one_is_not() {
        let note = "pid 4242 (update) since 2026-01-01T00:00:00Z";
        assert_eq!(
            describe_holder(note, |pid| pid == 4242),
            format!("another updater ({note})")
        );
        assert_eq!(describe_holder(note, |_| false), STARTING);
        assert_eq!(describe_holder("", |_| true), STARTING);
        assert_eq!(describe_holder("garbage", |_| true), STARTING);
    }

    #[test]
    fn this_process_is_alive() {
        assert!(is_alive(std::process::id()));
        // The largest pid: far above any system's pid_max.
        assert!(!is_alive(i32::MAX as u32 - 1));
    }
}
