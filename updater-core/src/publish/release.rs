//! Publishing one release: scan the folder, store its blobs and archives (on every core),
//! add deltas and a pack, write the manifest, make all of it durable with one sync, then sign
//! the metadata that names them, and last delete the packs of older releases beyond
//! `keep_packs` (in that order; the argument is in [`super`]'s docs).

use super::source::{marks_executable, scan_source};
use super::store::Run;
use super::{Expiry, PublishReport, PublishRequest, Repository};
use std::collections::BTreeMap;
use std::time::SystemTime;

use appstart_layout::fsutil;
use serde_json::Map;
use sha2::Digest;

use crate::error::{Error, Result};
use crate::manifest::{FileEntry, MANIFEST_FORMAT, Manifest, check_label};
use rayon::prelude::*;

use crate::release::{ReleaseCustom, target_name};
use crate::tuf::keys::KeyDir;
use crate::tuf::metadata::{TargetFile, expires_in_days};

impl Repository {
    /// Publishes `request.source` as a release.
    pub fn publish(
        &self,
        keys: &KeyDir,
        expiry: &Expiry,
        request: &PublishRequest,
    ) -> Result<PublishReport> {
        for (field, value) in [
            ("app", &request.app),
            ("channel", &request.channel),
            ("platform", &request.platform),
        ] {
            check_label(field, value)?;
        }
        semver::Version::parse(request.version.as_str()).map_err(|e| {
            Error::Invalid(format!(
                "version {}: not a SemVer version (like 1.2.3): {e}",
                request.version
            ))
        })?;
        let _lock = self.lock()?;
        let (mut targets, snapshot) = self.current_targets()?;
        let name = target_name(
            &request.app,
            &request.channel,
            &request.platform,
            &request.version,
        );
        // Checked before any file is written: the role, its paths and its keys.
        let delegated = match &request.role {
            Some(role) => Some(self.delegated_for_publish(keys, &targets, &snapshot, role, &name)?),
            None => None,
        };
        let published = self.all_release_targets(&targets, &snapshot)?;
        if published.contains_key(&name) {
            return Err(Error::Invalid(format!(
                "{} {} is already published for channel {} and platform {}; versions are immutable, publish a new one",
                request.app, request.version, request.channel, request.platform
            )));
        }
        // Clients keep each version in a folder named after it; on macOS and Windows two
        // versions differing only in case would be one folder.
        let prefix = format!("{}/{}/{}/", request.app, request.channel, request.platform);
        if let Some(existing) = targets.targets.keys().find_map(|other| {
            let version = other
                .strip_prefix(&prefix)?
                .strip_suffix("/manifest.json")?;
            (version != request.version.as_str()
                && version.eq_ignore_ascii_case(request.version.as_str()))
            .then_some(version)
        }) {
            return Err(Error::Invalid(format!(
                "{} {} differs only in letter case from the published version {existing} (channel {}, platform {}); clients on macOS and Windows cannot keep both, choose another version",
                request.app, request.version, request.channel, request.platform
            )));
        }
        // Step 1: blobs, deltas, the pack, then the manifest target; then one sync.
        let (files, directories) = scan_source(&request.source)?;
        // The releases before this one: deltas are made against them, and their blobs are
        // reused without being checked again (a signed manifest names only durable blobs).
        let previous = self.previous_manifests(&published, request, request.delta_depth.max(1))?;
        let run = Run::default();
        run.trust(&self.root, &previous);
        super::durable::make_fan_out(&self.root.join("blobs"), &run.pending)?;
        // Hashing and compressing on every core; `collect` keeps the files' order, and a
        // blob's bytes do not depend on the thread that made it, so the manifest is the same
        // whatever the number of threads.
        let stored: Vec<(FileEntry, usize, u64, bool)> = files
            .into_par_iter()
            .map(|(path, execute_bit)| {
                let executable = marks_executable(request, &path, execute_bit);
                let source = path.join_to(&request.source);
                let (mut entry, written) =
                    self.store_blob(&run, &source, path, executable, request.level)?;
                let (mut new_blobs, mut new_blob_bytes) = (0, 0);
                if written {
                    new_blobs += 1;
                    new_blob_bytes += entry.blob_size;
                }
                let mut new = (0, 0);
                let archive = self.store_archive(&run, &source, request.level, &mut new)?;
                let is_archive = archive.is_some();
                if let Some(archive) = archive {
                    entry.archive = Some(Box::new(archive));
                    new_blobs += new.0;
                    new_blob_bytes += new.1;
                }
                Ok((entry, new_blobs, new_blob_bytes, is_archive))
            })
            .collect::<Result<_>>()?;
        let mut entries = Vec::with_capacity(stored.len());
        let (mut new_blobs, mut new_blob_bytes, mut archives) = (0, 0, 0);
        for (entry, blobs, bytes, is_archive) in stored {
            entries.push(entry);
            new_blobs += blobs;
            new_blob_bytes += bytes;
            archives += usize::from(is_archive);
        }
        let deltas = self.add_deltas(&previous, request, &mut entries)?;
        let pack = self.write_pack(request, &mut entries, &run.pending)?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            app: request.app.clone(),
            version: request.version.clone(),
            channel: request.channel.clone(),
            platform: request.platform.clone(),
            executable: request.executable.clone(),
            launcher: request.launcher.clone(),
            files: entries,
            directories,
            pack: Some(pack),
        };
        manifest
            .validate(&request.source.display().to_string())
            .map_err(|e| {
                Error::Invalid(format!("{e} (check --exe, --launcher and the file modes)"))
            })?;
        let bytes = manifest.to_bytes();
        let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        let (dir, base) = name.rsplit_once('/').unwrap_or(("", name.as_str()));
        let target_path = self
            .root
            .join("targets")
            .join(dir)
            .join(format!("{sha256}.{base}"));
        fsutil::create_dir_all(&fsutil::parent_of(&target_path))?;
        fsutil::write_atomic(&target_path, &bytes)?;
        let mut encodings = self.write_manifest_encodings(&published, request, &name, &bytes)?;
        if let (Some(pack), Some(zst)) = (&manifest.pack, &encodings.zst) {
            // The pack begins with the compressed manifest: one request for a fresh install.
            let zst_path =
                fsutil::parent_of(&target_path).join(crate::manifest_encoding::file_name(
                    &zst.sha256,
                    crate::manifest_encoding::ZST_SUFFIX,
                ));
            self.prefix_pack(pack, &fsutil::read(&zst_path)?, &run.pending)?;
            encodings.in_pack = Some(pack.path.as_str().to_string());
        }
        // Everything above is durable before anything that names it is signed.
        run.pending.sync(&self.root)?;

