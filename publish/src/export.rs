//! `appupdate repo export`: the smallest repository an offline machine can install and update
//! from (a USB stick, a share on an air-gapped network).
//!
//! The export is a repository in its own right, served by any means (`file://`, a plain path,
//! a web server): the signed metadata as it is now (every root, so a client holding an old
//! root can walk the chain; the timestamp; the snapshot; the top-level and delegated targets
//! roles it lists), and for each exported release its manifest folder, the blobs of every
//! file and archive part, and the deltas the manifest lists. Packs are left out: a client that
//! finds no pack fetches blobs instead (`docs/repository-format.md`).
//!
//! Nothing is re-signed, so an export is exactly as trustworthy as the repository, and a
//! machine that later sees the full repository again sees the same metadata versions. But the
//! signed targets list every release, and a client takes the newest it may: the export
//! therefore holds release VERSION *and every newer one* of the app on the channel and
//! platforms asked for, or a client would pick a release whose files are not there.
//!
//! Written into a temporary sibling folder and renamed to `--out` at the end: an interrupted
//! export leaves no half-filled folder behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use appstart_layout::{VersionName, fsutil};
use serde::Serialize;
use updater_core::advanced::blob;
use updater_core::advanced::delta;
use updater_core::advanced::manifest::{self, FileEntry, Manifest};
use updater_core::advanced::release::{Release, releases};
use updater_core::advanced::tuf::metadata::quote;
use updater_core::{Error, Result};

use super::Repository;

/// What `repo export` wrote.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ExportReport {
    /// The folder written.
    pub out: PathBuf,
    /// The releases in it (`app/channel/platform/version`), oldest first.
    pub releases: Vec<String>,
    /// Files copied.
    pub files: usize,
    /// Bytes copied.
    pub bytes: u64,
}

/// Which releases to export.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExportRequest {
    /// The app.
    pub app: String,
    /// The oldest version exported; every newer one of the same channel and platform goes
    /// with it.
    pub version: VersionName,
    /// The channel.
    pub channel: String,
    /// Platforms (`any`, `windows-x86_64`, ...); empty: every platform `version` exists for.
    pub platforms: Vec<String>,
    /// The folder to write (must not exist, or be empty).
    pub out: PathBuf,
}

impl ExportRequest {
    /// Export `app` `version` (and newer) of `channel` into `out`.
    pub fn new(
        app: impl Into<String>,
        version: VersionName,
        channel: impl Into<String>,
        out: impl Into<PathBuf>,
    ) -> Self {
        ExportRequest {
            app: app.into(),
            version,
            channel: channel.into(),
            platforms: Vec::new(),
            out: out.into(),
        }
    }
}

impl Repository {
    /// Writes the repository subset for `request` (module docs).
    pub fn export(&self, request: &ExportRequest) -> Result<ExportReport> {
        let out = &request.out;
        if out.exists()
            && std::fs::read_dir(out)
                .map_err(|e| Error::io("listing", out, e))?
                .next()
                .is_some()
        {
            return Err(Error::Invalid(format!(
                "{}: not empty; export into a new folder",
                out.display()
            )));
        }
        let chosen = self.releases_to_export(request)?;
        let (_, snapshot) = self.current_targets()?;

        // The metadata: every root, the timestamp, the current snapshot and each role in it.
        let metadata = self.metadata_dir();
        let mut files: BTreeSet<PathBuf> = BTreeSet::new();
        for entry in std::fs::read_dir(&metadata).map_err(|e| Error::io("listing", &metadata, e))? {
            let name = entry
                .map_err(|e| Error::io("listing", &metadata, e))?
                .file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".root.json") || name == "root.json" || name == "timestamp.json" {
                files.insert(PathBuf::from("metadata").join(&*name));
            }
        }
        files.insert(PathBuf::from(format!(
            "metadata/{}.snapshot.json",
            snapshot.version
        )));
        for (name, meta) in &snapshot.meta {
            let role = name.strip_suffix(".json").unwrap_or(name);
            files.insert(PathBuf::from(format!(
                "metadata/{}.{}.json",
                meta.version,
                quote(role)
            )));
        }
        // The receipts target (`repo receipts`), when the targets list it: small, and a client
        // reads it after each check.
        let receipts = self.root.join("targets/_appstart");
        if receipts.is_dir() {
            for entry in
                std::fs::read_dir(&receipts).map_err(|e| Error::io("listing", &receipts, e))?
            {
                let name = entry
                    .map_err(|e| Error::io("listing", &receipts, e))?
                    .file_name();
                files.insert(PathBuf::from("targets/_appstart").join(name));
            }
        }

        // Each release: its manifest folder, then the content its manifest names.
        let mut names = Vec::new();
        for release in &chosen {
            let folder = PathBuf::from("targets").join(
                release
                    .target_name
                    .rsplit_once('/')
                    .map_or("", |(folder, _)| folder),
            );
            let full = self.root.join(&folder);
            for entry in std::fs::read_dir(&full).map_err(|e| Error::io("listing", &full, e))? {
                let name = entry
                    .map_err(|e| Error::io("listing", &full, e))?
                    .file_name();
                files.insert(folder.join(name));
            }
            let manifest = self.release_manifest(release)?;
            for entry in &manifest.files {
                add_content(&mut files, entry);
            }
            names.push(
                release
                    .target_name
                    .trim_end_matches("/manifest.json")
                    .to_string(),
            );
        }

