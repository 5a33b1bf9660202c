//! Building a version folder from a manifest, beside the running one.
//!
//! Steps (see `docs/crash-safety.md` for what is on disk after each):
//! 1. Start `versions/.staging-<version>` from a leftover of an interrupted run, else from
//!    `versions/.spare` (the folder the last prune set aside), else empty, keeping only the
//!    files proven to be untouched installed files with the wanted content, mode and path
//!    (`spare`; Unix; downloaded blobs survive in `state/cache`, so nothing is fetched
//!    twice).
//! 2. Plan ([`Stager::plan`], `plan`): for each file the cheapest route, fewest bytes first,
//!    then fewest requests:
//!    - a file of an installed version with the same BLAKE3 (free): hard-linked when its
//!      recorded inode, size and mtime show it untouched since we wrote it and its mode
//!      matches, else copied and verified while copying (why linking is safe:
//!      `docs/layout.md`);
//!    - a zip archive rebuilt from its parts (`archive`): members and headers taken from
//!      installed archives or files, rebuilt from deltas, or downloaded, whichever is
//!      cheapest for each part, when that costs less than the whole file;
//!    - the smallest delta whose base is on disk;
//!    - its blob.
//!
//!    Blobs the plan needs are fetched first from the release's pack, neighbours coalesced
//!    into one `Range` request ([`PACK_GAP`], smallest gaps first within a waste budget,
//!    [`PACK_WASTE_DIVISOR`]); each slice, once authenticated, is decoded straight into the
//!    files made from it, or kept in `state/cache` (`pack`).
//! 3. Carry the plan out, file by file (every written file is made read-only).
//!    Deltas and blobs go to `state/cache/` as `.partial` files (resumable, capped at their
//!    signed size), then are applied or decompressed and verified while streaming (`remote`). A delta or
//!    archive rebuild that fails falls back to the blob, never to a broken file.
//! 4. Verify the tree against the manifest: exactly the listed files and folders, right
//!    sizes and modes, nothing else (`verify`; the stats of the files made in bulk were
//!    read as they were made, `Made`).
//! 5. [`StagedFolder::make_durable`]: write the version's record (the caller's) beside its
//!    place, then make the folder and the record durable: one `syncfs` on Linux, else each
//!    file as it was written and every folder deepest first (`durable`). The record is
//!    renamed into place with the folder (`crate::switch::commit_version`).

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use appstart_layout::{InstallDir, fsutil};

mod archive;
mod durable;
mod estimate;
mod file_stat;
mod local;
mod pack;
mod parallel;
mod plan;
mod record;
mod remote;
mod reuse;
mod seal;
mod spare;
pub(crate) mod verify;
mod writers;
pub use pack::OpenedPack;
use plan::usable_deltas;
pub use plan::{Route, Slice, cost};
pub use record::{InstalledRecord, PendingRecord, Records};
use remote::Obtained;
pub(crate) use spare::{RECYCLES, set_aside};
pub use verify::verify_tree;

pub use file_stat::FileStat;
use seal::{seal, set_read_only};

pub use local::LocalFiles;

use crate::blob;
use crate::download::RetryPolicy;
use crate::error::{Error, Result};
use crate::manifest::{Expected, Manifest};
use crate::progress::ProgressMeter;
use crate::transport::Transport;

/// Fetch blobs from the pack only when at least this many are needed.
pub const PACK_MIN_BLOBS: usize = 4;
/// Blobs closer than this in the pack may be fetched in one range, gap included.
pub const PACK_GAP: u64 = 64 * 1024;
/// Gap bytes fetched to save requests are at most the needed bytes over this, plus
/// [`PACK_WASTE_FLOOR`]: issue 14 wants an update's wire bytes within 1.1x its content.
pub const PACK_WASTE_DIVISOR: u64 = 10;
/// Gap bytes any update may fetch to save requests, whatever its size.
pub const PACK_WASTE_FLOOR: u64 = 16 * 1024;

