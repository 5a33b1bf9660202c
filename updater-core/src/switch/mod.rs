//! Making a staged version current, rolling back, and removing old versions.
//!
//! Steps after staging (see `docs/crash-safety.md`):
//! 5. Rename the version's record (its manifest and file stats, written beside
//!    `state/manifests/<version>.json` and made durable with the staging folder) into place;
//!    `fsync` `state/manifests/`.
//! 6. Rename `versions/.staging-<version>` to `versions/<version>`; `fsync` `versions/`.
//! 7. If the release ships a launcher, replace `DIR/appstart` atomically (`launcher`). On
//!    Windows a running `.exe` cannot be replaced or deleted, only renamed: the old launcher
//!    is first renamed aside to `appstart.exe.old-<n>`, and step 9 deletes it once it has
//!    exited.
//! 8. Write `state/probation.toml` for the new version, then switch `appstart.toml`
//!    atomically (`current` = new, `previous` = old). This rename is the commit point. Then
//!    record the switch in `state/switched.toml`.
//! 9. Remove versions beyond `keep` (`prune`; never current or previous; the newest of them
//!    is set aside as `versions/.spare` for the next staging to start from, on Unix), stale
//!    staging folders, launchers renamed aside and cached blobs. A folder or launcher still
//!    in use (Windows refuses to delete open files) is left for the next prune, with a
//!    warning: it must not fail an update that has already switched.
//!
//! Hand edits: rolling back by hand is editing `current` in `appstart.toml`. Before every
//! check, update and rollback, [`notice_hand_edit`] compares it with `state/switched.toml`
//! (the `current` appstart itself last wrote) and treats a move to an older version like
//! `appupdate rollback`, so the next update does not undo it.

use std::path::Path;

use appstart_layout::state::{BadVersions, Probation, Switched};
use appstart_layout::{InstallDir, LauncherConfig, VersionName, fsutil};

use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::release::case_conflict;
use crate::stage::{InstalledRecord, PendingRecord};

mod launcher;
mod prune;

pub use launcher::replace_launcher;
pub(crate) use prune::free_damaged_dir;
pub use prune::{installed_versions, prune, prune_keeping, running_versions};

/// Steps 5 and 6: renames the version's record (written and made durable with the staging
/// folder) into place, then the folder. A record is discarded if the folder may not
/// be put in place.
pub fn commit_version(
    install: &InstallDir,
    staging: &Path,
    version: &VersionName,
    record: Option<PendingRecord>,
) -> Result<()> {
    let target = install.version_dir(version);
    if target.exists() {
        // Only a version that is neither current nor previous may get here, e.g. one renamed
        // into place by a run that died before switching: the folder of a version that may
        // be running is never replaced. On a case-insensitive file system `target` may also
        // be the folder of a running version spelled differently: never remove that either.
        let running = running_versions(install)?;
        if running.contains(version) {
            if let Some(record) = record {
                record.discard();
            }
            return Err(Error::Invalid(format!(
                "refusing to replace {}: version {version} is current or previous and may be running",
                target.display()
            )));
        }
        if let Some(running) = case_conflict(version, &running) {
            if let Some(record) = record {
                record.discard();
            }
            return Err(Error::Invalid(format!(
                "refusing to replace {}: on a case-insensitive file system it may be the folder of version {running}, which may be running",
                target.display()
            )));
        }
    }
    // Anything but a folder in the way (a stray file, a link) is no version and never
    // followed: removed before the record is committed, so it cannot fail every update.
    if std::fs::symlink_metadata(&target).is_ok_and(|meta| !meta.is_dir())
        && let Err(err) = fsutil::remove_non_folder(&target)
    {
        if let Some(record) = record {
            record.discard();
        }
        return Err(err.into());
    }
    // A folder in the way that cannot be removed fails the commit before the record is.
    if let Some(mount) = fsutil::mount_within(&target)? {
        if let Some(record) = record {
            record.discard();
        }
        return Err(appstart_layout::Error::MountedInside {
            path: target,
            mount,
        }
        .into());
    }
    if let Some(record) = record {
        record.commit()?;
        crate::fault::step("recorded");
    }
    if target.exists() {
        fsutil::remove_dir_all_if_exists(&target)?;
    }
    fsutil::rename(staging, &target)?;
    fsutil::sync_dir(&install.versions_dir())?;
    crate::fault::step("renamed");
    Ok(())
}

