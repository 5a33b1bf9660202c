//! Starting a staging folder from a folder at hand instead of from nothing.
//!
//! An app of 10,000 small files that changes 1 % per release spends most of an update's
//! staging on one hard link per unchanged file (about `cp -al` of the tree), and most of the
//! prune after it on deleting the same number of files of the oldest version. Both are work
//! on files that do not change. So a prune sets the folder of the newest version it removes
//! aside as `versions/.spare` instead of deleting it ([`set_aside`]), and the next staging
//! renames that folder to its staging name and keeps every file that is already right
//! ([`start_from`]): its cost is one `lstat` per file plus the files that differ.
//!
//! What makes a kept file safe: it is kept only if its identity (inode), size and
//! modification time equal the recorded stat of an installed file with the content the new
//! version wants at that path, that installed file still has that stat, and its executable
//! bit is the one wanted. That is the same proof a hard link from an installed version rests
//! on (`docs/layout.md`): the kept file *is* that installed file (a hard link to it, made by
//! an earlier staging), not written since it was recorded. Anything else in the folder
//! (other content, files changed since, names the new version does not have, links, folders
//! it does not want) is removed before staging goes on, so the folder then holds only proven
//! files, and step 4 checks the whole tree as always. Folders are kept only if staging could
//! have made them ([`unfit_folder`]), and a folder holding a mount point is not swept at all
//! (a bind mount of this file system has its device). Versions are set aside on Linux only
//! ([`RECYCLES`]); a leftover staging folder is started from on every Unix. Nothing here is
//! referenced by `appstart.toml` or a record, so a crash at any point leaves at worst a
//! `.spare` or a `.staging-<version>` that the next run starts from again (the same proof
//! applies to a leftover staging folder) or a prune removes.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use appstart_layout::{InstallDir, fsutil};

use super::{FileStat, LocalFiles, Made};
use crate::error::{Error, Result};
use crate::manifest::Manifest;

mod aside;
#[cfg(test)]
mod tests;

pub(crate) use aside::set_aside;

/// Fewer files than this are checked on the calling thread.
const FILES_PER_THREAD: usize = 1024;

/// Whether a prune sets a version aside and staging starts from it: Linux only, where a
/// folder a process still runs from can be told ([`set_aside`]) and an access control list
/// on a folder can be read. Elsewhere a stray `.spare` is removed by the prune.
pub(crate) const RECYCLES: bool = cfg!(target_os = "linux");

/// Step 1: makes `staging` exist as a folder, starting from (in this order) a leftover
/// `staging` of an interrupted run, `versions/.spare`, or nothing; then keeps only the files
/// of it that are proven right for `manifest` (see the module docs) and removes everything
/// else. Returns, per manifest file, whether it is already in place (with its stat where it
/// is kept between runs: Unix).
///
/// A folder that cannot be cleaned (a file that cannot be removed, a root staging would not
/// have made, a folder on another device: [`unfit_folder`]) is moved aside as a `.damaged-`
/// folder, which the next prune removes, and staging starts from nothing: what is in the
/// way of one update must not stop every later one.
pub(super) fn start_from(
    install: &InstallDir,
    staging: &Path,
    manifest: &Manifest,
    folders: &BTreeSet<&str>,
    local: &LocalFiles,
) -> Result<Vec<Made>> {
    let none = || vec![Made::Not; manifest.files.len()];
    let cleaned = if cfg!(windows) {
        // Installed files are read-only, and on Windows that attribute belongs to the file,
        // not to one of its links: removing a link from a recycled folder would mean making
        // the installed file writable first. Windows starts from nothing, as before.
        fsutil::remove_dir_all_if_exists(staging)
            .map(|()| None)
            .map_err(Error::from)
    } else if take_over(install, staging)? {
        sweep(staging, manifest, folders, local).map(Some)
    } else {
        return Ok(none());
    };
    match cleaned {
        Ok(Some(made)) => return Ok(made),
        Ok(None) => {}
        Err(err) => {
            log::warn!("{err}; staging {} starts from nothing", manifest.version);
            aside::move_damaged_aside(install, staging, &manifest.version)?;
        }
    }
    fsutil::create_dir_all(staging)?;
    Ok(none())
}

