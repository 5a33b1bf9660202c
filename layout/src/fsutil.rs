//! File-system helpers that name their path in every error and make writes durable.
//!
//! The durable-write recipe (after uv's `write_atomic`):
//! 1. write the bytes to a temporary file in the target's folder (same file system, so the
//!    rename below is atomic),
//! 2. `fsync` the temporary file, so its data is on disk before its name is,
//! 3. rename it over the target (retried briefly: antivirus scanners on Windows hold files),
//! 4. `fsync` the folder, so the rename itself survives a power cut.
//!
//! The few system calls that differ per platform are in `fsutil/unix.rs` and
//! `fsutil/windows.rs` (rename with write-through, folder `fsync`, the executable bit).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

#[cfg(unix)]
mod mounts;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as platform;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as platform;
#[cfg(windows)]
pub use windows::wide_path;

/// Prefix of every temporary file this project creates; leftovers are safe to delete.
pub const TEMP_PREFIX: &str = ".appstart-tmp-";

/// A file name for a temporary file, unique within this process and very likely across
/// processes (pid and clock are part of it).
pub fn temp_name(hint: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{TEMP_PREFIX}{hint}-{}-{nanos}-{count}", std::process::id())
}

/// Writes `bytes` to `path` atomically and durably (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let temp = write_temp_beside(path, bytes, true)?;
    let result = rename(&temp, path).and_then(|()| sync_dir(&parent_of(path)));
    if result.is_err() {
        // Best effort: the temporary file is ours and useless now.
        let _ = fs::remove_file(&temp);
    }
    result
}

/// The first half of [`write_atomic`]: writes `bytes` to a new temporary file beside `path`
/// (flushed only when `sync`) and returns its path. The caller renames it over `path` and
/// `fsync`s the folder once the file's data is durable: at once when `sync`, else after it
/// flushed the whole file system (`sync_file_system` on Linux) — one flush for many files.
pub fn write_temp_beside(path: &Path, bytes: &[u8], sync: bool) -> Result<PathBuf> {
    let folder = parent_of(path);
    let hint = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = folder.join(temp_name(&hint));
    let result = (|| {
        let mut file = File::create(&temp).map_err(|e| Error::io("creating", &temp, e))?;
        file.write_all(bytes)
            .map_err(|e| Error::io("writing", &temp, e))?;
        if sync {
            file.sync_all()
                .map_err(|e| Error::io("syncing", &temp, e))?;
        }
        Ok(())
    })();
    if let Err(err) = result {
        // Best effort: the temporary file is ours and useless now.
        let _ = fs::remove_file(&temp);
        return Err(err);
    }
    Ok(temp)
}

/// Renames `from` to `to`, replacing `to`, retrying with backoff (for about a second in all)
/// on errors that can be transient: on Windows, antivirus scanners and the indexer hold files
/// briefly.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    let mut delay = Duration::from_millis(5);
    let mut attempt = 0;
    loop {
        match platform::rename_replacing(from, to) {
            Ok(()) => return Ok(()),
            Err(err) if attempt < 8 && platform::is_transient(&err) => {
                attempt += 1;
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(err) => {
                return Err(Error::io(
                    "renaming",
                    format!("{} to {}", from.display(), to.display()),
                    err,
                ));
            }
        }
    }
}

/// `fsync`s a folder so that renames and new entries in it are durable (a no-op on Windows,
/// where renames are written through instead).
pub fn sync_dir(path: &Path) -> Result<()> {
    platform::sync_dir(path).map_err(|e| Error::io("syncing folder", path, e))
}

/// `syncfs(2)` (Linux only): writes back every dirty file and folder of the file system
/// holding `path`, data and names, in one call, and reports a write-back error of any of them
/// (Linux 5.8 and later). For a batch of thousands of new files this replaces one `fsync`
/// each; it also flushes other programs' dirty data on that file system, so what it costs
/// depends on the machine. Other systems have no equivalent that waits and reports errors
/// without administrator rights: callers `fsync` each file there.
#[cfg(target_os = "linux")]
pub fn sync_file_system(path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let folder = fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    // SAFETY: the descriptor is open for the duration of the call; syncfs only reads it.
    if unsafe { libc::syncfs(folder.as_raw_fd()) } != 0 {
        let err = std::io::Error::last_os_error();
        return Err(Error::io("flushing the file system of", path, err));
    }
    Ok(())
}

/// Largest state file (`appstart.toml`, `state/*.toml`) read: far above anything the
/// updater or a person writes, far below what could hurt. A file over it is refused by name.
pub const MAX_STATE_FILE: u64 = 1 << 20;

/// Reads a whole file of at most `limit` bytes, naming the path on error: local files are
/// inputs too, and a huge one (a mistake, a full disk's garbage, a local attacker) must be a
/// clear error, never an allocation as large as the file.
pub fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = File::open(path).map_err(|e| Error::io("reading", path, e))?;
    // Sized from the file's length (at most the cap), as `fs::read` is: a record of a few
    // MB read into a growing buffer was copied about twice over.
    let length = file.metadata().map_or(0, |meta| meta.len());
    let mut bytes =
        Vec::with_capacity(usize::try_from(length.min(limit).saturating_add(1)).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading", path, e))?;
    if bytes.len() as u64 > limit {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

/// [`read_capped`] as UTF-8 text.
pub fn read_to_string_capped(path: &Path, limit: u64) -> Result<String> {
    String::from_utf8(read_capped(path, limit)?).map_err(|e| {
        Error::io(
            "reading",
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
        )
    })
}

/// Reads a whole file as UTF-8, naming the path on error.
pub fn read_to_string(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))
}

