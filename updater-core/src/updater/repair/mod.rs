//! Self-repair: checking the current version's files against its signed manifest, and
//! rebuilding a damaged version beside it (never in place), then swapping it in.
//!
//! Why beside: a version folder is immutable and may be running; its files may be hard links
//! shared with other versions. So a repair is a small re-install of the same version:
//! 1. Take the install lock. If `appstart.toml` does not parse, rebuild it from
//!    `state/switched.toml` (the `current` the updater last wrote) and that version's
//!    installed record (its executable), with the newest other recorded version as `previous`.
//! 2. Check the record `state/manifests/<version>.json` against the trusted targets metadata
//!    (`state/metadata`): its manifest, serialized as the publisher writes it, must have the
//!    signed length and hashes, so a tampered record is refused. A release the top-level
//!    targets do not list (delegated, or removed since) is reported as `record_checked:
//!    false`; its blobs are still authenticated by the record's BLAKE3s. The stored metadata
//!    is checked for its signatures only: this finds damage, not someone who can write the
//!    install folder (they could put back an older, validly signed set).
//! 3. Read and hash every listed file ([`check`]); name damaged, missing and extra ones.
//! 4. Stage the same manifest into `versions/.staging-<version>` with the [`Stager`], whose
//!    only local source is the files step 3 just hashed (hard-linked when unchanged since);
//!    everything else comes from its blob (packs are not used: a repair fetches few files).
//! 5. Swap it in: on Linux and macOS one atomic exchange of the two folders, then the damaged
//!    one (now under the staging name) is renamed to `versions/.damaged-<version>-<n>`;
//!    elsewhere two renames (damaged aside, repaired in). Windows refuses to rename a folder
//!    in use: the repair then fails asking to close the app, leaving everything as it was.
//! 6. Record the repaired folder's stats. `appstart.toml` is unchanged: same version.
//!
//! `docs/crash-safety.md` says what is on disk after each step and why the app stays
//! launchable.

mod check;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as platform;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as platform;

use std::path::PathBuf;
use std::sync::Arc;

use appstart_layout::state::Switched;
use appstart_layout::{LauncherConfig, VersionName, fsutil};
use serde::Serialize;

use super::Updater;
use crate::error::{Error, Result};
use crate::events::Phase;
use crate::lock::InstallLock;
use crate::metered::Metered;
use crate::progress::ProgressMeter;
use crate::release::target_name;
use crate::stage::{InstalledRecord, LocalFiles, StagedFolder, Stager};
use crate::switch;
use crate::tuf::client::{Limits, TrustedMetadata, check_target};

/// What [`Updater::verify`] found in the current version's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The version checked (`current` of `appstart.toml`, or of `state/switched.toml` when
    /// `appstart.toml` is unreadable).
    pub version: VersionName,
    /// Whether the folder and `appstart.toml` are intact.
    pub ok: bool,
    /// Listed files (or folders) whose content, size, type or executable bit differ.
    pub damaged: Vec<String>,
    /// Listed files and folders that are not there.
    pub missing: Vec<String>,
    /// Files and folders that are not listed (a folder ends with `/`).
    pub extra: Vec<String>,
    /// Listed files read and hashed.
    pub files_checked: usize,
    /// Whether `appstart.toml` parses.
    pub config_ok: bool,
    /// Whether the installed record was checked against the signed targets metadata.
    pub record_checked: bool,
}

/// What [`Updater::repair`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RepairReport {
    /// What was found before repairing.
    #[serde(flatten)]
    pub found: VerifyReport,
    /// The repaired version folder, when one was built.
    pub repaired_to: Option<PathBuf>,
    /// Where the damaged folder was moved (removed by the next prune).
    pub damaged_moved_to: Option<PathBuf>,
    /// Files fetched from the repository.
    pub downloaded_files: usize,
    /// Files taken from the damaged folder after hashing them.
    pub reused_files: usize,
    /// Bytes received.
    pub bytes_downloaded: u64,
    /// Whether `appstart.toml` was rebuilt.
    pub config_rebuilt: bool,
}

/// The current version, its record, and what the check found.
struct Found {
    record: InstalledRecord,
    tree: check::TreeCheck,
    report: VerifyReport,
}

impl Updater {
    /// Reads and hashes every file of the current version and compares the folder with the
    /// signed manifest recorded at install time. Changes nothing.
    pub fn verify(&self) -> Result<VerifyReport> {
        let _lock = InstallLock::acquire(&self.install, "verify", self.lock_wait)?;
        Ok(self.find_damage()?.report)
    }