/// Steps 7 and 8: makes `manifest`'s version current. Returns the version that was current.
pub fn switch_to(install: &InstallDir, manifest: &Manifest) -> Result<VersionName> {
    if let Some(launcher) = &manifest.launcher {
        replace_launcher(
            install,
            &launcher.join_to(&install.version_dir(&manifest.version)),
        )?;
        crate::fault::step("launcher");
    }
    let config_path = install.config_path();
    let mut config = LauncherConfig::load(&config_path)?;
    let old = config.current.clone();
    Probation::start(manifest.version.clone()).save(&install.probation_path())?;
    crate::fault::step("probation");
    config.switch_to(manifest.version.clone(), manifest.executable.clone());
    config.save(&config_path)?;
    crate::fault::step("switched");
    // After the config: a crash between the two looks like a forward move, never like a
    // hand rollback (docs/crash-safety.md).
    record_switch(install, &manifest.version, "update")?;
    Ok(old)
}

/// Switches back to `to` (default: `previous`). A version rolled back from (to an older one)
/// is recorded in `state/bad-versions.toml` so that the updater does not bring it straight
/// back; a newer release still installs. Returns (from, to).
pub fn rollback(
    install: &InstallDir,
    to: Option<&VersionName>,
) -> Result<(VersionName, VersionName)> {
    let config_path = install.config_path();
    let mut config = LauncherConfig::load(&config_path)?;
    let from = config.current.clone();
    let target = match to.or(config.previous.as_ref()) {
        Some(v) => v.clone(),
        None => {
            return Err(Error::NothingToDo(format!(
                "no previous version to roll back to (installed: {}); name one with --to",
                appstart_layout::names::list_versions(&installed_versions(install)?)
            )));
        }
    };
    if target == from {
        return Err(Error::NothingToDo(format!(
            "{target} is already the current version"
        )));
    }
    let executable = match InstalledRecord::load(install, &target) {
        Some(record) => record.manifest.executable,
        None => config.executable_for(&target).clone(),
    };
    let exe_path = executable.join_to(&install.version_dir(&target));
    if !fsutil::is_executable_file(&exe_path) {
        return Err(Error::Invalid(format!(
            "cannot roll back to {target}: {} is missing or not executable (installed: {})",
            exe_path.display(),
            appstart_layout::names::list_versions(&installed_versions(install)?)
        )));
    }
    if is_older(&target, &from) {
        BadVersions::record(&install.bad_versions_path(), &from, "rolled back by hand")?;
    }
    Probation::clear(&install.probation_path())?;
    config.switch_to(target.clone(), executable);
    config.save(&config_path)?;
    // After the config; a crash between them is read as a hand rollback, which records the
    // same skip as above.
    record_switch(install, &target, "rollback")?;
    Ok((from, target))
}

/// Writes `state/switched.toml`: `current` was just written to `appstart.toml` by `by`.
pub fn record_switch(install: &InstallDir, current: &VersionName, by: &str) -> Result<()> {
    Switched::new(current.clone(), by).save(&install.switched_path())?;
    Ok(())
}

/// The reason recorded in `state/bad-versions.toml` for a version left by a hand edit.
pub const HAND_EDIT_REASON: &str = "left by a hand edit of appstart.toml";

/// A change of `current` that appstart did not make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandEdit {
    /// The `current` appstart last wrote.
    pub from: VersionName,
    /// The `current` the file names now.
    pub to: VersionName,
    /// Whether `from` was recorded as skipped (the edit went to an older version).
    pub skipped: bool,
}

