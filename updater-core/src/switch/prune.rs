//! Step 9: which versions are installed and which may be running, and removing the versions
//! beyond `keep`, staging leftovers, temporary files and cached blobs.

use std::path::{Path, PathBuf};

use appstart_layout::paths::{DAMAGED_PREFIX, SPARE_DIR, STAGING_PREFIX};
use appstart_layout::{InstallDir, LauncherConfig, VersionName, fsutil};

use crate::error::{Error, Result};
use crate::stage::InstalledRecord;

use super::launcher::remove_launchers_aside;

/// Installed version folders, newest first (SemVer order; other names last).
pub fn installed_versions(install: &InstallDir) -> Result<Vec<VersionName>> {
    let dir = install.versions_dir();
    let mut versions = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(versions),
        Err(e) => return Err(Error::io("listing", &dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", &dir, e))?;
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if let Some(name) = entry.file_name().to_str()
            && let Ok(version) = VersionName::parse(name)
        {
            versions.push(version);
        }
    }
    versions.sort_by(|a, b| {
        match (
            semver::Version::parse(a.as_str()),
            semver::Version::parse(b.as_str()),
        ) {
            (Ok(x), Ok(y)) => y.cmp(&x),
            (Ok(_), Err(_)) => std::cmp::Ordering::Less,
            (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
            _ => b.cmp(a),
        }
    });
    Ok(versions)
}

/// `current` and `previous` of `appstart.toml`, the versions that may be running; none
/// before the config exists (during an install).
pub fn running_versions(install: &InstallDir) -> Result<Vec<VersionName>> {
    let path = install.config_path();
    if !path.exists() {
        return Ok(Vec::new());
    }
    let config = LauncherConfig::load(&path)?;
    let mut running = vec![config.current];
    running.extend(config.previous);
    Ok(running)
}

/// Step 9: removes versions beyond `keep` (never current or previous, compared ignoring ASCII
/// case, as a case-insensitive file system does), staging leftovers, temporary files and
/// cached blobs. Returns the versions removed.
pub fn prune(install: &InstallDir, keep: usize) -> Result<Vec<VersionName>> {
    prune_keeping(install, keep, None)
}

/// [`prune`], also keeping `also` (the version a chain of updates started from: the process
/// that ran the chain may still be running it).
pub fn prune_keeping(
    install: &InstallDir,
    keep: usize,
    also: Option<&VersionName>,
) -> Result<Vec<VersionName>> {
    let config = LauncherConfig::load(&install.config_path())?;
    // A version `update --download-only` staged waits for `update --apply`; an unreadable
    // record keeps nothing (it is rewritten by the next download).
    let staged = crate::updater::later::StagedRecord::load(&install.staged_path())
        .ok()
        .flatten()
        .map(|record| record.version);
    let running = [
        Some(config.current.clone()),
        config.previous.clone(),
        also.cloned(),
        staged,
    ];
    let mut kept: Vec<VersionName> = running.iter().flatten().cloned().collect();
    let mut removed = Vec::new();
    // The newest version removed is set aside for the next staging to start from
    // (`stage::spare`), not deleted: the next release shares nearly all of its files.
    let mut set_aside = false;
    for version in installed_versions(install)? {
        if kept.contains(&version) {
            continue;
        }
        if running
            .iter()
            .flatten()
            .any(|r| r.as_str().eq_ignore_ascii_case(version.as_str()))
        {
            // Possibly the very folder of a running version.
            continue;
        }
        if kept.len() < keep {
            kept.push(version);
            continue;
        }
        let dir = install.version_dir(&version);
        // The record goes first: a folder without one is still removed by the next prune,
        // while a record whose folder is gone (set aside or deleted, then a crash) would
        // stay forever.
        let record = InstalledRecord::path(install, &version);
        let had_record = record.exists();
        fsutil::remove_file_if_exists(&record)?;
        if !set_aside && had_record {
            set_aside = crate::stage::set_aside(install, &dir);
        }
        // Windows refuses to delete files that are open (a version still running, an
        // antivirus scan): leave the folder for the next prune rather than fail the update.
        if let Err(err) = fsutil::remove_dir_all_if_exists(&dir) {
            log::warn!("{err}; it is removed at the next update");
            continue;
        }
        removed.push(version);
    }
    let versions_dir = install.versions_dir();
    if let Ok(entries) = std::fs::read_dir(&versions_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Damaged folders a repair moved aside: the app may still run from one (Windows
            // then refuses, and the next prune tries again).
            // A spare is used on Linux only (`stage::spare`).
            let unused_spare = !crate::stage::RECYCLES && name == SPARE_DIR;
            if (name.starts_with(STAGING_PREFIX)
                || name.starts_with(DAMAGED_PREFIX)
                || unused_spare)
                && let Err(err) = fsutil::remove_dir_all_if_exists(&entry.path())
            {
                log::warn!("{err}; it is removed at the next update");
            }
        }
    }
    // Every folder the updater and launcher write into with `write_atomic`.
    for folder in [
        install.root().to_path_buf(),
        install.state_dir(),
        install.metadata_dir(),
        install.manifests_dir(),
        install.versions_dir(),
    ] {
        remove_temp_files(&folder)?;
    }
    remove_launchers_aside(install);
    fsutil::remove_dir_all_if_exists(&install.cache_dir())?;
    Ok(removed)
}

/// The first free `versions/.damaged-<version>-<n>`: where a repair moves a damaged folder
/// and staging a folder it could not clean; never run, removed by the next prune.
pub(crate) fn free_damaged_dir(install: &InstallDir, version: &VersionName) -> Result<PathBuf> {
    (0..1000)
        .map(|n| install.damaged_dir(version, n))
        .find(|path| std::fs::symlink_metadata(path).is_err())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{} holds 1000 damaged folders of {version}; remove them",
                install.versions_dir().display()
            ))
        })
}

fn remove_temp_files(dir: &Path) -> Result<()> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(fsutil::TEMP_PREFIX)
            {
                fsutil::remove_file_if_exists(&entry.path())?;
            }
        }
    }
    Ok(())
}