/// What staging did, by source (the plan that was carried out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageReport {
    /// Bytes received over the network (deltas, blobs and pack ranges; not metadata).
    pub bytes_downloaded: u64,
    /// Files taken from installed versions (those kept in place included).
    pub files_reused: usize,
    /// Files already in place in the folder staging started from (`versions/.spare` or an
    /// interrupted staging): neither linked nor fetched (`spare`).
    pub files_kept: usize,
    /// Files that needed the network (patched, rebuilt or from a blob).
    pub files_downloaded: usize,
    /// Files rebuilt from a local file and a delta.
    pub files_patched: usize,
    /// Bytes of deltas received (for whole files and archive parts).
    pub delta_bytes: u64,
    /// Files that came from their blob.
    pub files_from_blobs: usize,
    /// Bytes of blobs received (for whole files and archive parts).
    pub blob_bytes: u64,
    /// Zip archives rebuilt from their parts.
    pub archives_rebuilt: usize,
    /// Archive parts (members, headers) taken from local files or archives.
    pub parts_local: usize,
    /// Archive parts rebuilt from a delta.
    pub parts_patched: usize,
    /// Archive parts that came from their blob.
    pub parts_from_blobs: usize,
    /// Range requests made to packs.
    pub pack_requests: usize,
}

/// Everything staging needs.
pub struct Stager<'a> {
    /// The install.
    pub install: &'a InstallDir,
    /// The network.
    pub transport: &'a dyn Transport,
    /// Repository base URL.
    pub repo_url: &'a str,
    /// Retry policy for blob downloads.
    pub retry: RetryPolicy,
    /// The download phase's meter, which the transport also counts received bytes into:
    /// staging starts it with the plan's totals, counts each file made, and finishes it.
    pub progress: Option<&'a ProgressMeter>,
    /// Where the pack's blob slices start: the length of the compressed manifest the pack
    /// begins with (`manifest_in_pack`), else 0. Manifest offsets count from here.
    pub pack_data_start: u64,
    /// The pack's response, when a fresh install read the manifest from its first bytes.
    pub opened_pack: std::sync::Mutex<Option<pack::OpenedPack>>,
}

impl std::fmt::Debug for Stager<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stager")
            .field("install", &self.install)
            .field("repo_url", &self.repo_url)
            .finish_non_exhaustive()
    }
}

