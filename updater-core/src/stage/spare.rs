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
//! What makes a kept file safe: it is kept only if its identity (inode, or volume and NTFS
//! file index), size and modification time equal the recorded stat of an installed file with
//! the content the new version wants at that path, and its mode is the one wanted. That is
//! the same proof a hard link from an installed version rests on (`docs/layout.md`): the
//! kept file *is* that installed file (a hard link to it, made by an earlier staging), not
//! written since it was recorded. Anything else in the folder (other content, files changed
//! since, names the new version does not have, links, folders it does not want) is removed
//! before staging goes on, so the folder then holds only proven files, and step 4 checks the
//! whole tree as always. Nothing here is referenced by `appstart.toml` or a record, so a
//! crash at any point leaves at worst a `.spare` or a `.staging-<version>` that the next run
//! starts from again (the same proof applies to a leftover staging folder) or a prune
//! removes.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use appstart_layout::{InstallDir, fsutil};

use super::{FileStat, LocalFiles, Made};
use crate::error::{Error, Result};
use crate::manifest::Manifest;

/// Fewer files than this are checked on the calling thread.
const FILES_PER_THREAD: usize = 1024;

/// Step 1: makes `staging` exist as a folder, starting from (in this order) a leftover
/// `staging` of an interrupted run, `versions/.spare`, or nothing; then keeps only the files
/// of it that are proven right for `manifest` (see the module docs) and removes everything
/// else. Returns, per manifest file, whether it is already in place (with its stat where it
/// is kept between runs: Unix).
pub(super) fn start_from(
    install: &InstallDir,
    staging: &Path,
    manifest: &Manifest,
    folders: &BTreeSet<&str>,
    local: &LocalFiles,
) -> Result<Vec<Made>> {
    let none = || vec![Made::Not; manifest.files.len()];
    if cfg!(windows) {
        // Installed files are read-only, and on Windows that attribute belongs to the file,
        // not to one of its links: removing a link from a recycled folder would mean making
        // the installed file writable first. Windows starts from nothing, as before.
        fsutil::remove_dir_all_if_exists(staging)?;
        fsutil::create_dir_all(staging)?;
        return Ok(none());
    }
    if !is_real_dir(staging) {
        remove_entry(staging)?;
        let spare = install.spare_dir();
        let recycled = is_real_dir(&spare)
            && match std::fs::rename(&spare, staging) {
                Ok(()) => true,
                Err(err) => {
                    // Windows refuses while a file in it is open: start from nothing.
                    log::info!("not starting from {}: {err}", spare.display());
                    false
                }
            };
        if !recycled {
            fsutil::create_dir_all(staging)?;
            return Ok(none());
        }
    }
    // Every folder not in `folders` (the new version's) goes.
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
                    stack.push((path, format!("{relative}/")));
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
    let mut made = none();
    for (index, stat) in kept {
        made[index] = Made::Done(stat.filter(|_| cfg!(unix)));
    }
    Ok(made)
}

