//! The launch loop: read the config, pick a runnable version, run it, act on how it ended.
//!
//! Steps, repeated until the child ends for good (see `docs/launcher.md`):
//! 1. Read `appstart.toml` beside the launcher (again on every restart).
//! 2. If the current version's executable is missing or not executable and a usable
//!    `previous` exists (installed, runnable, not in `state/bad-versions.toml`), fall back to
//!    it. The version left is recorded as bad only while it is on probation (a release that
//!    cannot start); otherwise it was damaged locally and the updater may fetch it again.
//! 3. Run the version's `first-run` hook if it has not run yet (once, see
//!    `run_first_run_hook`). Run the executable with the same arguments and `APPSTART_*`
//!    variables; forward signals.
//! 4. Exit 0 or the restart code ends probation. The restart code goes back to step 1, within
//!    the restart bound. A crash during probation counts against the new version; enough of
//!    them fall back to `previous` and go back to step 1. Otherwise exit with the child's code.
#![allow(
    clippy::result_large_err,
    reason = "a LaunchError is returned once, as the launcher ends; Windows paths (WTF-8) push it just past clippy's 128 bytes"
)]

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use appstart_layout::state::{BadVersions, Probation, Switched};
use appstart_layout::{InstallDir, LauncherConfig, VersionName, fsutil, history};

use crate::platform::{self, Outcome};

/// Exit code of the launcher's own failures (bad config, nothing runnable, restart loop).
pub const LAUNCHER_FAILURE: u8 = 127;

/// What stops the launcher from running anything.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The launcher's own location could not be found.
    #[error("cannot find the launcher's own path")]
    OwnPath(#[source] std::io::Error),
    /// Reading or writing an install file failed (names the file, line and column).
    #[error(transparent)]
    Layout(#[from] appstart_layout::Error),
    /// Neither the current version nor a previous one can be started.
    #[error(
        "cannot run version {version}: {reason} ({path}); no usable previous version to fall back to (installed: {installed}); set `current` in {config} to one of them"
    )]
    NotRunnable {
        /// The version that was to run.
        version: VersionName,
        /// The missing or unusable path.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
        /// The version folders present, comma-separated, or `none`.
        installed: String,
        /// The config file, where `current` is set.
        config: PathBuf,
    },
    /// Starting the child failed.
    #[error("cannot start {path}")]
    Spawn {
        /// The executable.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The app asked to be restarted too often.
    #[error(
        "the app asked to restart {count} times within {window_secs} s; giving up (see [restart] in {config})"
    )]
    RestartLoop {
        /// Restarts seen in the window.
        count: usize,
        /// The window.
        window_secs: u64,
        /// The config file, where the bound is set.
        config: PathBuf,
    },
}

/// Step 3, first: the version's `first-run` hook, if the updater recorded one for it and it
/// has not run yet (`state/first-run.toml`, removed before the hook starts: at most once).
/// The launcher runs it because only the launcher knows when the version first starts. A
/// failing hook is logged (with its output, in the history) and the app starts anyway: the
/// version is already current, and refusing to start would leave the user with nothing.
fn run_first_run_hook(install: &InstallDir, version: &VersionName) {
    let hook = match appstart_layout::hooks::FirstRun::take(&install.first_run_path(), version) {
        Ok(Some(hook)) => hook,
        Ok(None) => return,
        Err(err) => {
            log::warn!("not running the first-run hook: {err}");
            return;
        }
    };
    let kind = appstart_layout::hooks::HookKind::FirstRun;
    let run = appstart_layout::hooks::run(kind, &hook, install, version);
    if let Err(err) = appstart_layout::hooks::log(&install.history_path(), version, &run) {
        log::warn!("{err}");
    }
    if !run.succeeded() {
        log::warn!("{}", run.describe());
    }
}