        // Copy into a sibling folder, then rename it into place.
        let parent = fsutil::parent_of(out);
        fsutil::create_dir_all(&parent)?;
        let staging = parent.join(format!(
            ".{}.export-{}",
            out.file_name()
                .map_or("export".into(), |n| n.to_string_lossy()),
            std::process::id()
        ));
        fsutil::remove_dir_all_if_exists(&staging)?;
        let copied = copy_all(&self.root, &staging, &files);
        let (count, bytes) = match copied {
            Ok(done) => done,
            Err(err) => {
                let _ = fsutil::remove_dir_all_if_exists(&staging);
                return Err(err);
            }
        };
        if out.exists() {
            std::fs::remove_dir(out)
                .map_err(|e| Error::io("replacing the empty folder", out, e))?;
        }
        std::fs::rename(&staging, out).map_err(|e| Error::io("renaming into place", out, e))?;
        Ok(ExportReport {
            out: out.clone(),
            releases: names,
            files: count,
            bytes,
        })
    }

    /// `request.version` and every newer release of the app, channel and platforms.
    fn releases_to_export(&self, request: &ExportRequest) -> Result<Vec<Release>> {
        let (targets, snapshot) = self.current_targets()?;
        let all = self.all_release_targets(&targets, &snapshot)?;
        let of_app: Vec<Release> = releases(&all)
            .into_iter()
            .filter(|r| r.custom.app == request.app && r.custom.channel == request.channel)
            .collect();
        let base: Vec<&Release> = of_app
            .iter()
            .filter(|r| r.custom.version == request.version)
            .filter(|r| {
                request.platforms.is_empty() || request.platforms.contains(&r.custom.platform)
            })
            .collect();
        if base.is_empty() {
            return Err(Error::Invalid(format!(
                "no release {} {} on channel {}{} in {}",
                request.app,
                request.version,
                request.channel,
                if request.platforms.is_empty() {
                    String::new()
                } else {
                    format!(" for {}", request.platforms.join(", "))
                },
                self.root.display()
            )));
        }
        let platforms: BTreeSet<&str> = base.iter().map(|r| r.custom.platform.as_str()).collect();
        let lowest = &base[0].semver;
        let mut chosen: Vec<Release> = of_app
            .iter()
            .filter(|r| platforms.contains(r.custom.platform.as_str()) && r.semver >= *lowest)
            .cloned()
            .collect();
        chosen
            .sort_by(|a, b| (&a.custom.platform, &a.semver).cmp(&(&b.custom.platform, &b.semver)));
        Ok(chosen)
    }

    /// The manifest of `release`, read from this repository and checked against its signed
    /// length and SHA-256 before it is parsed.
    fn release_manifest(&self, release: &Release) -> Result<Manifest> {
        let sha256 = release
            .target
            .hashes
            .get("sha256")
            .ok_or_else(|| Error::format(&release.target_name, "no sha256 hash"))?;
        let (folder, _) = release
            .target_name
            .rsplit_once('/')
            .ok_or_else(|| Error::format(&release.target_name, "not a release target"))?;
        let path = self
            .root
            .join("targets")
            .join(folder)
            .join(format!("{sha256}.manifest.json"));
        let bytes = fsutil::read_capped(&path, manifest::MAX_MANIFEST_SIZE)?;
        let what = path.display().to_string();
        use sha2::Digest;
        if bytes.len() as u64 != release.target.length
            || hex::encode(sha2::Sha256::digest(&bytes)) != *sha256
        {
            return Err(Error::format(
                &what,
                "does not match its signed length and sha256",
            ));
        }
        Manifest::parse(&bytes, &what)
    }
}

/// The blobs and deltas `entry` may be built from.
fn add_content(files: &mut BTreeSet<PathBuf>, entry: &FileEntry) {
    let mut add = |blake3: &str, deltas: &[manifest::DeltaEntry]| {
        files.insert(PathBuf::from(blob::blob_path(blake3)));
        for d in deltas {
            files.insert(PathBuf::from(delta::delta_path(
                &d.base,
                blake3,
                d.algorithm,
            )));
        }
    };
    add(&entry.blake3, &entry.deltas);
    if let Some(archive) = &entry.archive {
        add(&archive.skeleton.blake3, &archive.skeleton.deltas);
        for member in &archive.members {
            add(&member.blake3, &member.deltas);
        }
    }
}

/// Copies `files` (relative paths) from `from` to `to`, then makes them durable; the file
/// count and bytes.
fn copy_all(from: &Path, to: &Path, files: &BTreeSet<PathBuf>) -> Result<(usize, u64)> {
    let mut bytes = 0;
    for relative in files {
        let source = from.join(relative);
        let target = to.join(relative);
        if !source.is_file() {
            return Err(Error::Invalid(format!(
                "{}: listed by the release but missing from the repository",
                source.display()
            )));
        }
        fsutil::create_dir_all(&fsutil::parent_of(&target))?;
        bytes += std::fs::copy(&source, &target).map_err(|e| Error::io("copying", &source, e))?;
        std::fs::File::open(&target)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io("syncing", &target, e))?;
    }
    Ok((files.len(), bytes))
}
