//! Deltas for a new release against the releases before it, per file and per archive part.

use super::{PublishRequest, Repository};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use appstart_layout::fsutil;
use rayon::prelude::*;

use updater_core::Phase;
use updater_core::advanced::blob;
use updater_core::advanced::delta;
use updater_core::advanced::error::Result;
use updater_core::advanced::manifest::{
    Archive, Content, DeltaEntry, Expected, FileEntry, Manifest,
};
use updater_core::advanced::progress::ProgressMeter;

use updater_core::advanced::tuf::metadata::TargetFile;

/// The file of `manifest` most like `entry`: the same file name, the closest size.
pub(super) fn most_similar<'m>(manifest: &'m Manifest, entry: &FileEntry) -> Option<&'m FileEntry> {
    let name = entry.path.as_str().rsplit('/').next()?;
    manifest
        .files
        .iter()
        .filter(|f| f.path.as_str().rsplit('/').next() == Some(name))
        .min_by_key(|f| f.size.abs_diff(entry.size))
}

impl Repository {
    /// The manifests of the newest `depth` releases of the request's app, channel and
    /// platform older than it, newest first. A release published by an older appupdate
    /// (format 1) is skipped: still a fine release, but nothing is taken from it.
    pub(super) fn previous_manifests(
        &self,
        published: &BTreeMap<String, TargetFile>,
        request: &PublishRequest,
        depth: usize,
    ) -> Result<Vec<Manifest>> {
        let previous = super::manifest_delta::earlier_releases(published, request, depth);
        let mut manifests = Vec::new();
        for release in &previous {
            let path = self.manifest_path(release);
            match Manifest::parse(&fsutil::read(&path)?, &path.display().to_string()) {
                Ok(manifest) => manifests.push(manifest),
                Err(err) => log::warn!("nothing taken from {}: {err}", release.target_name),
            }
        }
        Ok(manifests)
    }

