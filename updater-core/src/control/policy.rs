//! Enterprise policy: `policy.toml`, which an administrator uses to pin, lock or stop updates.
//!
//! Read from the install folder (`DIR/policy.toml`) and from the machine-wide place
//! (`/etc/appstart/policy.toml`, `%ProgramData%\appstart\policy.toml`, `/Library/Application
//! Support/appstart/policy.toml`). Key by key, machine-wide wins: a user who can write the
//! install folder cannot loosen what the administrator set. `APPSTART_MACHINE_POLICY` names
//! one more machine-wide file, below the fixed place (so it can never override it): for
//! images and tests that cannot write `/etc`.
//!
//! Keys: `updates = false`, `pin = "1.4"` (a version prefix) or `pin = ">=1.4, <1.6"` (a SemVer
//! requirement), `channel = "stable"` (locks the channel), `window = "22:00-06:00"` (local
//! time, may wrap midnight), `rollout = "early" | "normal" | "late"` (see
//! [`super::bucket::RolloutRing`]), `receipts = false`, `max_bandwidth = "2M"` (caps background
//! downloads; with the install's own `max_bandwidth` the lower wins: the administrator's cap),
//! `metered = "pause" | "allow"` (background downloads on a metered connection). A file that cannot be read, is not
//! TOML, has an unknown key or a bad value is an error naming the file: the update stops
//! and the install stays as it is, rather than run without the policy meant for it.

use std::path::{Path, PathBuf};

use appstart_layout::{InstallDir, fsutil};
use serde::{Deserialize, Serialize};

use super::bucket::RolloutRing;
use crate::bandwidth::Rate;
use crate::error::{Error, Result};
use crate::manifest::check_label;
use crate::network_cost::MeteredMode;

/// Environment variable naming one more machine-wide policy file.
pub const MACHINE_POLICY_ENV: &str = "APPSTART_MACHINE_POLICY";

/// Largest policy file read.
const MAX_POLICY_FILE: u64 = 64 * 1024;

/// One policy file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    updates: Option<bool>,
    pin: Option<String>,
    channel: Option<String>,
    window: Option<String>,
    rollout: Option<RolloutRing>,
    receipts: Option<bool>,
    max_bandwidth: Option<String>,
    metered: Option<MeteredMode>,
}

/// The policy in force: every key set by some file, machine-wide first.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Policy {
    /// `false`: no update is taken, critical ones included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updates: Option<bool>,
    /// Only versions matching this prefix or requirement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<Pin>,
    /// The only channel this install may follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Updates only between these local times (critical ones at any time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// Where this machine sits in every rollout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutRing>,
    /// `false`: send no receipts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipts: Option<bool>,
    /// Caps background downloads (the lower of this and the install's `max_bandwidth`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bandwidth: Option<Rate>,
    /// What background downloads do on a metered connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metered: Option<MeteredMode>,
    /// The files read, machine-wide first.
    pub sources: Vec<PathBuf>,
}

impl Policy {
    /// The policy of `install`: its own file and the machine-wide ones.
    pub fn load(install: &InstallDir) -> Result<Policy> {
        let mut paths = machine_paths();
        paths.push(install.policy_path());
        Policy::load_from(&paths)
    }

    /// The policy from `paths`, the first file to set a key winning. Missing files are
    /// skipped.
    pub fn load_from(paths: &[PathBuf]) -> Result<Policy> {
        let mut policy = Policy::default();
        for path in paths {
            let Some(file) = read_file(path)? else {
                continue;
            };
            policy.sources.push(path.clone());
            let bad = |key: &str, message: String| {
                Error::format(
                    path.display().to_string(),
                    format!("key `{key}`: {message}"),
                )
            };
            if policy.updates.is_none() {
                policy.updates = file.updates;
            }
            if policy.pin.is_none()
                && let Some(pin) = &file.pin
            {
                policy.pin = Some(Pin::parse(pin).map_err(|m| bad("pin", m))?);
            } else if let Some(pin) = &file.pin {
                Pin::parse(pin).map_err(|m| bad("pin", m))?;
            }
            if let Some(channel) = &file.channel {
                check_label("channel", channel).map_err(|e| bad("channel", e.to_string()))?;
                if policy.channel.is_none() {
                    policy.channel = Some(channel.clone());
                }
            }
            if let Some(window) = &file.window {
                let window = Window::parse(window).map_err(|m| bad("window", m))?;
                if policy.window.is_none() {
                    policy.window = Some(window);
                }
            }
            if policy.rollout.is_none() {
                policy.rollout = file.rollout;
            }
            if policy.receipts.is_none() {
                policy.receipts = file.receipts;
            }
            if let Some(rate) = &file.max_bandwidth {
                let rate = Rate::parse(rate).map_err(|m| bad("max_bandwidth", m))?;
                if policy.max_bandwidth.is_none() {
                    policy.max_bandwidth = Some(rate);
                }
            }
            if policy.metered.is_none() {
                policy.metered = file.metered;
            }
        }
        Ok(policy)
    }