    /// [`Updater::verify`], then rebuilds a damaged current version beside it and swaps it
    /// in, fetching only the files that are not intact; rebuilds an unreadable
    /// `appstart.toml`. See the module documentation for the steps.
    pub fn repair(&self) -> Result<RepairReport> {
        let _lock = InstallLock::acquire(&self.install, "repair", self.lock_wait)?;
        let result = self.repair_locked();
        match &result {
            Ok(report) if report.repaired_to.is_some() || report.config_rebuilt => {
                let files = report.downloaded_files.to_string();
                self.history(
                    "repair",
                    &[
                        ("version", report.found.version.as_str()),
                        ("downloaded_files", &files),
                        ("config_rebuilt", &report.config_rebuilt.to_string()),
                    ],
                );
            }
            Ok(_) => {}
            Err(err) => self.failed("repair", err, None),
        }
        result
    }

    fn repair_locked(&self) -> Result<RepairReport> {
        let config_rebuilt = self.rebuild_config_if_unreadable()?;
        let mut found = self.find_damage()?;
        // The report says what was found: an appstart.toml rebuilt in step 1 was not ok.
        found.report.config_ok = !config_rebuilt;
        found.report.ok &= !config_rebuilt;
        let mut report = RepairReport {
            found: found.report.clone(),
            repaired_to: None,
            damaged_moved_to: None,
            downloaded_files: 0,
            reused_files: 0,
            bytes_downloaded: 0,
            config_rebuilt,
        };
        if found.tree.ok() {
            return Ok(report);
        }
        // Step 4: only what step 3 hashed is a local source.
        let manifest = &found.record.manifest;
        let mut local = LocalFiles::default();
        for (index, path, stat) in std::mem::take(&mut found.tree.intact) {
            let entry = &manifest.files[index];
            local.add_verified(&entry.blake3, path, entry.size, entry.executable, stat);
        }
        let mut without_pack = manifest.clone();
        without_pack.pack = None;
        let progress = Arc::new(ProgressMeter::new(self.events.clone(), Phase::Download));
        let metered = Metered::with_progress(self.transport.as_ref(), Arc::clone(&progress));
        let stager = Stager {
            install: &self.install,
            transport: &metered,
            repo_url: &self.settings.url,
            retry: self.retry.clone(),
            progress: Some(&progress),
            pack_data_start: 0,
            opened_pack: std::sync::Mutex::new(None),
        };
        let staged = stager.stage(&without_pack, &local).and_then(|staged| {
            // The record is written once the repaired folder is in place (step 6).
            staged.make_durable(&self.install, None)?;
            Ok(staged)
        });
        let StagedFolder {
            path: staging,
            report: stage_report,
            stats,
            ..
        } = match staged {
            Ok(staged) => staged,
            Err(err) => {
                if let Err(cleanup) =
                    fsutil::remove_dir_all_if_exists(&self.install.staging_dir(&manifest.version))
                {
                    log::warn!("{cleanup}");
                }
                return Err(err);
            }
        };
        crate::fault::step("repair-staged");
        // Step 5.
        let target = self.install.version_dir(&manifest.version);
        let aside = self.swap_in(&staging, &target, &manifest.version)?;
        crate::fault::step("repair-swapped");
        // Step 6. The hooks stay as recorded: a repair restores files, it does not install.
        let hooks = InstalledRecord::load(&self.install, &manifest.version)
            .map(|record| record.hooks)
            .unwrap_or_default();
        InstalledRecord {
            manifest: manifest.clone(),
            stats,
            hooks,
        }
        .save(&self.install)?;
        report.repaired_to = Some(target);
        report.damaged_moved_to = aside;
        report.downloaded_files = stage_report.files_downloaded;
        report.reused_files = stage_report.files_reused;
        report.bytes_downloaded = metered.bytes();
        Ok(report)
    }

    /// Step 5: puts `staging` at `target`, moving what was there to a `.damaged-` folder.
    /// Returns that folder, if there was one.
    fn swap_in(
        &self,
        staging: &std::path::Path,
        target: &std::path::Path,
        version: &VersionName,
    ) -> Result<Option<PathBuf>> {
        let versions = self.install.versions_dir();
        let aside = switch::free_damaged_dir(&self.install, version)?;
        if !target.exists() {
            fsutil::rename(staging, target)?;
            fsutil::sync_dir(&versions)?;
            return Ok(None);
        }
        let exchanged = platform::exchange(staging, target)
            .map_err(|e| Error::io("exchanging with the repaired folder", target, e))?;
        if exchanged {
            fsutil::sync_dir(&versions)?;
            // The damaged folder is now under the staging name, which no launcher runs.
            fsutil::rename(staging, &aside)?;
        } else {
            fsutil::rename(target, &aside)
                .map_err(|e| platform::explain_rename_failure(e.into()))?;
            crate::fault::step("repair-aside");
            if let Err(err) = fsutil::rename(staging, target) {
                // Put the damaged (still launchable) folder back.
                fsutil::rename(&aside, target)?;
                return Err(err.into());
            }
        }
        fsutil::sync_dir(&versions)?;
        Ok(Some(aside))
    }

