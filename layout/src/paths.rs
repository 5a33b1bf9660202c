//! Where each file of an install folder lives. Nothing else in the project builds these paths.

use std::path::{Path, PathBuf};

use crate::names::VersionName;

/// File name of the launcher config, beside the launcher.
pub const CONFIG_FILE: &str = "appstart.toml";
/// Folder holding one subfolder per installed version.
pub const VERSIONS_DIR: &str = "versions";
/// Folder holding updater and launcher state.
pub const STATE_DIR: &str = "state";
/// Prefix of a version folder being built; never run. A leftover of an interrupted run is
/// the starting point of the next run for the same version (only files proven to be
/// recorded installed files are kept) and removed by a prune.
pub const STAGING_PREFIX: &str = ".staging-";
/// Prefix of a damaged version folder a repair moved aside (`.damaged-<version>-<n>`): not a
/// version name, never run; removed by the next prune once nothing holds it open.
pub const DAMAGED_PREFIX: &str = ".damaged-";
/// The folder of the last version a prune removed, set aside instead of deleted: the next
/// staging starts from it and keeps only the files proven to be recorded installed files
/// (not a version name, never run).
pub const SPARE_DIR: &str = ".spare";

/// An install folder: the launcher, its config, the versions and the state.
#[derive(Debug, Clone)]
pub struct InstallDir {
    root: PathBuf,
}

impl InstallDir {
    /// Wraps the folder `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        InstallDir { root: root.into() }
    }

    /// The install folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `DIR/appstart.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    /// `DIR/appstart` (`appstart.exe` on Windows).
    pub fn launcher_path(&self) -> PathBuf {
        self.root
            .join(format!("appstart{}", std::env::consts::EXE_SUFFIX))
    }

    /// `DIR/versions`.
    pub fn versions_dir(&self) -> PathBuf {
        self.root.join(VERSIONS_DIR)
    }

    /// `DIR/versions/<version>`.
    pub fn version_dir(&self, version: &VersionName) -> PathBuf {
        self.versions_dir().join(version.as_str())
    }

    /// `DIR/versions/.staging-<version>`: where a version is built before it is renamed in.
    pub fn staging_dir(&self, version: &VersionName) -> PathBuf {
        self.versions_dir()
            .join(format!("{STAGING_PREFIX}{}", version.as_str()))
    }

    /// `DIR/versions/.spare`: a pruned version's folder, for the next staging to start from.
    pub fn spare_dir(&self) -> PathBuf {
        self.versions_dir().join(SPARE_DIR)
    }

    /// `DIR/versions/.damaged-<version>-<n>`: where a repair moves a damaged folder aside.
    pub fn damaged_dir(&self, version: &VersionName, n: u32) -> PathBuf {
        self.versions_dir()
            .join(format!("{DAMAGED_PREFIX}{}-{n}", version.as_str()))
    }

    /// The names of the folders under `versions/` that are valid version names (so not
    /// `.staging-*`), sorted by name; empty when there is no `versions/` folder.
    pub fn version_folders(&self) -> Vec<VersionName> {
        let mut versions: Vec<VersionName> = std::fs::read_dir(self.versions_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|entry| VersionName::parse(entry.file_name().to_str()?).ok())
            .collect();
        versions.sort();
        versions
    }

    /// `DIR/state`.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    /// `DIR/state/history.log`: one line per launch, restart, fallback, check, update, rollback.
    pub fn history_path(&self) -> PathBuf {
        self.state_dir().join("history.log")
    }

    /// `DIR/state/bad-versions.toml`: versions the launcher rolled back from.
    pub fn bad_versions_path(&self) -> PathBuf {
        self.state_dir().join("bad-versions.toml")
    }

    /// `DIR/state/probation.toml`: the newly switched-to version and its crash count.
    pub fn probation_path(&self) -> PathBuf {
        self.state_dir().join("probation.toml")
    }

    /// `DIR/state/switched.toml`: the `current` appstart itself last wrote to `appstart.toml`,
    /// so that the updater can tell a hand edit from its own and the launcher's switches.
    pub fn switched_path(&self) -> PathBuf {
        self.state_dir().join("switched.toml")
    }

    /// `DIR/state/install.toml`: the updater's settings (repository URL, app, channel).
    pub fn install_settings_path(&self) -> PathBuf {
        self.state_dir().join("install.toml")
    }

    /// `DIR/state/shortcuts.toml`: the desktop and start-menu shortcuts `install --shortcut`
    /// made, outside the folder, so that `uninstall` removes exactly those.
    pub fn shortcuts_path(&self) -> PathBuf {
        self.state_dir().join("shortcuts.toml")
    }

    /// `DIR/state/install-id`: this install's random id (32 hex digits), for rollouts and
    /// targeting.
    pub fn install_id_path(&self) -> PathBuf {
        self.state_dir().join("install-id")
    }

    /// `DIR/state/receipts.jsonl`: delivery receipts not yet posted (the outbox; one
    /// checksummed JSON object per line, bounded, oldest dropped first; `docs/receipts.md`).
    pub fn receipts_outbox_path(&self) -> PathBuf {
        self.state_dir().join("receipts.jsonl")
    }

    /// `DIR/state/receipts-cursor`: how far into `history.log` the updater has turned the
    /// launcher's `fallback` lines into receipts (a byte offset), so that each is sent once.
    pub fn receipts_cursor_path(&self) -> PathBuf {
        self.state_dir().join("receipts-cursor")
    }

    /// `DIR/policy.toml`: the enterprise policy of this install (a machine-wide policy, when
    /// there is one, wins key by key).
    pub fn policy_path(&self) -> PathBuf {
        self.root.join("policy.toml")
    }

    /// `DIR/state/staged.toml`: the version `update --download-only` built and put in
    /// place, for `update --apply` to switch to without the network.
    pub fn staged_path(&self) -> PathBuf {
        self.state_dir().join("staged.toml")
    }

    /// `DIR/state/first-run.toml`: the `first-run` hook of the version the updater switched
    /// to, for the launcher to run once at that version's first launch.
    pub fn first_run_path(&self) -> PathBuf {
        self.state_dir().join("first-run.toml")
    }

    /// `DIR/state/metadata`: trusted TUF metadata.
    pub fn metadata_dir(&self) -> PathBuf {
        self.state_dir().join("metadata")
    }

    /// `DIR/state/manifests`: the release manifest of every installed version.
    pub fn manifests_dir(&self) -> PathBuf {
        self.state_dir().join("manifests")
    }

    /// `DIR/state/cache`: downloads, kept across runs so an interrupted one resumes.
    pub fn cache_dir(&self) -> PathBuf {
        self.state_dir().join("cache")
    }

    /// `DIR/state/lock`: held by whoever changes the install.
    pub fn lock_path(&self) -> PathBuf {
        self.state_dir().join("lock")
    }
}