    /// Whether updates are allowed at all.
    pub fn updates_allowed(&self) -> bool {
        self.updates != Some(false)
    }

    /// Whether the pin (if any) allows `version`.
    pub fn pin_allows(&self, version: &semver::Version) -> bool {
        self.pin.as_ref().is_none_or(|pin| pin.matches(version))
    }

    /// Whether `now` is inside the update window (always, without one).
    pub fn in_window(&self, now: &jiff::Zoned) -> bool {
        self.window.as_ref().is_none_or(|w| w.contains(now))
    }

    /// The bandwidth limit of background downloads: the lower of the policy's and
    /// `install`'s (the install's own setting).
    pub fn background_rate(&self, install: Option<Rate>) -> Option<Rate> {
        match (self.max_bandwidth, install) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What background downloads do on a metered connection: the policy's choice, else
    /// `install`'s, else pause.
    pub fn metered_mode(&self, install: Option<MeteredMode>) -> MeteredMode {
        self.metered.or(install).unwrap_or_default()
    }

    /// The rollout ring.
    pub fn ring(&self) -> RolloutRing {
        self.rollout.unwrap_or_default()
    }
}

/// The machine-wide policy files, strongest first.
pub fn machine_paths() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(path) = system_path() {
        paths.push(path);
    }
    if let Some(path) = std::env::var_os(MACHINE_POLICY_ENV).filter(|p| !p.is_empty()) {
        paths.push(PathBuf::from(path));
    }
    paths
}

fn system_path() -> Option<PathBuf> {
    if cfg!(windows) {
        let data = std::env::var_os("ProgramData").unwrap_or_else(|| r"C:\ProgramData".into());
        Some(PathBuf::from(data).join("appstart").join("policy.toml"))
    } else if cfg!(target_os = "macos") {
        Some(PathBuf::from(
            "/Library/Application Support/appstart/policy.toml",
        ))
    } else {
        Some(PathBuf::from("/etc/appstart/policy.toml"))
    }
}

fn read_file(path: &Path) -> Result<Option<PolicyFile>> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading", path, e)),
        Ok(_) => {}
    }
    let text = fsutil::read_to_string_capped(path, MAX_POLICY_FILE)?;
    let file: PolicyFile =
        toml::from_str(&text).map_err(|e| appstart_layout::Error::from_toml(path, &text, &e))?;
    Ok(Some(file))
}

/// `pin`: a version prefix (`1`, `1.4`, `1.4.2`) or a SemVer requirement (`>=1.4, <1.6`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(into = "String")]
pub struct Pin {
    text: String,
    kind: PinKind,
}

#[derive(Debug, Clone, PartialEq)]
enum PinKind {
    Prefix(Vec<u64>),
    Requirement(semver::VersionReq),
}

impl From<Pin> for String {
    fn from(pin: Pin) -> String {
        pin.text
    }
}

impl Pin {
    /// Parses a prefix (digits and dots, one to three parts) or a requirement.
    pub fn parse(text: &str) -> std::result::Result<Pin, String> {
        let prefix: Option<Vec<u64>> = text.split('.').map(|part| part.parse().ok()).collect();
        let kind = match prefix {
            Some(parts) if (1..=3).contains(&parts.len()) => PinKind::Prefix(parts),
            _ => PinKind::Requirement(semver::VersionReq::parse(text).map_err(|e| {
                format!("{text:?} is neither a version prefix like \"1.4\" nor a SemVer requirement: {e}")
            })?),
        };
        Ok(Pin {
            text: text.to_string(),
            kind,
        })
    }

    /// Whether `version` matches.
    pub fn matches(&self, version: &semver::Version) -> bool {
        match &self.kind {
            PinKind::Prefix(parts) => parts
                .iter()
                .zip([version.major, version.minor, version.patch])
                .all(|(want, have)| *want == have),
            PinKind::Requirement(req) => req.matches(version),
        }
    }
}

/// `window = "HH:MM-HH:MM"`, local time; may wrap midnight; equal ends mean all day.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(into = "String")]
pub struct Window {
    start: u32,
    end: u32,
}

impl From<Window> for String {
    fn from(w: Window) -> String {
        format!(
            "{:02}:{:02}-{:02}:{:02}",
            w.start / 60,
            w.start % 60,
            w.end / 60,
            w.end % 60
        )
    }
}

