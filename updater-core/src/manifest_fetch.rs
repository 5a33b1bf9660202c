//! Fetching a release manifest in its cheapest signed form: a delta against the manifest of
//! an installed version, else the compressed manifest, else the plain one
//! (see [`crate::manifest_encoding`] for the files and the security argument).
//!
//! Each form is downloaded capped at its signed length and checked against its signed
//! SHA-256 before it is decoded; the decoded manifest is capped at the manifest's signed
//! length and checked against its signed hashes before it is parsed. Any failure of a smaller
//! form (a tampered or missing file, a base that does not match) is logged and the next form
//! is tried, so the result is the same manifest or an error, never a different one.
//!
//! A fresh install (no installed manifest to be a delta base) of a release whose pack begins
//! with the compressed manifest (`manifest_in_pack`) asks for the whole pack: it reads and
//! checks the manifest from the first bytes, and hands the rest of the same response to the
//! stager ([`OpenedPack`]), which authenticates each blob slice against that manifest as it
//! streams by. Manifest and content then cost one request.

use sha2::Digest;

use appstart_layout::VersionName;

use crate::download::{RetryPolicy, fetch_bytes};
use crate::error::{Error, Result};
use crate::manifest::{MAX_MANIFEST_SIZE, Manifest};
use crate::manifest_encoding::{
    DELTA_SUFFIX, EncodedFile, ManifestEncodings, ZST_SUFFIX, decode, file_name,
};
use crate::release::Release;
use crate::stage::{OpenedPack, Records};
use crate::transport::{Request, Status, Transport, join_url};
use crate::tuf::client::{TrustedMetadata, check_hashes, check_target};
use std::io::Read;

/// Where the manifest comes from.
pub(crate) struct ManifestSource<'a> {
    pub trusted: &'a TrustedMetadata,
    pub repo_url: &'a str,
    pub transport: &'a dyn Transport,
    pub retry: &'a RetryPolicy,
    /// Installed versions whose manifests may serve as delta bases, preferred first.
    pub bases: &'a [VersionName],
    /// The install's records, read once for the whole update.
    pub records: &'a Records<'a>,
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
    let bytes = match fetch_encoded(source, release, limit)? {
        Some(bytes) => bytes,
        None => loop {
            let bytes = fetch_bytes(source.transport, &url, limit, source.retry)?;
            match check_target(&release.target, &bytes, &url) {
                Ok(()) => break bytes,
                // Mirrors: ask the next source while one remains.
                Err(err) if source.transport.reject(&url) => {
                    log::warn!("{err}; fetching the manifest from the next repository URL");
                }
                Err(err) => return Err(err),
            }
        },
    };
    checked_manifest(&bytes, &url, release)
}

/// Parses the (authenticated) manifest bytes and checks them against the release's signed
/// custom fields.
fn checked_manifest(bytes: &[u8], url: &str, release: &Release) -> Result<Manifest> {
    let manifest = Manifest::parse(bytes, url)?;
    let custom = &release.custom;
    if manifest.app != custom.app
        || manifest.version != custom.version
        || manifest.channel != custom.channel
        || manifest.platform != custom.platform
        || manifest.executable != custom.executable
    {
        return Err(Error::format(
            url,
            "the manifest's app, version, channel, platform or executable differ from the signed target's custom fields",
        ));
    }
    Ok(manifest)
}

/// What a fresh install fetched first: the manifest, and the pack response it came from
/// (positioned after the manifest) when the release's pack begins with it.
pub(crate) struct FreshManifest {
    pub manifest: Manifest,
    pub opened_pack: Option<OpenedPack>,
    /// Body bytes of the pack response that were the manifest (metadata, not content).
    pub manifest_bytes_in_pack: u64,
}

