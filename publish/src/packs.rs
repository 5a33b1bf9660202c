//! Packs: one file per release holding all of its blobs, for fresh installs in one request;
//! and pruning old ones.

use super::durable::Pending;
use super::{PublishRequest, Repository};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;

use appstart_layout::{RelativePath, fsutil};

use updater_core::Phase;
use updater_core::advanced::blob;
use updater_core::advanced::manifest;
use updater_core::advanced::manifest::Content;
use updater_core::advanced::manifest::FileEntry;
use updater_core::advanced::progress::ProgressMeter;
use updater_core::advanced::release;
use updater_core::{Error, Result};

impl Repository {
    /// Writes `packs/<app>/<channel>/<platform>/<version>.pack`: every blob of the release
    /// once, in file order, and records each file's offset in it.
    pub(super) fn write_pack(
        &self,
        request: &PublishRequest,
        entries: &mut [FileEntry],
        pending: &Pending,
    ) -> Result<manifest::PackRef> {
        let relative = format!(
            "packs/{}/{}/{}/{}.pack",
            request.app, request.channel, request.platform, request.version
        );
        let path = self.root.join(&relative);
        let folder = fsutil::parent_of(&path);
        fsutil::create_dir_all(&folder)?;
        let temp = folder.join(fsutil::temp_name("pack"));
        let progress = pack_progress(request, entries);
        let result = (|| -> Result<u64> {
            let mut out = std::io::BufWriter::new(
                File::create(&temp).map_err(|e| Error::io("creating", &temp, e))?,
            );
            let mut offsets: std::collections::HashMap<String, u64> =
                std::collections::HashMap::new();
            let mut size = 0u64;
            let mut place = |blake3: &str, pack_offset: &mut Option<u64>| -> Result<()> {
                if let Some(offset) = offsets.get(blake3) {
                    *pack_offset = Some(*offset);
                    return Ok(());
                }
                let blob_path = self.root.join(blob::blob_path(blake3));
                let mut blob_file =
                    File::open(&blob_path).map_err(|e| Error::io("opening", &blob_path, e))?;
                let copied = std::io::copy(&mut blob_file, &mut out)
                    .map_err(|e| Error::io("writing", &temp, e))?;
                offsets.insert(blake3.to_string(), size);
                *pack_offset = Some(size);
                size += copied;
                progress.add_bytes(copied);
                Ok(())
            };
            for entry in entries.iter_mut() {
                place(&entry.blake3, &mut entry.pack_offset)?;
                if let Some(archive) = &mut entry.archive {
                    let skeleton = &mut archive.skeleton;
                    place(&skeleton.blake3, &mut skeleton.pack_offset)?;
                    for member in &mut archive.members {
                        place(&member.blake3, &mut member.pack_offset)?;
                    }
                }
                progress.file_done(0);
            }
            progress.finish();
            let file = out
                .into_inner()
                .map_err(|e| Error::io("writing", &temp, e.into_error()))?;
            drop(file);
            // Made durable with the blobs, before the manifest naming it is signed.
            fsutil::rename(&temp, &path)?;
            pending.wrote(path.clone(), &folder);
            Ok(size)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        Ok(manifest::PackRef {
            path: RelativePath::parse(&relative)?,
            size: result?,
        })
    }

    /// Rewrites `pack` with `prefix` (the release's compressed manifest) before its blob
    /// slices, whose offsets in the manifest count from the end of the prefix (see
    /// `manifest_encoding`). Made durable with the blobs, before anything names it.
    pub(super) fn prefix_pack(
        &self,
        pack: &manifest::PackRef,
        prefix: &[u8],
        pending: &Pending,
    ) -> Result<()> {
        let path = self.root.join(pack.path.as_str());
        let folder = fsutil::parent_of(&path);
        let temp = folder.join(fsutil::temp_name("pack"));
        let result = (|| -> Result<()> {
            let mut out = File::create(&temp).map_err(|e| Error::io("creating", &temp, e))?;
            std::io::Write::write_all(&mut out, prefix)
                .map_err(|e| Error::io("writing", &temp, e))?;
            let mut data = File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
            // A kernel-side copy on Linux (`copy_file_range`).
            let copied =
                std::io::copy(&mut data, &mut out).map_err(|e| Error::io("copying", &path, e))?;
            if copied != pack.size {
                return Err(Error::Invalid(format!(
                    "{} changed while it was written: {copied} bytes, expected {}",
                    path.display(),
                    pack.size
                )));
            }
            drop(out);
            fsutil::rename(&temp, &path)?;
            pending.wrote(path.clone(), &folder);
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    /// Deletes the packs of all but the newest `keep` releases of each app, channel and
    /// platform. Packs only save requests; clients fetch what a pack lacks from `blobs/`, so
    /// this never breaks an install. Returns the files removed.
    pub fn prune_packs(&self, keep: usize) -> Result<Vec<PathBuf>> {
        let _lock = self.lock()?;
        self.prune_packs_locked(keep, None)
    }

    /// [`Repository::prune_packs`] with the publish lock held, for every release group or
    /// only `only`'s (app, channel, platform; its own pack is always kept: a release
    /// published after a newer one, like a fix for an older line, keeps its pack).
    pub(super) fn prune_packs_locked(
        &self,
        keep: usize,
        only: Option<&PublishRequest>,
    ) -> Result<Vec<PathBuf>> {
        let (targets, snapshot) = self.current_targets()?;
        let published = self.all_release_targets(&targets, &snapshot)?;
        let mut groups: BTreeMap<(String, String, String), Vec<release::Release>> = BTreeMap::new();
        for release in release::releases(&published) {
            let key = (
                release.custom.app.clone(),
                release.custom.channel.clone(),
                release.custom.platform.clone(),
            );
            if only.is_none_or(|r| (&r.app, &r.channel, &r.platform) == (&key.0, &key.1, &key.2)) {
                groups.entry(key).or_default().push(release);
            }
        }
        let mut removed = Vec::new();
        for ((app, channel, platform), mut releases) in groups {
            releases.sort_by(|a, b| b.semver.cmp(&a.semver));
            for release in releases.iter().skip(keep) {
                if only.is_some_and(|r| r.version.as_str() == release.version().as_str()) {
                    continue;
                }
                let path = self.root.join(format!(
                    "packs/{app}/{channel}/{platform}/{}.pack",
                    release.version()
                ));
                if path.exists() {
                    fsutil::remove_file_if_exists(&path)?;
                    removed.push(path);
                }
            }
        }
        Ok(removed)
    }
}

/// The `write` phase's meter: every distinct blob of the release, once.
fn pack_progress(request: &PublishRequest, entries: &[FileEntry]) -> ProgressMeter {
    let mut seen = std::collections::HashSet::new();
    let mut bytes = 0u64;
    for entry in entries {
        for content in std::iter::once(entry as &dyn Content).chain(entry.parts()) {
            if seen.insert(content.expected().blake3) {
                bytes += content.blob_size();
            }
        }
    }
    ProgressMeter::started(
        request.events.as_ref().map(|e| e.sink().clone()),
        Phase::Write,
        bytes,
        entries.len() as u64,
    )
}