/// Runs the app until it ends for good; returns the exit code to end with (the child's, all
/// 32 bits of it on Windows; 128 + the signal when a signal killed it on Unix).
pub fn run(args: Vec<OsString>) -> Result<i32, LaunchError> {
    let launcher = std::env::current_exe().map_err(LaunchError::OwnPath)?;
    let install = InstallDir::new(fsutil::parent_of(&launcher));
    platform::forward_signals();
    let mut restarts: VecDeque<Instant> = VecDeque::new();
    loop {
        // Step 1.
        let mut config = LauncherConfig::load(&install.config_path())?;
        // Step 2.
        let version = runnable_version(&install, &mut config)?;
        let executable = config.executable_path(&install, &version);
        let probation = load_probation(&install.probation_path()).filter(|p| p.version == version);
        run_first_run_hook(&install, &version);
        log_event(&install, "launch", &[("version", version.as_str())]);
        log::info!("starting {} ({})", version, executable.display());

        // Step 3.
        let started = Instant::now();
        let environment = child_environment(&install, &launcher, &version, &config);
        let outcome = platform::run_child(&executable, &args, &environment).map_err(|source| {
            LaunchError::Spawn {
                path: executable.clone(),
                source,
            }
        })?;
        let ran_for = started.elapsed();

        // Step 4.
        let asked_restart =
            outcome == Outcome::Exited(config.restart_code) && !platform::termination_requested();
        if outcome == Outcome::Exited(0) || asked_restart {
            accept(&install, probation.as_ref());
        }
        if asked_restart {
            bound_restarts(&mut restarts, &config, &install)?;
            log_event(&install, "restart", &[("version", version.as_str())]);
            continue;
        }
        if let Some(mut probation) = probation.filter(|_| outcome != Outcome::Exited(0)) {
            let within = ran_for < Duration::from_secs(config.probation.secs);
            if !within {
                accept(&install, Some(&probation));
            } else {
                // Saturating: a hand-edited or corrupt count must not wrap to 0 and skip the fallback.
                probation.failures = probation.failures.saturating_add(1);
                let reason = format!(
                    "{} after {:.1} s, crash {} of {} allowed during probation",
                    outcome.describe(),
                    ran_for.as_secs_f64(),
                    probation.failures,
                    config.probation.failures
                );
                if probation.failures >= config.probation.failures
                    && usable_previous(&install, &config).is_some()
                {
                    fall_back(&install, &mut config, &reason, Blame::Release)?;
                    bound_restarts(&mut restarts, &config, &install)?;
                    continue;
                }
                probation.save(&install.probation_path())?;
            }
        }
        return Ok(match outcome {
            Outcome::Exited(code) => code,
            #[cfg(unix)]
            Outcome::Signaled(signal) => {
                eprintln!("appstart: version {version} was killed by signal {signal}");
                log_event(
                    &install,
                    "killed",
                    &[
                        ("version", version.as_str()),
                        ("signal", &signal.to_string()),
                    ],
                );
                if (1..128).contains(&signal) {
                    128 + signal
                } else {
                    i32::from(LAUNCHER_FAILURE)
                }
            }
        });
    }
}

/// Step 2: the current version if it can run, else a fallback to `previous`.
fn runnable_version(
    install: &InstallDir,
    config: &mut LauncherConfig,
) -> Result<VersionName, LaunchError> {
    let current = config.current.clone();
    let executable = config.executable_path(install, &current);
    let Some(reason) = unusable_reason(install, &current, &executable) else {
        return Ok(current);
    };
    if usable_previous(install, config).is_none() {
        let folder = install.version_dir(&current);
        let path = if folder.is_dir() { executable } else { folder };
        return Err(LaunchError::NotRunnable {
            version: current,
            path,
            reason,
            installed: appstart_layout::names::list_versions(&install.version_folders()),
            config: install.config_path(),
        });
    }
    // A version that cannot start while on probation is a bad release. One that ran before
    // (probation over) and lost its folder or executable since was damaged here (antivirus,
    // a tidy user): it is not the release's fault, so the updater may fetch it again.
    let on_probation =
        load_probation(&install.probation_path()).is_some_and(|p| p.version == current);
    let (why, blame) = if on_probation {
        (
            format!("{reason}: {}", executable.display()),
            Blame::Release,
        )
    } else {
        (
            format!(
                "damaged locally, not recorded as bad: {reason}: {}",
                executable.display()
            ),
            Blame::LocalDamage,
        )
    };
    fall_back(install, config, &why, blame)?;
    Ok(config.current.clone())
}

/// Why `version` cannot run, or `None` when it can.
fn unusable_reason(
    install: &InstallDir,
    version: &VersionName,
    exe: &Path,
) -> Option<&'static str> {
    if !install.version_dir(version).is_dir() {
        Some("its version folder is missing")
    } else if !exe.exists() {
        Some("its executable is missing")
    } else if !fsutil::is_executable_file(exe) {
        Some("its executable is not an executable file")
    } else {
        None
    }
}