/// [`fetch_manifest`] for a fresh install: from the first bytes of the release's pack when it
/// begins with the compressed manifest, the rest of that response left open for the stager;
/// else (or if that fails: logged) as [`fetch_manifest`] does. `pack_transport` carries the
/// pack's request, so its content bytes are not counted as metadata.
pub(crate) fn fetch_fresh(
    source: &ManifestSource<'_>,
    release: &Release,
    pack_transport: &dyn Transport,
) -> Result<FreshManifest> {
    let encodings =
        ManifestEncodings::from_custom(release.target.custom.as_ref(), &release.target_name);
    if let (Some(pack), Some(zst)) = (&encodings.in_pack, &encodings.zst) {
        let url = join_url(source.repo_url, pack);
        match open_pack(release, pack_transport, &url, zst) {
            Ok((manifest, opened)) if pack_data_start(release, &manifest) == zst.length => {
                return Ok(FreshManifest {
                    manifest,
                    opened_pack: Some(opened),
                    manifest_bytes_in_pack: zst.length,
                });
            }
            Ok(_) => log::warn!(
                "{url}: the manifest names another pack; fetching the manifest on its own"
            ),
            Err(err) if err.ends_operation() => return Err(err),
            Err(err) => log::warn!("{err}; fetching the manifest on its own"),
        }
    }
    Ok(FreshManifest {
        manifest: fetch_manifest(source, release)?,
        opened_pack: None,
        manifest_bytes_in_pack: 0,
    })
}

/// Where the blob slices of `manifest`'s pack start: after the compressed manifest when the
/// release's signed `custom` says the pack begins with it (and names the manifest's pack),
/// else 0.
pub(crate) fn pack_data_start(release: &Release, manifest: &Manifest) -> u64 {
    let encodings =
        ManifestEncodings::from_custom(release.target.custom.as_ref(), &release.target_name);
    match (&encodings.in_pack, &encodings.zst, &manifest.pack) {
        (Some(in_pack), Some(zst), Some(pack)) if pack.path.as_str() == in_pack => zst.length,
        _ => 0,
    }
}

/// GETs the whole pack at `url` and reads the compressed manifest from its first
/// `zst.length` bytes, checked against the signed length and SHA-256 before it is decoded,
/// and the decoded manifest against the signed target. Returns it with the open response.
fn open_pack(
    release: &Release,
    transport: &dyn Transport,
    url: &str,
    zst: &EncodedFile,
) -> Result<(Manifest, OpenedPack)> {
    let response = transport.get(url, &Request::default())?;
    if response.status != Status::Full {
        return Err(Error::format(url, "the server did not send the whole pack"));
    }
    let mut body = response.body;
    let mut prefix = Vec::new();
    (&mut body)
        .take(zst.length.min(MAX_MANIFEST_SIZE))
        .read_to_end(&mut prefix)
        .map_err(|e| {
            crate::watched::read_error(e, |e| Error::Transport {
                url: url.to_string(),
                message: e.to_string(),
                retryable: true,
                retry_after: None,
            })
        })?;
    if prefix.len() as u64 != zst.length {
        return Err(Error::Mismatch {
            what: url.to_string(),
            kind: "length of the manifest at the start of the pack",
            expected: zst.length.to_string(),
            actual: prefix.len().to_string(),
        });
    }
    let hashes = [("sha256".to_string(), zst.sha256.clone())].into();
    check_hashes(&hashes, &prefix, url, true)?;
    let limit = release.target.length.min(MAX_MANIFEST_SIZE);
    let bytes = decode(&[], &prefix, limit, url)?;
    check_target(&release.target, &bytes, url)?;
    let manifest = checked_manifest(&bytes, url, release)?;
    Ok((
        manifest,
        OpenedPack {
            body,
            position: zst.length,
        },
    ))
}

/// The manifest from a delta or the compressed form, verified against the signed target;
/// `None` when neither is listed or usable. A cancel or a stall ends it with that error
/// instead of trying the next form.
fn fetch_encoded(
    source: &ManifestSource<'_>,
    release: &Release,
    limit: u64,
) -> Result<Option<Vec<u8>>> {
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
            Ok(bytes) => return Ok(Some(bytes)),
            Err(err) if err.ends_operation() => return Err(err),
            Err(err) => log::warn!("{err}; taking the compressed manifest instead"),
        }
    }
    let Some(zst) = encodings.zst.as_ref() else {
        return Ok(None);
    };
    match fetch_decoded(source, release, zst, ZST_SUFFIX, &[], limit) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.ends_operation() => Err(err),
        Err(err) => {
            log::warn!("{err}; taking the plain manifest instead");
            Ok(None)
        }
    }
}

/// The exact bytes of an installed version's manifest that a listed delta starts from.
fn find_base<'e>(
    source: &ManifestSource<'_>,
    encodings: &'e ManifestEncodings,
) -> Option<(Vec<u8>, &'e crate::manifest_encoding::ManifestDelta)> {
    for version in source.bases {
        let Some(record) = source.records.get(version) else {
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
