//! Removing an install completely: its shortcuts, then its folder (`appupdate uninstall`).
//!
//! Steps:
//! 1. refuse a folder that is not an install (no `state/install.toml`), touching nothing;
//! 2. take the install lock, so no update or rollback runs meanwhile; refuse, touching
//!    nothing, a folder holding a mount point (removing it would delete what is mounted);
//!    an install that is itself a mount point (a volume of its own) is emptied in step 5,
//!    its mount point left;
//! 3. remove the shortcuts recorded in `state/shortcuts.toml` (those already gone are
//!    skipped); if one cannot be removed, stop here with the folder intact;
//! 4. remove everything in the folder but `state/`, then everything in `state/` but
//!    `install.toml` and the lock;
//! 5. release the lock and remove the rest and the folder.
//!
//! `state/install.toml` goes last, so a crash or an error at any step leaves a folder that
//! `uninstall` still recognises and finishes removing when run again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use appstart_layout::{InstallDir, fsutil, paths::STATE_DIR};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::lock::InstallLock;
use crate::shortcut;

/// What [`uninstall`] removed.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct UninstallReport {
    /// The install folder, now gone.
    pub dir: PathBuf,
    /// The shortcut files removed.
    pub shortcuts: Vec<PathBuf>,
}

/// Removes the install in `dir`, its shortcuts first (module docs, steps 1-5). Waits up to
/// `lock_wait` for another updater working on it.
pub fn uninstall(dir: &Path, lock_wait: Duration) -> Result<UninstallReport> {
    let install = InstallDir::new(dir);
    // Step 1.
    if !install.install_settings_path().is_file() {
        return Err(Error::NotInstalled(format!(
            "{} is not an appstart install (it has no {}); nothing was removed",
            dir.display(),
            install.install_settings_path().display()
        )));
    }
    // Step 2.
    let lock = InstallLock::acquire(&install, "uninstall", lock_wait)?;
    // Removing the folder would delete what is on a file system mounted inside it: refused
    // here, before anything is removed. `dir` may be a link to the install (followed), or
    // the mount point of a volume of its own (emptied, not removed).
    let resolved = std::fs::canonicalize(dir).map_err(|e| Error::io("resolving", dir, e))?;
    let mounts = fsutil::mount_points_within(&resolved)?;
    if let Some(mount) = mounts.iter().find(|mount| **mount != resolved) {
        return Err(appstart_layout::Error::MountedInside {
            path: dir.to_path_buf(),
            mount: mount.clone(),
        }
        .into());
    }
    let own_volume = !mounts.is_empty();
    // Step 3.
    let shortcuts = shortcut::remove_recorded(&install)?;
    // Step 4.
    remove_entries_except(dir, &[Path::new(STATE_DIR)])?;
    let state = install.state_dir();
    let keep = [install.install_settings_path(), install.lock_path()];
    let keep: Vec<&Path> = keep
        .iter()
        .filter_map(|p| p.strip_prefix(&state).ok())
        .collect();
    remove_entries_except(&state, &keep)?;
    // Step 5.
    drop(lock);
    if own_volume {
        // Its own volume: what is on it was the install; the mount point itself stays.
        remove_entries_except(dir, &[])?;
        log::info!("{} is a mount point: emptied, not removed", dir.display());
    } else {
        // The folder itself: removing a link to it would remove the link only, leaving
        // `state/install.toml` (an install that is not one) behind.
        fsutil::remove_dir_all_if_exists(&resolved)?;
        if std::fs::symlink_metadata(dir).is_ok_and(|meta| meta.file_type().is_symlink()) {
            // Dangling now. A link to a folder is removed as a folder on Windows.
            std::fs::remove_file(dir)
                .or_else(|_| std::fs::remove_dir(dir))
                .map_err(|e| Error::io("removing the link", dir, e))?;
        }
    }
    Ok(UninstallReport {
        dir: dir.to_path_buf(),
        shortcuts,
    })
}

/// Removes every entry of `folder` whose name is not in `keep`.
fn remove_entries_except(folder: &Path, keep: &[&Path]) -> Result<()> {
    let entries = std::fs::read_dir(folder).map_err(|e| Error::io("listing", folder, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", folder, e))?;
        if keep.contains(&Path::new(&entry.file_name())) {
            continue;
        }
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            fsutil::remove_dir_all_if_exists(&path)?;
        } else {
            fsutil::remove_file_if_exists(&path)?;
        }
    }
    Ok(())
}
