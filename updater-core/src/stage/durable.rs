//! Making a staged version durable with one flush instead of one `fsync` per file.
//!
//! What crash safety needs (docs/crash-safety.md, step 4): every byte and every folder entry
//! of the staging folder is on disk before the rename that makes it `versions/V`. Nothing
//! reads a staging folder before that rename, so when each file reaches the disk does not
//! matter, only that all of them have before the rename. One `fsync` per file gave that at the
//! price of thousands of flushes for an app of many small files: a fresh install of 10,000
//! files spent most of its time there.
//!
//! - Linux: files are closed without `fsync`; [`staging_written`] calls `syncfs` once on the
//!   file system holding the staging folder, which writes back every dirty file and folder of
//!   it and (Linux 5.8 and later) reports a write-back error of any of them.
//! - Elsewhere (macOS, Windows and other Unixes): no per-file-system flush exists that reports
//!   errors (macOS `sync` does not wait, Windows' `FlushFileBuffers` of a volume needs
//!   administrator rights), so each file is flushed as it is closed ([`file_written`]) and the
//!   folders deepest first at the end, as before.
//!
//! Blobs and deltas in `state/cache` are not flushed at all: they are authenticated again
//! before every use, so a cached file torn by a crash is deleted and fetched again.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Call when a file of the staging folder has been written completely: flushes it now where
/// [`staging_written`] cannot do it later.
pub(super) fn file_written(file: &File, path: &Path) -> Result<()> {
    if cfg!(target_os = "linux") {
        return Ok(());
    }
    file.sync_all().map_err(|e| Error::io("syncing", path, e))
}

/// Whether [`staging_written`] of `staging` also makes durable what is written in `folder`
/// before it: on Linux when both are on one file system (`syncfs` writes back all of it, and
/// its journal commit makes renames durable too). The record of the staged version is written
/// there and so needs no flush of its own.
pub(super) fn covers(staging: &Path, folder: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(staging), std::fs::metadata(folder)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev(),
            _ => false,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (staging, folder);
        false
    }
}

/// Call once every file of `staging` is written: after it returns, every file and folder of
/// `staging` (`folders`, which includes it) is on disk.
pub(super) fn staging_written(staging: &Path, folders: &BTreeSet<PathBuf>) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        let _ = folders;
        Ok(appstart_layout::fsutil::sync_file_system(staging)?)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = staging;
        // Deepest folders first, so each folder's entries are durable before it is.
        for folder in folders.iter().rev() {
            appstart_layout::fsutil::sync_dir(folder)?;
        }
        Ok(())
    }
}
