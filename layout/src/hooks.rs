//! Release hooks: programs a release ships and names in its signed metadata, run by the
//! updater (`post-install`, `pre-switch`) and by the launcher (`first-run`).
//!
//! Why here: both the launcher and the updater run hooks and write their results to the
//! history log, so the format ([`Hooks`]), the runner ([`run`]) and the one pending record
//! the launcher reads (`state/first-run.toml`, [`FirstRun`]) live in the crate both share.
//! `docs/repository-format.md` (the signed `custom.hooks` field) and `docs/layout.md` (the
//! environment and the files) are the reference.
//!
//! A hook is a file inside the version folder, so it was verified with the rest of the
//! version before it can run; the path comes from signed metadata as a [`RelativePath`]. It
//! is executed directly, with no shell (on Windows the standard library runs a `.bat` or
//! `.cmd` file through `cmd.exe /d /c` with its own argument quoting), in the version
//! folder, with a timeout; its output is kept (the last [`MAX_OUTPUT`] bytes) for the log.

mod run;
#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;

#[cfg(unix)]
use unix as platform;
#[cfg(windows)]
use windows as platform;

pub use run::{HookOutcome, HookRun, run};

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::names::{RelativePath, VersionName};
use crate::{fsutil, history};

/// Timeout of a hook published without `--hook-timeout`.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// Longest timeout a release may ask for: a hook holds the install lock (or, for
/// `first-run`, the app's start) while it runs.
pub const MAX_TIMEOUT_SECS: u64 = 3600;

/// Most bytes of a hook's output (stdout and stderr together) kept for the history log: the
/// last ones, where errors are.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum HookKind {
    /// After the version folder is complete and in place (fresh install or update), before
    /// anything switches to it. Failing fails the install or download.
    PostInstall,
    /// Just before `appstart.toml` is switched to the version. Failing aborts the switch.
    PreSwitch,
    /// At the first launch of the version, by the launcher, once. Failing is logged only.
    FirstRun,
}

impl HookKind {
    /// Every kind, in the order they run.
    pub const ALL: [HookKind; 3] = [
        HookKind::PostInstall,
        HookKind::PreSwitch,
        HookKind::FirstRun,
    ];

    /// The name in metadata, on the command line and in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::PostInstall => "post-install",
            HookKind::PreSwitch => "pre-switch",
            HookKind::FirstRun => "first-run",
        }
    }

    /// The kind named `name`, if any.
    pub fn parse(name: &str) -> Option<HookKind> {
        HookKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One hook: a file of the release and how long it may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// The program, relative to the version folder.
    pub path: RelativePath,
    /// Seconds before it is killed (and counted as failed).
    pub timeout_secs: u64,
}

/// The signed `custom.hooks` object of a release. Unknown kinds and fields are refused
/// (`deny_unknown_fields`): a client that cannot read a hook a publisher added refuses the
/// release rather than skip the hook.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// `post-install`.
    #[serde(
        rename = "post-install",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub post_install: Option<Hook>,
    /// `pre-switch`.
    #[serde(
        rename = "pre-switch",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pre_switch: Option<Hook>,
    /// `first-run`.
    #[serde(rename = "first-run", default, skip_serializing_if = "Option::is_none")]
    pub first_run: Option<Hook>,
}

impl Hooks {
    /// Whether the release has no hook.
    pub fn is_empty(&self) -> bool {
        HookKind::ALL.iter().all(|kind| self.get(*kind).is_none())
    }

    /// The hook of `kind`, if any.
    pub fn get(&self, kind: HookKind) -> Option<&Hook> {
        match kind {
            HookKind::PostInstall => self.post_install.as_ref(),
            HookKind::PreSwitch => self.pre_switch.as_ref(),
            HookKind::FirstRun => self.first_run.as_ref(),
        }
    }

    /// Sets the hook of `kind`; returns the one it replaces.
    pub fn set(&mut self, kind: HookKind, hook: Hook) -> Option<Hook> {
        let slot = match kind {
            HookKind::PostInstall => &mut self.post_install,
            HookKind::PreSwitch => &mut self.pre_switch,
            HookKind::FirstRun => &mut self.first_run,
        };
        slot.replace(hook)
    }

    /// Every hook with its kind, in the order they run.
    pub fn iter(&self) -> impl Iterator<Item = (HookKind, &Hook)> {
        HookKind::ALL
            .into_iter()
            .filter_map(|kind| self.get(kind).map(|hook| (kind, hook)))
    }

    /// Checks what the types cannot: each timeout is 1 to [`MAX_TIMEOUT_SECS`] seconds.
    pub fn check(&self) -> std::result::Result<(), String> {
        for (kind, hook) in self.iter() {
            if !(1..=MAX_TIMEOUT_SECS).contains(&hook.timeout_secs) {
                return Err(format!(
                    "hook {kind}: timeout_secs {} is not between 1 and {MAX_TIMEOUT_SECS}",
                    hook.timeout_secs
                ));
            }
        }
        Ok(())
    }
}