/// Notices a hand edit of `current`: when `appstart.toml` names another version than the one
/// appstart last wrote (`state/switched.toml`) and it is older (SemVer), the version left is
/// recorded in `state/bad-versions.toml` like `appupdate rollback` does. Then the new current
/// is recorded. No record (an install older than the record) means no hand edit; one is
/// written so later edits are noticed. Call it holding the install lock.
pub fn notice_hand_edit(install: &InstallDir) -> Result<Option<HandEdit>> {
    let config = LauncherConfig::load(&install.config_path())?;
    let path = install.switched_path();
    let record = Switched::load(&path).unwrap_or_else(|err| {
        // A torn or foreign file: start over from what the config says.
        log::warn!("ignoring {}: {err}", path.display());
        None
    });
    if record
        .as_ref()
        .is_some_and(|record| record.current == config.current)
    {
        return Ok(None);
    }
    let folder = install.version_dir(&config.current);
    if !folder.is_dir() {
        if let Some(record) = &record
            && config.previous.as_ref() == Some(&record.current)
            && install.version_dir(&record.current).is_dir()
        {
            // The launcher's fallback writes the record first, then the config: a crash
            // between the two leaves exactly this. Finish it as the launcher would have (it
            // already recorded any blame before the record).
            let mut config = config;
            config.fall_back();
            config.save(&install.config_path())?;
            Probation::clear(&install.probation_path())?;
            log::warn!(
                "{}: finished the launcher's fallback to {}: version folder {} is missing",
                install.config_path().display(),
                record.current,
                folder.display()
            );
            return Ok(None);
        }
        // A `current` that cannot run is no rollback to follow: updating from it would mark
        // the version left as bad and prune it. Refused, changing nothing.
        return Err(Error::Invalid(format!(
            "{}: `current` names version {}, which is not installed ({} is not a folder); installed: {}. Set `current` to an installed version (the launcher falls back to `previous` when that one can run, and refuses to start otherwise)",
            install.config_path().display(),
            config.current,
            folder.display(),
            appstart_layout::names::list_versions(&installed_versions(install)?)
        )));
    }
    let Some(record) = record else {
        record_switch(install, &config.current, "first check")?;
        return Ok(None);
    };
    let skipped = is_older(&config.current, &record.current);
    if skipped {
        // Skip first: a crash before the record below just repeats this at the next check.
        BadVersions::record(
            &install.bad_versions_path(),
            &record.current,
            HAND_EDIT_REASON,
        )?;
    }
    record_switch(install, &config.current, "hand edit")?;
    Ok(Some(HandEdit {
        from: record.current,
        to: config.current,
        skipped,
    }))
}

