//! `appstart.toml`: which version the launcher runs, and how.
//!
//! Every key is documented in `docs/appstart-toml.md`. The file is small on purpose: rolling
//! back by hand is editing the `current` line. It is parsed strictly (unknown keys are refused
//! by name, errors carry line and column) because a typo here must not silently change what
//! runs. It is written only by [`LauncherConfig::save`], atomically; comments a person added
//! are not kept across a write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::names::{RelativePath, VersionName};
use crate::paths::InstallDir;

/// Exit code by which an app asks the launcher to start it again (`EX_TEMPFAIL`).
pub const DEFAULT_RESTART_CODE: i32 = 75;

/// The parsed `appstart.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LauncherConfig {
    /// The version folder (under `versions/`) to run.
    pub current: VersionName,
    /// The version that ran before `current`; the launcher falls back to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<VersionName>,
    /// The executable inside a version folder.
    pub executable: RelativePath,
    /// Exit code that means "start me again" (1 to 255).
    #[serde(default = "default_restart_code")]
    pub restart_code: i32,
    /// Per-version executable, for versions whose executable differs from `executable`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub executables: BTreeMap<VersionName, RelativePath>,
    /// Bounds on relaunching.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// How a newly switched-to version proves itself.
    #[serde(default)]
    pub probation: ProbationPolicy,
}

/// At most `max` restarts within `window_secs`; one more ends the launcher with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    /// Restarts allowed within the window.
    #[serde(default = "default_max_restarts")]
    pub max: u32,
    /// The window, in seconds.
    #[serde(default = "default_window_secs")]
    pub window_secs: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max: default_max_restarts(),
            window_secs: default_window_secs(),
        }
    }
}

/// A new version is on probation until it has run `secs` seconds or exited with 0 or the
/// restart code. `failures` crashes during probation roll it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbationPolicy {
    /// Probation length in seconds.
    #[serde(default = "default_probation_secs")]
    pub secs: u64,
    /// Crashes during probation that trigger the fallback (at least 1).
    #[serde(default = "default_probation_failures")]
    pub failures: u32,
}

impl Default for ProbationPolicy {
    fn default() -> Self {
        ProbationPolicy {
            secs: default_probation_secs(),
            failures: default_probation_failures(),
        }
    }
}

fn default_restart_code() -> i32 {
    DEFAULT_RESTART_CODE
}
fn default_max_restarts() -> u32 {
    5
}
fn default_window_secs() -> u64 {
    60
}
fn default_probation_secs() -> u64 {
    30
}
fn default_probation_failures() -> u32 {
    1
}

impl LauncherConfig {
    /// A config running `current` with every other key at its default.
    pub fn new(current: VersionName, executable: RelativePath) -> Self {
        LauncherConfig {
            current,
            previous: None,
            executable,
            restart_code: DEFAULT_RESTART_CODE,
            executables: BTreeMap::new(),
            restart: RestartPolicy::default(),
            probation: ProbationPolicy::default(),
        }
    }