/// Makes `staging` a folder of its own (not a link to one): a leftover of an interrupted
/// run, else `versions/.spare` renamed to it. Returns whether it did; if not, `staging` has
/// been made as an empty folder.
fn take_over(install: &InstallDir, staging: &Path) -> Result<bool> {
    if is_real_dir(staging) {
        return Ok(true);
    }
    remove_entry(staging)?;
    let spare = install.spare_dir();
    if RECYCLES && is_real_dir(&spare) && !holds_mount(&spare) {
        match std::fs::rename(&spare, staging) {
            // Checked again once it has its new name: only a real folder is swept.
            Ok(()) if is_real_dir(staging) => return Ok(true),
            Ok(()) => remove_entry(staging)?,
            Err(err) => log::info!("not starting from {}: {err}", spare.display()),
        }
    }
    fsutil::create_dir_all(staging)?;
    Ok(false)
}

/// Whether `dir` holds a mount point (or cannot be told not to): such a spare is left where
/// it is, so that the mount stays where the user made it, and is not swept.
fn holds_mount(dir: &Path) -> bool {
    let why = match fsutil::mount_within(dir) {
        Ok(None) => return false,
        Ok(Some(mount)) => format!("{} is mounted in it", mount.display()),
        Err(err) => err.to_string(),
    };
    log::warn!("not starting from {}: {why}", dir.display());
    true
}

/// Removes from `staging` everything the new version cannot use (see the module docs) and
/// returns, per manifest file, whether it is kept.
fn sweep(
    staging: &Path,
    manifest: &Manifest,
    folders: &BTreeSet<&str>,
    local: &LocalFiles,
) -> Result<Vec<Made>> {
    // Files not wanted are removed below, and a bind mount of this file system is not told
    // by its device: a folder holding a mount point is not swept at all.
    if let Some(mount) = fsutil::mount_within(staging)? {
        return Err(Error::Invalid(format!(
            "{}: a file system is mounted inside it at {}",
            staging.display(),
            mount.display()
        )));
    }
    let reference = made_by_staging(staging)?;
    let root = std::fs::symlink_metadata(staging).map_err(|e| Error::io("reading", staging, e))?;
    if let Some(problem) = unfit_folder(staging, &root, &reference) {
        return Err(Error::Invalid(format!("{}: {problem}", staging.display())));
    }
    let by_path: HashMap<&str, usize> = manifest
        .files
        .iter()
        .enumerate()
        .map(|(index, entry)| (entry.path.as_str(), index))
        .collect();
    // Walk the folder: remove what the new version cannot use, collect the candidates.
    let mut candidates: Vec<(usize, PathBuf)> = Vec::new();
    let mut stack: Vec<(PathBuf, String)> = vec![(staging.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
            let path = entry.path();
            let relative = entry
                .file_name()
                .to_str()
                .map(|name| format!("{prefix}{name}"));
            let kind = entry
                .file_type()
                .map_err(|e| Error::io("reading the type of", &path, e))?;
            match relative {
                Some(relative) if kind.is_dir() && folders.contains(relative.as_str()) => {
                    let meta = std::fs::symlink_metadata(&path)
                        .map_err(|e| Error::io("reading", &path, e))?;
                    match unfit_folder(&path, &meta, &reference) {
                        None => stack.push((path, format!("{relative}/"))),
                        Some(problem) if same_device(&meta, &reference) => {
                            log::info!("not keeping {}: {problem}", path.display());
                            fsutil::remove_dir_all_if_exists(&path)?;
                        }
                        // Never removed file by file: it may be another file system's root.
                        Some(problem) => {
                            return Err(Error::Invalid(format!("{}: {problem}", path.display())));
                        }
                    }
                }
                Some(relative) if kind.is_file() && by_path.contains_key(relative.as_str()) => {
                    candidates.push((by_path[relative.as_str()], path));
                }
                _ if kind.is_dir() => fsutil::remove_dir_all_if_exists(&path)?,
                _ => remove_entry(&path)?,
            }
        }
    }
    candidates.sort_unstable_by_key(|(index, _)| *index);
    let kept = super::parallel::in_runs(&candidates, FILES_PER_THREAD, |part| {
        let mut kept = Vec::new();
        for (index, path) in part {
            let entry = &manifest.files[*index];
            match proven(path, entry, local) {
                Some(stat) => kept.push((*index, stat)),
                None => fsutil::remove_file_if_exists(path)?,
            }
        }
        Ok(kept)
    })?;
    let mut made = vec![Made::Not; manifest.files.len()];
    for (index, stat) in kept {
        made[index] = Made::Done(stat.filter(|_| cfg!(unix)));
    }
    Ok(made)
}

