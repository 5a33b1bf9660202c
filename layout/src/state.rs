//! Small state files shared by the launcher and the updater.
//!
//! - `state/probation.toml`: written by the updater just before it switches to a new version;
//!   the launcher counts that version's early crashes in it and deletes it once the version
//!   has proved itself.
//! - `state/bad-versions.toml`: versions the launcher rolled back from; the updater never
//!   installs them again.

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
}

fn load_optional_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| Error::from_toml(path, &text, &e))
}

fn save_toml<T: Serialize>(path: &Path, value: &T) -> Result<()> {
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