/// Reads a whole file, naming the path on error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io("reading", path, e))
}

/// Creates a folder and its parents, naming the path on error.
pub fn create_dir_all(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| Error::io("creating folder", path, e))
}

/// Removes a file if it exists.
pub fn remove_file_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", path, e)),
    }
}

/// Removes what is at `path` that is not a folder: a file, or a link (to a file or to a
/// folder; never followed). Windows refuses to delete a read-only file: its attribute is
/// cleared and the removal tried again.
pub fn remove_non_folder(path: &Path) -> Result<()> {
    let first = match fs::remove_file(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => e,
    };
    // A link to a folder is removed as a folder on Windows.
    if fs::remove_dir(path).is_ok() {
        return Ok(());
    }
    #[cfg(windows)]
    if first.kind() == std::io::ErrorKind::PermissionDenied && windows::clear_read_only_file(path) {
        return fs::remove_file(path).map_err(|e| Error::io("removing", path, e));
    }
    Err(Error::io("removing", path, first))
}

#[cfg(unix)]
pub use mounts::{mount_points_within, mount_within};

/// The first mount point at or below the folder `path`: never on Windows, where a volume
/// mounted in a folder is a reparse point, which `remove_dir_all` removes without entering.
#[cfg(not(unix))]
pub fn mount_within(_path: &Path) -> Result<Option<PathBuf>> {
    Ok(None)
}

/// Every mount point at or below the folder `path`: none on Windows ([`mount_within`]).
#[cfg(not(unix))]
pub fn mount_points_within(_path: &Path) -> Result<Vec<PathBuf>> {
    Ok(Vec::new())
}

/// Removes a folder tree if it exists, making read-only entries writable first when needed.
/// Refuses, removing nothing, a tree that holds a mount point ([`mount_within`]): removing
/// it would delete what is on that other file system.
pub fn remove_dir_all_if_exists(path: &Path) -> Result<()> {
    if let Some(mount) = mount_within(path)? {
        return Err(Error::MountedInside {
            path: path.to_path_buf(),
            mount,
        });
    }
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // Installed files are read-only, and Windows refuses to delete a read-only file
        // (Unix only asks for write access to the folder): clear the attribute and retry.
        #[cfg(windows)]
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            windows::clear_read_only(path);
            match fs::remove_dir_all(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io("removing folder", path, e)),
            }
        }
        Err(e) => Err(Error::io("removing folder", path, e)),
    }
}

/// The folder holding `path` (`.` for a bare file name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether `path` is a regular file the current user may execute (on Windows: any regular
/// file; there is no execute bit).
pub fn is_executable_file(path: &Path) -> bool {
    let Ok(metadata) = fs::metadata(path) else {
        return false;
    };
    is_executable(&metadata)
}

/// [`is_executable_file`] for metadata already read (of a file, not followed through a link).
pub fn is_executable(metadata: &fs::Metadata) -> bool {
    metadata.is_file() && platform::is_executable(metadata)
}

/// The current time as RFC 3339 UTC with seconds, for logs and state files.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(temp_name("fsutil-test"));
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("file.txt");
        write_atomic(&target, b"one").unwrap();
        write_atomic(&target, b"two").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["file.txt"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A read-only file (Windows refuses to delete one as is) and links are removed; what a
    /// link points to is left alone.
    #[test]
    fn remove_non_folder_removes_read_only_files_and_links_not_their_targets() {
        let dir = std::env::temp_dir().join(temp_name("fsutil-remove"));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("stray");
        fs::write(&file, b"x").unwrap();
        let mut permissions = fs::metadata(&file).unwrap().permissions();
        permissions.set_readonly(true);
        fs::set_permissions(&file, permissions).unwrap();
        remove_non_folder(&file).unwrap();
        assert!(fs::symlink_metadata(&file).is_err());
        remove_non_folder(&file).unwrap(); // Nothing there: nothing to do.
        #[cfg(unix)]
        {
            let folder = dir.join("folder");
            fs::create_dir_all(&folder).unwrap();
            fs::write(folder.join("kept"), b"k").unwrap();
            let link = dir.join("link");
            std::os::unix::fs::symlink(&folder, &link).unwrap();
            remove_non_folder(&link).unwrap();
            assert!(fs::symlink_metadata(&link).is_err());
            assert_eq!(fs::read(folder.join("kept")).unwrap(), b"k");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn read_capped_refuses_a_file_over_the_limit_by_name() {
        let dir = std::env::temp_dir().join(temp_name("fsutil-cap"));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.toml");
        fs::write(&path, vec![b'x'; 101]).unwrap();
        let err = read_capped(&path, 100).unwrap_err().to_string();
        assert!(
            err.contains("big.toml") && err.contains("100 bytes"),
            "{err}"
        );
        assert_eq!(read_capped(&path, 101).unwrap().len(), 101);
        fs::write(&path, [0xffu8, 0xfe]).unwrap();
        assert!(read_to_string_capped(&path, 100).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_atomic_names_missing_folder() {
        let err = write_atomic(Path::new("/nonexistent-appstart/x.toml"), b"x").unwrap_err();
        assert!(err.to_string().contains("/nonexistent-appstart"), "{err}");
    }
}
