//! Small state files shared by the launcher and the updater.
//!
//! - `state/probation.toml`: written by the updater just before it switches to a new version;
//!   the launcher counts that version's early crashes in it and deletes it once the version
//!   has proved itself.
//! - `state/bad-versions.toml`: versions the launcher rolled back from; the updater never
//!   installs them again.
//! - `state/switched.toml`: the `current` that appstart itself (updater or launcher) last
//!   wrote to `appstart.toml`. When `appstart.toml` says otherwise, a person edited it: the
//!   updater treats a hand edit to an older version like `appupdate rollback`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::names::VersionName;

/// A version on probation and its crash count so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probation {
    /// The version on probation.
    pub version: VersionName,
    /// Crashes seen during probation so far.
    #[serde(default)]
    pub failures: u32,
    /// When the updater switched to it (RFC 3339), for the log.
    #[serde(default)]
    pub since: String,
}

impl Probation {
    /// Starts probation for `version` now.
    pub fn start(version: VersionName) -> Self {
        Probation {
            version,
            failures: 0,
            since: fsutil::now_rfc3339(),
        }
    }

    /// Reads the probation file; `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        load_optional_toml(path)
    }

    /// Writes the probation file atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_toml(path, self)
    }

    /// Ends probation: the version is accepted.
    pub fn clear(path: &Path) -> Result<()> {
        fsutil::remove_file_if_exists(path)
    }
}

/// The `current` that appstart last wrote to `appstart.toml`, and who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switched {
    /// The version written as `current`.
    pub current: VersionName,
    /// Who wrote it: `install`, `update`, `rollback`, `launcher fallback`, `hand edit`.
    #[serde(default)]
    pub by: String,
    /// When (RFC 3339).
    #[serde(default)]
    pub at: String,
}

impl Switched {
    /// A record of `current` written now by `by`.
    pub fn new(current: VersionName, by: &str) -> Self {
        Switched {
            current,
            by: by.to_string(),
            at: fsutil::now_rfc3339(),
        }
    }

    /// Reads the record; `None` when there is none (an install made before it existed).
    pub fn load(path: &Path) -> Result<Option<Self>> {
        load_optional_toml(path)
    }

    /// Writes the record atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_toml(path, self)
    }
}

/// One version the launcher refused to keep running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadVersion {
    /// The version.
    pub version: VersionName,
    /// Why it was marked bad.
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
}

/// The list of bad versions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadVersions {
    /// Entries, oldest first.
    #[serde(default)]
    pub bad: Vec<BadVersion>,
}

impl BadVersions {
    /// Reads the list; empty when the file does not exist.
    pub fn load(path: &Path) -> Result<Self> {
        Ok(load_optional_toml(path)?.unwrap_or_default())
    }

    /// Whether `version` is listed.
    pub fn contains(&self, version: &VersionName) -> bool {
        self.bad.iter().any(|b| &b.version == version)
    }

    /// The entry of `version`, if listed.
    pub fn entry(&self, version: &VersionName) -> Option<&BadVersion> {
        self.bad.iter().find(|b| &b.version == version)
    }

    /// Adds `version` with `reason` to the file at `path` (read, modify, atomic write).
    pub fn record(path: &Path, version: &VersionName, reason: &str) -> Result<()> {
        let mut list = BadVersions::load(path)?;
        if !list.contains(version) {
            list.bad.push(BadVersion {
                version: version.clone(),
                reason: reason.to_string(),
                at: fsutil::now_rfc3339(),
            });
        }
        save_toml(path, &list)
    }

    /// Removes `version` from the file at `path`; returns whether it was listed.
    pub fn forget(path: &Path, version: &VersionName) -> Result<bool> {
        let mut list = BadVersions::load(path)?;
        let before = list.bad.len();
        list.bad.retain(|b| &b.version != version);
        if list.bad.len() == before {
            return Ok(false);
        }
        save_toml(path, &list)?;
        Ok(true)
    }
}

pub(crate) fn load_optional_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = fsutil::read_to_string_capped(path, fsutil::MAX_STATE_FILE)?;
    parse_toml(&text, path).map(Some)
}

/// Parses a state file's `text`; `path` is used in errors only.
fn parse_toml<T: for<'de> Deserialize<'de>>(text: &str, path: &Path) -> Result<T> {
    toml::from_str(text).map_err(|e| Error::from_toml(path, text, &e))
}

pub(crate) fn save_toml<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = toml::to_string(value).map_err(|e| Error::InvalidField {
        path: path.to_path_buf(),
        field: String::from("(whole file)"),
        message: e.to_string(),
    })?;
    let folder = fsutil::parent_of(path);
    if !folder.exists() {
        fsutil::create_dir_all(&folder)?;
    }
    fsutil::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{cases, mutated};
    use proptest::prelude::*;

    const PROBATION: &str = "version = \"2.0.0\"\nfailures = 3\nsince = \"2026-11-23T11:51:24Z\"\n";
    const SWITCHED: &str = "current = \"2.0.0\"\nby = \"update\"\nat = \"2026-11-23T11:51:24Z\"\n";
    const BAD_VERSIONS: &str = "[[bad]]\nversion = \"2.0.0\"\nreason = \"exited with code 1\"\nat = \"2026-11-23T11:51:24Z\"\n";

    #[test]
    fn the_valid_samples_parse() {
        let probation: Probation = parse_toml(PROBATION, Path::new("p")).unwrap();
        assert_eq!(probation.failures, 3);
        let bad: BadVersions = parse_toml(BAD_VERSIONS, Path::new("b")).unwrap();
        assert_eq!(bad.bad.len(), 1);
        let switched: Switched = parse_toml(SWITCHED, Path::new("s")).unwrap();
        assert_eq!(switched.by, "update");
    }

    // A state file is written by another process that may have been killed, by an older or
    // newer appstart, or by hand: reading it may fail, but never panic the launcher.
    proptest! {
        #![proptest_config(cases())]

        #[test]
        fn state_loaders_never_panic_on_arbitrary_text(text in any::<String>()) {
            let _ = parse_toml::<Probation>(&text, Path::new("p"));
            let _ = parse_toml::<BadVersions>(&text, Path::new("b"));
            let _ = parse_toml::<Switched>(&text, Path::new("s"));
        }

        #[test]
        fn state_loaders_never_panic_on_mutated_files(
            probation in mutated(PROBATION),
            bad in mutated(BAD_VERSIONS),
            switched in mutated(SWITCHED),
        ) {
            let _ = parse_toml::<Switched>(&switched, Path::new("s"));
            let _ = parse_toml::<Probation>(&probation, Path::new("p"));
            let _ = parse_toml::<BadVersions>(&bad, Path::new("b"));
        }
    }
}
