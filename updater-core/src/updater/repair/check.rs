//! Checking a version folder against its manifest by content: every listed file read and
//! hashed (BLAKE3), its size and (on Unix) executable bit compared, and everything on disk
//! that the manifest does not list named.
//!
//! Unlike [`crate::stage::verify_tree`], which trusts sizes and stats right after staging,
//! this reads every byte: it is for a folder that has been on disk for a while and may have
//! been changed by a user, a disk or a virus scanner. A file is read only when its size
//! matches, so the bytes read are capped by the signed manifest's sizes.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use appstart_layout::fsutil;

use crate::error::{Error, Result};
use crate::events::{EventSink, Phase};
use crate::manifest::Manifest;
use crate::progress::ProgressMeter;
use crate::stage::FileStat;

/// What [`check_tree`] found.
#[derive(Debug, Default)]
pub(super) struct TreeCheck {
    /// Listed files whose content, size, type or mode differ (relative paths).
    pub damaged: Vec<String>,
    /// Listed files and folders that are not there.
    pub missing: Vec<String>,
    /// Files and folders on disk that the manifest does not list (a folder is named once,
    /// not its content).
    pub extra: Vec<String>,
    /// Listed files read and hashed.
    pub files_checked: usize,
    /// The intact files: index in the manifest, path, and stat while they were hashed.
    pub intact: Vec<(usize, PathBuf, FileStat)>,
}

impl TreeCheck {
    /// Whether nothing is damaged, missing or extra.
    pub fn ok(&self) -> bool {
        self.damaged.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }
}

/// Checks `dir` against `manifest`, reading every listed file. Progress (phase `verify`:
/// the listed files and their signed sizes) goes to `events`.
pub(super) fn check_tree(
    dir: &Path,
    manifest: &Manifest,
    events: Option<Arc<EventSink>>,
    cancel: &crate::cancel::CancelToken,
) -> Result<TreeCheck> {
    let bytes_total = manifest.files.iter().map(|f| f.size).sum();
    let progress = ProgressMeter::started(
        events,
        Phase::Verify,
        bytes_total,
        manifest.files.len() as u64,
    );
    let mut check = TreeCheck::default();
    let mut listed_dirs: BTreeSet<String> =
        manifest.directories.iter().map(|d| d.to_string()).collect();
    for entry in &manifest.files {
        listed_dirs.extend(entry.path.parents().map(str::to_string));
    }
    let listed_files: BTreeSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    for folder in &listed_dirs {
        let path = dir.join(folder);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => check.damaged.push(folder.clone()),
            Err(_) => check.missing.push(folder.clone()),
        }
    }
    for (index, entry) in manifest.files.iter().enumerate() {
        cancel.check()?;
        let path = entry.path.join_to(dir);
        let name = entry.path.as_str().to_string();
        let Ok(before) = std::fs::symlink_metadata(&path) else {
            check.missing.push(name);
            progress.file_done(entry.size);
            continue;
        };
        if !before.is_file()
            || before.len() != entry.size
            || (cfg!(unix) && fsutil::is_executable(&before) != entry.executable)
        {
            check.damaged.push(name);
            progress.file_done(entry.size);
            continue;
        }
        check.files_checked += 1;
        let (hash, size) = hash_counting(&path, entry.size, &progress)?;
        // A file that shrank while read counts its missing bytes here, so the total is met.
        progress.file_done(entry.size.saturating_sub(size));
        let after = std::fs::symlink_metadata(&path).map_err(|e| Error::io("reading", &path, e))?;
        let stat = FileStat::of(&path, &before);
        // Changed while it was read: not known to be intact.
        let steady = stat == FileStat::of(&path, &after);
        if hash != entry.blake3 || size != entry.size || !steady {
            check.damaged.push(name);
        } else {
            check.intact.push((index, path, stat));
        }
    }
    find_extra(dir, &listed_dirs, &listed_files, &mut check.extra)?;
    progress.finish();
    for list in [&mut check.damaged, &mut check.missing, &mut check.extra] {
        list.sort();
    }
    Ok(check)
}

/// The BLAKE3 (hex) and length of the file at `path`, each block read counted into
/// `progress` (a large file moves the bar while it is hashed). At most `size + 1` bytes are
/// read, so a file that grows while it is read is found damaged, not read for ever.
fn hash_counting(path: &Path, size: u64, progress: &ProgressMeter) -> Result<(String, u64)> {
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut file = file.take(size.saturating_add(1));
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        hasher.update(&buffer[..n]);
        total += n as u64;
        progress.add_bytes(n as u64);
    }
    Ok((hasher.finalize().to_hex().to_string(), total))
}

/// Names everything below `dir` that is neither a listed file nor a listed folder.
fn find_extra(
    dir: &Path,
    listed_dirs: &BTreeSet<String>,
    listed_files: &BTreeSet<&str>,
    extra: &mut Vec<String>,
) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    crate::stage::verify::walk(dir, |_, relative, kind| {
        let is_dir = kind.is_ok_and(|t| t.is_dir());
        if is_dir && listed_dirs.contains(&relative) {
            return Ok(true);
        }
        if !listed_dirs.contains(&relative) && !listed_files.contains(relative.as_str()) {
            // A listed name of the wrong type is damaged, not extra.
            extra.push(if is_dir {
                format!("{relative}/")
            } else {
                relative
            });
        }
        Ok(false)
    })
}