fn is_older(a: &VersionName, b: &VersionName) -> bool {
    match (
        semver::Version::parse(a.as_str()),
        semver::Version::parse(b.as_str()),
    ) {
        (Ok(a), Ok(b)) => a < b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::launcher::launcher_aside_prefix;
    use super::*;
    use appstart_layout::RelativePath;

    fn v(s: &str) -> VersionName {
        VersionName::parse(s).unwrap()
    }

    fn install_with(current: &str, previous: Option<&str>) -> (tempfile::TempDir, InstallDir) {
        let dir = tempfile::tempdir().unwrap();
        let install = InstallDir::new(dir.path());
        let mut config = LauncherConfig::new(v(current), RelativePath::parse("bin/app").unwrap());
        config.previous = previous.map(v);
        config.save(&install.config_path()).unwrap();
        (dir, install)
    }

    /// Edits `current` by hand, to an installed version (its folder is made).
    fn set_current(install: &InstallDir, current: &str) {
        std::fs::create_dir_all(install.version_dir(&v(current))).unwrap();
        let mut config = LauncherConfig::load(&install.config_path()).unwrap();
        config.current = v(current);
        config.save(&install.config_path()).unwrap();
    }

    /// A `current` with no version folder is no hand rollback: refused, nothing recorded.
    #[test]
    fn a_current_that_is_not_installed_is_refused_and_nothing_is_recorded() {
        let (_dir, install) = install_with("3.0.0", Some("2.0.0"));
        std::fs::create_dir_all(install.version_dir(&v("3.0.0"))).unwrap();
        record_switch(&install, &v("3.0.0"), "update").unwrap();
        let mut config = LauncherConfig::load(&install.config_path()).unwrap();
        config.current = v("1.0.0");
        config.save(&install.config_path()).unwrap();
        let err = notice_hand_edit(&install).unwrap_err().to_string();
        assert!(
            err.contains("`current` names version 1.0.0, which is not installed")
                && err.contains("installed: 3.0.0"),
            "{err}"
        );
        assert!(!install.bad_versions_path().exists());
        let switched = Switched::load(&install.switched_path()).unwrap().unwrap();
        assert_eq!(switched.current, v("3.0.0"));
    }

    /// The launcher's fallback writes `state/switched.toml` before `appstart.toml`: a crash
    /// between them, with the failed version's folder gone, is finished here, not refused.
    #[test]
    fn a_fallback_torn_by_a_crash_is_finished_not_refused() {
        let (_dir, install) = install_with("3.0.0", Some("2.0.0"));
        std::fs::create_dir_all(install.version_dir(&v("2.0.0"))).unwrap();
        record_switch(&install, &v("2.0.0"), "launcher fallback").unwrap();
        Probation::start(v("3.0.0"))
            .save(&install.probation_path())
            .unwrap();
        assert_eq!(notice_hand_edit(&install).unwrap(), None);
        assert!(!install.probation_path().exists(), "probation is ended too");
        let config = LauncherConfig::load(&install.config_path()).unwrap();
        assert_eq!(config.current, v("2.0.0"));
        assert_eq!(config.previous, None);
        assert!(!install.bad_versions_path().exists());
        assert_eq!(notice_hand_edit(&install).unwrap(), None);

        // Without the previous folder it is no fallback the launcher could have made.
        let (_dir, install) = install_with("3.0.0", Some("2.0.0"));
        record_switch(&install, &v("2.0.0"), "launcher fallback").unwrap();
        assert!(notice_hand_edit(&install).is_err());
        let config = LauncherConfig::load(&install.config_path()).unwrap();
        assert_eq!(config.current, v("3.0.0"));
    }

    /// Launchers renamed aside on Windows (a running .exe cannot be replaced) are deleted by
    /// the next prune; if a crash left no launcher between the two renames, the newest one
    /// aside is put back first.
    #[test]
    fn prune_removes_launchers_renamed_aside_and_restores_a_missing_one() {
        let (_dir, install) = install_with("1.0.0", None);
        let launcher = install.launcher_path();
        let prefix = launcher_aside_prefix(&install);
        let aside = |n: &str| install.root().join(format!("{prefix}{n}"));
        std::fs::write(aside("1"), "old").unwrap();
        prune(&install, 1).unwrap();
        assert_eq!(std::fs::read_to_string(&launcher).unwrap(), "old");
        assert!(!aside("1").exists());

        std::fs::write(aside("2"), "older").unwrap();
        prune(&install, 1).unwrap();
        assert_eq!(std::fs::read_to_string(&launcher).unwrap(), "old");
        assert!(!aside("2").exists());
    }

    /// Windows: a running `.exe` cannot be replaced or deleted, only renamed. The launcher
    /// (here a copy of this test binary, kept running) is renamed aside, the new one takes
    /// its place, and prune deletes the old one once it has exited.
    #[cfg(windows)]
    #[test]
    fn windows_replaces_a_running_launcher_by_renaming_it_aside() {
        let (_dir, install) = install_with("1.0.0", None);
        let launcher = install.launcher_path();
        std::fs::copy(std::env::current_exe().unwrap(), &launcher).unwrap();
        let mut running = std::process::Command::new(&launcher)
            .args([
                "--ignored",
                "--exact",
                "advanced::switch::tests::windows_running_launcher_stand_in",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(
            std::fs::remove_file(&launcher).is_err(),
            "the running .exe was deleted"
        );

        let new = install.root().join("new-launcher");
        std::fs::write(&new, "new launcher").unwrap();
        replace_launcher(&install, &new).unwrap();
        assert_eq!(std::fs::read(&launcher).unwrap(), b"new launcher");
        let prefix = launcher_aside_prefix(&install);
        let aside = || {
            std::fs::read_dir(install.root())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with(&prefix)
                })
                .count()
        };
        assert_eq!(aside(), 1);

        prune(&install, 1).unwrap(); // Still running: left for later, not an error.
        assert_eq!(aside(), 1);
        running.kill().unwrap();
        running.wait().unwrap();
        prune(&install, 1).unwrap();
        assert_eq!(aside(), 0);
        assert_eq!(std::fs::read(&launcher).unwrap(), b"new launcher");
    }

    /// Not a test: the process the test above keeps running as its "launcher".
    #[cfg(windows)]
    #[test]
    #[ignore = "run only as a child of windows_replaces_a_running_launcher_by_renaming_it_aside"]
    fn windows_running_launcher_stand_in() {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }

    /// Regression: a hand rollback (editing `current`) was not noticed, so the next update
    /// undid it at once.
    #[test]
    fn a_hand_edit_to_an_older_version_skips_the_version_left() {
        let (_dir, install) = install_with("3.0.0", Some("2.0.0"));
        record_switch(&install, &v("3.0.0"), "update").unwrap();
        set_current(&install, "2.0.0");
        let edit = notice_hand_edit(&install).unwrap();
        assert_eq!(
            edit,
            Some(HandEdit {
                from: v("3.0.0"),
                to: v("2.0.0"),
                skipped: true
            })
        );
        let bad = BadVersions::load(&install.bad_versions_path()).unwrap();
        assert_eq!(bad.entry(&v("3.0.0")).unwrap().reason, HAND_EDIT_REASON);
        // Noticed once: the record now follows the edit.
        assert_eq!(notice_hand_edit(&install).unwrap(), None);
    }

    /// Regression: on a case-insensitive file system `versions/1.0.0-rc` is the folder of a
    /// running `1.0.0-RC`; pruning the former deleted the latter.
    #[test]
    fn prune_never_removes_a_case_variant_of_current() {
        let (_dir, install) = install_with("1.0.0-RC", None);
        for version in ["1.0.0-RC", "1.0.0-rc", "0.9.0"] {
            std::fs::create_dir_all(install.version_dir(&v(version))).unwrap();
        }
        let removed = prune(&install, 1).unwrap();
        assert_eq!(removed, vec![v("0.9.0")]);
        assert!(install.version_dir(&v("1.0.0-rc")).is_dir());
    }

    /// Regression: committing `1.0.0-rc` removed an existing `versions/1.0.0-rc`, which on a
    /// case-insensitive file system is the folder of the running `1.0.0-RC`.
    #[test]
    fn commit_version_never_replaces_a_case_variant_of_current() {
        let (_dir, install) = install_with("1.0.0-RC", None);
        let existing = install.version_dir(&v("1.0.0-rc"));
        std::fs::create_dir_all(&existing).unwrap();
        std::fs::write(existing.join("marker"), b"running").unwrap();
        let staging = install.staging_dir(&v("1.0.0-rc"));
        std::fs::create_dir_all(&staging).unwrap();
        let err = commit_version(&install, &staging, &v("1.0.0-rc"), None).unwrap_err();
        assert!(err.to_string().contains("1.0.0-RC"), "{err}");
        assert!(existing.join("marker").exists());
    }

    #[test]
    fn a_forward_move_or_a_missing_record_skips_nothing() {
        // An install older than the record: nothing to compare with.
        let (_dir, install) = install_with("2.0.0", None);
        std::fs::create_dir_all(install.version_dir(&v("2.0.0"))).unwrap();
        assert_eq!(notice_hand_edit(&install).unwrap(), None);
        // A crash between writing appstart.toml (3.0.0) and the record (still 2.0.0) looks
        // like a forward move: nothing is skipped.
        set_current(&install, "3.0.0");
        let edit = notice_hand_edit(&install).unwrap().unwrap();
        assert!(!edit.skipped);
        assert!(
            BadVersions::load(&install.bad_versions_path())
                .unwrap()
                .bad
                .is_empty()
        );
    }
}
