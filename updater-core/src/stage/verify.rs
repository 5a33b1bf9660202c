//! Step 4 of staging: the folder holds exactly the manifest's files and folders, with the
//! right sizes and modes, and nothing else.
//!
//! The stats recorded here are what later runs trust (reuse for the next version, `apply`).
//! On Unix staging knows most of them already ([`verify_tree_knowing`]): a file the pack
//! writers made was made read-only and stat'ed through its open handle, and a hard link shares
//! the stat of the installed file it was checked against (mode included) just before linking;
//! they are used once a sample agrees with `lstat` (`known_stats_hold`). Their sizes are
//! checked here, their modes were set or checked as they were made. The others are `lstat`ed
//! here (on Windows also
//! opened, for the file index): on an app of 10,000 small files that is most of the check's
//! time, so they are stat'ed on several threads once one pass over the folders (names and
//! types only) has listed them.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use appstart_layout::fsutil;

use super::FileStat;
use crate::error::{Error, Result};
use crate::manifest::{FileEntry, Manifest};

/// Fewer files than this are stat'ed on the calling thread.
const FILES_PER_THREAD: usize = 1024;

/// Checks `dir` against `manifest` (see the module docs). Returns each file's stat, in the
/// manifest's order.
pub fn verify_tree(dir: &Path, manifest: &Manifest) -> Result<Vec<FileStat>> {
    verify_tree_knowing(dir, manifest, &[])
}

/// [`verify_tree`], taking the stat of the manifest's file `i` from `known[i]` where that is
/// `Some` (staging read it when it made the file), checking its size against the manifest.
pub(crate) fn verify_tree_knowing(
    dir: &Path,
    manifest: &Manifest,
    known: &[Option<FileStat>],
) -> Result<Vec<FileStat>> {
    let mut expected_dirs: HashSet<&str> =
        manifest.directories.iter().map(|d| d.as_str()).collect();
    for entry in &manifest.files {
        expected_dirs.extend(entry.path.parents());
    }
    let expected: HashMap<&str, (usize, &FileEntry, Option<FileStat>)> = manifest
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.as_str(), (i, f, known.get(i).copied().flatten())))
        .collect();
    let problem = |message: String| Error::format(dir.display().to_string(), message);
    // Pass 1: the folders, by the types their listings give (not following links).
    type Listed<'m> = (String, PathBuf, &'m FileEntry, Option<FileStat>, usize);
    let mut files: Vec<Listed<'_>> = Vec::with_capacity(expected.len());
    // Each manifest file is listed at most once: two names that read the same (on Unix a
    // stray `a\b` reads as `a/b`) must not make up for a missing file.
    let mut seen = vec![false; manifest.files.len()];
    walk(dir, |path, relative, kind| {
        let kind = kind.map_err(|e| Error::io("reading", path, e))?;
        if kind.is_dir() {
            if !expected_dirs.contains(relative.as_str()) {
                return Err(problem(format!("unexpected folder {relative}")));
            }
            Ok(true)
        } else if let (true, Some((index, entry, stat))) =
            (kind.is_file(), expected.get(relative.as_str()))
            && !std::mem::replace(&mut seen[*index], true)
        {
            files.push((relative, path.to_path_buf(), entry, *stat, *index));
            Ok(false)
        } else {
            Err(problem(format!("unexpected entry {relative}")))
        }
    })?;
    if files.len() != manifest.files.len() {
        return Err(problem(format!(
            "{} of {} files present",
            files.len(),
            manifest.files.len()
        )));
    }
    if !known_stats_hold(&files) {
        for file in &mut files {
            file.3 = None;
        }
    }
    // Pass 2: each file's stat, size and mode.
    let check = |(relative, path, entry, known, _): &Listed<'_>| -> Result<FileStat> {
        if let Some(stat) = known {
            if stat.size != entry.size {
                return Err(problem(format!(
                    "{relative}: size {} instead of {}",
                    stat.size, entry.size
                )));
            }
            return Ok(*stat);
        }
        let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io("reading", path, e))?;
        if !meta.is_file() {
            return Err(problem(format!("unexpected entry {relative}")));
        }
        if meta.len() != entry.size {
            return Err(problem(format!(
                "{relative}: size {} instead of {}",
                meta.len(),
                entry.size
            )));
        }
        if fsutil::is_executable(&meta) != entry.executable && cfg!(unix) {
            return Err(problem(format!(
                "{relative}: executable bit is not {}",
                entry.executable
            )));
        }
        Ok(FileStat::of(path, &meta))
    };
    let read = super::parallel::in_runs(&files, FILES_PER_THREAD, |part| {
        part.iter().map(check).collect()
    })?;
    // Each listed name is a distinct manifest path, and all of them were listed.
    let mut stats = vec![FileStat::UNKNOWN; manifest.files.len()];
    for ((.., index), stat) in files.iter().zip(read) {
        stats[*index] = stat;
    }
    Ok(stats)
}

