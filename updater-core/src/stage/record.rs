//! What the updater keeps about each installed version (`state/manifests/<version>.json`):
//! its manifest and its files' stats, so that the next update can take unchanged files from
//! it without reading them.
//!
//! For an app of 10,000 files a record is about 3 MB of JSON, and one update reads the
//! running version's record twice (the manifest delta's base, then the files to reuse):
//! [`Records`] reads each record at most once per operation.
//!
//! The stats are kept as a list in the manifest's file order (`file_stats`, each
//! `[ino, volume, size, mtime_ns]`), not as a map by path: an update reads two records and
//! writes one, and the map's 10,000 path keys were a third of each read. Records written
//! before (a `stats` map) are still read. New records also carry an empty `stats` map, so an
//! older updater reading one does not refuse it but trusts no stat: it copies and checks
//! installed files by content instead of linking them, and what it decides by stats alone
//! (applying a staged version, switching back to `previous`) it downloads or stages again.
//! Stats that do not line up with the files (a record edited by hand) are dropped the same
//! way: the record's manifest stays usable, no stat of it is trusted.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use appstart_layout::{InstallDir, VersionName, fsutil};
use serde::{Deserialize, Serialize};

use super::FileStat;
use crate::error::{Error, Result};
use crate::manifest::Manifest;

/// What we keep about an installed version: its manifest and its files' stats.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RecordFile")]
pub struct InstalledRecord {
    /// The release manifest.
    pub manifest: Manifest,
    /// Stat of each file right after it was written, in the order of `manifest.files`
    /// ([`FileStat::UNKNOWN`], never trusted, where none was recorded).
    pub stats: Vec<FileStat>,
    /// The release's hooks (from its signed metadata), recorded once its `post-install`
    /// hook succeeded: `apply` runs `pre-switch` from here, with no network. Empty until then,
    /// so a folder whose `post-install` did not finish is staged again, not reused.
    pub hooks: appstart_layout::hooks::Hooks,
}

/// A record as it is read: with `file_stats`, or (written before them) a `stats` map.
#[derive(Deserialize)]
struct RecordFile {
    manifest: Manifest,
    #[serde(default)]
    file_stats: Option<Vec<StatRow>>,
    #[serde(default)]
    stats: BTreeMap<String, FileStat>,
    #[serde(default)]
    hooks: appstart_layout::hooks::Hooks,
}

/// A record as it is written (see the module docs).
#[derive(Serialize)]
struct RecordOut<'a> {
    manifest: &'a Manifest,
    /// Always empty: what an older updater reads.
    stats: BTreeMap<String, FileStat>,
    file_stats: Vec<StatRow>,
    #[serde(skip_serializing_if = "appstart_layout::hooks::Hooks::is_empty")]
    hooks: &'a appstart_layout::hooks::Hooks,
}

/// One file's stat, compactly: `[ino, volume, size, mtime_ns]`.
#[derive(Serialize, Deserialize)]
struct StatRow(u64, u64, u64, i128);

impl From<RecordFile> for InstalledRecord {
    fn from(file: RecordFile) -> Self {
        let stats = match file.file_stats {
            Some(rows) if rows.len() == file.manifest.files.len() => rows
                .into_iter()
                .map(|StatRow(ino, volume, size, mtime_ns)| FileStat {
                    ino,
                    volume,
                    size,
                    mtime_ns,
                })
                .collect(),
            Some(rows) => {
                log::warn!(
                    "the record of {} has {} file stats for {} files: none is trusted",
                    file.manifest.version,
                    rows.len(),
                    file.manifest.files.len()
                );
                vec![FileStat::UNKNOWN; file.manifest.files.len()]
            }
            None => file
                .manifest
                .files
                .iter()
                .map(|entry| {
                    file.stats
                        .get(entry.path.as_str())
                        .copied()
                        .unwrap_or(FileStat::UNKNOWN)
                })
                .collect(),
        };
        InstalledRecord {
            manifest: file.manifest,
            stats,
            hooks: file.hooks,
        }
    }
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
        if self.stats.len() != self.manifest.files.len() {
            return Err(Error::Invalid(format!(
                "record of {}: {} file stats for {} files",
                self.manifest.version,
                self.stats.len(),
                self.manifest.files.len()
            )));
        }
        let out = RecordOut {
            manifest: &self.manifest,
            stats: BTreeMap::new(),
            file_stats: self
                .stats
                .iter()
                .map(|s| StatRow(s.ino, s.volume, s.size, s.mtime_ns))
                .collect(),
            hooks: &self.hooks,
        };
        serde_json::to_vec(&out).map_err(|e| Error::Invalid(e.to_string()))
    }

    /// The recorded stat of the manifest's file `index`, if it can be trusted.
    pub fn stat(&self, index: usize) -> Option<FileStat> {
        self.stats.get(index).copied().filter(FileStat::is_known)
    }

    /// Whether `dir` still holds exactly this version, judged by stats (no reading).
    pub fn matches_by_stat(&self, dir: &Path) -> bool {
        self.manifest
            .files
            .iter()
            .enumerate()
            .all(|(index, entry)| {
                let path = entry.path.join_to(dir);
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    return false;
                };
                meta.is_file() && self.stat(index) == Some(FileStat::of(&path, &meta))
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
/// Threads may read different records at once (an update indexes the installed versions'
/// files while it fetches the manifest): the lock is held only to find a record's slot, and
/// a second asker of the same record waits for the first one's read.
#[derive(Debug)]
pub struct Records<'i> {
    install: &'i InstallDir,
    loaded: Mutex<HashMap<VersionName, Slot>>,
}

/// A record read once, by whichever thread asks for it first.
type Slot = Arc<std::sync::OnceLock<Option<Arc<InstalledRecord>>>>;

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
        let slot = {
            let mut loaded = match self.loaded.lock() {
                Ok(loaded) => loaded,
                Err(poisoned) => poisoned.into_inner(),
            };
            Arc::clone(loaded.entry(version.clone()).or_default())
        };
        slot.get_or_init(|| InstalledRecord::load(self.install, version).map(Arc::new))
            .clone()
    }
}

