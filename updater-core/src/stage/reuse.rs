//! Taking the files a new version shares with installed ones: hard links where the installed
//! file is provably untouched, else a verified copy.
//!
//! An update that changes 1 % of an app's files spends nearly all of its staging time here
//! on an app of many small files (an `lstat`, a `link` and an `lstat` of the link each:
//! about 5 us apiece on ext4), and that work needs no network. So it runs on its own threads while the pack
//! ranges of the changed files download ([`super::Stager::stage`]), and on several threads,
//! each taking a run of consecutive manifest entries (the manifest is sorted by path, so each
//! thread mostly works in its own folders and they do not contend for one folder's lock).
//!
//! Why linking is safe: `docs/layout.md` (version folders are read-only, a file is linked
//! only when its recorded inode, size and modification time match and its mode is the one
//! the new version wants, and kept only when the link is that same file).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{FileStat, LocalFiles, Made, Route, copy_file_verified, seal};
use crate::cancel::CancelToken;
use crate::error::Result;
use crate::manifest::{Content, FileEntry, Manifest};
use appstart_layout::fsutil;

/// Fewer files than this are linked on the calling thread.
const FILES_PER_THREAD: usize = 512;

/// Takes every file routed [`Route::Local`] and not `kept` (already in place) from an
/// installed version into `staging`.
/// Returns, per manifest file, whether it was taken (with its stat); a file that could not be (changed on
/// disk since, or gone) is left to the caller, which fetches it. Stops early, returning
/// what it did, when `stop` is set or `cancel` fires (the caller reports the error).
pub(super) fn reuse_all(
    manifest: &Manifest,
    routes: &[Route],
    kept: &[Made],
    staging: &Path,
    local: &LocalFiles,
    cancel: &CancelToken,
    stop: &AtomicBool,
) -> Result<Vec<Made>> {
    let wanted: Vec<usize> = routes
        .iter()
        .enumerate()
        .filter(|(index, route)| {
            **route == Route::Local && !kept.get(*index).is_some_and(|k| k.is_done())
        })
        .map(|(index, _)| index)
        .collect();
    let done = super::parallel::in_runs(&wanted, FILES_PER_THREAD, |indexes| {
        let mut done = Vec::with_capacity(indexes.len());
        for &index in indexes {
            if stop.load(Ordering::Relaxed) || cancel.is_cancelled() {
                break;
            }
            let entry = &manifest.files[index];
            if let Some(stat) = reuse(entry, &entry.path.join_to(staging), local)? {
                done.push((index, stat));
            }
        }
        Ok(done)
    })?;
    let mut reused = vec![Made::Not; manifest.files.len()];
    for (index, stat) in done {
        reused[index] = Made::Done(stat);
    }
    Ok(reused)
}

