//! [`FileStat`] from the inode, size and modification time in the metadata.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::FileStat;

pub fn stat(_path: &Path, meta: &std::fs::Metadata) -> FileStat {
    FileStat {
        ino: meta.ino(),
        volume: 0,
        size: meta.size(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    }
}