impl Drop for Records<'_> {
    /// The records read are freed on another thread (`background_drop`): for an app of
    /// 10,000 files each is some 30,000 allocations.
    fn drop(&mut self) {
        let loaded = std::mem::take(match self.loaded.get_mut() {
            Ok(loaded) => loaded,
            Err(poisoned) => poisoned.into_inner(),
        });
        let files = loaded
            .values()
            .filter_map(|slot| slot.get().cloned().flatten())
            .map(|record| record.manifest.files.len())
            .sum();
        crate::background_drop::drop_in_background(loaded, files);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let hash = blake3::hash(b"x").to_hex().to_string();
        let json = format!(
            r#"{{"format":2,"app":"demo","version":"1.0.0","channel":"stable","platform":"any","executable":"a","files":[{{"path":"a","size":1,"executable":true,"blake3":"{hash}","blob_size":1,"blob_blake3":"{hash}"}},{{"path":"b/c","size":1,"executable":false,"blake3":"{hash}","blob_size":1,"blob_blake3":"{hash}"}}]}}"#
        );
        Manifest::parse(json.as_bytes(), "test manifest").unwrap()
    }

    fn stat(ino: u64) -> FileStat {
        FileStat {
            ino,
            volume: 0,
            size: 1,
            mtime_ns: 1_700_000_000_123_456_789,
        }
    }

    /// Written as a list in the manifest's order, with an empty `stats` map for older
    /// updaters, and read back to the same stats.
    #[test]
    fn stats_are_written_as_a_list_and_read_back() {
        let record = InstalledRecord {
            manifest: manifest(),
            stats: vec![stat(11), stat(12)],
            hooks: Default::default(),
        };
        let json = record.to_json().unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["stats"], serde_json::json!({}));
        assert_eq!(
            value["file_stats"][1],
            serde_json::json!([12, 0, 1, 1_700_000_000_123_456_789_i64])
        );
        let back: InstalledRecord = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.stats, record.stats);
        assert_eq!(back.stat(0), Some(stat(11)));
    }

    /// A record written before `file_stats` (a map by path) is read; a path it lacks gets
    /// a stat that is never trusted.
    #[test]
    fn a_record_with_a_stats_map_is_still_read() {
        let mut value = serde_json::json!({ "manifest": manifest(), "stats": {} });
        value["stats"]["b/c"] = serde_json::to_value(stat(12)).unwrap();
        let record: InstalledRecord = serde_json::from_value(value).unwrap();
        assert_eq!(record.stats, vec![FileStat::UNKNOWN, stat(12)]);
        assert_eq!(record.stat(0), None);
        assert_eq!(record.stat(1), Some(stat(12)));
    }

    /// Threads asking for records at once each get them, read once per version: the same
    /// record for the same version, `None` for a version without one.
    #[test]
    fn records_are_read_once_whatever_thread_asks() {
        let root = tempfile::tempdir().unwrap();
        let install = InstallDir::new(root.path());
        let one = VersionName::parse("1.0.0").unwrap();
        let two = VersionName::parse("2.0.0").unwrap();
        let missing = VersionName::parse("3.0.0").unwrap();
        for version in [&one, &two] {
            let mut manifest = manifest();
            manifest.version = version.clone();
            let record = InstalledRecord {
                manifest,
                stats: vec![stat(11), stat(12)],
                hooks: Default::default(),
            };
            record.save(&install).unwrap();
        }
        let owned = Records::new(&install);
        let records = &owned;
        let asked: Vec<_> = std::thread::scope(|scope| {
            let threads: Vec<_> = [&one, &two, &one, &missing, &two, &one]
                .into_iter()
                .map(|version| scope.spawn(move || (version, records.get(version))))
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        for (version, record) in &asked {
            match record {
                Some(record) => {
                    assert_eq!(record.manifest.version, **version);
                    let again = records.get(version).unwrap();
                    assert!(Arc::ptr_eq(record, &again), "{version} read twice");
                }
                None => assert_eq!(*version, &missing),
            }
        }
        // Read once: a record changed on disk since is not read again.
        std::fs::remove_file(InstalledRecord::path(&install, &one)).unwrap();
        assert!(records.get(&one).is_some());
        assert!(Records::new(&install).get(&one).is_none());
    }

    /// Stats that do not line up with the files are dropped (the manifest is kept, no stat
    /// is trusted), and are never written.
    #[test]
    fn stats_that_do_not_line_up_are_dropped() {
        let value = serde_json::json!({ "manifest": manifest(), "file_stats": [[1, 0, 1, 5]] });
        let record: InstalledRecord = serde_json::from_value(value).unwrap();
        assert_eq!(record.stats, vec![FileStat::UNKNOWN; 2]);
        assert_eq!((record.stat(0), record.stat(1)), (None, None));
        let record = InstalledRecord {
            manifest: manifest(),
            stats: vec![stat(11)],
            hooks: Default::default(),
        };
        assert!(record.to_json().is_err());
    }
}