/// `previous`, when it names a version whose executable can run and that is not recorded as
/// bad (a fallback must never return to a version the user or the launcher rolled back from).
fn usable_previous(install: &InstallDir, config: &LauncherConfig) -> Option<VersionName> {
    let previous = config.previous.clone()?;
    let exe = config.executable_path(install, &previous);
    if let Some(reason) = unusable_reason(install, &previous, &exe) {
        log::warn!("ignoring previous version {previous}: {reason}");
        return None;
    }
    if load_bad_versions(&install.bad_versions_path()).contains(&previous) {
        log::warn!(
            "ignoring previous version {previous}: it is listed in {}",
            install.bad_versions_path().display()
        );
        return None;
    }
    Some(previous)
}

/// Why the current version is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blame {
    /// The release itself failed: record it as bad so the updater never installs it again.
    Release,
    /// Its files were removed or changed here: do not record it, the updater may repair it.
    LocalDamage,
}

/// Switches `appstart.toml` back to `previous`, recording the current version as bad when the
/// release is to blame.
fn fall_back(
    install: &InstallDir,
    config: &mut LauncherConfig,
    reason: &str,
    blame: Blame,
) -> Result<(), LaunchError> {
    let bad = config.current.clone();
    if blame == Blame::Release {
        // Bad first: if we crash right after, the updater must not reinstall this version.
        BadVersions::record(&install.bad_versions_path(), &bad, reason)?;
    }
    let mut switched = config.clone();
    switched.fall_back();
    // The switch record goes before the config here (after it for forward switches): a crash
    // between the two then looks like no move at all, never like a hand rollback that would
    // skip a version only damaged locally (docs/crash-safety.md).
    Switched::new(switched.current.clone(), "launcher fallback").save(&install.switched_path())?;
    switched.save(&install.config_path())?;
    *config = switched;
    Probation::clear(&install.probation_path())?;
    eprintln!(
        "appstart: version {bad} failed ({reason}); falling back to {}",
        config.current
    );
    log_event(
        install,
        "fallback",
        &[
            ("from", bad.as_str()),
            ("to", config.current.as_str()),
            ("reason", reason),
        ],
    );
    Ok(())
}

/// The probation file; a missing or unreadable one means no probation (logged), so a torn
/// state file never stops the app from starting.
fn load_probation(path: &Path) -> Option<Probation> {
    Probation::load(path).unwrap_or_else(|err| {
        log::warn!("ignoring {}: {err}", path.display());
        None
    })
}

/// The bad-versions list; an unreadable one counts as empty (logged).
fn load_bad_versions(path: &Path) -> BadVersions {
    BadVersions::load(path).unwrap_or_else(|err| {
        log::warn!("ignoring {}: {err}", path.display());
        BadVersions::default()
    })
}

/// Ends probation: the version proved itself.
fn accept(install: &InstallDir, probation: Option<&Probation>) {
    if let Some(probation) = probation {
        match Probation::clear(&install.probation_path()) {
            Ok(()) => log_event(
                install,
                "accepted",
                &[("version", probation.version.as_str())],
            ),
            Err(err) => log::warn!("{err}"),
        }
    }
}

/// Refuses one more restart when `restart.max` already happened within the window.
fn bound_restarts(
    restarts: &mut VecDeque<Instant>,
    config: &LauncherConfig,
    install: &InstallDir,
) -> Result<(), LaunchError> {
    let now = Instant::now();
    let window = Duration::from_secs(config.restart.window_secs);
    while restarts
        .front()
        .is_some_and(|t| now.duration_since(*t) > window)
    {
        restarts.pop_front();
    }
    if restarts.len() >= config.restart.max as usize {
        log_event(
            install,
            "restart-loop",
            &[("current", config.current.as_str())],
        );
        return Err(LaunchError::RestartLoop {
            count: restarts.len() + 1,
            window_secs: config.restart.window_secs,
            config: install.config_path(),
        });
    }
    restarts.push_back(now);
    Ok(())
}

/// The variables the app uses to find its install and its updater.
fn child_environment(
    install: &InstallDir,
    launcher: &Path,
    version: &VersionName,
    config: &LauncherConfig,
) -> Vec<(&'static str, OsString)> {
    vec![
        ("APPSTART_DIR", install.root().as_os_str().to_owned()),
        ("APPSTART_VERSION", version.as_str().into()),
        ("APPSTART_LAUNCHER", launcher.as_os_str().to_owned()),
        (
            "APPSTART_RESTART_CODE",
            config.restart_code.to_string().into(),
        ),
    ]
}

/// History is diagnostic: failing to write it must not stop the app from starting.
fn log_event(install: &InstallDir, event: &str, fields: &[(&str, &str)]) {
    if let Err(err) = history::append(&install.history_path(), event, fields) {
        log::warn!("{err}");
    }
}
