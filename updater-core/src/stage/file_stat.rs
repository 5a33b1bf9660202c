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

    /// Whether the identity is known: only then may a match be trusted.
    pub fn is_known(&self) -> bool {
        self.ino != 0
    }
}