/// The stat of a folder as staging makes one beside `staging` now (owner, group, device
/// and mode under this process's umask): made, read and removed again. Its name starts
/// with the staging prefix, so a prune removes it if a crash leaves it behind, and ends in
/// `~`, which no version name has, so it is no other version's staging folder.
fn made_by_staging(staging: &Path) -> Result<std::fs::Metadata> {
    let mut probe = staging.as_os_str().to_owned();
    probe.push("~probe");
    let probe = PathBuf::from(probe);
    fsutil::remove_dir_all_if_exists(&probe)?;
    std::fs::create_dir(&probe).map_err(|e| Error::io("creating folder", &probe, e))?;
    let meta = std::fs::symlink_metadata(&probe).map_err(|e| Error::io("reading", &probe, e));
    std::fs::remove_dir(&probe).map_err(|e| Error::io("removing", &probe, e))?;
    meta
}

/// Why a folder of a recycled folder is not one staging would have made, if it is not:
/// staging makes folders with the owner, group, device and at most the permissions of
/// `reference` ([`made_by_staging`]), and with no access control list. A folder another
/// user may write into, or a mount point, must not become part of a version.
fn unfit_folder(
    path: &Path,
    meta: &std::fs::Metadata,
    reference: &std::fs::Metadata,
) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if !meta.is_dir() {
            return Some("not a folder".into());
        }
        #[cfg(target_os = "linux")]
        if let Some(acl) = acl_of(path) {
            return Some(format!("it has an access control list ({acl})"));
        }
        if !same_device(meta, reference) {
            return Some("on another device than the versions folder".into());
        }
        if (meta.uid(), meta.gid()) != (reference.uid(), reference.gid()) {
            return Some(format!(
                "owned by {}:{}, not {}:{} as a folder staging makes",
                meta.uid(),
                meta.gid(),
                reference.uid(),
                reference.gid()
            ));
        }
        let extra = meta.mode() & 0o7777 & !reference.mode();
        if extra != 0 {
            return Some(format!(
                "mode {:o} grants {extra:o}, which a folder staging makes ({:o}) does not",
                meta.mode() & 0o7777,
                reference.mode() & 0o7777
            ));
        }
        None
    }
    #[cfg(not(unix))]
    {
        let _ = (path, reference);
        (!meta.is_dir()).then(|| "not a folder".into())
    }
}

/// The name of an access control list `path` has (it may grant what the mode does not
/// show), if any; a file system without extended attributes has none.
#[cfg(target_os = "linux")]
fn acl_of(path: &Path) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    [c"system.posix_acl_access", c"system.posix_acl_default"]
        .into_iter()
        .find(|name| {
            // SAFETY: both are NUL-terminated strings that outlive the call; a null buffer
            // of size 0 asks only for the attribute's size.
            let size =
                unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
            size >= 0
        })
        .map(|name| name.to_str().unwrap_or("an ACL"))
}

fn same_device(meta: &std::fs::Metadata, reference: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.dev() == reference.dev()
    }
    #[cfg(not(unix))]
    {
        let _ = (meta, reference);
        true
    }
}

/// The stat of the file at `path` if it is, untouched, a recorded installed file holding
/// what `entry` wants, with the executable bit it wants.
fn proven(
    path: &Path,
    entry: &crate::manifest::FileEntry,
    local: &LocalFiles,
) -> Option<Option<FileStat>> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file()
        || meta.len() != entry.size
        || (cfg!(unix) && fsutil::is_executable(&meta) != entry.executable)
    {
        return None;
    }
    let stat = FileStat::of(path, &meta);
    // The installed file is `lstat`ed again: two live names with one inode number are one
    // file, whereas a recorded number alone may have been given to another file since (on
    // file systems that number files anew at each mount).
    local
        .files(&entry.blake3)
        .any(|file| {
            file.executable == entry.executable
                && file.size == entry.size
                && file.stat.is_some_and(|s| s.is_known() && s == stat)
                && std::fs::symlink_metadata(&file.path).is_ok_and(|now| file.untouched(&now))
        })
        .then_some(Some(stat))
}

/// Whether `path` is a folder itself, not a link to one.
fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir())
}

/// Removes a file, a link (to a folder too, which Windows removes as a folder) or anything
/// else that is not a folder.
fn remove_entry(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => std::fs::remove_dir(path).map_err(|_| Error::io("removing", path, e)),
    }
}
