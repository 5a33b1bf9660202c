//! Release control: who may take a release, and when, as signed data in the release's target
//! entry (`custom.control`), plus the publisher's free-form `custom.data`.
//!
//! Every control is part of the targets metadata (top-level or delegated) that names the
//! release, so it is signed, served as a static file, and changed by re-signing metadata
//! only: the manifest, blobs and pack of a release never change. Each client decides for
//! itself, deterministically, from that metadata, its own install id, its groups, its
//! current version, the enterprise policy in force and its clock. `docs/rollout.md` is the
//! reference for the format; this module is its only reader and writer.
//!
//! Where each part lives: this file (the signed format), [`bucket`] (the rollout hash),
//! [`install_id`] (the random id in `state/install-id`), [`policy`] (`policy.toml`) and
//! [`select`] (the client's decision: what to take, what is held back and why).

pub mod bucket;
pub mod install_id;
mod percent;
pub mod policy;
pub mod select;

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The `control` object of a release's signed custom fields. Every field is optional; a
/// release without one is open to every install at once.
///
/// Unknown fields are refused (`deny_unknown_fields`): a client that does not understand a
/// restriction added by a newer publisher ignores the release rather than skip the
/// restriction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Control {
    /// Staged rollout; absent means 100 %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// `active` (default), `paused` or `pulled`.
    #[serde(default, skip_serializing_if = "ReleaseState::is_active")]
    pub state: ReleaseState,
    /// Only installs in one of these groups may take it (with `installs`: either suffices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Only these install ids may take it (with `groups`: either suffices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub installs: Vec<String>,
    /// Only installs whose current version matches this SemVer requirement may take it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The release must run once before anything newer is applied (data migrations): an
    /// update run stops its chain after it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop: bool,
    /// Bypasses rollout and update windows; the poller applies it and asks the app to restart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub critical: bool,
    /// RFC 3339 time after which an install still on this release treats its update as
    /// critical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// Whether a release may be taken at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseState {
    /// Open (subject to the other controls).
    #[default]
    Active,
    /// No new install takes it; installs already on it stay.
    Paused,
    /// No install takes it, and installs on it move to the newest release they may take.
    Pulled,
}

impl ReleaseState {
    fn is_active(&self) -> bool {
        *self == ReleaseState::Active
    }

    /// `active`, `paused` or `pulled`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseState::Active => "active",
            ReleaseState::Paused => "paused",
            ReleaseState::Pulled => "pulled",
        }
    }
}

/// A rollout: a fixed percentage, or a schedule of percentages over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Rollout {
    /// Percentage of installs (0 to 100, two decimals count) in the wave now; with a
    /// schedule, the percentage before its first step (usually 0).
    #[serde(with = "percent")]
    pub percent: f64,
    /// Steps in time order: from `at` on (the client's clock), `percent` applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<RolloutStep>,
}

/// One step of a rollout schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutStep {
    /// Percentage from `at` on.
    #[serde(with = "percent")]
    pub percent: f64,
    /// RFC 3339 UTC time.
    pub at: String,
}

impl Rollout {
    /// A fixed percentage.
    pub fn fixed(percent: f64) -> Self {
        Rollout {
            percent,
            schedule: Vec::new(),
        }
    }

    /// A schedule starting from 0 %.
    pub fn scheduled(schedule: Vec<RolloutStep>) -> Self {
        Rollout {
            percent: 0.0,
            schedule,
        }
    }

    /// The percentage in force at `now`: the last step whose time has come, else `percent`.
    /// A step whose time cannot be read is skipped (it was checked when published).
    pub fn percent_at(&self, now: SystemTime) -> f64 {
        self.schedule
            .iter()
            .rfind(|step| parse_time(&step.at).is_some_and(|at| at <= now))
            .map_or(self.percent, |step| step.percent)
    }

    /// Checks the percentages (0 to 100) and the schedule's times (readable, increasing).
    pub fn check(&self) -> Result<(), String> {
        check_percent(self.percent)?;
        let mut last: Option<SystemTime> = None;
        for step in &self.schedule {
            check_percent(step.percent)?;
            let at = parse_time(&step.at)
                .ok_or_else(|| format!("rollout step time {:?} is not RFC 3339", step.at))?;
            if last.is_some_and(|last| at < last) {
                return Err(format!(
                    "rollout step at {} comes before the step above it",
                    step.at
                ));
            }
            last = Some(at);
        }
        Ok(())
    }
}

