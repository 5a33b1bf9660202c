//! Deltas for a new release against the releases before it, per file and per archive part.

use super::{PublishRequest, Repository};
use std::collections::BTreeMap;

use appstart_layout::fsutil;

use crate::blob;
use crate::error::Result;
use crate::manifest::{Archive, Content, DeltaEntry, FileEntry, Manifest};

use crate::tuf::metadata::TargetFile;

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
    /// Computes deltas for the files of a new release that the last `delta_depth` releases of
    /// the same app, channel and platform do not have, against the file at the same path in
    /// each of them, or else the most similar file (same file name, closest size: paths often
    /// carry the version, like `uv-0.5.10.data/scripts/uv`). Keeps a delta only when it is smaller than the file's blob. Returns how
    /// many were stored.
    pub(super) fn add_deltas(
        &self,
        published: &BTreeMap<String, TargetFile>,
        request: &PublishRequest,
        entries: &mut [FileEntry],
    ) -> Result<usize> {
        if request.delta_depth == 0 {
            return Ok(0);
        }
        let previous = super::manifest_delta::earlier_releases(published, request);
        let mut manifests = Vec::new();
        for release in &previous {
            let path = self.manifest_path(release);
            match Manifest::parse(&fsutil::read(&path)?, &path.display().to_string()) {
                Ok(manifest) => manifests.push(manifest),
                // A release published by an older appupdate (format 1) is still a fine
                // release, but no delta is made against it.
                Err(err) => log::warn!("no deltas from {}: {err}", release.target_name),
            }
        }
        let known = |hash: &str| {
            manifests.iter().any(|m| {
                m.files.iter().any(|f| {
                    f.blake3 == hash || f.parts().iter().any(|p| p.expected().blake3 == hash)
                })
            })
        };
        let mut stored = 0;
        for entry in entries.iter_mut() {
            if known(&entry.blake3) {
                continue; // clients coming from those releases already have it
            }
            let mut target_bytes: Option<Vec<u8>> = None;
            for manifest in &manifests {
                let Some(base) = manifest
                    .files
                    .iter()
                    .find(|f| f.path == entry.path)
                    .or_else(|| most_similar(manifest, entry))
                else {
                    continue;
                };
                if let (Some(archive), Some(base_archive)) = (&mut entry.archive, &base.archive) {
                    // Deltas for the parts; a whole-file delta of a compressed archive saves
                    // nothing.
                    stored += self.add_part_deltas(archive, base_archive, &known)?;
                    continue;
                }
                if target_bytes.is_none() {
                    target_bytes = Some(fsutil::read(&entry.path.join_to(&request.source))?);
                }
                let target = target_bytes.as_deref().unwrap_or_default();
                let (blake3, blob_size) = (entry.blake3.clone(), entry.blob_size);
                stored += usize::from(self.add_delta(
                    base,
                    &blake3,
                    blob_size,
                    target,
                    &mut entry.deltas,
                )?);
            }
        }
        Ok(stored)
    }

    /// Deltas for an archive's skeleton and changed members against an older archive's:
    /// each member against the member of the same name, or else the most similar one (same
    /// file name, closest size). Returns how many were stored.
    pub(super) fn add_part_deltas(
        &self,
        archive: &mut Archive,
        base: &Archive,
        known: &dyn Fn(&str) -> bool,
    ) -> Result<usize> {
        let mut stored = 0;
        let skeleton = &mut archive.skeleton;
        if !known(&skeleton.blake3) {
            let target = self.blob_content(&*skeleton)?;
            let (blake3, blob_size) = (skeleton.blake3.clone(), skeleton.blob_size);
            stored += usize::from(self.add_delta(
                &base.skeleton,
                &blake3,
                blob_size,
                &target,
                &mut skeleton.deltas,
            )?);
        }
        for member in &mut archive.members {
            if known(&member.blake3) {
                continue;
            }
            let file_name = |name: &str| name.rsplit('/').next().unwrap_or(name).to_string();
            let Some(base_member) =
                base.members
                    .iter()
                    .find(|m| m.name == member.name)
                    .or_else(|| {
                        base.members
                            .iter()
                            .filter(|m| file_name(&m.name) == file_name(&member.name))
                            .min_by_key(|m| m.size.abs_diff(member.size))
                    })
            else {
                continue;
            };
            let target = self.blob_content(&*member)?;
            let (blake3, blob_size) = (member.blake3.clone(), member.blob_size);
            stored += usize::from(self.add_delta(
                base_member,
                &blake3,
                blob_size,
                &target,
                &mut member.deltas,
            )?);
        }
        Ok(stored)
    }

    /// Computes the smallest delta from `base` to `target` (whose BLAKE3 and blob size are
    /// given) and stores it if it is smaller than the blob and not listed yet. Returns
    /// whether it stored one.
    pub(super) fn add_delta(
        &self,
        base: &dyn Content,
        target_blake3: &str,
        target_blob_size: u64,
        target: &[u8],
        deltas: &mut Vec<DeltaEntry>,
    ) -> Result<bool> {
        let base_expected = base.expected();
        if deltas.iter().any(|d| d.base == base_expected.blake3)
            || base_expected.size + target.len() as u64 >= crate::delta::MAX_DELTA_INPUT
        {
            return Ok(false);
        }
        // A delta file is named by its base and target, and older manifests may list it with
        // its hash: one that exists is listed as it is, never rewritten (nor recomputed).
        let existing = crate::delta::ALGORITHMS.into_iter().find_map(|algorithm| {
            let path = self.root.join(crate::delta::delta_path(
                base_expected.blake3,
                target_blake3,
                algorithm,
            ));
            path.is_file().then_some((algorithm, path))
        });
        let (algorithm, blake3, size) = match existing {
            Some((algorithm, path)) => {
                let (blake3, size) = blob::hash_file(&path)?;
                (algorithm, blake3, size)
            }
            None => {
                let base_bytes = self.blob_content(base)?;
                let Some((algorithm, delta)) =
                    crate::delta::encode_smallest(&base_bytes, target, 19)?
                else {
                    return Ok(false);
                };
                if delta.len() as u64 >= target_blob_size {
                    return Ok(false);
                }
                let path = self.root.join(crate::delta::delta_path(
                    base_expected.blake3,
                    target_blake3,
                    algorithm,
                ));
                fsutil::create_dir_all(&fsutil::parent_of(&path))?;
                fsutil::write_atomic(&path, &delta)?;
                let blake3 = blake3::hash(&delta).to_hex().to_string();
                (algorithm, blake3, delta.len() as u64)
            }
        };
        if size >= target_blob_size {
            return Ok(false);
        }
        deltas.push(DeltaEntry {
            base: base_expected.blake3.to_string(),
            base_size: base_expected.size,
            algorithm,
            size,
            blake3,
        });
        Ok(true)
    }
}