impl Stager<'_> {
    /// Builds `manifest` in its staging folder and checks it (steps 1 to 4). Returns the
    /// folder, not yet durable: [`StagedFolder::make_durable`] is step 5.
    pub fn stage(&self, manifest: &Manifest, local: &LocalFiles) -> Result<StagedFolder> {
        // Step 1.
        let staging = self.install.staging_dir(&manifest.version);
        let wanted = folders_of(manifest);
        let kept = spare::start_from(self.install, &staging, manifest, &wanted, local)?;
        crate::fault::step("recycled");
        let scratch = self.scratch_dir();
        fsutil::remove_dir_all_if_exists(&scratch)?;
        let mut folders: BTreeSet<PathBuf> = BTreeSet::new();
        folders.insert(staging.clone());
        // In order, so each folder comes after its parent (a prefix sorts first).
        for relative in wanted {
            let path = staging.join(relative);
            match std::fs::create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => {}
                Err(e) => return Err(Error::io("creating folder", &path, e)),
            }
            folders.insert(path);
        }
        // Step 2.
        let (routes, blobs) = self.plan_keeping(manifest, local, &kept);
        if let Some(progress) = self.progress {
            let bytes =
                estimate::download_size(manifest, &routes, local, &self.install.cache_dir());
            progress.start(bytes, manifest.files.len() as u64);
        }
        let mut report = StageReport::default();
        // Files taken from installed versions (linked on their own threads, [`reuse`]) and
        // files written while their blobs stream in from the pack, both at once: step 3
        // skips them.
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (reused, from_pack) = std::thread::scope(|scope| {
            let linker = scope.spawn(|| {
                reuse::reuse_all(
                    manifest,
                    &routes,
                    &kept,
                    &staging,
                    local,
                    &self.retry.cancel,
                    &stop,
                )
            });
            let from_pack = self.write_from_pack(manifest, &routes, blobs, local, &staging);
            if from_pack.is_err() {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            let reused = linker
                .join()
                .unwrap_or_else(|_| Err(Error::Invalid("a file linker panicked".into())));
            (reused, from_pack)
        });
        let (from_pack, received, requests) = from_pack?;
        let reused = reused?;
        report.blob_bytes += received;
        report.bytes_downloaded += received;
        report.pack_requests += requests;
        // The stats known without reading them again, for step 4.
        let known: Vec<Option<FileStat>> = from_pack
            .iter()
            .zip(&reused)
            .zip(&kept)
            .map(|((pack, reused), kept)| pack.stat().or(reused.stat()).or(kept.stat()))
            .collect();
        // Step 3.
        for (index, (entry, route)) in manifest.files.iter().zip(routes).enumerate() {
            self.retry.cancel.check()?;
            let dest = entry.path.join_to(&staging);
            let mut done =
                from_pack[index].is_done() || reused[index].is_done() || kept[index].is_done();
            if kept[index].is_done() {
                report.files_reused += 1;
                report.files_kept += 1;
            } else if from_pack[index].is_done() {
                report.files_downloaded += 1;
                report.files_from_blobs += 1;
            } else if reused[index].is_done() {
                report.files_reused += 1;
            }
            if !done
                && route == Route::Archive
                && let Some(archive) = &entry.archive
            {
                match archive::rebuild(self, entry, archive, &dest, local, &scratch) {
                    Ok(parts) => {
                        report.add_parts(&parts);
                        report.archives_rebuilt += 1;
                        report.files_downloaded += 1;
                        set_read_only(&dest, entry.executable)?;
                        done = true;
                    }
                    Err(err) if err.ends_operation() => return Err(err),
                    Err(err) => {
                        log::warn!(
                            "could not rebuild {} from its parts, taking the whole file: {}",
                            entry.path,
                            crate::error::chain(&err)
                        );
                        fsutil::remove_file_if_exists(&dest)?;
                    }
                }
            }
            if !done {
                let obtained = self.obtain_remote(entry, &dest, local, &scratch)?;
                set_read_only(&dest, entry.executable)?;
                report.files_downloaded += 1;
                match obtained {
                    Obtained::Delta(bytes) => {
                        report.files_patched += 1;
                        report.delta_bytes += bytes;
                        report.bytes_downloaded += bytes;
                    }
                    Obtained::Blob(bytes) => {
                        report.files_from_blobs += 1;
                        report.blob_bytes += bytes;
                        report.bytes_downloaded += bytes;
                    }
                }
            }
            #[cfg(feature = "fault-injection")]
            crate::fault::step(&format!("stage-file-{}", index + 1));
            if let Some(progress) = self.progress {
                progress.file_done(0);
            }
        }
        if let Some(progress) = self.progress {
            progress.finish();
        }
        fsutil::remove_dir_all_if_exists(&scratch)?;
        // Step 4.
        self.retry.cancel.check()?;
        let stats = verify::verify_tree_knowing(&staging, manifest, &known)?;
        crate::fault::step("verified");
        Ok(StagedFolder {
            path: staging,
            report,
            stats,
            folders,
        })
    }

    /// Where archive parts and extracted bases are kept while staging.
    fn scratch_dir(&self) -> PathBuf {
        self.install.cache_dir().join("scratch")
    }
}

impl StageReport {
    fn add_parts(&mut self, parts: &StageReport) {
        self.parts_local += parts.parts_local;
        self.parts_patched += parts.parts_patched;
        self.parts_from_blobs += parts.parts_from_blobs;
        self.delta_bytes += parts.delta_bytes;
        self.blob_bytes += parts.blob_bytes;
        self.bytes_downloaded += parts.bytes_downloaded;
    }
}

/// Every folder of `manifest`, relative (`a`, `a/b`): its listed folders and the folders
/// holding its files, each with its ancestors.
fn folders_of(manifest: &Manifest) -> BTreeSet<&str> {
    let mut folders = BTreeSet::new();
    let mut last_parent = "";
    for dir in &manifest.directories {
        folders.extend(ancestors(dir.as_str()));
    }
    for entry in &manifest.files {
        if let Some((parent, _)) = entry.path.as_str().rsplit_once('/')
            && parent != last_parent
        {
            // Files are sorted by path: most share the previous file's folder.
            folders.extend(ancestors(parent));
            last_parent = parent;
        }
    }
    folders
}

