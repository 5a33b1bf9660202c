//! Download now, apply later: `update --download-only` builds the release this install would
//! take (verified, complete, in `versions/`) without switching, and records it in
//! `state/staged.toml`; `update --apply` switches to it with no network access at all, e.g.
//! at the next maintenance window or when the user agrees.
//!
//! The record is only a pointer: `--apply` switches to the version only if its folder still
//! matches the installed record written when it was staged (by stat), exactly as
//! [`Updater::apply`] does; the staged version is kept by pruning until it is applied or
//! replaced. A release staged and then pulled or paused is still applied by `--apply` (it
//! was chosen when it was staged; the choice is the caller's to repeat with `check`).

use std::path::Path;
use std::time::Instant;

use appstart_layout::{VersionName, fsutil};
use serde::{Deserialize, Serialize};

use super::{Check, UpdateReport, Updater};
use crate::error::{Error, Result};
use crate::lock::InstallLock;
use crate::stage::InstalledRecord;

/// `state/staged.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StagedRecord {
    /// The version staged.
    pub(crate) version: VersionName,
    /// When (RFC 3339).
    pub(crate) at: String,
}

impl StagedRecord {
    /// The record at `path`, if any.
    pub(crate) fn load(path: &Path) -> Result<Option<Self>> {
        if !path.exists() {
            return Ok(None);
        }
        let text = fsutil::read_to_string_capped(path, fsutil::MAX_STATE_FILE)?;
        let record: StagedRecord = toml::from_str(&text)
            .map_err(|e| appstart_layout::Error::from_toml(path, &text, &e))?;
        Ok(Some(record))
    }

    fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string(self).map_err(|e| Error::Invalid(e.to_string()))?;
        fsutil::write_atomic(path, text.as_bytes())?;
        Ok(())
    }
}

/// What `update --download-only` did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct DownloadReport {
    /// The running version.
    pub current: VersionName,
    /// The version staged, ready for [`Updater::apply_staged`]; `None` when there was nothing
    /// to take.
    pub staged: Option<VersionName>,
    /// Bytes received in all (metadata and content).
    pub bytes_downloaded: u64,
    /// Files taken from installed versions.
    pub files_reused: usize,
    /// Files that came over the network.
    pub files_downloaded: usize,
    /// The check that chose it: newer releases held back, and why.
    pub held_back: Vec<crate::control::select::HeldBack>,
}

impl Updater {
    /// Checks, then builds the release this install would take now beside the running
    /// version, verified and complete, without switching to it; records it for
    /// [`Updater::apply_staged`]. Only one release: a chain of releases continues at the next
    /// update.
    pub fn download_only(&self) -> Result<DownloadReport> {
        let check = self.check()?;
        let Check {
            current,
            available,
            held_back,
            ..
        } = check;
        let Some(release) = available else {
            return Ok(DownloadReport {
                current,
                staged: None,
                bytes_downloaded: 0,
                files_reused: 0,
                files_downloaded: 0,
                held_back,
            });
        };
        let staged = self.download(&release)?;
        let _lock = InstallLock::acquire(&self.install, "download", self.lock_wait)?;
        StagedRecord {
            version: release.version().clone(),
            at: fsutil::now_rfc3339(),
        }
        .save(&self.install.staged_path())?;
        self.history("staged", &[("version", release.version().as_str())]);
        Ok(DownloadReport {
            current,
            staged: Some(release.version().clone()),
            bytes_downloaded: staged.metadata_bytes + staged.content_bytes,
            files_reused: staged.report.files_reused,
            files_downloaded: staged.report.files_downloaded,
            held_back,
        })
    }

    /// Switches to the version [`Updater::download_only`] staged, without any network
    /// access. Fails, changing nothing, when the staged folder changed, and with
    /// [`Error::NothingToDo`] when nothing is staged.
    pub fn apply_staged(&self) -> Result<UpdateReport> {
        let _lock = InstallLock::acquire(&self.install, "apply", self.lock_wait)?;
        let result = self.apply_staged_locked();
        if let Err(err) = &result {
            self.failed("apply", err, None);
        }
        result
    }

    fn apply_staged_locked(&self) -> Result<UpdateReport> {
        let path = self.install.staged_path();
        let record = StagedRecord::load(&path)?.ok_or_else(|| {
            Error::NothingToDo(format!(
                "nothing is staged in {} (no {}): run `appupdate update --download-only` first",
                self.install.root().display(),
                path.display()
            ))
        })?;
        let config = appstart_layout::LauncherConfig::load(&self.install.config_path())?;
        if config.current == record.version {
            fsutil::remove_file_if_exists(&path)?;
            return Ok(UpdateReport::nothing(config.current, 0));
        }
        let installed = InstalledRecord::load(&self.install, &record.version).ok_or_else(|| {
            Error::Invalid(format!(
                "{} was staged but its record is gone; run `appupdate update --download-only` again",
                record.version
            ))
        })?;
        let staged = super::Staged {
            manifest: installed.manifest,
            report: crate::stage::StageReport::default(),
            manifest_bytes: 0,
            metadata_bytes: 0,
            content_bytes: 0,
        };
        // `apply_locked` checks the folder against its record, and removes `staged.toml`.
        self.apply_locked(staged, None, Instant::now())
    }
}
