//! Batched durability for the files one publish writes before it signs anything.
//!
//! Blobs and the pack are written to a temporary name and renamed into place *without* a
//! `fsync` each: for 10,000 small files, two `fsync`s per blob were most of a publish's time.
//! [`Pending::sync`] then makes all of them durable at once, and the publish calls it after
//! the last blob, delta and pack are in place and before the metadata that names them is
//! signed (see the write order in [`super`]):
//! - Linux: one `syncfs` on the repository's folder, which flushes every dirty file and folder
//!   of that file system (data and names) in one call;
//! - other platforms: `fsync` of each file written, in one pass at the end, then of each
//!   folder that received a new name (a no-op on Windows, whose renames are written through).
//!
//! A power cut before the sync can leave a blob's name pointing at incomplete data. Nothing
//! signed refers to it yet, and the next publish never trusts a blob because it exists: unless
//! a signed manifest names it, it decompresses and checks it first, and rewrites it when it
//! does not match (see `store.rs`). Deltas keep their own `fsync` (`fsutil::write_atomic`): they are few, each
//! costs far more to compute than to sync, and an existing one is reused without a check.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use appstart_layout::fsutil;

use updater_core::{Error, Result};

/// Files and folders written since the last sync.
#[derive(Debug, Default)]
pub(super) struct Pending {
    files: Mutex<Vec<PathBuf>>,
    folders: Mutex<BTreeSet<PathBuf>>,
}

impl Pending {
    /// Records `file`, just renamed into `folder`, for the next [`Pending::sync`].
    pub(super) fn wrote(&self, file: PathBuf, folder: &Path) {
        // Only the platforms without syncfs need the list.
        if !cfg!(target_os = "linux") {
            lock(&self.files).push(file);
        }
        let mut folders = lock(&self.folders);
        if !folders.contains(folder) {
            folders.insert(folder.to_path_buf());
        }
    }

    /// Records a folder that got a new entry (a file or a folder made in it).
    pub(super) fn changed_folder(&self, folder: &Path) {
        lock(&self.folders).insert(folder.to_path_buf());
    }

    /// Makes everything recorded durable (see the module docs); `root` is the repository.
    pub(super) fn sync(&self, root: &Path) -> Result<()> {
        let files = std::mem::take(&mut *lock(&self.files));
        let folders = std::mem::take(&mut *lock(&self.folders));
        if folders.is_empty() && files.is_empty() {
            return Ok(());
        }
        sync_all(root, &files, &folders)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking worker poisons the lock; the list itself is still whole.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(target_os = "linux")]
fn sync_all(root: &Path, _files: &[PathBuf], _folders: &BTreeSet<PathBuf>) -> Result<()> {
    Ok(fsutil::sync_file_system(root)?)
}

#[cfg(not(target_os = "linux"))]
fn sync_all(_root: &Path, files: &[PathBuf], folders: &BTreeSet<PathBuf>) -> Result<()> {
    sync_each(files, folders)
}

/// The sync of platforms without `syncfs`: each file, then each folder. (Built everywhere
/// so that its test runs on Linux too.)
#[cfg_attr(
    target_os = "linux",
    allow(dead_code, reason = "Linux uses syncfs; tested")
)]
fn sync_each(files: &[PathBuf], folders: &BTreeSet<PathBuf>) -> Result<()> {
    for file in files {
        // Windows flushes only a handle opened for writing.
        let handle = std::fs::OpenOptions::new()
            .read(true)
            .write(cfg!(windows))
            .open(file)
            .map_err(|e| Error::io("opening", file, e))?;
        handle
            .sync_all()
            .map_err(|e| Error::io("syncing", file, e))?;
    }
    for folder in folders {
        fsutil::sync_dir(folder)?;
    }
    Ok(())
}

/// Makes sure the 256 fan-out folders `blobs/00` ... `blobs/ff` exist, with one listing of
/// `blobs/`, so that storing a blob never has to create (or check) its folder.
pub(super) fn make_fan_out(blobs: &Path, pending: &Pending) -> Result<()> {
    fsutil::create_dir_all(blobs)?;
    let existing: BTreeSet<String> = std::fs::read_dir(blobs)
        .map_err(|e| Error::io("listing", blobs, e))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    for byte in 0..=255u8 {
        let name = format!("{byte:02x}");
        if !existing.contains(&name) {
            let folder = blobs.join(&name);
            match std::fs::create_dir(&folder) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("creating", &folder, e)),
            }
            pending.changed_folder(blobs);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncing_each_file_and_folder_keeps_them_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("blob");
        std::fs::write(&file, b"content").unwrap();
        let folders = BTreeSet::from([dir.path().to_path_buf()]);
        sync_each(std::slice::from_ref(&file), &folders).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"content");

        let missing = dir.path().join("missing");
        let err = sync_each(&[missing], &folders).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn the_fan_out_folders_are_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        let pending = Pending::default();
        make_fan_out(&blobs, &pending).unwrap();
        assert_eq!(std::fs::read_dir(&blobs).unwrap().count(), 256);
        assert!(blobs.join("00").is_dir() && blobs.join("ff").is_dir());
        assert!(!lock(&pending.folders).is_empty());
        pending.sync(dir.path()).unwrap();
        let again = Pending::default();
        make_fan_out(&blobs, &again).unwrap();
        assert!(lock(&again.folders).is_empty(), "nothing new to sync");
    }
}
