//! What the updater keeps about each installed version (`state/manifests/<version>.json`):
//! its manifest and its files' stats, so that the next update can take unchanged files from
//! it without reading them.
//!
//! For an app of 10,000 files a record is about 4 MB of JSON, and one update reads the
//! running version's record twice (the manifest delta's base, then the files to reuse):
//! [`Records`] reads each record at most once per operation.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use appstart_layout::{InstallDir, VersionName, fsutil};
use serde::{Deserialize, Serialize};

use super::FileStat;
use crate::error::{Error, Result};
use crate::manifest::Manifest;

/// What we keep about an installed version: its manifest and its files' stats.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstalledRecord {
    /// The release manifest.
    pub manifest: Manifest,
    /// Stat of each file right after it was written.
    pub stats: BTreeMap<String, FileStat>,
    /// The release's hooks (from its signed metadata), recorded once its `post-install`
    /// hook succeeded: `apply` runs `pre-switch` from here, with no network. Empty until then,
    /// so a folder whose `post-install` did not finish is staged again, not reused.
    #[serde(
        default,
        skip_serializing_if = "appstart_layout::hooks::Hooks::is_empty"
    )]
    pub hooks: appstart_layout::hooks::Hooks,
}

impl InstalledRecord {
    /// `state/manifests/<version>.json`.
    pub fn path(install: &InstallDir, version: &VersionName) -> PathBuf {
        install.manifests_dir().join(format!("{version}.json"))
    }

    /// Largest record read: a manifest at its cap plus the files' stats.
    pub const MAX_SIZE: u64 = 2 * crate::manifest::MAX_MANIFEST_SIZE;

    /// Reads the record of `version`, if any. A record is a hint written by this updater:
    /// nothing taken from an installed version is used without its stat or BLAKE3 matching.
    pub fn load(install: &InstallDir, version: &VersionName) -> Option<Self> {
        let bytes = fsutil::read_capped(&Self::path(install, version), Self::MAX_SIZE).ok()?;
        let record: InstalledRecord = serde_json::from_slice(&bytes).ok()?;
        (record.manifest.version == *version).then_some(record)
    }

    /// Writes it atomically and durably.
    pub fn save(&self, install: &InstallDir) -> Result<()> {
        fsutil::create_dir_all(&install.manifests_dir())?;
        fsutil::write_atomic(
            &Self::path(install, &self.manifest.version),
            &self.to_json()?,
        )?;
        Ok(())
    }

    /// Writes it beside its place (`state/manifests/`, which the caller made), flushed only
    /// when `flush` (else the caller flushes the file system before
    /// [`PendingRecord::commit`]), not yet renamed into place.
    pub(super) fn write_pending(&self, install: &InstallDir, flush: bool) -> Result<PendingRecord> {
        let path = Self::path(install, &self.manifest.version);
        let temp = fsutil::write_temp_beside(&path, &self.to_json()?, flush)?;
        Ok(PendingRecord { temp, path })
    }

    fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| Error::Invalid(e.to_string()))
    }

    /// Whether `dir` still holds exactly this version, judged by stats (no reading).
    pub fn matches_by_stat(&self, dir: &Path) -> bool {
        self.manifest.files.iter().all(|entry| {
            let path = entry.path.join_to(dir);
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                return false;
            };
            meta.is_file() && {
                let stat = FileStat::of(&path, &meta);
                stat.is_known() && self.stats.get(entry.path.as_str()) == Some(&stat)
            }
        })
    }
}

/// A record written durably beside its place (`.appstart-tmp-…` in `state/manifests/`), to be
/// renamed into place once the folder it describes may be ([`crate::switch::commit_version`]).
/// A leftover one is removed by the next prune.
#[derive(Debug)]
pub struct PendingRecord {
    temp: PathBuf,
    path: PathBuf,
}

impl PendingRecord {
    /// Renames it into place, durably (`fsync` of `state/manifests/`).
    pub fn commit(self) -> Result<()> {
        fsutil::rename(&self.temp, &self.path)?;
        fsutil::sync_dir(&fsutil::parent_of(&self.path))?;
        Ok(())
    }

    /// Removes it: the folder it describes is not coming.
    pub fn discard(self) {
        if let Err(err) = fsutil::remove_file_if_exists(&self.temp) {
            log::warn!("{err}");
        }
    }
}

/// The records of one install, each read at most once: for one operation (an update), not
/// kept across operations (another process may install or remove versions in between).
#[derive(Debug)]
pub struct Records<'i> {
    install: &'i InstallDir,
    loaded: Mutex<HashMap<VersionName, Option<Arc<InstalledRecord>>>>,
}

impl<'i> Records<'i> {
    /// Nothing read yet.
    pub fn new(install: &'i InstallDir) -> Self {
        Records {
            install,
            loaded: Mutex::default(),
        }
    }

    /// The install.
    pub fn install(&self) -> &'i InstallDir {
        self.install
    }

    /// The record of `version` ([`InstalledRecord::load`]), read the first time it is asked
    /// for.
    pub fn get(&self, version: &VersionName) -> Option<Arc<InstalledRecord>> {
        let mut loaded = match self.loaded.lock() {
            Ok(loaded) => loaded,
            Err(poisoned) => poisoned.into_inner(),
        };
        loaded
            .entry(version.clone())
            .or_insert_with(|| InstalledRecord::load(self.install, version).map(Arc::new))
            .clone()
    }
}