        // Step 2 and 3: targets, snapshot, timestamp.
        let custom = ReleaseCustom {
            app: request.app.clone(),
            version: request.version.clone(),
            channel: request.channel.clone(),
            platform: request.platform.clone(),
            executable: request.executable.clone(),
            control: Default::default(),
            data: Default::default(),
        };
        let mut hashes = BTreeMap::new();
        hashes.insert("sha256".to_string(), sha256);
        let target = TargetFile {
            length: bytes.len() as u64,
            hashes,
            custom: Some(encodings.added_to(
                serde_json::to_value(&custom).map_err(|e| Error::Invalid(e.to_string()))?,
            )?),
            extra: Map::new(),
        };
        let (role, version) = match delegated {
            None => {
                targets.targets.insert(name.clone(), target);
                targets.version += 1;
                targets.expires = expires_in_days(SystemTime::now(), expiry.targets_days);
                self.write_targets_snapshot_timestamp(keys, expiry, &targets, Some(&snapshot))?;
                ("targets".to_string(), targets.version)
            }
            Some(mut delegated) => {
                delegated.targets.targets.insert(name.clone(), target);
                delegated.targets.version += 1;
                delegated.targets.expires = expires_in_days(SystemTime::now(), expiry.targets_days);
                let version = delegated.targets.version;
                self.write_delegated_snapshot_timestamp(
                    keys,
                    expiry,
                    &delegated.name,
                    &delegated.targets,
                    &delegated.signers,
                    &snapshot,
                )?;
                (delegated.name, version)
            }
        };
        // Step 4: the new metadata is live; older packs only cost space now.
        let pruned_packs = match request.keep_packs {
            Some(keep) => self.prune_packs_locked(keep, Some(request))?,
            None => Vec::new(),
        };
        Ok(PublishReport {
            target_name: name,
            files: manifest.files.len(),
            new_blobs,
            new_blob_bytes,
            role,
            targets_version: version,
            deltas,
            archives,
            pruned_packs,
        })
    }
}