    /// Steps 2 and 3, for the current version.
    fn find_damage(&self) -> Result<Found> {
        let (version, config_ok) = match LauncherConfig::load(&self.install.config_path()) {
            Ok(config) => (config.current, true),
            Err(err) => {
                log::warn!("{err}");
                (self.last_switched()?, false)
            }
        };
        let record = InstalledRecord::load(&self.install, &version).ok_or_else(|| {
            Error::NotInstalled(format!(
                "no readable record of version {version} ({}): it cannot be verified; install the app again",
                InstalledRecord::path(&self.install, &version).display()
            ))
        })?;
        let record_checked = self.check_record(&record)?;
        let tree = check::check_tree(
            &self.install.version_dir(&version),
            &record.manifest,
            self.events.clone(),
            &self.retry.cancel,
        )?;
        let report = VerifyReport {
            version,
            ok: tree.ok() && config_ok,
            damaged: tree.damaged.clone(),
            missing: tree.missing.clone(),
            extra: tree.extra.clone(),
            files_checked: tree.files_checked,
            config_ok,
            record_checked,
        };
        Ok(Found {
            record,
            tree,
            report,
        })
    }

    /// Step 2: whether the signed top-level targets list the record's release; an error when
    /// they list it with other hashes (the record was changed).
    fn check_record(&self, record: &InstalledRecord) -> Result<bool> {
        let trusted = TrustedMetadata::load(&self.install.metadata_dir(), Limits::default())?;
        let manifest = &record.manifest;
        let name = target_name(
            &manifest.app,
            &manifest.channel,
            &manifest.platform,
            &manifest.version,
        );
        // Without the trusted targets nothing can be checked: that is not "not listed".
        let Some(targets) = trusted.targets() else {
            return Err(Error::Invalid(format!(
                "{}: the trusted targets metadata is missing or unreadable, so the record of {} cannot be checked (`appupdate check` fetches it again)",
                self.install.metadata_dir().join("targets.json").display(),
                manifest.version
            )));
        };
        let Some(target) = targets.targets.get(&name) else {
            log::warn!("the trusted targets do not list {name}: its record is not checked");
            return Ok(false);
        };
        let what = format!(
            "{} (checked against target {name})",
            InstalledRecord::path(&self.install, &manifest.version).display()
        );
        check_target(target, &manifest.to_bytes(), &what)?;
        Ok(true)
    }

    /// The `current` the updater last wrote, from `state/switched.toml`.
    fn last_switched(&self) -> Result<VersionName> {
        let path = self.install.switched_path();
        Switched::load(&path)?.map(|s| s.current).ok_or_else(|| {
            Error::NotInstalled(format!(
                "appstart.toml is unreadable and {} does not exist: install the app again",
                path.display()
            ))
        })
    }

    /// Step 1: rewrites an unparseable `appstart.toml`. Returns whether it did.
    fn rebuild_config_if_unreadable(&self) -> Result<bool> {
        let path = self.install.config_path();
        if LauncherConfig::load(&path).is_ok() {
            return Ok(false);
        }
        let current = self.last_switched()?;
        let executable_of = |version: &VersionName| {
            InstalledRecord::load(&self.install, version).map(|r| r.manifest.executable)
        };
        let executable = executable_of(&current).ok_or_else(|| {
            Error::NotInstalled(format!(
                "appstart.toml is unreadable and version {current} has no record ({}): install the app again",
                InstalledRecord::path(&self.install, &current).display()
            ))
        })?;
        let previous = switch::installed_versions(&self.install)?
            .into_iter()
            .filter(|v| *v != current)
            .find_map(|v| executable_of(&v).map(|exe| (v, exe)));
        let config = match previous {
            Some((previous, previous_exe)) => {
                let mut config = LauncherConfig::new(previous, previous_exe);
                config.switch_to(current, executable);
                config
            }
            None => LauncherConfig::new(current, executable),
        };
        config.save(&path)?;
        Ok(true)
    }
}