    /// Reads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = fsutil::read_to_string_capped(path, fsutil::MAX_STATE_FILE)?;
        LauncherConfig::parse(&text, path)
    }

    /// Parses and validates `text`; `path` is used in errors only.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut config: LauncherConfig =
            toml::from_str(text).map_err(|e| Error::from_toml(path, text, &e))?;
        config.validate(path)?;
        config.forget_previous_equal_to_current(path);
        Ok(config)
    }

    /// Treats a `previous` equal to `current` as absent. Rolling back by hand is editing the
    /// `current` line, which may leave `previous` naming the same version: that must start,
    /// not fail, so it is only logged.
    fn forget_previous_equal_to_current(&mut self, path: &Path) {
        if self.previous.as_ref() == Some(&self.current) {
            log::warn!(
                "{}: `previous` equals `current` ({}); treating it as absent",
                path.display(),
                self.current
            );
            self.previous = None;
        }
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let invalid = |field: &str, message: &str| Error::InvalidField {
            path: path.to_path_buf(),
            field: field.to_string(),
            message: message.to_string(),
        };
        if !(1..=255).contains(&self.restart_code) {
            return Err(invalid("restart_code", "must be from 1 to 255"));
        }
        if self.probation.failures == 0 {
            return Err(invalid("probation.failures", "must be at least 1"));
        }
        Ok(())
    }

    /// The executable of `version` relative to its folder.
    pub fn executable_for(&self, version: &VersionName) -> &RelativePath {
        self.executables.get(version).unwrap_or(&self.executable)
    }

    /// The absolute path of `version`'s executable in `install`.
    pub fn executable_path(&self, install: &InstallDir, version: &VersionName) -> PathBuf {
        self.executable_for(version)
            .join_to(&install.version_dir(version))
    }

    /// Records `executable` as `version`'s executable, keeping the map minimal.
    pub fn set_executable(&mut self, version: &VersionName, executable: RelativePath) {
        if executable == self.executable {
            self.executables.remove(version);
        } else {
            self.executables.insert(version.clone(), executable);
        }
    }

    /// Makes `version` current (with `executable`), moving the old current to `previous`.
    pub fn switch_to(&mut self, version: VersionName, executable: RelativePath) {
        if version == self.current {
            return;
        }
        // The default `executable` follows the current version; older versions keep theirs
        // through the per-version map.
        let old_current = std::mem::replace(&mut self.current, version.clone());
        let old_executable = self.executable_for(&old_current).clone();
        self.executable = executable;
        self.executables.remove(&version);
        self.set_executable(&old_current, old_executable);
        self.previous = Some(old_current);
        self.prune_executables();
    }

    /// Falls back to `previous`: it becomes current and `previous` is cleared. Returns the
    /// version that was current, or `None` (and changes nothing) when there is no previous.
    pub fn fall_back(&mut self) -> Option<VersionName> {
        let previous = self.previous.take()?;
        let previous_executable = self.executable_for(&previous).clone();
        let bad = std::mem::replace(&mut self.current, previous.clone());
        let bad_executable = std::mem::replace(&mut self.executable, previous_executable);
        self.executables.remove(&previous);
        self.set_executable(&bad, bad_executable);
        self.prune_executables();
        Some(bad)
    }

    /// Drops per-version executables for versions that are neither current nor previous and
    /// are not in `keep`.
    pub fn retain_executables(&mut self, keep: &[VersionName]) {
        let current = self.current.clone();
        let previous = self.previous.clone();
        self.executables
            .retain(|v, _| *v == current || Some(v) == previous.as_ref() || keep.contains(v));
    }

    fn prune_executables(&mut self) {
        let default = self.executable.clone();
        self.executables.retain(|_, exe| *exe != default);
    }

    /// The file's text, with comments explaining each key.
    pub fn to_toml(&self) -> String {
        let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
        let mut out = String::new();
        out.push_str(
            "# Read by the appstart launcher at every start; see docs/appstart-toml.md.\n",
        );
        out.push_str("# Roll back by hand: set `current` to another folder under versions/.\n");
        out.push_str(&format!("current = {}\n", quote(self.current.as_str())));
        if let Some(previous) = &self.previous {
            out.push_str(&format!("previous = {}\n", quote(previous.as_str())));
        }
        out.push_str(&format!(
            "executable = {}\n",
            quote(self.executable.as_str())
        ));
        out.push_str(&format!("restart_code = {}\n", self.restart_code));
        if !self.executables.is_empty() {
            out.push_str(
                "\n# Versions whose executable differs from `executable`.\n[executables]\n",
            );
            for (version, exe) in &self.executables {
                out.push_str(&format!(
                    "{} = {}\n",
                    quote(version.as_str()),
                    quote(exe.as_str())
                ));
            }
        }
        out.push_str(&format!(
            "\n[restart]\nmax = {}\nwindow_secs = {}\n",
            self.restart.max, self.restart.window_secs
        ));
        out.push_str(&format!(
            "\n[probation]\nsecs = {}\nfailures = {}\n",
            self.probation.secs, self.probation.failures
        ));
        out
    }

    /// Writes the config to `path` atomically and durably.
    pub fn save(&self, path: &Path) -> Result<()> {
        fsutil::write_atomic(path, self.to_toml().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> VersionName {
        VersionName::parse(s).unwrap()
    }
    fn p(s: &str) -> RelativePath {
        RelativePath::parse(s).unwrap()
    }

    #[test]
    fn round_trips_through_text() {
        let mut config = LauncherConfig::new(v("1.0.0"), p("bin/app"));
        config.switch_to(v("2.0.0"), p("bin/app2"));
        let text = config.to_toml();
        let parsed = LauncherConfig::parse(&text, Path::new("appstart.toml")).unwrap();
        assert_eq!(parsed, config);
        assert_eq!(parsed.executable_for(&v("1.0.0")), &p("bin/app"));
        assert_eq!(parsed.executable_for(&v("2.0.0")), &p("bin/app2"));
        assert_eq!(parsed.previous, Some(v("1.0.0")));
    }

    #[test]
    fn fall_back_restores_previous_executable() {
        let mut config = LauncherConfig::new(v("1.0.0"), p("bin/app"));
        config.switch_to(v("2.0.0"), p("bin/app2"));
        assert_eq!(config.fall_back(), Some(v("2.0.0")));
        assert_eq!(config.current, v("1.0.0"));
        assert_eq!(config.previous, None);
        assert_eq!(config.executable_for(&v("1.0.0")), &p("bin/app"));
        assert_eq!(config.executable_for(&v("2.0.0")), &p("bin/app2"));
        assert_eq!(config.fall_back(), None);
    }

    #[test]
    fn unknown_key_is_named_with_position() {
        let text = "current = \"1\"\nexecutable = \"a\"\ncurent = \"2\"\n";
        let err = LauncherConfig::parse(text, Path::new("x/appstart.toml")).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("curent"), "{message}");
        assert!(message.starts_with("x/appstart.toml:3:1:"), "{message}");
    }

    /// Regression: after `appupdate rollback` (current 2.0.0, previous 3.0.0), setting
    /// `current = "3.0.0"` by hand made the launcher refuse to start.
    #[test]
    fn a_previous_equal_to_current_is_treated_as_absent() {
        let text = "current = \"3.0.0\"\nprevious = \"3.0.0\"\nexecutable = \"a\"\n";
        let config = LauncherConfig::parse(text, Path::new("c")).unwrap();
        assert_eq!(config.current, v("3.0.0"));
        assert_eq!(config.previous, None);
    }

    #[test]
    fn refuses_bad_values() {
        for text in [
            "current = \"../x\"\nexecutable = \"a\"\n",
            "current = \"1\"\nexecutable = \"/bin/sh\"\n",
            "current = \"1\"\nexecutable = \"a\"\nrestart_code = 0\n",
        ] {
            assert!(
                LauncherConfig::parse(text, Path::new("c")).is_err(),
                "{text}"
            );
        }
    }

    // Rolling back by hand means editing this file, so anything a person (or a torn editor
    // save) can leave in it must give an error message, never a panic.
    mod properties {
        use super::*;
        use crate::testing::{cases, mutated};
        use proptest::prelude::*;

        const FULL: &str = "current = \"2.0.0\"\nprevious = \"1.0.0\"\nexecutable = \"bin/app\"\nrestart_code = 75\n\n[executables]\n\"1.0.0\" = \"bin/old-app\"\n\n[restart]\nmax = 5\nwindow_secs = 60\n\n[probation]\nsecs = 30\nfailures = 1\n";

        proptest! {
            #![proptest_config(cases())]

            #[test]
            fn parse_never_panics_on_arbitrary_text(text in any::<String>()) {
                let _ = LauncherConfig::parse(&text, Path::new("appstart.toml"));
            }

            #[test]
            fn parse_never_panics_on_mutated_files(text in mutated(FULL)) {
                let _ = LauncherConfig::parse(&text, Path::new("appstart.toml"));
            }
        }

        #[test]
        fn the_valid_sample_parses() {
            LauncherConfig::parse(FULL, Path::new("appstart.toml")).unwrap();
        }
    }
}