fn check_percent(percent: f64) -> Result<(), String> {
    if !(0.0..=100.0).contains(&percent) {
        return Err(format!(
            "rollout percentage {percent} is not between 0 and 100"
        ));
    }
    Ok(())
}

/// Parses an RFC 3339 time (any offset; `Z` for UTC).
pub fn parse_time(text: &str) -> Option<SystemTime> {
    text.parse::<jiff::Timestamp>().ok().map(SystemTime::from)
}

impl Control {
    /// Checks every field: percentages, times, the `from` requirement, install ids and
    /// group names. `what` names the release in the message.
    pub fn check(&self, what: &str) -> Result<(), String> {
        let fail = |message: String| Err(format!("{what}: control: {message}"));
        if let Some(rollout) = &self.rollout
            && let Err(message) = rollout.check()
        {
            return fail(message);
        }
        if let Some(from) = &self.from
            && let Err(e) = semver::VersionReq::parse(from)
        {
            return fail(format!("`from` {from:?} is not a SemVer requirement: {e}"));
        }
        if let Some(expires) = &self.expires
            && parse_time(expires).is_none()
        {
            return fail(format!("`expires` {expires:?} is not an RFC 3339 time"));
        }
        for id in &self.installs {
            if let Err(message) = install_id::InstallId::parse(id) {
                return fail(message);
            }
        }
        for group in &self.groups {
            if let Err(message) = check_group(group) {
                return fail(message);
            }
        }
        Ok(())
    }

    /// Whether `expires` has passed at `now`.
    pub fn expired_at(&self, now: SystemTime) -> bool {
        self.expires
            .as_deref()
            .and_then(parse_time)
            .is_some_and(|at| at <= now)
    }

    /// The `from` requirement, parsed (`None` when absent or unreadable).
    pub fn from_requirement(&self) -> Option<semver::VersionReq> {
        self.from
            .as_deref()
            .and_then(|f| semver::VersionReq::parse(f).ok())
    }
}

/// A group name: 1 to 64 characters of ASCII letters, digits, `-`, `_` and `.`.
pub fn check_group(group: &str) -> Result<(), String> {
    let ok = !group.is_empty()
        && group.len() <= 64
        && group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "group {group:?} must be 1 to 64 ASCII letters, digits, '-', '_' or '.'"
        ))
    }
}

/// Most entries of `custom.data` (so one release's metadata stays small: every client
/// downloads every release's entry).
pub const MAX_CUSTOM_DATA_BYTES: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_schedule_steps_up_at_its_times() {
        let start = parse_time("2026-12-01T00:00:00Z").unwrap();
        let rollout = Rollout::scheduled(vec![
            RolloutStep {
                percent: 1.0,
                at: "2026-12-01T00:00:00Z".into(),
            },
            RolloutStep {
                percent: 10.0,
                at: "2026-12-02T00:00:00Z".into(),
            },
            RolloutStep {
                percent: 100.0,
                at: "2026-12-04T00:00:00Z".into(),
            },
        ]);
        rollout.check().unwrap();
        assert_eq!(rollout.percent_at(start - Duration::from_secs(1)), 0.0);
        assert_eq!(rollout.percent_at(start), 1.0);
        assert_eq!(
            rollout.percent_at(start + Duration::from_secs(86_400)),
            10.0
        );
        assert_eq!(
            rollout.percent_at(start + Duration::from_secs(5 * 86_400)),
            100.0
        );
    }

    #[test]
    fn bad_controls_are_refused_with_the_field_named() {
        let control = Control {
            from: Some(">>2".into()),
            ..Control::default()
        };
        assert!(control.check("demo 2.0.0").unwrap_err().contains("`from`"));
        let control = Control {
            rollout: Some(Rollout::fixed(101.0)),
            ..Control::default()
        };
        assert!(control.check("x").unwrap_err().contains("101"));
        let control = Control {
            installs: vec!["not-hex".into()],
            ..Control::default()
        };
        assert!(control.check("x").is_err());
    }

    #[test]
    fn unknown_control_fields_are_refused() {
        let value = serde_json::json!({"state": "paused", "countries": ["fr"]});
        assert!(serde_json::from_value::<Control>(value).is_err());
        let value = serde_json::json!({"state": "paused"});
        let control: Control = serde_json::from_value(value).unwrap();
        assert_eq!(control.state, ReleaseState::Paused);
        assert_eq!(
            serde_json::to_value(Control::default()).unwrap(),
            serde_json::json!({})
        );
    }
}