    /// Computes deltas for the files of a new release that the last `delta_depth` releases of
    /// the same app, channel and platform (`previous`, newest first) do not have, against the
    /// file at the same path in each of them, or else the most similar file (same file name,
    /// closest size: paths often carry the version, like `uv-0.5.10.data/scripts/uv`). Keeps
    /// a delta only when it is smaller than the file's blob; tries none for content under
    /// [`MIN_DELTA_TARGET`]. Returns how many were stored.
    pub(super) fn add_deltas(
        &self,
        previous: &[Manifest],
        request: &PublishRequest,
        entries: &mut [FileEntry],
    ) -> Result<usize> {
        let manifests = &previous[..request.delta_depth.min(previous.len())];
        if manifests.is_empty() {
            return Ok(0);
        }
        let known = |hash: &str| {
            manifests.iter().any(|m| {
                m.files.iter().any(|f| {
                    f.blake3 == hash || f.parts().iter().any(|p| p.expected().blake3 == hash)
                })
            })
        };
        // What to try, in a fixed order: per file (and per archive part), per older release.
        let mut jobs = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            if known(&entry.blake3) {
                continue; // clients coming from those releases already have it
            }
            for manifest in manifests {
                let Some(base) = manifest
                    .files
                    .iter()
                    .find(|f| f.path == entry.path)
                    .or_else(|| most_similar(manifest, entry))
                else {
                    continue;
                };
                if let (Some(archive), Some(base_archive)) = (&entry.archive, &base.archive) {
                    // Deltas for the parts; a whole-file delta of a compressed archive saves
                    // nothing.
                    part_jobs(index, archive, base_archive, &known, &mut jobs);
                    continue;
                }
                let source = Some(entry.path.join_to(&request.source));
                jobs.push(Job::new(Owner::File(index), entry, base, source));
            }
        }
        // Each (base, target) pair is computed once, on every core; the results go back to
        // their files in the order above, so the manifest does not depend on the threads.
        let mut unique: Vec<&Job> = Vec::new();
        let mut index_of = HashMap::new();
        for job in &jobs {
            index_of
                .entry((job.base.blake3.clone(), job.target.blake3.clone()))
                .or_insert_with(|| {
                    unique.push(job);
                    unique.len() - 1
                });
        }
        // Bounded memory: small pairs run side by side on every core; large ones (their
        // inputs and the encoder's index) one after the other on this thread, so a publish
        // holds one large delta search at a time. (Not a lock inside the parallel loop: a
        // thread holding it while the encoder waits on its own rayon work could pick up
        // another large pair and wait for itself.)
        let is_large = |job: &&Job| job.base.size + job.target.size > LARGE_PAIR;
        let progress = ProgressMeter::started(
            request.events.as_ref().map(|e| e.sink().clone()),
            Phase::PublishDelta,
            unique.iter().map(|job| job.target.size).sum(),
            unique.len() as u64,
        );
        let mut results: Vec<Option<DeltaEntry>> = unique
            .par_iter()
            .map(|job| match is_large(job) {
                true => Ok(None),
                false => {
                    let delta = self.compute_delta(job, request, 1);
                    progress.file_done(job.target.size);
                    delta
                }
            })
            .collect::<Result<_>>()?;
        for (job, result) in unique.iter().zip(results.iter_mut()) {
            if is_large(job) {
                *result = self.compute_delta(job, request, rayon::current_num_threads())?;
                progress.file_done(job.target.size);
            }
        }
        progress.finish();
        let mut stored = 0;
        for job in &jobs {
            let key = (job.base.blake3.clone(), job.target.blake3.clone());
            let Some(Some(delta)) = index_of.get(&key).and_then(|i| results.get(*i)) else {
                continue;
            };
            let deltas = job.owner.deltas(entries);
            if !deltas.iter().any(|d| d.base == delta.base) {
                deltas.push(delta.clone());
                stored += 1;
            }
        }
        Ok(stored)
    }

    /// Computes the smallest delta for `job` and stores it if it is smaller than the target's
    /// blob; returns it (`None`: no delta pays). A delta that already exists is listed as it
    /// is, never rewritten (older manifests may list it with its hash).
    ///
    /// The search runs with `threads` threads and the request's time limit per pair; a pair
    /// that runs out of time, or whose content is unrelated to its base, ships as its blob
    /// only (see [`updater_core::advanced::delta::encode_best`]).
    fn compute_delta(
        &self,
        job: &Job,
        request: &PublishRequest,
        threads: usize,
    ) -> Result<Option<DeltaEntry>> {
        let (base, target) = (&job.base, &job.target);
        if target.size < MIN_DELTA_TARGET {
            return Ok(None);
        }
        let existing = delta::ALGORITHMS.into_iter().find_map(|algorithm| {
            let path = self
                .root
                .join(delta::delta_path(&base.blake3, &target.blake3, algorithm));
            path.is_file().then_some((algorithm, path))
        });
        let (algorithm, blake3, size) = match existing {
            Some((algorithm, path)) => {
                let (blake3, size) = blob::hash_file(&path)?;
                (algorithm, blake3, size)
            }
            None => {
                let base_bytes = self.blob_content(&base.expected())?;
                let target_bytes = match &job.source {
                    Some(path) => fsutil::read(path)?,
                    None => self.blob_content(&target.expected())?,
                };
                let options = delta::EncodeOptions::default()
                    .with_level(19)
                    .with_time_budget(request.delta_time_limit)
                    .with_threads(threads.max(1));
                let (algorithm, delta) =
                    match delta::encode_best(&base_bytes, &target_bytes, &options)? {
                        delta::Encoded::Delta { algorithm, bytes } => (algorithm, bytes),
                        delta::Encoded::Skipped(delta::Skip::OutOfTime) => {
                            log::warn!(
                                "no delta from {} to {}: the search ran past --delta-time-limit; \
                                 clients fetch its whole blob",
                                base.name,
                                target.name
                            );
                            return Ok(None);
                        }
                        skipped => {
                            log::info!(
                                "no delta from {} to {}: {skipped:?}",
                                base.name,
                                target.name
                            );
                            return Ok(None);
                        }
                    };
                drop((base_bytes, target_bytes));
                if delta.len() as u64 >= target.blob_size {
                    return Ok(None);
                }
                let path =
                    self.root
                        .join(delta::delta_path(&base.blake3, &target.blake3, algorithm));
                fsutil::create_dir_all(&fsutil::parent_of(&path))?;
                fsutil::write_atomic(&path, &delta)?;
                let blake3 = blake3::hash(&delta).to_hex().to_string();
                (algorithm, blake3, delta.len() as u64)
            }
        };
        if size >= target.blob_size {
            return Ok(None);
        }
        Ok(Some(DeltaEntry {
            base: base.blake3.clone(),
            base_size: base.size,
            algorithm,
            size,
            blake3,
        }))
    }
}

