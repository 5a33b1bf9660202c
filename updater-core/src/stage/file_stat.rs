//! A file's identity and state, to tell cheaply that a file is the one the updater wrote.
//!
//! An installed file whose identity, size and modification time all match what was recorded
//! right after staging is trusted without reading it (reuse for a new version, `apply` of a
//! staged one). The identity is the inode on Unix and the volume serial number plus the NTFS
//! file index on Windows (`GetFileInformationByHandle`): a file replaced by another one of the
//! same size and time has a new identity. Creation times are not used: NTFS "tunnels" them to
//! a file created under a name that was just deleted, which is exactly a replace.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as platform;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as platform;

/// What identifies a file's on-disk state cheaply: if all of it is unchanged, the content is
/// the one we wrote (the modification time changes on every write through the file system).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// The file's number on its file system: the inode on Unix, the NTFS file index on
    /// Windows; 0 where unknown, and then never trusted.
    pub ino: u64,
    /// The volume serial number on Windows (file indexes are unique per volume only); 0 on
    /// Unix, where versions live in one install folder on one file system.
    #[serde(default)]
    pub volume: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds, since the Unix epoch on Unix and since 1601 on
    /// Windows; only ever compared for equality.
    pub mtime_ns: i128,
}

impl FileStat {
    /// The stat of the file at `path`, whose metadata (not following links) is `meta`.
    /// Where the identity cannot be read, it is 0 and the stat is never trusted.
    pub fn of(path: &Path, meta: &std::fs::Metadata) -> Self {
        platform::stat(path, meta)
    }

    /// The stat of `file`, just written and still open, where that is the stat it keeps once
    /// closed: on Unix (`fstat`; the modification time is set by each write, and closing
    /// changes nothing). `None` on Windows, where NTFS may still update the last write time
    /// when the handle is closed: there the file is stat'ed again by path after closing.
    pub fn of_open(file: &std::fs::File) -> Option<Self> {
        #[cfg(unix)]
        {
            file.metadata()
                .ok()
                .map(|meta| FileStat::of(Path::new(""), &meta))
                .filter(FileStat::is_known)
        }
        #[cfg(not(unix))]
        {
            let _ = file;
            None
        }
    }

    /// A stat that matches nothing: where none was recorded.
    pub const UNKNOWN: FileStat = FileStat {
        ino: 0,
        volume: 0,
        size: 0,
        mtime_ns: 0,
    };

    /// Whether the identity is known: only then may a match be trusted.
    pub fn is_known(&self) -> bool {
        self.ino != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(path: &Path) -> FileStat {
        FileStat::of(path, &std::fs::symlink_metadata(path).unwrap())
    }

    /// The reuse check must not be fooled by a replace: a new file renamed over the old
    /// one with the same size and modification time has another identity (on Windows the
    /// NTFS file index; creation times would be tunnelled to the new file).
    #[test]
    fn a_file_replaced_with_the_same_size_and_time_has_another_stat() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        std::fs::write(&path, "one").unwrap();
        let before = stat(&path);
        assert!(before.is_known());
        assert_eq!(before, stat(&path));

        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        let other = dir.path().join("other");
        std::fs::write(&other, "two").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&other)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        // Keep the old file alive elsewhere, so its identity cannot be reused at once.
        std::fs::rename(&path, dir.path().join("kept")).unwrap();
        std::fs::rename(&other, &path).unwrap();
        let after = stat(&path);
        assert_eq!((after.size, after.mtime_ns), (before.size, before.mtime_ns));
        assert_ne!(after, before);
    }
}