impl Window {
    /// Parses `HH:MM-HH:MM`.
    pub fn parse(text: &str) -> std::result::Result<Window, String> {
        let minutes = |part: &str| -> Option<u32> {
            let (h, m) = part.trim().split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60 && part.trim().len() == 5).then_some(h * 60 + m)
        };
        let parsed = text
            .split_once('-')
            .and_then(|(a, b)| Some((minutes(a)?, minutes(b)?)));
        match parsed {
            Some((start, end)) => Ok(Window { start, end }),
            None => Err(format!(
                "{text:?} is not a local time window like \"22:00-06:00\""
            )),
        }
    }

    /// Whether the local time of `now` is inside.
    pub fn contains(&self, now: &jiff::Zoned) -> bool {
        let minute =
            u32::try_from(i32::from(now.hour()) * 60 + i32::from(now.minute())).unwrap_or(0);
        match self.start.cmp(&self.end) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => self.start <= minute && minute < self.end,
            std::cmp::Ordering::Greater => minute >= self.start || minute < self.end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hour: i8, minute: i8) -> jiff::Zoned {
        jiff::civil::date(2026, 12, 2)
            .at(hour, minute, 0, 0)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
    }

    #[test]
    fn windows_may_wrap_midnight() {
        let night = Window::parse("22:00-06:00").unwrap();
        assert!(night.contains(&at(23, 0)));
        assert!(night.contains(&at(5, 59)));
        assert!(!night.contains(&at(6, 0)));
        assert!(!night.contains(&at(12, 0)));
        let day = Window::parse("09:30-17:00").unwrap();
        assert!(day.contains(&at(9, 30)) && !day.contains(&at(17, 0)));
        assert_eq!(String::from(night), "22:00-06:00");
        for bad in ["22-06", "25:00-01:00", "1:00-2:00", "22:00", ""] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pins_are_prefixes_or_requirements() {
        let v = |s: &str| semver::Version::parse(s).unwrap();
        let pin = Pin::parse("1.4").unwrap();
        assert!(pin.matches(&v("1.4.0")) && pin.matches(&v("1.4.9")));
        assert!(!pin.matches(&v("1.5.0")) && !pin.matches(&v("1.40.0")));
        let pin = Pin::parse(">=1.4, <1.6").unwrap();
        assert!(pin.matches(&v("1.5.3")) && !pin.matches(&v("1.6.0")));
        assert!(Pin::parse("one.four").is_err());
    }

    #[test]
    fn machine_wide_wins_key_by_key_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let machine = dir.path().join("machine.toml");
        let local = dir.path().join("local.toml");
        std::fs::write(&machine, "pin = \"1.4\"\n").unwrap();
        std::fs::write(&local, "pin = \"2\"\nupdates = false\nrollout = \"late\"\n").unwrap();
        let policy = Policy::load_from(&[machine.clone(), local.clone()]).unwrap();
        assert_eq!(policy.pin.as_ref().map(|p| p.text.as_str()), Some("1.4"));
        assert!(!policy.updates_allowed());
        assert_eq!(policy.ring(), RolloutRing::Late);
        assert_eq!(policy.sources, vec![machine.clone(), local.clone()]);
        std::fs::write(&local, "updates = \"no\"\n").unwrap();
        let err = Policy::load_from(std::slice::from_ref(&local))
            .unwrap_err()
            .to_string();
        assert!(err.contains("local.toml"), "{err}");
        std::fs::write(&local, "window = \"soon\"\n").unwrap();
        let err = Policy::load_from(std::slice::from_ref(&local))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("local.toml") && err.contains("window"),
            "{err}"
        );
        std::fs::write(&machine, "max_bandwidth = \"1M\"\n").unwrap();
        std::fs::write(&local, "max_bandwidth = \"4M\"\nmetered = \"allow\"\n").unwrap();
        let policy = Policy::load_from(&[machine.clone(), local.clone()]).unwrap();
        let rate = |t: &str| Some(Rate::parse(t).unwrap());
        assert_eq!(policy.max_bandwidth, rate("1M"));
        assert_eq!(policy.background_rate(rate("512K")), rate("512K"));
        assert_eq!(policy.background_rate(rate("2M")), rate("1M"));
        assert_eq!(policy.background_rate(None), rate("1M"));
        assert_eq!(
            policy.metered_mode(Some(MeteredMode::Pause)),
            MeteredMode::Allow
        );
        assert_eq!(Policy::default().metered_mode(None), MeteredMode::Pause);
        std::fs::write(&local, "max_bandwidth = \"fast\"\n").unwrap();
        let err = Policy::load_from(std::slice::from_ref(&local))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("local.toml") && err.contains("max_bandwidth"),
            "{err}"
        );
        std::fs::write(&local, "updatez = false\n").unwrap();
        assert!(Policy::load_from(&[local]).is_err());
        assert_eq!(
            Policy::load_from(&[dir.path().join("missing.toml")]).unwrap(),
            Policy::default()
        );
    }
}