/// `a`, `a/b`, `a/b/c` for `a/b/c`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .map(move |(at, _)| &path[..at])
        .chain(std::iter::once(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folders_of_a_manifest_come_with_their_ancestors_parents_first() {
        let h = "0".repeat(64);
        let file = |path: &str| {
            let exec = path == "app";
            format!(
                r#"{{"path":"{path}","size":1,"executable":{exec},"blake3":"{h}","blob_size":1,"blob_blake3":"{h}"}}"#
            )
        };
        let json = format!(
            r#"{{"format":2,"app":"demo","version":"2.0.0","channel":"stable","platform":"any","executable":"app","directories":["empty/deep"],"files":[{},{},{},{}]}}"#,
            file("a/b/c/one"),
            file("a/b/c/two"),
            file("a/x"),
            file("app")
        );
        let manifest = Manifest::parse(json.as_bytes(), "test manifest").unwrap();
        assert_eq!(
            folders_of(&manifest).into_iter().collect::<Vec<_>>(),
            ["a", "a/b", "a/b/c", "empty", "empty/deep"]
        );
        assert_eq!(
            ancestors("a/b/c").collect::<Vec<_>>(),
            ["a", "a/b", "a/b/c"]
        );
    }
}

/// Copies `source` to a new file `dest`, verifying size and BLAKE3 while copying. Returns the
/// new file, still open and not flushed: [`seal`] finishes it.
fn copy_file_verified(source: &Path, dest: &Path, expected: &Expected<'_>) -> Result<File> {
    let input = File::open(source).map_err(|e| Error::io("opening", source, e))?;
    let mut output = File::create(dest).map_err(|e| Error::io("creating", dest, e))?;
    blob::copy_verified(
        input,
        &mut output,
        expected,
        &source.display().to_string(),
        dest,
    )?;
    Ok(output)
}

/// A staging folder filled and checked against its manifest (steps 1 to 4), not yet durable.
#[derive(Debug)]
pub struct StagedFolder {
    /// The folder (`versions/.staging-<version>`).
    pub path: PathBuf,
    /// What staging did.
    pub report: StageReport,
    /// The stats of its files, in the manifest's order: what its record keeps.
    pub stats: Vec<FileStat>,
    /// Every folder made, itself included.
    folders: BTreeSet<PathBuf>,
}

impl StagedFolder {
    /// Step 5: writes `record` (if any) beside its place, then makes every file and folder of
    /// the staging folder durable, and the record with them: one `syncfs` on Linux flushes
    /// both, so the record needs no flush of its own when it is on the same file system.
    /// Returns the record, to be renamed into place with the folder
    /// ([`crate::switch::commit_version`]).
    pub fn make_durable(
        &self,
        install: &InstallDir,
        record: Option<&InstalledRecord>,
    ) -> Result<Option<PendingRecord>> {
        let pending = match record {
            Some(record) => {
                fsutil::create_dir_all(&install.manifests_dir())?;
                let covered = durable::covers(&self.path, &install.manifests_dir());
                Some(record.write_pending(install, !covered)?)
            }
            None => None,
        };
        if let Err(err) = durable::staging_written(&self.path, &self.folders) {
            if let Some(pending) = pending {
                pending.discard();
            }
            return Err(err);
        }
        crate::fault::step("staged");
        Ok(pending)
    }
}

/// Whether a step that makes many files at once ([`reuse`], [`writers`]) made one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made {
    /// Not made: left to the per-file step.
    Not,
    /// Made, with its stat where the step knew it without reading it again
    /// ([`FileStat::of_open`], or the installed file a link shares).
    Done(Option<FileStat>),
}

impl Made {
    fn is_done(self) -> bool {
        matches!(self, Made::Done(_))
    }

    fn stat(self) -> Option<FileStat> {
        match self {
            Made::Done(stat) => stat,
            Made::Not => None,
        }
    }
}
