//! The publisher's side of "the manifest costs what changed": writes the compressed manifest
//! and one manifest delta per earlier release (the `--delta-depth` newest releases of the same
//! app, channel and platform below the new version), and lists them in the release target's
//! signed `custom` object. Formats and the client's checks: [`updater_core::advanced::manifest_encoding`].
//!
//! The files are written (atomically, content-addressed) before the targets metadata that
//! lists them is signed, like blobs; an existing file is never rewritten.

use std::collections::BTreeMap;
use std::path::PathBuf;

use appstart_layout::fsutil;
use sha2::Digest;

use super::{PublishRequest, Repository};
use updater_core::advanced::error::Result;
use updater_core::advanced::manifest;
use updater_core::advanced::manifest_encoding::{
    DELTA_SUFFIX, EncodedFile, ManifestDelta, ManifestEncodings, ZST_SUFFIX, encode, file_name,
};
use updater_core::advanced::release;
use updater_core::advanced::release::Release;
use updater_core::advanced::tuf::metadata::TargetFile;

/// zstd level of manifests and manifest deltas. The bulk of a manifest is hex hashes, which
/// no level compresses below half; higher levels cost seconds on a 10k-file manifest and
/// save about 1 %.
const MANIFEST_LEVEL: i32 = 9;

impl Repository {
    /// Writes the compressed form of `manifest` (the bytes of target `name`) and its deltas
    /// from earlier releases in `published`, and returns what to list in the target's
    /// `custom`.
    pub(super) fn write_manifest_encodings(
        &self,
        published: &BTreeMap<String, TargetFile>,
        request: &PublishRequest,
        name: &str,
        manifest: &[u8],
    ) -> Result<ManifestEncodings> {
        let dir = name.rsplit_once('/').map_or("", |(dir, _)| dir);
        let folder = self.root.join("targets").join(dir);
        fsutil::create_dir_all(&folder)?;
        let write = |bytes: &[u8], suffix: &str| -> Result<EncodedFile> {
            let sha256 = hex::encode(sha2::Sha256::digest(bytes));
            let path = folder.join(file_name(&sha256, suffix));
            if !path.exists() {
                fsutil::write_atomic(&path, bytes)?;
            }
            Ok(EncodedFile {
                length: bytes.len() as u64,
                sha256,
            })
        };
        let mut encodings = ManifestEncodings::default();
        let zst = write(&encode(&[], manifest, MANIFEST_LEVEL)?, ZST_SUFFIX)?;
        for (base_sha256, base) in self.earlier_manifests(published, request)? {
            let delta = encode(&base, manifest, MANIFEST_LEVEL)?;
            // A delta no smaller than the compressed manifest is of no use to anyone.
            if delta.len() as u64 >= zst.length {
                continue;
            }
            let file = write(&delta, DELTA_SUFFIX)?;
            encodings.deltas.push(ManifestDelta {
                base_sha256,
                length: file.length,
                sha256: file.sha256,
            });
        }
        encodings.zst = Some(zst);
        Ok(encodings)
    }

    /// The exact bytes (with their SHA-256) of the manifests of the `request.delta_depth`
    /// newest releases of the same app, channel and platform below the new version. A
    /// manifest file that is missing or does not match its signed hash is skipped.
    fn earlier_manifests(
        &self,
        published: &BTreeMap<String, TargetFile>,
        request: &PublishRequest,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let mut manifests = Vec::new();
        for release in earlier_releases(published, request, request.delta_depth) {
            let Some(sha256) = release.target.hashes.get("sha256") else {
                continue;
            };
            let path = self.manifest_path(&release);
            let limit = release.target.length.min(manifest::MAX_MANIFEST_SIZE);
            match fsutil::read_capped(&path, limit) {
                Ok(bytes) if hex::encode(sha2::Sha256::digest(&bytes)) == *sha256 => {
                    manifests.push((sha256.clone(), bytes));
                }
                Ok(_) => log::warn!(
                    "no manifest delta from {}: {} does not match its signed hash",
                    release.target_name,
                    path.display()
                ),
                Err(err) => log::warn!("no manifest delta from {}: {err}", release.target_name),
            }
        }
        Ok(manifests)
    }

    /// Where the manifest file of `release` is in this repository (consistent snapshots:
    /// `targets/<dir>/<sha256>.manifest.json`).
    pub(super) fn manifest_path(&self, release: &Release) -> PathBuf {
        let sha = release
            .target
            .hashes
            .get("sha256")
            .map_or("", String::as_str);
        let (dir, base) = release
            .target_name
            .rsplit_once('/')
            .unwrap_or(("", release.target_name.as_str()));
        self.root
            .join("targets")
            .join(dir)
            .join(format!("{sha}.{base}"))
    }
}

/// The `depth` newest releases in `published` of the request's app, channel and
/// platform below its version, newest first: the bases of file and manifest deltas.
pub(super) fn earlier_releases(
    published: &BTreeMap<String, TargetFile>,
    request: &PublishRequest,
    depth: usize,
) -> Vec<Release> {
    let Ok(new_version) = semver::Version::parse(request.version.as_str()) else {
        return Vec::new();
    };
    let mut earlier: Vec<Release> = release::releases(published)
        .into_iter()
        .filter(|r| {
            (&r.custom.app, &r.custom.channel, &r.custom.platform)
                == (&request.app, &request.channel, &request.platform)
                && r.semver < new_version
        })
        .collect();
    earlier.sort_by(|a, b| b.semver.cmp(&a.semver));
    earlier.truncate(depth);
    earlier
}