/// Targets below this size get no delta: their blob is at most a few KiB, so a delta could
/// save little more than the request it costs, and the search would cost the publisher a
/// delta encoder run per small file (thousands in a large app).
pub(super) const MIN_DELTA_TARGET: u64 = 4096;

/// A pair whose inputs exceed this is computed while no other large pair is, so that a
/// publish's memory is that of one large delta search (plus small ones running before it),
/// not one per core.
const LARGE_PAIR: u64 = 64 << 20;

/// Content on one side of a delta.
#[derive(Debug, Clone)]
struct Side {
    name: String,
    size: u64,
    blake3: String,
    blob_size: u64,
}

impl Side {
    fn of(content: &dyn Content, name: &str) -> Self {
        let expected = content.expected();
        Side {
            name: name.to_string(),
            size: expected.size,
            blake3: expected.blake3.to_string(),
            blob_size: content.blob_size(),
        }
    }

    fn expected(&self) -> Expected<'_> {
        Expected {
            name: &self.name,
            size: self.size,
            blake3: &self.blake3,
        }
    }
}

/// Whose delta list a result goes to: a file, or a part of its archive.
#[derive(Debug, Clone, Copy)]
enum Owner {
    File(usize),
    Skeleton(usize),
    Member(usize, usize),
}

impl Owner {
    fn deltas(self, entries: &mut [FileEntry]) -> &mut Vec<DeltaEntry> {
        let index = match self {
            Owner::File(i) | Owner::Skeleton(i) | Owner::Member(i, _) => i,
        };
        let entry = &mut entries[index];
        match (self, entry.archive.as_deref_mut()) {
            (Owner::Skeleton(_), Some(archive)) => &mut archive.skeleton.deltas,
            (Owner::Member(_, m), Some(archive)) if m < archive.members.len() => {
                &mut archive.members[m].deltas
            }
            _ => &mut entry.deltas,
        }
    }
}

/// One delta to try: `base` (an older release's content) to `target`, whose bytes are read
/// from `source` (a file of the folder being published) or else from its blob.
#[derive(Debug)]
struct Job {
    owner: Owner,
    base: Side,
    target: Side,
    source: Option<PathBuf>,
}

impl Job {
    fn new(
        owner: Owner,
        target: &dyn Content,
        base: &dyn Content,
        source: Option<PathBuf>,
    ) -> Self {
        let name = target.expected().name.to_string();
        Job {
            owner,
            base: Side::of(base, &format!("base of {name}")),
            target: Side::of(target, &name),
            source,
        }
    }
}

/// Jobs for an archive's skeleton and changed members against an older archive's: each
/// member against the member of the same name, or else the most similar one (same file name,
/// closest size).
fn part_jobs(
    index: usize,
    archive: &Archive,
    base: &Archive,
    known: &dyn Fn(&str) -> bool,
    jobs: &mut Vec<Job>,
) {
    if !known(&archive.skeleton.blake3) {
        jobs.push(Job::new(
            Owner::Skeleton(index),
            &archive.skeleton,
            &base.skeleton,
            None,
        ));
    }
    let file_name = |name: &str| name.rsplit('/').next().unwrap_or(name).to_string();
    for (m, member) in archive.members.iter().enumerate() {
        if known(&member.blake3) {
            continue;
        }
        let Some(base_member) = base
            .members
            .iter()
            .find(|b| b.name == member.name)
            .or_else(|| {
                base.members
                    .iter()
                    .filter(|b| file_name(&b.name) == file_name(&member.name))
                    .min_by_key(|b| b.size.abs_diff(member.size))
            })
        else {
            continue;
        };
        jobs.push(Job::new(Owner::Member(index, m), member, base_member, None));
    }
}