/// `state/first-run.toml`: the `first-run` hook of a version the updater switched to, for
/// the launcher to run once, at that version's first launch.
///
/// Why the launcher and not the updater: only the launcher knows when the version first
/// starts (the updater may switch hours before, or run in another process that never
/// starts the app). The launcher deletes the record before it runs the hook, so the hook
/// runs at most once, even if the machine stops during it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirstRun {
    /// The version whose first launch runs it.
    pub version: VersionName,
    /// The hook.
    pub hook: Hook,
}

impl FirstRun {
    /// Reads the record; `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        crate::state::load_optional_toml(path)
    }

    /// Writes the record atomically (replacing any older one).
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::state::save_toml(path, self)
    }

    /// The hook to run now that `version` starts, removing the record first; `None` when
    /// the record is for another version (or there is none, or it cannot be removed: a hook
    /// that could not be marked as run is not run).
    pub fn take(path: &Path, version: &VersionName) -> Result<Option<Hook>> {
        let Some(record) = FirstRun::load(path)? else {
            return Ok(None);
        };
        if record.version != *version {
            return Ok(None);
        }
        fsutil::remove_file_if_exists(path)?;
        Ok(Some(record.hook))
    }
}

/// Appends the `hook` line of `run` to the history log at `history_path`:
/// `hook kind=... version=... result=... exit_code=... duration_ms=... path=... output="..."`
/// (the free-form fields last, so a reader can stop at `path=`).
pub fn log(history_path: &Path, version: &VersionName, run: &HookRun) -> Result<()> {
    let exit_code = run
        .exit_code
        .map_or_else(|| "none".to_string(), |code| code.to_string());
    let duration = run.duration.as_millis().to_string();
    history::append(
        history_path,
        "hook",
        &[
            ("kind", run.kind.as_str()),
            ("version", version.as_str()),
            ("result", run.outcome.as_str()),
            ("exit_code", &exit_code),
            ("duration_ms", &duration),
            ("path", run.path.as_str()),
            ("output", &run.output),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(path: &str, timeout_secs: u64) -> Hook {
        Hook {
            path: RelativePath::parse(path).unwrap(),
            timeout_secs,
        }
    }

    #[test]
    fn hooks_round_trip_under_their_kind_names() {
        let mut hooks = Hooks::default();
        assert!(hooks.is_empty());
        hooks.set(HookKind::PreSwitch, hook("bin/check", 5));
        let text = toml::to_string(&hooks).unwrap();
        assert!(text.contains("[pre-switch]"), "{text}");
        let back: Hooks = toml::from_str(&text).unwrap();
        assert_eq!(back, hooks);
        assert_eq!(
            hooks.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            [HookKind::PreSwitch]
        );
        for kind in HookKind::ALL {
            assert_eq!(HookKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(HookKind::parse("pre-uninstall"), None);
    }

    /// A client must refuse what it cannot read rather than skip a hook.
    #[test]
    fn unknown_kinds_fields_and_escaping_paths_are_refused() {
        for text in [
            "[pre-uninstall]\npath = \"a\"\ntimeout_secs = 1\n",
            "[pre-switch]\npath = \"a\"\ntimeout_secs = 1\nshell = true\n",
            "[pre-switch]\npath = \"../a\"\ntimeout_secs = 1\n",
            "[pre-switch]\npath = \"/bin/sh\"\ntimeout_secs = 1\n",
        ] {
            assert!(toml::from_str::<Hooks>(text).is_err(), "{text}");
        }
        let mut hooks = Hooks::default();
        hooks.set(HookKind::FirstRun, hook("a", 0));
        assert!(hooks.check().unwrap_err().contains("first-run"));
        hooks.set(HookKind::FirstRun, hook("a", MAX_TIMEOUT_SECS));
        hooks.check().unwrap();
    }

    #[test]
    fn first_run_is_taken_once_and_only_by_its_version() {
        let dir = std::env::temp_dir().join(fsutil::temp_name("first-run-test"));
        let path = dir.join("first-run.toml");
        let v = |s: &str| VersionName::parse(s).unwrap();
        FirstRun {
            version: v("2.0.0"),
            hook: hook("bin/first", 5),
        }
        .save(&path)
        .unwrap();
        assert_eq!(FirstRun::take(&path, &v("1.0.0")).unwrap(), None);
        assert_eq!(
            FirstRun::take(&path, &v("2.0.0")).unwrap(),
            Some(hook("bin/first", 5))
        );
        assert_eq!(FirstRun::take(&path, &v("2.0.0")).unwrap(), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