/// Known stats checked against `lstat` before any is trusted.
const SPOT_CHECKS: usize = 32;

/// Whether the stats staging read as it made the files agree with what the file system says
/// now, judged on up to [`SPOT_CHECKS`] of them spread over the folder. Where they do not
/// (a file system that sets the modification time on close, as SMB shares backed by NTFS do,
/// or one whose hard links get new inode numbers, as overlayfs may), every file is `lstat`ed:
/// a record that disagrees with the disk would make each later run refuse the version as
/// changed and stage it again.
fn known_stats_hold(files: &[(String, PathBuf, &FileEntry, Option<FileStat>, usize)]) -> bool {
    let known: Vec<_> = files
        .iter()
        .filter_map(|(_, path, _, stat, _)| stat.map(|stat| (path, stat)))
        .collect();
    let step = known.len().div_ceil(SPOT_CHECKS).max(1);
    known.iter().step_by(step).all(|(path, stat)| {
        let now = std::fs::symlink_metadata(path).map(|meta| FileStat::of(path, &meta));
        let holds = now.as_ref().is_ok_and(|now| now == stat);
        if !holds {
            log::info!(
                "{}: the stat read while staging ({stat:?}) is not the file system's ({now:?}); reading every file's",
                path.display()
            );
        }
        holds
    })
}

