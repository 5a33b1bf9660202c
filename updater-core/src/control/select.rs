//! The client's decision: of the releases for its app, channel and platform, which one this
//! install takes now, which newer ones it may not take yet, and why.
//!
//! Each release is tested in this order, newest first; the first that passes is taken, and
//! every newer one is reported as held back with the first test it failed:
//! 1. `policy`: `updates = false`, or a `pin` the version does not match;
//! 2. `pulled`, 3. `paused`: the release's state;
//! 4. `group`: the release names groups or install ids, and this install is in none of them;
//! 5. `from-version`: the release's `from` requirement does not match the current version
//!    (a fresh install has no current version and ignores `from`);
//! 6. `rollout`: the install's bucket is not below the percentage in force;
//! 7. `window`: outside the policy's update window (updates only, not fresh installs).
//!
//! Before all of them, for versions above the current one: `stop`, when the current release
//! is marked `stop` and has not yet run through its probation (its migrations must run once
//! before anything newer is applied).
//!
//! A critical release, or any release when the current one has expired, skips tests 6 and 7.
//! Normally only versions above the current one count. Two cases allow a lower one: the
//! current release is pulled (the install moves to the newest release it may take), and
//! the install changed channel (it takes the newest release of the new channel).

use std::time::SystemTime;

use serde::Serialize;

use super::ReleaseState;
use super::bucket::{bucket, in_wave};
use super::install_id::InstallId;
use super::policy::Policy;
use crate::release::{ANY_PLATFORM, Release};
use appstart_layout::VersionName;

/// Why a newer release is not taken now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum HoldReason {
    /// The install's bucket is outside the rollout.
    Rollout,
    /// The release is paused.
    Paused,
    /// The release is pulled.
    Pulled,
    /// The release is for other groups or installs.
    Group,
    /// The release's `from` does not match the current version.
    FromVersion,
    /// The enterprise policy forbids it.
    Policy,
    /// Outside the policy's update window.
    Window,
    /// The current release is marked `stop` and has not run yet.
    Stop,
}

impl HoldReason {
    /// The reason as `check --json` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::Rollout => "rollout",
            HoldReason::Paused => "paused",
            HoldReason::Pulled => "pulled",
            HoldReason::Group => "group",
            HoldReason::FromVersion => "from-version",
            HoldReason::Policy => "policy",
            HoldReason::Window => "window",
            HoldReason::Stop => "stop",
        }
    }
}

/// A newer release held back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HeldBack {
    /// Its version.
    pub version: VersionName,
    /// Why.
    pub reason: HoldReason,
}

/// What the decision depends on, besides the releases.
#[derive(Debug)]
pub struct Context<'a> {
    /// This install's id.
    pub install_id: &'a InstallId,
    /// This install's groups.
    pub groups: &'a [String],
    /// The app.
    pub app: &'a str,
    /// The current version; `None` for a fresh install.
    pub current: Option<&'a semver::Version>,
    /// The current version's release, as the metadata now lists it (`None` if it is gone
    /// or the install is fresh).
    pub current_release: Option<&'a Release>,
    /// The install follows another channel than the current version's.
    pub switching_channel: bool,
    /// The current release is marked `stop` and is still on probation (it has not run).
    pub stop_pending: bool,
    /// The enterprise policy.
    pub policy: &'a Policy,
    /// Now, for schedules and expiry.
    pub now: SystemTime,
    /// Now in local time, for the window.
    pub local: &'a jiff::Zoned,
}

/// The decision.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Selection<'r> {
    /// The release to take, if any.
    pub chosen: Option<&'r Release>,
    /// It is to be applied at once (critical, or the current release expired).
    pub critical: bool,
    /// Newer releases not taken, newest first.
    pub held_back: Vec<HeldBack>,
}

impl Context<'_> {
    /// Whether a release below the current version may be taken.
    fn may_go_down(&self) -> bool {
        self.switching_channel
            || self
                .current_release
                .is_some_and(|r| r.custom.control.state == ReleaseState::Pulled)
    }

    fn current_expired(&self) -> bool {
        self.current_release
            .is_some_and(|r| r.custom.control.expired_at(self.now))
    }

    /// Why `release` may not be taken now, if it may not.
    pub fn hold_reason(&self, release: &Release) -> Option<HoldReason> {
        let control = &release.custom.control;
        let fresh = self.current.is_none();
        if (!fresh && !self.policy.updates_allowed()) || !self.policy.pin_allows(&release.semver) {
            return Some(HoldReason::Policy);
        }
        match control.state {
            ReleaseState::Pulled => return Some(HoldReason::Pulled),
            ReleaseState::Paused => return Some(HoldReason::Paused),
            ReleaseState::Active => {}
        }
        if !(control.groups.is_empty() && control.installs.is_empty()) {
            let in_group = control.groups.iter().any(|g| self.groups.contains(g));
            let named = control
                .installs
                .iter()
                .any(|id| id.eq_ignore_ascii_case(self.install_id.as_str()));
            if !in_group && !named {
                return Some(HoldReason::Group);
            }
        }
        if let Some(current) = self.current
            && self.stop_pending
            && release.semver > *current
        {
            return Some(HoldReason::Stop);
        }
        // `from` describes a way up; going down (a pull, a channel switch) ignores it.
        if let (Some(current), Some(from)) = (self.current, &control.from)
            && release.semver > *current
        {
            let matches = semver::VersionReq::parse(from).is_ok_and(|req| req.matches(current));
            if !matches {
                return Some(HoldReason::FromVersion);
            }
        }
        let urgent = control.critical || self.current_expired();
        if !urgent {
            if let Some(rollout) = &control.rollout {
                let b = self.policy.ring().apply(bucket(
                    self.install_id.as_str(),
                    self.app,
                    release.version().as_str(),
                ));
                if !in_wave(b, rollout.percent_at(self.now)) {
                    return Some(HoldReason::Rollout);
                }
            }
            if !fresh && !self.policy.in_window(self.local) {
                return Some(HoldReason::Window);
            }
        }
        None
    }
}