/// Takes `entry` from an installed version if one has it. Returns whether it did, with the
/// stat of the file it made where known: a link's is the stat of the installed file it
/// links, checked against the record just before.
pub(super) fn reuse(
    entry: &FileEntry,
    dest: &Path,
    local: &LocalFiles,
) -> Result<Option<Option<FileStat>>> {
    for candidate in local.files(&entry.blake3).filter(|c| c.size == entry.size) {
        let Ok(meta) = std::fs::symlink_metadata(&candidate.path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        if candidate.untouched(&meta)
            && candidate.executable == entry.executable
            && (cfg!(not(unix)) || fsutil::is_executable(&meta) == entry.executable)
        {
            #[cfg(test)]
            tests::between_check_and_link(&candidate.path);
            if std::fs::hard_link(&candidate.path, dest).is_ok() {
                // The name may have been given to another file since the check: the link is
                // kept only if it is the file checked (Unix; elsewhere the tree check reads
                // every stat again). The link's stat is then the one just checked.
                if cfg!(not(unix))
                    || std::fs::symlink_metadata(dest).is_ok_and(|now| candidate.untouched(&now))
                {
                    return Ok(Some(candidate.stat.filter(|_| cfg!(unix))));
                }
                log::warn!(
                    "{} changed while it was linked; copying it instead",
                    candidate.path.display()
                );
                fsutil::remove_file_if_exists(dest)?;
            }
        }
        // Changed since we wrote it, another mode, or another file system: copy, verifying.
        match copy_file_verified(&candidate.path, dest, &entry.expected()) {
            Ok(file) => return Ok(Some(seal(file, dest, entry.executable)?)),
            Err(err) => {
                log::warn!("not reusing {}: {err}", candidate.path.display());
                fsutil::remove_file_if_exists(dest)?;
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::FileStat;
    use std::cell::RefCell;

    /// What a test does to an installed file between its check and its link.
    type Action = Box<dyn FnMut(&Path)>;

    thread_local! {
        static BETWEEN: RefCell<Option<Action>> = RefCell::new(None);
    }

    pub(super) fn between_check_and_link(path: &Path) {
        BETWEEN.with(|between| {
            if let Some(action) = between.borrow_mut().as_mut() {
                action(path);
            }
        });
    }

    /// A file renamed over the installed one after its stat was checked and before it was
    /// linked (same size, other bytes) is not linked into the new version; the verified copy
    /// tried next refuses its bytes, so with no other candidate the file is left to be
    /// downloaded and the staging folder holds nothing by that name.
    #[test]
    fn a_file_replaced_between_its_check_and_its_link_is_not_linked() {
        let installed = tempfile::tempdir().unwrap();
        let staging = tempfile::tempdir().unwrap();
        let full = installed.path().join("data");
        std::fs::write(&full, "right bytes").unwrap();
        let hash = blake3::hash(b"right bytes").to_hex().to_string();
        let meta = std::fs::symlink_metadata(&full).unwrap();
        let mut local = LocalFiles::default();
        local.add_verified(
            &hash,
            full.clone(),
            meta.len(),
            false,
            FileStat::of(&full, &meta),
        );
        let json = format!(
            r#"{{"format":2,"app":"demo","version":"2.0.0","channel":"stable","platform":"any","executable":"zz/app","files":[{{"path":"data","size":11,"executable":false,"blake3":"{hash}","blob_size":1,"blob_blake3":"{hash}"}},{{"path":"zz/app","size":3,"executable":true,"blake3":"{hash}","blob_size":1,"blob_blake3":"{hash}"}}]}}"#
        );
        let manifest = Manifest::parse(json.as_bytes(), "test manifest").unwrap();
        let entry = &manifest.files[0];
        BETWEEN.with(|between| {
            *between.borrow_mut() = Some(Box::new(|path: &Path| {
                let other = path.with_extension("other");
                std::fs::write(&other, "wrong bytes").unwrap();
                std::fs::rename(&other, path).unwrap();
            }));
        });
        let dest = staging.path().join("data");
        let result = reuse(entry, &dest, &local);
        BETWEEN.with(|between| between.borrow_mut().take());
        // Not linked; the copy that follows verifies the changed file and refuses it.
        assert_eq!(result.unwrap(), None);
        assert!(!dest.exists(), "no file with the wrong bytes is left");
    }

    /// Enough files for several linking threads: each untouched file is linked (same file),
    /// one changed on disk since it was indexed is not taken (its BLAKE3 no longer matches),
    /// and nothing else is left out.
    #[test]
    fn many_files_are_linked_on_several_threads_and_a_changed_one_is_left_out() {
        let count = FILES_PER_THREAD * 3;
        let installed = tempfile::tempdir().unwrap();
        let staging = tempfile::tempdir().unwrap();
        let mut local = LocalFiles::default();
        let mut entries = Vec::new();
        for i in 0..count {
            let path = format!("d{}/f{i:05}", i % 10);
            let content = format!("file {i}");
            let full = installed.path().join(&path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, &content).unwrap();
            let hash = blake3::hash(content.as_bytes()).to_hex().to_string();
            let meta = std::fs::symlink_metadata(&full).unwrap();
            let stat = FileStat::of(&full, &meta);
            local.add_verified(&hash, full, meta.len(), false, stat);
            std::fs::create_dir_all(staging.path().join(format!("d{}", i % 10))).unwrap();
            entries.push(format!(
                r#"{{"path":"{path}","size":{},"executable":false,"blake3":"{hash}","blob_size":1,"blob_blake3":"{hash}"}}"#,
                content.len()
            ));
        }
        // The executable (a file of its own), not among those to reuse.
        let app = blake3::hash(b"app").to_hex().to_string();
        entries.push(format!(
            r#"{{"path":"zz/app","size":3,"executable":true,"blake3":"{app}","blob_size":1,"blob_blake3":"{app}"}}"#
        ));
        let json = format!(
            r#"{{"format":2,"app":"demo","version":"2.0.0","channel":"stable","platform":"any","executable":"zz/app","files":[{}]}}"#,
            entries.join(",")
        );
        let manifest = Manifest::parse(json.as_bytes(), "test manifest").unwrap();
        let mut routes = vec![Route::Local; count];
        routes.push(Route::Whole);
        // Changed after it was indexed: same size, other bytes.
        let changed = 700;
        let changed_path = installed.path().join(format!("d0/f{changed:05}"));
        std::fs::write(&changed_path, "file 7!!").unwrap();
        // File times are coarse (a few ms): make the change visible to the stat check.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(10);
        std::fs::File::options()
            .write(true)
            .open(&changed_path)
            .unwrap()
            .set_modified(later)
            .unwrap();

        let reused = reuse_all(
            &manifest,
            &routes,
            &[],
            staging.path(),
            &local,
            &CancelToken::default(),
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(reused.len(), count + 1);
        assert_eq!(
            reused[count],
            Made::Not,
            "the file routed elsewhere is not taken"
        );
        assert_eq!(
            reused[changed],
            Made::Not,
            "a file changed since indexing is not taken"
        );
        assert!(!staging.path().join(format!("d0/f{changed:05}")).exists());
        for (i, entry) in manifest.files.iter().enumerate().take(count) {
            if i == changed {
                continue;
            }
            let original = std::fs::metadata(entry.path.join_to(installed.path())).unwrap();
            let linked_path = entry.path.join_to(staging.path());
            let linked = std::fs::symlink_metadata(&linked_path).unwrap();
            // The stat handed on for the record is the link's own (Unix), without reading it.
            let expected = cfg!(unix).then(|| FileStat::of(&linked_path, &linked));
            assert_eq!(reused[i], Made::Done(expected), "{}", entry.path);
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                assert_eq!(
                    original.ino(),
                    linked.ino(),
                    "{} is a hard link",
                    entry.path
                );
            }
            assert_eq!(original.len(), linked.len());
        }
    }
}
