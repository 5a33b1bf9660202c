//! Fetching a release manifest in its cheapest signed form: a delta against the manifest of
//! an installed version, else the compressed manifest, else the plain one
//! (see [`crate::manifest_encoding`] for the files and the security argument).
//!
//! Each form is downloaded capped at its signed length and checked against its signed
//! SHA-256 before it is decoded; the decoded manifest is capped at the manifest's signed
//! length and checked against its signed hashes before it is parsed. Any failure of a smaller
//! form (a tampered or missing file, a base that does not match) is logged and the next form
//! is tried, so the result is the same manifest or an error, never a different one.

use sha2::Digest;

use appstart_layout::{InstallDir, VersionName};

use crate::download::{RetryPolicy, fetch_bytes};
use crate::error::{Error, Result};
use crate::manifest::{MAX_MANIFEST_SIZE, Manifest};
use crate::manifest_encoding::{
    DELTA_SUFFIX, EncodedFile, ManifestEncodings, ZST_SUFFIX, decode, file_name,
};
use crate::release::Release;
use crate::stage::InstalledRecord;
use crate::transport::{Transport, join_url};
use crate::tuf::client::{TrustedMetadata, check_hashes, check_target};

/// Where the manifest comes from.
pub(crate) struct ManifestSource<'a> {
    pub trusted: &'a TrustedMetadata,
    pub repo_url: &'a str,
    pub transport: &'a dyn Transport,
    pub retry: &'a RetryPolicy,
    /// Installed versions whose manifests may serve as delta bases, preferred first.
    pub bases: &'a [VersionName],
    pub install: &'a InstallDir,
}

/// Downloads and verifies the manifest of `release` against its signed target entry, with
/// `source.trusted`: the metadata of the refresh `release` was chosen from.
pub(crate) fn fetch_manifest(source: &ManifestSource<'_>, release: &Release) -> Result<Manifest> {
    let url = source.trusted.target_url(
        &join_url(source.repo_url, "targets"),
        &release.target_name,
        &release.target,
    );
    // The signed length, capped: a stolen targets key must not make us buffer 100 GB.
    let limit = release.target.length.min(MAX_MANIFEST_SIZE);
    let bytes = match fetch_encoded(source, release, limit) {
        Some(bytes) => bytes,
        None => {
            let bytes = fetch_bytes(source.transport, &url, limit, source.retry)?;
            check_target(&release.target, &bytes, &url)?;
            bytes
        }
    };
    let manifest = Manifest::parse(&bytes, &url)?;
    let custom = &release.custom;
    if manifest.app != custom.app
        || manifest.version != custom.version
        || manifest.channel != custom.channel
        || manifest.platform != custom.platform
        || manifest.executable != custom.executable
    {
        return Err(Error::format(
            &url,
            "the manifest's app, version, channel, platform or executable differ from the signed target's custom fields",
        ));
    }
    Ok(manifest)
}

/// The manifest from a delta or the compressed form, verified against the signed target;
/// `None` when neither is listed or usable.
fn fetch_encoded(source: &ManifestSource<'_>, release: &Release, limit: u64) -> Option<Vec<u8>> {
    let encodings =
        ManifestEncodings::from_custom(release.target.custom.as_ref(), &release.target_name);
    if !encodings.deltas.is_empty()
        && let Some((base, delta)) = find_base(source, &encodings)
    {
        let file = EncodedFile {
            length: delta.length,
            sha256: delta.sha256.clone(),
        };
        match fetch_decoded(source, release, &file, DELTA_SUFFIX, &base, limit) {
            Ok(bytes) => return Some(bytes),
            Err(err) => log::warn!("{err}; taking the compressed manifest instead"),
        }
    }
    let zst = encodings.zst.as_ref()?;
    match fetch_decoded(source, release, zst, ZST_SUFFIX, &[], limit) {
        Ok(bytes) => Some(bytes),
        Err(err) => {
            log::warn!("{err}; taking the plain manifest instead");
            None
        }
    }
}

/// The exact bytes of an installed version's manifest that a listed delta starts from.
fn find_base<'e>(
    source: &ManifestSource<'_>,
    encodings: &'e ManifestEncodings,
) -> Option<(Vec<u8>, &'e crate::manifest_encoding::ManifestDelta)> {
    for version in source.bases {
        let Some(record) = InstalledRecord::load(source.install, version) else {
            continue;
        };
        // The publisher writes `Manifest::to_bytes`; a manifest written otherwise has a
        // different hash and simply finds no delta.
        let bytes = record.manifest.to_bytes();
        let sha = hex::encode(sha2::Sha256::digest(&bytes));
        if let Some(delta) = encodings.deltas.iter().find(|d| d.base_sha256 == sha) {
            return Some((bytes, delta));
        }
    }
    None
}

/// Downloads `file` (`<sha256>.<suffix>` beside the manifest), checks its signed length and
/// hash, decodes it with `base` as prefix and checks the result against the signed manifest.
fn fetch_decoded(
    source: &ManifestSource<'_>,
    release: &Release,
    file: &EncodedFile,
    suffix: &str,
    base: &[u8],
    limit: u64,
) -> Result<Vec<u8>> {
    let dir = release
        .target_name
        .rsplit_once('/')
        .map_or("", |(dir, _)| dir);
    let targets_url = join_url(source.repo_url, "targets");
    let url = join_url(
        &join_url(&targets_url, dir),
        &file_name(&file.sha256, suffix),
    );
    let encoded = fetch_bytes(
        source.transport,
        &url,
        file.length.min(MAX_MANIFEST_SIZE),
        source.retry,
    )?;
    if encoded.len() as u64 != file.length {
        return Err(Error::Mismatch {
            what: url,
            kind: "length",
            expected: file.length.to_string(),
            actual: encoded.len().to_string(),
        });
    }
    let hashes = [("sha256".to_string(), file.sha256.clone())].into();
    check_hashes(&hashes, &encoded, &url, true)?;
    let bytes = decode(base, &encoded, limit, &url)?;
    check_target(&release.target, &bytes, &url)?;
    Ok(bytes)
}