/// Picks from `releases` (already limited to this app, channel and platform, and to versions
/// this install may hold at all) the release to take now.
pub fn select<'r>(releases: &'r [Release], context: &Context<'_>) -> Selection<'r> {
    let mut ordered: Vec<&Release> = releases.iter().collect();
    // Newest first; of one version, the platform-specific release before `any`.
    ordered.sort_by(|a, b| {
        b.semver.cmp(&a.semver).then_with(|| {
            (b.custom.platform != ANY_PLATFORM).cmp(&(a.custom.platform != ANY_PLATFORM))
        })
    });
    let may_go_down = context.may_go_down();
    let mut held_back: Vec<HeldBack> = Vec::new();
    for release in ordered {
        if let Some(current) = context.current {
            if release.semver == *current {
                // After a channel switch, the new channel's release of the running version
                // means the install has arrived: nothing older is wanted.
                if context.switching_channel && context.hold_reason(release).is_none() {
                    break;
                }
                continue;
            }
            if !may_go_down && release.semver < *current {
                continue;
            }
        }
        match context.hold_reason(release) {
            None => {
                let critical = release.custom.control.critical || context.current_expired();
                return Selection {
                    chosen: Some(release),
                    critical,
                    held_back,
                };
            }
            Some(reason) => {
                let newer = context.current.is_none_or(|c| release.semver > *c);
                if newer && !held_back.iter().any(|h| &h.version == release.version()) {
                    held_back.push(HeldBack {
                        version: release.version().clone(),
                        reason,
                    });
                }
            }
        }
    }
    Selection {
        chosen: None,
        critical: false,
        held_back,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::{releases, target_name};
    use crate::tuf::metadata::TargetFile;
    use std::collections::BTreeMap;

    fn release(version: &str, control: serde_json::Value) -> Release {
        let name = target_name(
            "demo",
            "stable",
            "any",
            &VersionName::parse(version).unwrap(),
        );
        let target = TargetFile {
            length: 1,
            hashes: BTreeMap::new(),
            custom: Some(serde_json::json!({
                "app": "demo", "version": version, "channel": "stable", "platform": "any",
                "executable": "bin/app", "control": control,
            })),
            extra: Default::default(),
        };
        let mut found = releases([(&name, &target)]);
        assert_eq!(found.len(), 1, "{control}");
        found.remove(0)
    }

    struct Fixture {
        id: InstallId,
        groups: Vec<String>,
        policy: Policy,
        local: jiff::Zoned,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                id: InstallId::parse("0123456789abcdef0123456789abcdef").unwrap(),
                groups: vec!["testers".into()],
                policy: Policy::default(),
                local: jiff::Zoned::now(),
            }
        }

        fn context<'a>(
            &'a self,
            current: Option<&'a semver::Version>,
            current_release: Option<&'a Release>,
        ) -> Context<'a> {
            Context {
                install_id: &self.id,
                groups: &self.groups,
                app: "demo",
                current,
                current_release,
                switching_channel: false,
                stop_pending: false,
                policy: &self.policy,
                now: SystemTime::now(),
                local: &self.local,
            }
        }
    }

    fn held(selection: &Selection<'_>) -> Vec<(String, &'static str)> {
        selection
            .held_back
            .iter()
            .map(|h| (h.version.to_string(), h.reason.as_str()))
            .collect()
    }

    #[test]
    fn each_control_holds_back_with_its_reason_and_the_newest_open_release_wins() {
        let all = vec![
            release("1.0.0", serde_json::json!({})),
            release("1.1.0", serde_json::json!({})),
            release("2.0.0", serde_json::json!({"state": "paused"})),
            release("3.0.0", serde_json::json!({"state": "pulled"})),
            release("4.0.0", serde_json::json!({"groups": ["staff"]})),
            release("5.0.0", serde_json::json!({"from": ">=2"})),
            release("6.0.0", serde_json::json!({"rollout": {"percent": 0.0}})),
        ];
        let fixture = Fixture::new();
        let current = semver::Version::parse("1.0.0").unwrap();
        let selection = select(&all, &fixture.context(Some(&current), Some(&all[0])));
        assert_eq!(selection.chosen.unwrap().version().as_str(), "1.1.0");
        assert_eq!(
            held(&selection),
            vec![
                ("6.0.0".into(), "rollout"),
                ("5.0.0".into(), "from-version"),
                ("4.0.0".into(), "group"),
                ("3.0.0".into(), "pulled"),
                ("2.0.0".into(), "paused"),
            ]
        );
        assert!(!selection.critical);
    }

    #[test]
    fn groups_or_install_ids_admit_an_install() {
        let fixture = Fixture::new();
        let all = vec![
            release("2.0.0", serde_json::json!({"groups": ["testers"]})),
            release(
                "3.0.0",
                serde_json::json!({"installs": ["0123456789ABCDEF0123456789ABCDEF"]}),
            ),
        ];
        let current = semver::Version::parse("1.0.0").unwrap();
        let selection = select(&all, &fixture.context(Some(&current), None));
        assert_eq!(selection.chosen.unwrap().version().as_str(), "3.0.0");
    }

    #[test]
    fn a_pulled_current_release_moves_the_install_down() {
        let fixture = Fixture::new();
        let all = vec![
            release("1.0.0", serde_json::json!({})),
            release("2.0.0", serde_json::json!({"state": "pulled"})),
        ];
        let current = semver::Version::parse("2.0.0").unwrap();
        let selection = select(&all, &fixture.context(Some(&current), Some(&all[1])));
        assert_eq!(selection.chosen.unwrap().version().as_str(), "1.0.0");
        // Not pulled: nothing lower is taken.
        let selection = select(&all[..1], &fixture.context(Some(&current), None));
        assert!(selection.chosen.is_none());
    }

    #[test]
    fn critical_and_expired_releases_bypass_rollout_and_window_but_not_the_policy() {
        let mut fixture = Fixture::new();
        let hour = fixture.local.hour();
        let (start, end) = ((hour + 2) % 24, (hour + 3) % 24);
        fixture.policy.window = Some(
            super::super::policy::Window::parse(&format!("{start:02}:00-{end:02}:00")).unwrap(),
        );
        let all = vec![
            release(
                "1.0.0",
                serde_json::json!({"expires": "2000-01-01T00:00:00Z"}),
            ),
            release("2.0.0", serde_json::json!({})),
            release(
                "3.0.0",
                serde_json::json!({"critical": true, "rollout": {"percent": 0.0}}),
            ),
        ];
        let current = semver::Version::parse("1.0.0").unwrap();
        let selection = select(&all[..2], &fixture.context(Some(&current), None));
        assert!(selection.chosen.is_none());
        assert_eq!(held(&selection), vec![("2.0.0".into(), "window")]);
        let selection = select(&all, &fixture.context(Some(&current), None));
        assert_eq!(selection.chosen.unwrap().version().as_str(), "3.0.0");
        assert!(selection.critical);
        // The current release expired: its update is critical.
        let selection = select(&all[..2], &fixture.context(Some(&current), Some(&all[0])));
        assert_eq!(selection.chosen.unwrap().version().as_str(), "2.0.0");
        assert!(selection.critical);
        fixture.policy.updates = Some(false);
        let selection = select(&all, &fixture.context(Some(&current), Some(&all[0])));
        assert!(selection.chosen.is_none());
        assert!(
            held(&selection)
                .iter()
                .all(|(_, reason)| *reason == "policy")
        );
    }

    #[test]
    fn a_stop_release_on_probation_holds_newer_ones_and_from_is_ignored_going_down() {
        let fixture = Fixture::new();
        let all = vec![
            release("1.0.0", serde_json::json!({})),
            release("2.0.0", serde_json::json!({"from": "^1", "stop": true})),
            release("3.0.0", serde_json::json!({"from": ">=2"})),
        ];
        let current = semver::Version::parse("2.0.0").unwrap();
        let mut context = fixture.context(Some(&current), Some(&all[1]));
        context.stop_pending = true;
        let selection = select(&all, &context);
        assert!(selection.chosen.is_none());
        assert_eq!(held(&selection), vec![("3.0.0".into(), "stop")]);
        context.stop_pending = false;
        assert_eq!(
            select(&all, &context).chosen.unwrap().version().as_str(),
            "3.0.0"
        );
        // 3.0.0 pulled: back to 2.0.0, whose `from` (^1) does not apply going down.
        let current = semver::Version::parse("3.0.0").unwrap();
        let pulled = release("3.0.0", serde_json::json!({"state": "pulled"}));
        let all = vec![all[0].clone(), all[1].clone(), pulled.clone()];
        let selection = select(&all, &fixture.context(Some(&current), Some(&pulled)));
        assert_eq!(selection.chosen.unwrap().version().as_str(), "2.0.0");
    }
}