/// The stat of the file at `path` if it is, untouched, a recorded installed file holding
/// what `entry` wants, with the mode it wants.
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
    local
        .files(&entry.blake3)
        .any(|file| {
            file.executable == entry.executable
                && file.size == entry.size
                && file.stat.is_some_and(|s| s.is_known() && s == stat)
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

/// Sets the folder of a version being pruned aside as `versions/.spare` (replacing an
/// older one) instead of deleting it. Returns whether it did; when not, the caller deletes
/// the folder as before.
pub(crate) fn set_aside(install: &InstallDir, version_dir: &Path) -> bool {
    if cfg!(windows) {
        // Never used there (see `start_from`).
        return false;
    }
    let spare = install.spare_dir();
    if let Err(err) = fsutil::remove_dir_all_if_exists(&spare) {
        log::info!("{err}; deleting the pruned version instead of setting it aside");
        return false;
    }
    match std::fs::rename(version_dir, &spare) {
        Ok(()) => true,
        Err(err) => {
            log::info!(
                "not setting {} aside: {err}; deleting it instead",
                version_dir.display()
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn hash(content: &str) -> String {
        blake3::hash(content.as_bytes()).to_hex().to_string()
    }

    /// A spare made of links to an installed version's recorded files, then changed in every
    /// way a folder can be: only the files proven to be untouched recorded files with the
    /// content, mode and path the new version wants stay; everything else is removed.
    #[cfg(unix)]
    #[test]
    fn only_proven_files_are_kept_and_everything_else_is_removed() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let install = InstallDir::new(root.path());
        let installed = install.versions_dir().join("1.0.0");
        let mut local = LocalFiles::default();
        let old = [
            ("a/same", "same"),
            ("a/changed", "old content"),
            ("a/copied", "copied"),
            ("a/touched", "touched"),
            ("a/mode", "mode"),
            ("b/gone", "gone"),
            ("c/link", "link"),
        ];
        for (path, content) in old {
            let full = installed.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, content).unwrap();
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o444)).unwrap();
            let meta = std::fs::symlink_metadata(&full).unwrap();
            let stat = FileStat::of(&full, &meta);
            local.add_verified(&hash(content), full, meta.len(), false, stat);
        }
        // The spare: links to each installed file, as an earlier staging made them.
        let spare = install.spare_dir();
        for (path, _) in old {
            let full = spare.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::hard_link(installed.join(path), &full).unwrap();
        }
        // A copy with the right content is not a recorded file: not proven.
        std::fs::remove_file(spare.join("a/copied")).unwrap();
        std::fs::write(spare.join("a/copied"), "copied").unwrap();
        // A recorded file written since (through any of its links): its stat moved on.
        std::fs::set_permissions(
            spare.join("a/touched"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::write(spare.join("a/touched"), "touched").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(10);
        std::fs::File::options()
            .write(true)
            .open(spare.join("a/touched"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        // A link where the new version wants a file, an extra file and an extra folder.
        std::fs::remove_file(spare.join("c/link")).unwrap();
        std::os::unix::fs::symlink(installed.join("c/link"), spare.join("c/link")).unwrap();
        std::fs::write(spare.join("a/extra"), "extra").unwrap();
        std::fs::create_dir_all(spare.join("d/deeper")).unwrap();
        std::fs::write(spare.join("d/deeper/file"), "x").unwrap();

        let entry = |path: &str, content: &str, exec: bool| {
            let h = hash(content);
            format!(
                r#"{{"path":"{path}","size":{},"executable":{exec},"blake3":"{h}","blob_size":1,"blob_blake3":"{h}"}}"#,
                content.len()
            )
        };
        let files = [
            entry("a/changed", "new content", false),
            entry("a/copied", "copied", false),
            entry("a/mode", "mode", true),
            entry("a/same", "same", false),
            entry("a/touched", "touched", false),
            entry("c/link", "link", false),
            entry("e/new", "new", false),
        ];
        let json = format!(
            r#"{{"format":2,"app":"demo","version":"2.0.0","channel":"stable","platform":"any","executable":"a/mode","files":[{}]}}"#,
            files.join(",")
        );
        let manifest = Manifest::parse(json.as_bytes(), "test manifest").unwrap();
        let staging = install.staging_dir(&appstart_layout::VersionName::parse("2.0.0").unwrap());

        let folders = super::super::folders_of(&manifest);
        let made = start_from(&install, &staging, &manifest, &folders, &local).unwrap();

        assert!(!spare.exists(), "the spare became the staging folder");
        let kept: Vec<&str> = manifest
            .files
            .iter()
            .zip(&made)
            .filter(|(_, made)| made.is_done())
            .map(|(entry, _)| entry.path.as_str())
            .collect();
        assert_eq!(kept, ["a/same"]);
        let same = staging.join("a/same");
        assert_eq!(
            made[3],
            Made::Done(Some(FileStat::of(
                &same,
                &std::fs::symlink_metadata(&same).unwrap()
            )))
        );
        let mut left = Vec::new();
        let mut stack = vec![staging.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let relative = path.strip_prefix(&staging).unwrap().display().to_string();
                if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                    stack.push(path);
                }
                left.push(relative);
            }
        }
        left.sort();
        assert_eq!(
            left,
            ["a", "a/same", "c"],
            "folders the new version has stay"
        );
        // The installed version is untouched.
        assert_eq!(
            std::fs::read_to_string(installed.join("a/changed")).unwrap(),
            "old content"
        );
    }

    /// Without a spare or a leftover, staging starts empty; a leftover staging folder is
    /// started from before a spare.
    #[cfg(unix)]
    #[test]
    fn a_leftover_staging_folder_comes_before_the_spare() {
        let root = tempfile::tempdir().unwrap();
        let install = InstallDir::new(root.path());
        let manifest = Manifest::parse(
            format!(
                r#"{{"format":2,"app":"demo","version":"2.0.0","channel":"stable","platform":"any","executable":"app","files":[{{"path":"app","size":1,"executable":true,"blake3":"{h}","blob_size":1,"blob_blake3":"{h}"}}]}}"#,
                h = hash("x")
            )
            .as_bytes(),
            "test manifest",
        )
        .unwrap();
        let staging = install.staging_dir(&appstart_layout::VersionName::parse("2.0.0").unwrap());
        let local = LocalFiles::default();
        assert_eq!(
            start_from(&install, &staging, &manifest, &BTreeSet::new(), &local).unwrap(),
            [Made::Not]
        );
        assert!(staging.is_dir());
        std::fs::write(staging.join("junk"), "j").unwrap();
        std::fs::create_dir_all(install.spare_dir()).unwrap();
        start_from(&install, &staging, &manifest, &BTreeSet::new(), &local).unwrap();
        assert!(
            install.spare_dir().is_dir(),
            "the spare waits for the next version"
        );
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
    }
}
