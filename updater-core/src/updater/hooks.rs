//! The updater's side of release hooks ([`appstart_layout::hooks`], `docs/layout.md`):
//! `post-install` once a version folder is in place, `pre-switch` just before `appstart.toml`
//! names the version, and the `state/first-run.toml` record from which the launcher runs
//! `first-run` at the version's first launch.
//!
//! The hooks come from the release's signed `custom.hooks`; each names a file of the
//! release, which was verified with the rest of the version folder before it runs (checked
//! here against the manifest before anything is staged). Every run is logged to the history
//! with its output at once, whatever happens next; a failure becomes [`Error::Hook`], which
//! leaves the install as it was.

use appstart_layout::hooks::{self, FirstRun, Hook, HookKind, HookOutcome, HookRun, Hooks};
use appstart_layout::{InstallDir, VersionName, fsutil};

use crate::error::{Error, Result};
use crate::manifest::Manifest;

/// What a failing hook of each kind does to the install, for [`Error::Hook`].
fn consequence(kind: HookKind) -> &'static str {
    match kind {
        HookKind::PostInstall => {
            "the version was not installed (its folder is removed; the next update installs it again)"
        }
        HookKind::PreSwitch => "the switch was aborted and the current version stays current",
        _ => "nothing was changed",
    }
}

/// Each hook names a file of `manifest` that is installed executable (Windows has no
/// execute bit: there the file only has to exist). Checked before anything is staged.
pub(super) fn check_paths(manifest: &Manifest, hooks: &Hooks) -> Result<()> {
    for (kind, hook) in hooks.iter() {
        let entry = manifest.files.iter().find(|entry| entry.path == hook.path);
        match entry {
            Some(entry) if entry.executable || cfg!(windows) => {}
            Some(_) => {
                return Err(Error::Invalid(format!(
                    "{} {}: the {kind} hook {} is not an executable file of the release; the publisher must make it executable and publish again",
                    manifest.app, manifest.version, hook.path
                )));
            }
            None => {
                return Err(Error::Invalid(format!(
                    "{} {}: the {kind} hook {} is not a file of the release; the publisher must publish it again",
                    manifest.app, manifest.version, hook.path
                )));
            }
        }
    }
    Ok(())
}

/// Runs `hook` of `version`, logs it to the history, hands it to `on_run` (receipts), and
/// turns a failure into [`Error::Hook`].
pub(super) fn run_checked(
    install: &InstallDir,
    version: &VersionName,
    kind: HookKind,
    hook: &Hook,
    on_run: &dyn Fn(&HookRun),
) -> Result<HookRun> {
    log::info!("running the {kind} hook {} of {version}", hook.path);
    let run = hooks::run(kind, hook, install, version);
    if let Err(err) = hooks::log(&install.history_path(), version, &run) {
        log::warn!("{err}");
    }
    on_run(&run);
    if run.succeeded() {
        return Ok(run);
    }
    Err(Error::Hook {
        kind,
        version: version.clone(),
        exit_code: run.exit_code,
        timed_out: run.outcome == HookOutcome::TimedOut,
        description: run.describe(),
        consequence: consequence(kind),
        history: install.history_path(),
    })
}

/// Before switching to `version`: records its `first-run` hook for the launcher. Written
/// before the switch, so a crash between the two cannot lose it (a record for a version
/// that is not current is never run). Without one, any older record stays: it names
/// another version, which still runs its own hook if it becomes current and starts.
pub(super) fn prepare_first_run(
    install: &InstallDir,
    version: &VersionName,
    hooks: &Hooks,
) -> Result<()> {
    if let Some(hook) = &hooks.first_run {
        FirstRun {
            version: version.clone(),
            hook: hook.clone(),
        }
        .save(&install.first_run_path())?;
    }
    Ok(())
}

/// After a `post-install` hook failed: removes the version folder and its record, so that
/// nothing switches to a version whose installation did not finish, and the next update
/// stages it (and runs the hook) again.
pub(super) fn discard_version(install: &InstallDir, version: &VersionName) {
    let record = crate::stage::InstalledRecord::path(install, version);
    for result in [
        fsutil::remove_dir_all_if_exists(&install.version_dir(version)),
        fsutil::remove_file_if_exists(&record),
    ] {
        if let Err(err) = result {
            log::warn!("{err}; it is removed at the next update");
        }
    }
}