/// Visits everything below `dir`, folders before what they hold: `visit` gets each entry's
/// path, its path relative to `dir` with `/` separators, and its type as the listing gave it
/// (links not followed), and says whether to descend into it.
///
/// A name no manifest path can have is passed so that it matches none: on Unix a name with a
/// backslash as it is (a stray `a\b` must not read as the listed `a/b`), and a name that is
/// not UTF-8 with a backslash before it (no manifest path has one).
pub(crate) fn walk(
    dir: &Path,
    mut visit: impl FnMut(&Path, String, std::io::Result<std::fs::FileType>) -> Result<bool>,
) -> Result<()> {
    let mut stack: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    while let Some((folder, prefix)) = stack.pop() {
        for item in std::fs::read_dir(&folder).map_err(|e| Error::io("listing", &folder, e))? {
            let item = item.map_err(|e| Error::io("listing", &folder, e))?;
            let path = item.path();
            let name = item.file_name();
            let relative = || match name.to_str() {
                Some(name) => format!("{prefix}{name}"),
                None => format!("{prefix}\\{}", name.to_string_lossy()),
            };
            // Named again only for the folders descended into, not copied for every file.
            if visit(&path, relative(), item.file_type())? {
                stack.push((path, format!("{}/", relative())));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest of `count` one-byte files in 10 folders, and the folder holding them.
    fn tree(count: usize) -> (tempfile::TempDir, Manifest) {
        let dir = tempfile::tempdir().unwrap();
        let hash = blake3::hash(b"x").to_hex().to_string();
        let files: Vec<String> = (0..count)
            .map(|i| {
                let path = format!("d{}/f{i:05}", i % 10);
                let full = dir.path().join(&path);
                std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                std::fs::write(&full, b"x").unwrap();
                // The first file is the app's executable.
                let executable = i == 0;
                #[cfg(unix)]
                if executable {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o755))
                        .unwrap();
                }
                format!(
                    r#"{{"path":"{path}","size":1,"executable":{executable},"blake3":"{hash}","blob_size":1,"blob_blake3":"{hash}"}}"#
                )
            })
            .collect();
        let json = format!(
            r#"{{"format":2,"app":"demo","version":"1.0.0","channel":"stable","platform":"any","executable":"d0/f00000","files":[{}]}}"#,
            files.join(",")
        );
        (
            dir,
            Manifest::parse(json.as_bytes(), "test manifest").unwrap(),
        )
    }

    /// Enough files for several stat threads: every file's stat comes back under its own
    /// name, and a wrong size or an extra file anywhere is found.
    #[test]
    fn a_large_tree_is_checked_on_several_threads_file_by_file() {
        let count = FILES_PER_THREAD * 3;
        let (dir, manifest) = tree(count);
        let stats = verify_tree(dir.path(), &manifest).unwrap();
        assert_eq!(stats.len(), count);
        for (index, entry) in manifest.files.iter().enumerate() {
            let path = entry.path.join_to(dir.path());
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert_eq!(stats[index], FileStat::of(&path, &meta));
        }

        let last = format!("d{}/f{:05}", (count - 1) % 10, count - 1);
        std::fs::write(dir.path().join(&last), b"xy").unwrap();
        let err = verify_tree(dir.path(), &manifest).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{last}: size 2 instead of 1")),
            "{err}"
        );
        std::fs::write(dir.path().join(&last), b"x").unwrap();

        std::fs::write(dir.path().join("d3/extra"), b"x").unwrap();
        let err = verify_tree(dir.path(), &manifest).unwrap_err().to_string();
        assert!(err.contains("d3/extra"), "{err}");
    }

    /// Stats staging already knows are taken as they are once a sample of them agrees with
    /// the file system; one that does not (here a made-up inode) makes every file's stat be
    /// read again; an extra file is still found by the walk.
    #[test]
    fn known_stats_are_taken_only_when_they_agree_with_the_disk() {
        let (dir, manifest) = tree(4);
        let real = |relative: &str| {
            let path = dir.path().join(relative);
            FileStat::of(&path, &std::fs::symlink_metadata(&path).unwrap())
        };
        let paths: Vec<String> = manifest.files.iter().map(|f| f.path.to_string()).collect();
        // The first file's stat is left for the check to read.
        let known: Vec<Option<FileStat>> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| (i > 0).then(|| real(p)))
            .collect();
        let stats = verify_tree_knowing(dir.path(), &manifest, &known).unwrap();
        for (index, path) in paths.iter().enumerate() {
            assert_eq!(stats[index], real(path), "{path}");
        }
        assert!(known_stats_hold(&listed(&dir, &manifest, &known)));

        let mut made_up = known.clone();
        made_up[1] = Some(FileStat {
            ino: 77,
            ..real(&paths[1])
        });
        assert!(!known_stats_hold(&listed(&dir, &manifest, &made_up)));
        let stats = verify_tree_knowing(dir.path(), &manifest, &made_up).unwrap();
        assert_eq!(stats[1], real(&paths[1]));

        std::fs::write(dir.path().join("d1/extra"), b"x").unwrap();
        let err = verify_tree_knowing(dir.path(), &manifest, &known)
            .unwrap_err()
            .to_string();
        assert!(err.contains("d1/extra"), "{err}");
    }

    /// A stray name that looks like a manifest path (on Unix a file `d3\f00003`, which read
    /// as `d3/f00003` before) does not stand in for that file once it is missing.
    #[cfg(unix)]
    #[test]
    fn a_name_that_reads_as_a_missing_file_does_not_stand_in_for_it() {
        let (dir, manifest) = tree(12);
        std::fs::remove_file(dir.path().join("d3/f00003")).unwrap();
        std::fs::write(dir.path().join("d3\\f00003"), b"x").unwrap();
        let err = verify_tree(dir.path(), &manifest).unwrap_err().to_string();
        assert!(err.contains("unexpected entry d3\\f00003"), "{err}");
        // A name that is not UTF-8 is never taken for a listed one.
        use std::os::unix::ffi::OsStrExt;
        std::fs::remove_file(dir.path().join("d3\\f00003")).unwrap();
        std::fs::write(dir.path().join("d3/f00003"), b"x").unwrap();
        verify_tree(dir.path(), &manifest).unwrap();
        let name = std::ffi::OsStr::from_bytes(b"f\xff");
        std::fs::write(dir.path().join("d4").join(name), b"x").unwrap();
        let err = verify_tree(dir.path(), &manifest).unwrap_err().to_string();
        assert!(err.contains("unexpected entry d4/\\f\u{fffd}"), "{err}");
    }

    fn listed<'m>(
        dir: &tempfile::TempDir,
        manifest: &'m Manifest,
        known: &[Option<FileStat>],
    ) -> Vec<(String, PathBuf, &'m FileEntry, Option<FileStat>, usize)> {
        manifest
            .files
            .iter()
            .zip(known)
            .enumerate()
            .map(|(i, (f, k))| (f.path.to_string(), f.path.join_to(dir.path()), f, *k, i))
            .collect()
    }
}
